"""Issue 13: ``examples/checkout/`` runs against a real worker: the Python checkout on
``stockflow.Client`` and the ``curl`` walk-through of the HTTP API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from stockflow.testing.harness import Harness

from expectations import assert_one_outcome_each

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "checkout"


def test_the_checkout_example_runs_both_ways(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    worker = harness.start_worker()
    harness.stock_many({"sku-tshirt": 10, "sku-mug": 5})
    env = {**os.environ, **harness.env}

    python = subprocess.run(
        [sys.executable, str(EXAMPLE / "app.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert python.returncode == 0, python.stderr
    lines = python.stdout.splitlines()
    assert len(lines) == 4, python.stdout
    assert re.fullmatch(r"checkout-\w+-0: paid, 3 unit\(s\) leave stock", lines[0])
    assert re.fullmatch(
        r"checkout-\w+-1: reserved, then cancelled \(2 line\(s\) released\)", lines[1]
    )
    assert re.fullmatch(r"checkout-\w+-2: paid, 3 unit\(s\) leave stock", lines[2])
    assert re.fullmatch(r"checkout-\w+-0 again: OrderReserved", lines[3])

    curl = subprocess.run(
        ["bash", str(EXAMPLE / "curl.sh")],
        env={**env, "STOCKFLOW_URL": f"http://127.0.0.1:{worker.web_port}", "ORDER": "walk"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert curl.returncode == 0, curl.stderr
    statuses = re.findall(r"^HTTP (\d+)$", curl.stdout, flags=re.MULTILINE)
    # place, again, conflict, invalid, pay, place ?wait=0, again, cancel, 3 reads
    assert statuses == ["200", "200", "409", "400", "200", "202", "200", "200", "200", "200", "200"]
    assert '"type":"OrderReserved"' in curl.stdout.replace(" ", "")
    assert '"openapi":"3.1.0"' in curl.stdout.replace(" ", "")

    harness.wait_settled()
    orders = [f"checkout-{m}" for m in re.findall(r"checkout-(\w+-\d): paid", python.stdout)]
    assert_one_outcome_each(harness.decisions(), [*orders, "walk-a", "walk-b"])
    # Paid: 2 python orders + walk-a, 2 t-shirts and a mug each; the rest released.
    state = harness.stock_state()
    assert state["sku-tshirt"] == {"on_hand": 4, "reserved": 0, "pending_sum": 0}
    assert state["sku-mug"] == {"on_hand": 2, "reserved": 0, "pending_sum": 0}
