"""Child processes of the harness (the baseline pipe, the Quix peer) and /proc readings.

Every child runs in its own session, is stopped by its PID (SIGTERM, then SIGKILL after a
bounded wait) and logs to a file; nothing is ever killed by name.

:func:`stopping_children` is the last line of defence around a whole bench run: on SIGTERM or
SIGHUP it raises :class:`SystemExit` (so every ``finally`` and ``with`` on the way out runs, as
for Ctrl-C), and on the way out it stops whatever child of this process is still alive (brokers,
workers, the pipe, the peer: each found by its parent PID in /proc, each stopped by its PID and
process group), so that no exit path leaves a process behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = [
    "ChildProcess",
    "children",
    "cpu_seconds",
    "reap_children",
    "status_kib",
    "stopping_children",
]

log = logging.getLogger("bench")

STOP_TIMEOUT = 10.0


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
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
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


def _stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, process group)`` of ``pid`` from /proc/PID/stat, or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def children(parent: int | None = None) -> list[int]:
    """PIDs whose parent is ``parent`` (default: this process) and that have not exited."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and stat[1] == parent and stat[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def _signal(pid: int, sig: int) -> None:
    """``sig`` to ``pid``'s process group when it leads one (each child runs in its own session,
    so its own children go too), else to ``pid`` alone."""
    stat = _stat(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if stat is not None and stat[2] == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _collect(pids: list[int]) -> list[int]:
    """Reap the exited ones (no zombies left); the PIDs still running."""
    running = []
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                continue
        stat = _stat(pid)
        if stat is not None and stat[0] not in ("Z", "X"):
            running.append(pid)
    return running


def reap_children(timeout: float = STOP_TIMEOUT) -> list[int]:
    """Stop every live child of this process by its PID: SIGTERM, then SIGKILL after
    ``timeout``. Returns the PIDs it had to stop (empty when every owner stopped its own)."""
    pids = children()
    if not pids:
        return []
    log.warning("stopping %d leftover child process(es): %s", len(pids), pids)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    running = _collect(pids)
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = _collect(running)
    for pid in running:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while running and time.monotonic() < deadline:
        time.sleep(0.05)
        running = _collect(running)
    return pids


def _exit_on(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stopping_children(timeout: float = STOP_TIMEOUT) -> Iterator[None]:
    """Around a bench run: SIGTERM and SIGHUP end it like Ctrl-C does (an exception that runs
    every ``finally`` on the way out), and no child outlives it, whatever the exit path."""
    previous = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    }
    signal.signal(signal.SIGTERM, _exit_on)
    signal.signal(signal.SIGHUP, _exit_on)
    try:
        yield
    finally:
        # A second signal (an impatient Ctrl-C) must not cut the clean-up short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            reap_children(timeout)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
