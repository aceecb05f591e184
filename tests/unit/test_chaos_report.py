"""The chaos report: what a run measured, rendered as Markdown, the same after a JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime

from stockflow.chaos.report import from_json, to_json, to_markdown
from stockflow.chaos.verdict import ScenarioResult

STARTED = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)


def _freeze(*, audit_exit: int = 0) -> ScenarioResult:
    return ScenarioResult(
        name="freeze",
        title="one of two workers stopped (SIGSTOP) past its session timeout, then continued",
        seed=7,
        workers=2,
        seconds=42.0,
        orders=120,
        orders_decided=120,
        outages=3,
        outage_seconds=27.5,
        audit_exit=audit_exit,
        audit_violations=0,
        details={
            "partitions": 4,
            "freezes": [
                {"seconds": 9.9, "guarded": 0},
                {"seconds": 6.5, "guarded": 0},
                {"seconds": 9.3, "guarded": 1},
            ],
        },
    )


def test_report_lists_each_freeze_and_what_it_caught() -> None:
    text = to_markdown([_freeze()], command="stockflow chaos", started=STARTED)
    assert "all scenarios passed" in text
    assert "| `freeze` | 2 | 42 | 120 of 120 |" in text
    assert "| 3 (28 s) |" in text
    freezes = next(line for line in text.splitlines() if line.startswith("Freezes"))
    assert '"guarded": 1' in freezes and freezes.count('"seconds"') == 3


def test_report_after_a_json_round_trip_is_the_same() -> None:
    results = [_freeze(), _freeze(audit_exit=1)]
    payload = to_json(results, command="stockflow chaos --seed 7", started=STARTED)
    again, facts = from_json(payload)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in results]
    text = to_markdown(again, **facts)
    assert "FAILED" in text and "`stockflow chaos --seed 7`" in text
    assert text == to_markdown(results, **facts)


def test_report_says_when_workers_ran_at_the_default_timeouts() -> None:
    at_defaults = _freeze()
    at_defaults.details["timeouts"] = "defaults"
    assert "default timeouts" in to_markdown([at_defaults], started=STARTED, command="c")
    assert "default timeouts" not in to_markdown([_freeze()], started=STARTED, command="c")
