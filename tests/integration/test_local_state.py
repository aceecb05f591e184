"""A worker's local RocksDB state never runs ahead of its changelog.

Found by a takeover soak (docs/reliability.md): a worker killed after applying a stock
adjustment but before its changelog records were on the broker kept the adjustment's marker in
its RocksDB store. Restarted, it processed the uncommitted adjustment again, found the marker
and wrote nothing; the changelog, and so every later owner of the partition, never got the
4 units. Here the moment is held open by a test-only fault (``faulty_app.py``, ``stall``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from stockflow.testing import WorkerProcess
from stockflow.testing.harness import Harness

HERE = Path(__file__).resolve().parent
STALLED = "injected fault: holding the changelog"


@pytest.mark.timeout(180)
def test_a_change_killed_before_its_changelog_write_is_applied_again(tmp_path: Path) -> None:
    with Harness(partitions=2, workdir=tmp_path) as harness:
        pythonpath = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
        datadir = tmp_path / "worker"

        def worker(fault: str, log: str) -> WorkerProcess:
            process = WorkerProcess(
                {**harness.env, "PYTHONPATH": pythonpath, "STOCKFLOW_TEST_FAULT": fault},
                app="faulty_app:app",
                datadir=datadir,  # the same RocksDB state for both runs
                log_path=tmp_path / log,
            )
            harness.workers.append(process)  # stopped by PID in harness.close()
            return process

        first = worker("stall", "first.log").start()
        first.wait_ready(60)
        harness.stock("sku", 10)
        adjustment = {"product_id": "sku", "delta": 4, "adjustment_id": "stall"}
        harness.send([("inventory", "sku", {"type": "StockAdjusted", **adjustment})])
        deadline = time.monotonic() + 30
        while STALLED not in first.log_text():
            assert time.monotonic() < deadline, first.log_text()[-3000:]
            time.sleep(0.1)
        first.stop(signal.SIGKILL)  # applied, its changelog records not sent

        second = worker("", "second.log").start()
        second.wait_ready(60)
        harness.wait_settled()
        state = harness.stock_state()
        assert state["sku"]["on_hand"] == 14, state  # the changelog has the adjustment
        assert state["sku"]["reserved"] == 0
        markers = [key for key in harness.changelog("products") if key.startswith("m:")]
        assert "m:3:sku:stall" in markers  # and its marker: a redelivery is not applied again
