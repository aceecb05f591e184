"""The recorded scenarios, replayed through a real worker: the same order outcomes as the
offline replay (the offline replay itself is compared byte for byte in tests/unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stockflow.replay import replay_lines
from stockflow.testing import assert_one_outcome_each
from stockflow.testing.assertions import OUTCOME_TYPES
from stockflow.testing.harness import Harness

SCENARIOS = Path(__file__).parents[2] / "examples" / "scenarios"
# lifecycle moves a virtual clock (expiry by later timestamps): a live worker's timers follow
# the wall clock, so only the scenarios without timers are compared live.
LIVE = ["flash-sale", "duplicates", "bad-input", "multi-line", "partial", "recount-shortfall"]


def _summary(records: list[dict[str, object]]) -> tuple[dict[str, tuple[object, ...]], int, set]:
    outcomes: dict[str, tuple[object, ...]] = {}
    letters = 0
    shortfalls = set()
    for record in records:
        if record.get("type") in OUTCOME_TYPES:
            lines = record.get("lines") or []
            held = tuple(sorted(json.dumps(line, sort_keys=True) for line in lines))  # type: ignore[union-attr]
            key = (record["type"], record.get("reason"))
            outcomes[str(record["order_id"])] = (
                *key,
                held if record["type"] == "OrderReserved" else (),
            )
        elif record.get("type") == "DeadLetter":
            letters += 1
        elif record.get("type") == "StockShortfall":
            shortfalls.add((record["product_id"], tuple(record["at_risk"])))  # type: ignore[arg-type]
    return outcomes, letters, shortfalls


@pytest.mark.parametrize("name", LIVE)
def test_scenario_through_a_real_worker(stockflow_harness: Harness, name: str) -> None:
    lines = (SCENARIOS / f"{name}.jsonl").read_text().splitlines()
    offline = [json.loads(line)["value"] for line in replay_lines(lines)]
    stockflow_harness.start_worker()
    stockflow_harness.feed_recording(lines)
    live = stockflow_harness.decisions() + stockflow_harness.dead_letters()

    expected_outcomes, expected_letters, expected_shortfalls = _summary(offline)
    outcomes, letters, shortfalls = _summary(live)
    assert_one_outcome_each(live)
    assert outcomes == expected_outcomes
    assert letters == expected_letters
    assert shortfalls == expected_shortfalls
