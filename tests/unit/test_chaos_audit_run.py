"""The chaos run's audit step: an audit that does not finish fails its scenario with the
reason and lets the run go on (a soak at 1,500 orders/s ended in a traceback instead), and
the time it is given grows with the scenario's orders."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from stockflow.chaos import verdict
from stockflow.chaos.verdict import ScenarioResult, run_audit


def _result() -> ScenarioResult:
    return ScenarioResult(name="kill", title="kills", seed=1, workers=1)


def test_an_audit_past_its_timeout_is_an_anomaly_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    given: list[float] = []

    def slow(command: list[str], *, timeout: float, **_: Any) -> Any:
        given.append(timeout)
        raise subprocess.TimeoutExpired(command, timeout, output=b"", stderr=b"reading orders")

    monkeypatch.setattr(verdict.subprocess, "run", slow)
    result = _result()
    run_audit(result, bootstrap="127.0.0.1:1", env={}, workdir=tmp_path, orders=250_000)
    assert given == [verdict.AUDIT_SETTLE + verdict.AUDIT_TIMEOUT + 1_000]
    assert not result.ok and result.audit_exit is None
    assert "did not finish within 1330 s (250000 orders)" in result.anomalies[0]
    assert "reading orders" in result.anomalies[0]
    assert (tmp_path / "audit.stderr").read_bytes() == b"reading orders"


def test_a_finished_audit_records_its_verdict_and_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = b'{"violations": [], "counts": {"orders": 3}}'

    def done(command: list[str], **_: Any) -> Any:
        return subprocess.CompletedProcess(command, 0, stdout=report, stderr=b"")

    monkeypatch.setattr(verdict.subprocess, "run", done)
    result = _result()
    run_audit(result, bootstrap="127.0.0.1:1", env={}, workdir=tmp_path, orders=3)
    assert result.ok and result.audit_violations == 0
    assert result.details["audit_counts"] == {"orders": 3}
    assert result.details["audit_seconds"] >= 0
