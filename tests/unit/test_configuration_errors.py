"""Invalid settings raise :class:`stockflow.ConfigurationError`, one line per bad variable naming
its ``STOCKFLOW_*`` name; the ``stockflow`` command prints those lines and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from stockflow import ConfigurationError, Settings, StockflowError
from stockflow.cli import EXIT_CONFIGURATION, main

SECRET = "pw-SENTINEL-c0nf1g"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOCKFLOW_PARTITIONS", raising=False)
    monkeypatch.delenv("STOCKFLOW_CONSUMER", raising=False)


def test_one_line_per_bad_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKFLOW_PARTITIONS", "0")
    monkeypatch.setenv("STOCKFLOW_CONSUMER", "threads")
    with pytest.raises(ConfigurationError) as invalid:
        Settings()
    assert str(invalid.value).splitlines() == [
        "STOCKFLOW_PARTITIONS: Input should be greater than or equal to 1",
        "STOCKFLOW_CONSUMER: Input should be 'batch' or 'stream'",
    ]


def test_keyword_arguments_are_named_by_their_variable_too() -> None:
    with pytest.raises(ConfigurationError) as invalid:
        Settings(store="redis://", saga_timeout=-1)
    assert str(invalid.value).splitlines() == [
        "STOCKFLOW_STORE: store must be rocksdb:// or memory://",
        "STOCKFLOW_SAGA_TIMEOUT: Input should be greater than 0",
    ]


def test_unparsable_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKFLOW_PARTITIONS", "eight")
    with pytest.raises(ConfigurationError, match=r"^STOCKFLOW_PARTITIONS: Input should be a valid"):
        Settings()


def test_it_is_a_stockflow_error_and_a_value_error() -> None:
    # ``except ValueError`` callers (pydantic's ValidationError is one) keep catching it.
    with pytest.raises(ConfigurationError) as invalid:
        Settings(partitions=0)
    assert isinstance(invalid.value, StockflowError)
    assert isinstance(invalid.value, ValueError)
    # pydantic's full report stays reachable, though not printed with the traceback.
    assert isinstance(invalid.value.__context__, ValidationError)
    assert invalid.value.__suppress_context__


def test_values_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bad value may be a secret pasted into the wrong variable.
    monkeypatch.setenv("STOCKFLOW_PARTITIONS", SECRET)
    with pytest.raises(ConfigurationError) as invalid:
        Settings(sasl_password=SECRET)
    assert SECRET not in str(invalid.value)


def test_valid_settings_are_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKFLOW_PARTITIONS", "12")
    settings = Settings(consumer="stream")
    assert (settings.partitions, settings.consumer) == (12, "stream")


@pytest.mark.parametrize(
    "argv", [["topics", "check"], ["audit"], ["replay", "-"]], ids=lambda argv: argv[0]
)
def test_the_command_prints_one_line_per_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setenv("STOCKFLOW_PARTITIONS", "0")
    monkeypatch.setenv("STOCKFLOW_CONSUMER", "threads")
    result = CliRunner().invoke(main, argv, input="")
    assert result.exit_code == EXIT_CONFIGURATION == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.splitlines() == [
        f"stockflow {argv[0]}: STOCKFLOW_PARTITIONS: Input should be greater than or equal to 1",
        f"stockflow {argv[0]}: STOCKFLOW_CONSUMER: Input should be 'batch' or 'stream'",
    ]


def test_the_worker_prints_one_line_per_variable_and_exits_2(tmp_path: Path) -> None:
    # ``faust -A stockflow worker`` loads ``stockflow.app``: no traceback through Faust's loader.
    env = {
        **os.environ,
        "STOCKFLOW_PARTITIONS": "0",
        "STOCKFLOW_RETENTION": "-5",
    }
    done = subprocess.run(
        [sys.executable, "-m", "faust", "-A", "stockflow", "worker"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_CONFIGURATION == 2
    assert done.stderr.splitlines() == [
        "stockflow worker: STOCKFLOW_PARTITIONS: Input should be greater than or equal to 1",
        "stockflow worker: STOCKFLOW_RETENTION: Input should be greater than 0",
    ]
    assert "Traceback" not in done.stdout + done.stderr
