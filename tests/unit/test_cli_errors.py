"""Every command that cannot reach a broker or a worker answers in one line and exits 3.

No broker runs here: the addresses are closed ports, a host that does not resolve, or a socket
that accepts connections and never answers (bounded by a short ``CONNECT_TIMEOUT``).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from stockflow.cli import main, reach
from stockflow.testing.broker import free_port

BROKER_COMMANDS = [
    ["audit", "--broker"],
    ["record", "--broker"],
    ["demo", "--broker"],
]


def one_line(result: Result) -> str:
    """The command's stderr, checked to be exactly one line and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture(autouse=True)
def no_env_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STOCKFLOW_BROKER", "STOCKFLOW_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("command", BROKER_COMMANDS, ids=lambda c: c[0])
def test_closed_broker_port(command: list[str]) -> None:
    port = free_port()
    result = CliRunner().invoke(main, [*command, f"kafka://127.0.0.1:{port}"])
    assert result.exit_code == reach.EXIT_UNREACHABLE
    line = one_line(result)
    assert line.startswith(f"stockflow {command[0]}: no Kafka broker answered at 127.0.0.1:{port}")
    assert "(from --broker): connection refused." in line
    assert "STOCKFLOW_BROKER" in line


@pytest.mark.parametrize("command", BROKER_COMMANDS, ids=lambda c: c[0])
def test_broker_from_the_environment(command: list[str]) -> None:
    port = free_port()
    env = {"STOCKFLOW_BROKER": f"kafka://127.0.0.1:{port}"}
    result = CliRunner().invoke(main, command[:1], env=env)
    assert result.exit_code == reach.EXIT_UNREACHABLE
    assert f"127.0.0.1:{port} (from STOCKFLOW_BROKER): connection refused" in one_line(result)


def test_default_broker_is_named_as_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # The settings default (127.0.0.1:9092) may be in use on a developer machine: only the
    # wording of the source is checked here, through the helper.
    from stockflow.cli.audit import audit

    ctx = audit.make_context("audit", [])
    assert reach.broker_source(ctx) == "the default"
    monkeypatch.setenv("STOCKFLOW_BROKER", "kafka://x:1")
    ctx = audit.make_context("audit", [])
    assert reach.broker_source(ctx) == "from STOCKFLOW_BROKER"


def test_unknown_host() -> None:
    result = CliRunner().invoke(main, ["audit", "--broker", "kafka://no-such-host.invalid:9092"])
    assert result.exit_code == reach.EXIT_UNREACHABLE
    assert "no-such-host.invalid:9092 (from --broker): unknown host." in one_line(result)


@pytest.mark.parametrize("command", BROKER_COMMANDS, ids=lambda c: c[0])
def test_silent_broker_is_bounded(
    command: list[str], silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reach, "CONNECT_TIMEOUT", 1.0)
    started = time.monotonic()
    result = CliRunner().invoke(main, [*command, f"kafka://127.0.0.1:{silent_port}"])
    assert time.monotonic() - started < 10
    assert result.exit_code == reach.EXIT_UNREACHABLE
    assert "no Kafka answer within 1 s" in one_line(result)


@pytest.mark.parametrize("command", ["stock", "order"])
def test_no_worker(command: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, [command, "id-1", "--url", url])
    assert result.exit_code == reach.EXIT_UNREACHABLE
    line = one_line(result)
    assert line.startswith(f"stockflow {command}: no stockflow worker answered at {url}")
    assert "(from --url): connection refused." in line
    assert "Start a worker" in line
    assert "--url" in line


@pytest.mark.parametrize("command", ["stock", "order"])
def test_no_worker_at_the_default_or_env_url(command: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, [command, "id-1"], env={"STOCKFLOW_URL": url})
    assert result.exit_code == reach.EXIT_UNREACHABLE
    assert f"{url} (from STOCKFLOW_URL): connection refused" in one_line(result)


def test_silent_worker_is_bounded(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["stock", "sku-1", "--url", url, "--timeout", "1"])
    assert time.monotonic() - started < 10
    assert result.exit_code == reach.EXIT_UNREACHABLE
    assert "no answer in time" in one_line(result)


def test_a_real_process_prints_one_line() -> None:
    """The aiokafka connection errors that Python's last-resort log handler printed above the
    message are gone in a real process too (CliRunner does not show them)."""
    port = free_port()
    done = subprocess.run(
        [sys.executable, "-c", "from stockflow.cli import main; main()", "audit"],
        env={"PATH": "/usr/bin:/bin", "STOCKFLOW_BROKER": f"kafka://127.0.0.1:{port}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == reach.EXIT_UNREACHABLE
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"stockflow audit: no Kafka broker answered at 127.0.0.1:{port}")
