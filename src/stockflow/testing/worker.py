"""A stockflow worker as a real process (``python -m faust -A stockflow worker``), for tests,
the demo and chaos runs: started with a settings environment, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from stockflow.errors import WorkerError
from stockflow.testing.broker import free_port

__all__ = ["LOOPBACK_ENV", "READY_LINE", "WorkerProcess", "fast_test_env"]

READY_LINE = "Worker ready"
"""Logged by Faust's recovery each time the worker's partitions are recovered and it consumes."""

STOP_TIMEOUT = 20.0


LOOPBACK_ENV = {"STOCKFLOW_WEB_BIND": "127.0.0.1"}
"""A test worker's web server listens on the loopback interface only, whatever its timeouts."""


def fast_test_env() -> dict[str, str]:
    """Settings that make a worker ready in ~3 s on the embedded broker (BROKER.md): short
    group timeouts, frequent commits, timers checked often; the web server on loopback."""
    return {
        "STOCKFLOW_SESSION_TIMEOUT": "3.0",
        "STOCKFLOW_HEARTBEAT_INTERVAL": "0.5",
        "STOCKFLOW_REBALANCE_TIMEOUT": "3.0",
        "STOCKFLOW_COMMIT_INTERVAL": "0.2",
        "STOCKFLOW_TIMER_INTERVAL": "0.2",
        **LOOPBACK_ENV,
    }


_PORT_TAKEN = "error while attempting to bind on address"


class WorkerProcess:
    """One worker. ``env`` holds ``STOCKFLOW_*`` settings (the broker among them)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        datadir: Path | None = None,
        web_port: int | None = None,
        log_path: Path | None = None,
        app: str = "stockflow",
    ) -> None:
        self.env = dict(env)
        self.datadir = datadir or Path(tempfile.mkdtemp(prefix="stockflow-worker-"))
        self.web_port = web_port or free_port()
        self._own_port = web_port is None  # chosen here: another may be chosen if it is taken
        self.log_path = log_path or self.datadir / "worker.log"
        self.app = app
        self.process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> WorkerProcess:
        if self.running:
            raise WorkerError("worker already running")
        self.datadir.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {**os.environ, **self.env, "STOCKFLOW_WEB_PORT": str(self.web_port)}
        env.setdefault("PYTHONUNBUFFERED", "1")
        command = [
            sys.executable,
            "-m",
            "faust",
            "-A",
            self.app,
            "--datadir",
            str(self.datadir),
            "worker",
            "-l",
            "info",
            "--web-port",
            str(self.web_port),
            "--web-host",
            "127.0.0.1",
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        finally:
            log.close()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self, *, since_start: bool = True) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as handle:
            if since_start:
                handle.seek(self._log_offset)
            return handle.read().decode(errors="replace")

    def ready_count(self) -> int:
        return self.log_text().count(READY_LINE)

    def wait_ready(self, timeout: float = 60.0, *, count: int = 1) -> float:
        """Wait until the worker logged ``count`` recoveries since start; seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        retries = 3
        while self.ready_count() < count:
            if not self.running:
                text = self.log_text()
                if self._own_port and retries and _PORT_TAKEN in text and count == 1:
                    # Taken between free_port() and the web server's bind: another port.
                    retries -= 1
                    self.stop()
                    self.web_port = free_port()
                    self.start()
                    continue
                raise WorkerError(f"worker exited early:\n{text[-4000:]}")
            if time.monotonic() > deadline:
                raise WorkerError(f"worker not ready in {timeout}s:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send ``sig`` to the worker's PID and wait; SIGKILL if it outlives ``timeout``."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        self.process = None
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL: a crash with no chance to commit or flush."""
        return self.stop(signal.SIGKILL)
