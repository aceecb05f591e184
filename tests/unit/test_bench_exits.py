"""Issue 12, the bench: ``python -m bench`` fails at once, naming the package, when the Quix
Streams peer is not installed (it hung for more than 300 s and left its broker running), and
a bench ended by SIGTERM stops every process it started."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_missing_peer_fails_at_once_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    import importlib.util

    from bench import __main__ as bench_main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "quixstreams" else real(name, *a),
    )
    started = time.monotonic()
    assert bench_main.main(["--quick"]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "'quixstreams'" in err and "pip install -e '.[bench]'" in err
    assert "--systems pipe,stockflow" in err
    # Without the peer, or with only sections that need none, nothing is refused.
    options = {"only": "core", "profile": False, "quick": True, "env": [], "systems": None}
    sizes = {"orders": None, "products": None, "scale": 1.0, "recovery_runs": None}
    runs = {"partitions": 4, "in_flight": 10, "repeat": 1, "timeout": 1.0}
    plan = bench_main.Plan.from_args(argparse.Namespace(**options, **sizes, **runs))
    assert bench_main.missing_packages(plan) is None


def test_sigterm_stops_every_process_the_bench_started(tmp_path: Path) -> None:
    script = tmp_path / "bench_like.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time
            from bench.procs import ChildProcess, exit_on_signals, stop_all
            child = ChildProcess("http.server", ["0", "--bind", "127.0.0.1"]).start()
            exit_on_signals()
            print(child.pid, flush=True)  # ready: the handler is installed
            try:
                time.sleep(60)
            finally:
                stop_all()
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bench = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    child = None
    try:
        assert bench.stdout is not None
        child = int(bench.stdout.readline())
        os.kill(child, 0)  # running
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(timeout=20) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 5
        while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists(), "the child outlived the bench"
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(timeout=10)
        if child is not None and Path(f"/proc/{child}").exists():  # the test failed: clean up
            os.kill(child, signal.SIGKILL)
