"""Child processes of the harness (the baseline pipe, the Quix peer) and /proc readings.

Every child runs in its own session, is stopped by its PID (SIGTERM, then SIGKILL after a
bounded wait) and logs to a file; nothing is ever killed by name. Every child still running when
the bench exits (an exception, SIGTERM, SIGINT) is stopped by :func:`stop_all`, which
``python -m bench`` calls on every exit path (:func:`exit_on_signals`).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "ChildProcess",
    "cpu_seconds",
    "exit_on_signals",
    "register",
    "status_kib",
    "stop_all",
]

STOP_TIMEOUT = 10.0

_RUNNING: list[Any] = []
"""Everything started and not yet stopped (children, brokers, workers): objects with stop()."""


def register(process: Any) -> Any:
    """Remember ``process`` (anything with ``stop()``) so that :func:`stop_all` stops it."""
    if process not in _RUNNING:
        _RUNNING.append(process)
    return process


def stop_all() -> int:
    """Stop every registered process by its PID, the last started first; how many."""
    stopped = 0
    while _RUNNING:
        process = _RUNNING.pop()
        try:
            process.stop()
            stopped += 1
        except Exception as exc:  # keep stopping the others
            print(f"bench: could not stop {process!r}: {exc!r}", file=sys.stderr)
    return stopped


def exit_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` (SIGINT already raises
    ``KeyboardInterrupt``), so that every ``finally`` and :func:`stop_all` run: the default
    action ends Python at once and left the broker, in its own session, running."""

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    # A signal may land outside any try/finally (between two statements): stop_all runs at
    # interpreter exit then.
    atexit.register(stop_all)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, leave)


class ChildProcess:
    """``python -m MODULE ARGS`` with its output in ``log_path``."""

    def __init__(self, module: str, args: list[str], *, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.args = args
        self.env = env or {}
        self.log_path = Path(tempfile.mkdtemp(prefix="stockflow-bench-")) / f"{module}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> ChildProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )
        finally:
            log.close()
        register(self)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self in _RUNNING:
            _RUNNING.remove(self)
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def status_kib(pid: int | None, field: str = "VmHWM") -> int | None:
    """A ``kB`` field of /proc/PID/status (``VmHWM``: peak RSS; ``VmRSS``: current)."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds the process has used (from /proc/PID/stat)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
