"""A chaos scenario's result and the verdict on it.

:class:`ScenarioResult` is what one scenario measured and whether it passed (``ok``): the
``stockflow audit`` command run as a subprocess (:func:`run_audit`; ``--strict``, exit status 0
required), the run's own checks (:func:`stockflow.chaos.checks.check_run`) and no anomaly.
Separate from :class:`~stockflow.chaos.session.ChaosSession`, which runs the scenario (broker,
workers, load, faults) and fills the result in; the report and the CLI use the result alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockflow.chaos.watch import Recovery

__all__ = ["ScenarioResult", "run_audit"]

AUDIT_SETTLE = 30.0

AUDIT_TIMEOUT = 300.0
"""Seconds the audit may take beyond its settle time, plus :data:`AUDIT_ORDERS_PER_S`'s share."""

AUDIT_ORDERS_PER_S = 250.0
"""The slowest audit speed allowed for: a scenario of ``n`` orders gives the audit ``n / 250`` s
more. The audit reads every input and output record from the broker again and checks each
order's whole history; a scenario's size grows with ``--rate`` and ``--duration``, and a soak at
1,500 orders/s outgrew the fixed 330 s this replaced (``details["audit_seconds"]`` records
what each audit took)."""


@dataclass
class ScenarioResult:
    """What one scenario measured; ``ok`` only with zero violations and no anomaly."""

    name: str
    title: str
    seed: int
    workers: int
    seconds: float = 0.0
    orders: int = 0
    orders_decided: int = 0
    kills: int = 0
    kills_during_recovery: int = 0
    outages: int = 0
    outage_seconds: float = 0.0
    duplicates: int = 0
    bad_inputs: int = 0
    dead_lettered: int = 0
    lifecycle: dict[str, int] = field(default_factory=dict)
    audit_exit: int | None = None
    audit_violations: int | None = None
    check_problems: list[str] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    workdir: str = ""

    @property
    def violations(self) -> int:
        return (self.audit_violations or 0) + len(self.check_problems)

    @property
    def ok(self) -> bool:
        return self.audit_exit == 0 and not self.check_problems and not self.anomalies

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recoveries"] = [r.to_dict() for r in self.recoveries]
        data["ok"] = self.ok
        data["violations"] = self.violations
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioResult:
        """The inverse of :meth:`to_dict` (to render a report again from ``chaos.json``)."""
        known = {name for name in cls.__dataclass_fields__ if name != "recoveries"}
        result = cls(**{k: v for k, v in data.items() if k in known})
        result.recoveries = [
            Recovery(r["kind"], r["fault"], r["first_decision_s"], r["all_flowing_s"])
            for r in data.get("recoveries", [])
        ]
        return result


def run_audit(
    result: ScenarioResult,
    *,
    bootstrap: str,
    env: Mapping[str, str],
    workdir: Path,
    orders: int = 0,
) -> None:
    """``stockflow audit --json --settle S --strict`` as a user runs it, given time for
    ``orders`` orders; one that does not finish is an anomaly of the scenario (the audit is
    stopped), not the end of the chaos run."""
    command = [
        sys.executable,
        "-c",
        "from stockflow.cli import main; main()",
        "audit",
        "--broker",
        bootstrap,
        "--json",
        "--settle",
        str(AUDIT_SETTLE),
        "--strict",
    ]
    environment = {**os.environ, **env}
    timeout = AUDIT_SETTLE + AUDIT_TIMEOUT + orders / AUDIT_ORDERS_PER_S
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, env=environment, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:  # run() has killed it and collected its output
        (workdir / "audit.stderr").write_bytes(exc.stderr or b"")
        result.anomalies.append(
            f"stockflow audit did not finish within {timeout:.0f} s ({orders} orders); "
            f"stopped. Its last output: {(exc.stderr or b'').decode(errors='replace')[-1000:]}"
        )
        return
    result.details["audit_seconds"] = round(time.monotonic() - started, 1)
    (workdir / "audit.json").write_bytes(done.stdout)
    (workdir / "audit.stderr").write_bytes(done.stderr)
    result.audit_exit = done.returncode
    try:
        audit = json.loads(done.stdout)
    except ValueError:
        result.anomalies.append(
            f"stockflow audit exited {done.returncode} without JSON: "
            f"{done.stderr.decode(errors='replace')[-2000:]}"
        )
        return
    result.audit_violations = len(audit["violations"])
    result.details["audit_counts"] = audit["counts"]
    result.details["audit_violations"] = audit["violations"][:20]
