"""Issue 5: the chaos scenarios on the real broker with real worker processes, in their short CI
shape (``stockflow chaos`` without ``--duration``). Each scenario must end with
``stockflow audit --strict`` exiting 0, the run's own checks finding nothing, no anomaly (a
worker exiting on its own, decisions not flowing again), and must leave no process behind.

Long soak runs: ``stockflow chaos --duration 600 --report docs/reliability.md``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stockflow.chaos import SCENARIOS, ScenarioResult, plan, run_scenario
from stockflow.chaos.scenarios import GUARD_LINES

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]

SEED = 5


def _explain(result: ScenarioResult) -> str:
    """Everything needed to start debugging a failed scenario."""
    return json.dumps(
        {
            "workdir": result.workdir,
            "audit_exit": result.audit_exit,
            "audit_violations": result.details.get("audit_violations"),
            "check_problems": result.check_problems[:20],
            "anomalies": [a[:2000] for a in result.anomalies],
            # CI keeps nothing else: records written late (a writer behind its partition's new
            # owner) and the workers' ERROR/CRITICAL lines, grouped.
            "late_records": result.details.get("late_records"),
            # The product writers' changelog against a replay of their commands, and ledger
            # changes published late or never (stockflow.chaos.divergence).
            "writer_replay": result.details.get("writer_replay"),
            "late_emissions": result.details.get("late_emissions"),
            "worker_log_problems": result.details.get("worker_log_problems"),
            "worker_log_warnings": result.details.get("worker_log_warnings"),
            "freezes": result.details.get("freezes"),
            # Orders without an outcome in time: every record naming them, stamped, and when
            # the run's watcher read the outcome (stockflow.chaos.evidence.order_traces).
            "undecided": result.details.get("undecided"),
        },
        indent=1,
        ensure_ascii=False,
    )


def _assert_no_leftovers(result: ScenarioResult) -> None:
    """Every worker and broker PID the run started is gone (stopped by PID, reaped)."""
    started = {
        int(pid)
        for _, what in result.details.get("timeline", [])
        for pid in re.findall(r"pid (\d+)", what)
    }
    assert any("broker" in what for _, what in result.details["timeline"])
    alive = []
    for pid in started:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone
        if b"faust" in command or b"tansu" in command:  # not a recycled PID
            alive.append(pid)
    assert not alive, f"processes left running: {alive}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_chaos_scenario(name: str, tmp_path: Path) -> None:
    budget = plan([name], None)[name]
    result = run_scenario(name, budget=budget, seed=SEED, workdir=tmp_path)
    _assert_no_leftovers(result)
    assert result.orders > 0 and result.orders_decided == result.orders, _explain(result)
    assert result.audit_exit == 0, _explain(result)
    assert result.audit_violations == 0, _explain(result)
    assert not result.check_problems, _explain(result)
    assert not result.anomalies, _explain(result)
    # Orders with TTLs of seconds expired under the scenario's faults, each judged by the
    # lifecycle check (the default TTL outlives any run).
    checks = result.details["checks"]
    assert checks["orders_short_ttl"] > 0 and checks["orders_expired"] > 0, checks
    assert checks["orders_abandoned"] > 0, checks  # each of them expired (else a problem)
    kills = [r for r in result.recoveries if r.kind == "kill"]
    if name == "kill":
        assert result.kills >= 10
        assert len(kills) == result.kills - result.kills_during_recovery
        # Some stops were graceful, each exited in time with status 0 (else an anomaly).
        assert len(result.details["sigterm_stops"]) >= 2, _explain(result)
    elif name == "takeover":
        assert result.workers == 3
        assert len(kills) >= 2  # one per group size
        assert len([r for r in result.recoveries if r.kind == "rejoin"]) == len(kills)
    elif name == "redelivery":
        assert result.duplicates >= result.orders  # every input at least twice
        assert all(result.lifecycle[where] > 0 for where in ("before", "after", "twice"))
    elif name == "bad-input":
        assert result.bad_inputs > 0
        assert result.dead_lettered == result.bad_inputs
    elif name == "outage":
        assert result.outages >= 2
        cuts = result.details["cuts"]
        assert {cut["mode"] for cut in cuts} == {"refuse", "blackhole"}
        evidence = result.details["connections_before_first_cut"]
        assert evidence and all(
            c["to_proxy"] > 0 and c["to_broker"] == 0 for c in evidence.values()
        )
        assert sum(cut["closed"] for cut in cuts) > 0  # the cuts really broke live connections
    elif name == "freeze":
        assert result.outages >= 2
        # A woken worker found its membership unconfirmed and held its fetched records or its
        # sends (a freeze whose first heartbeat answers before any fetch holds nothing: the
        # scenario then freezes again, a few times at most).
        assert any(freeze["guarded"] for freeze in result.details["freezes"]), _explain(result)
        logs = [path.read_text() for path in (tmp_path / name).glob("w*.log")]
        assert any(line in text for text in logs for line in GUARD_LINES)


@pytest.mark.parametrize(("name", "partitions"), [("kill", 1), ("takeover", 2)], ids=str)
def test_faults_at_other_partition_counts(name: str, partitions: int, tmp_path: Path) -> None:
    # The scenarios' own counts are 4 and 6. One partition (one writer for everything) and
    # fewer partitions than the takeover's three workers (one of them owns nothing) must hold
    # the same guarantees (`stockflow chaos --partitions N` soaks any other count).
    budget = plan([name], None)[name]
    result = run_scenario(
        name, budget=budget, seed=SEED + partitions, workdir=tmp_path, partitions=partitions
    )
    _assert_no_leftovers(result)
    assert result.details["partitions"] == partitions
    assert result.orders > 0 and result.orders_decided == result.orders, _explain(result)
    assert result.audit_exit == 0 and result.audit_violations == 0, _explain(result)
    assert not result.check_problems, _explain(result)
    assert not result.anomalies, _explain(result)
    if name == "kill":
        assert result.kills >= 10
    else:
        assert result.workers == 3 and result.kills >= 2
