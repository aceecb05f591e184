"""Issue 12, fail fast: a worker that crashed ends its process with a non-zero status within
STOCKFLOW_CRASH_EXIT_TIMEOUT, instead of hanging in Faust's stop with its partitions assigned
(seen: more than 3 minutes in "Wait for streams..."). The faults are injected by a test-only
app (``faulty_app.py``) into a real worker process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from stockflow.lifecycle import EXIT_CRASHED
from stockflow.testing import WorkerProcess
from stockflow.testing.harness import Harness

from expectations import order_placed

HERE = Path(__file__).resolve().parent
BOUND = 5.0  # STOCKFLOW_CRASH_EXIT_TIMEOUT in these tests
SLACK = 15.0  # the watchdog polls; Faust logs and stops what it can first
MARKS = ("injected fault", "Unrecognized partition")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", ["agent", "changelog", "partition", "stuck"])
def test_a_crashed_worker_exits_non_zero_within_the_bound(tmp_path: Path, fault: str) -> None:
    with Harness(partitions=4, workdir=tmp_path) as harness:
        pythonpath = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
        worker = WorkerProcess(
            {
                **harness.env,
                "PYTHONPATH": pythonpath,
                "STOCKFLOW_TEST_FAULT": fault,
                "STOCKFLOW_CRASH_EXIT_TIMEOUT": str(BOUND),
            },
            app="faulty_app:app",
            datadir=tmp_path / "faulty",
            log_path=tmp_path / "faulty.log",
        )
        harness.workers.append(worker)  # stopped by PID in harness.close() if it hangs
        worker.start().wait_ready(30)
        harness.stock("fine", 2)  # the worker works until the fault
        harness.send([order_placed("o1", ("fine", 1))])
        harness.wait_outcomes(["o1"], timeout=20)

        harness.send(
            [("inventory", "boom", {"type": "StockSet", "product_id": "boom", "on_hand": 1})]
        )
        assert worker.process is not None
        deadline = time.monotonic() + 30
        while worker.running and not any(m in worker.log_text() for m in MARKS):
            assert time.monotonic() < deadline, worker.log_text()[-3000:]
            time.sleep(0.1)
        crashed = time.monotonic()
        code = worker.process.wait(timeout=BOUND + SLACK + 30)
        took = time.monotonic() - crashed
        log = worker.log_text()
        assert code == EXIT_CRASHED, log[-3000:]
        assert took <= BOUND + SLACK, f"exited {took:.1f} s after the crash"
        assert any(mark in log for mark in MARKS), log[-3000:]


@pytest.mark.timeout(90)
def test_a_worker_that_lost_its_broker_exits_after_the_allowance(tmp_path: Path) -> None:
    allowance = 3.0
    with Harness(partitions=4, workdir=tmp_path) as harness:
        worker = harness.worker(
            STOCKFLOW_BROKER_LOST_TIMEOUT=str(allowance),
            STOCKFLOW_CRASH_EXIT_TIMEOUT=str(BOUND),
        )
        worker.start().wait_ready(30)
        harness.stock("fine", 1)
        harness.broker.stop()  # and never back
        lost = time.monotonic()
        assert worker.process is not None
        code = worker.process.wait(timeout=allowance + BOUND + SLACK + 30)
        took = time.monotonic() - lost
        log = worker.log_text()
        assert code == EXIT_CRASHED, log[-3000:]
        assert took <= allowance + BOUND + SLACK, f"exited {took:.1f} s after the broker went"
        assert "STOCKFLOW_BROKER_LOST_TIMEOUT=3" in log
