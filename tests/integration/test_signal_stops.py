"""``stockflow demo`` and ``stockflow chaos`` start a broker and workers in sessions of their
own; a SIGTERM to the command (a CI timeout, ``kill PID``) stops every one of them by PID, as
Ctrl-C does, and the command exits 143."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.procs import children

from stockflow.testing.worker import READY_LINE

START_TIMEOUT = 120.0
STOP_BOUND = 60.0  # workers 15 s each + broker 5 s + margins on a shared 2-core machine


def _children(pid: int) -> dict[int, str]:
    """The live processes whose parent is ``pid``: their command lines."""
    found = {}
    for child in children(pid):
        try:
            found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # exited meanwhile
    return found


def _ready(workdir: Path) -> bool:
    for log in workdir.rglob("*.log"):
        try:
            if READY_LINE in log.read_text(errors="replace"):
                return True
        except OSError:
            continue
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped: its parent is gone and init reaps it soon) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    "command",
    # Enough orders that the demo still runs 2 s after its worker is ready: 20,000 were all
    # decided by then at this machine's fast hour (~19,000 orders/s), and it exited 0.
    [["demo", "--orders", "200000"], ["chaos", "--scenario", "redelivery"]],
    ids=["demo", "chaos"],
)
def test_sigterm_stops_everything_the_command_started(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKFLOW_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from stockflow.cli import main; main()",
            *command,
            "--workdir",
            str(tmp_path / "run"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # the signal below reaches this process only
    )
    started: dict[int, str] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # Mid-run: a worker ready (its log says so) and orders flowing for a moment.
        while not _ready(tmp_path / "run"):
            assert process.poll() is None, f"{command} ended before its worker was ready"
            assert time.monotonic() < deadline, f"no worker ready after {START_TIMEOUT} s"
            started.update(_children(process.pid))
            time.sleep(0.2)
        time.sleep(2)
        started.update(_children(process.pid))
        assert any("faust" in line for line in started.values()), started
        assert any("broker" in line for line in started.values()), started
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=STOP_BOUND)
    finally:
        if process.poll() is None:  # a failed test: end it, bounded
            process.kill()
            process.wait(timeout=10)
        started.update(_children(process.pid))
        deadline = time.monotonic() + 10
        while (left := {pid: line for pid, line in started.items() if _alive(pid)}) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        for pid in left:  # never leave them running, whatever the verdict
            os.kill(pid, signal.SIGKILL)
    assert not left, f"left running after SIGTERM: {left}"
    assert code == 128 + signal.SIGTERM
