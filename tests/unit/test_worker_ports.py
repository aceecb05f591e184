"""Test workers' web ports: chosen below the ephemeral range that outgoing connections take
theirs from, and chosen again if one is taken before the worker's web server binds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stockflow.testing import worker as worker_module
from stockflow.testing.broker import _ephemeral_range, free_port
from stockflow.testing.worker import READY_LINE, WorkerProcess


def test_free_ports_are_below_the_ephemeral_range() -> None:
    low, _high = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(port < low for port in ports)


class FakePopen:
    """A worker that fails to bind port ``taken`` and is ready on any other."""

    taken = 0
    started: list[int] = []

    def __init__(self, command: list[str], *, stdout: Any, env: dict[str, str], **_: Any) -> None:
        port = int(env["STOCKFLOW_WEB_PORT"])
        self.started.append(port)
        if port == self.taken:
            stdout.write(b"OSError: [Errno 98] error while attempting to bind on address\n")
            self.returncode: int | None = 1
        else:
            stdout.write(f"{READY_LINE}\n".encode())
            self.returncode = None
        stdout.flush()
        self.pid = 4242

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.returncode = -sig

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


def test_a_worker_whose_port_was_taken_starts_again_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module.subprocess, "Popen", FakePopen)
    worker = WorkerProcess({}, datadir=tmp_path)
    FakePopen.taken, FakePopen.started = worker.web_port, []
    worker.start().wait_ready(5)
    assert FakePopen.started[0] == FakePopen.taken
    assert worker.web_port == FakePopen.started[-1] != FakePopen.taken


def test_a_port_the_caller_chose_is_not_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module.subprocess, "Popen", FakePopen)
    FakePopen.taken, FakePopen.started = 45_000, []
    worker = WorkerProcess({}, datadir=tmp_path, web_port=45_000)
    with pytest.raises(worker_module.WorkerError, match="exited early"):
        worker.start().wait_ready(5)
    assert FakePopen.started == [45_000]
