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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stockflow.chaos.watch import Recovery

__all__ = ["ScenarioResult", "run_audit"]

AUDIT_SETTLE = 30.0


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
    result: ScenarioResult, *, bootstrap: str, env: Mapping[str, str], workdir: Path
) -> None:
    """``stockflow audit --json --settle S --strict`` as a user runs it."""
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
    done = subprocess.run(
        command, env=environment, capture_output=True, timeout=AUDIT_SETTLE + 300, check=False
    )
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
