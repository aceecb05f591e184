"""``stockflow replay`` from the command line: a line that is not JSON is named once and
called not JSON; ``--summary`` prints the counts per outcome on stderr, the output unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from stockflow.cli.replay import replay, summary_lines
from stockflow.replay import ReplayError, parse_lines

SCENARIOS = Path(__file__).parents[2] / "examples" / "scenarios"
GOOD = (
    '{"topic": "inventory", "key": "sku", '
    '"value": {"type": "StockSet", "product_id": "sku", "on_hand": 1}}'
)


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("STOCKFLOW_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("this is not json", "line 3: not JSON (Expecting value at column 1)"),
        (
            '{"topic": "orders", "value": {"a": 1}',
            "line 3: not JSON (Expecting ',' delimiter at column 38)",
        ),
        ('{"topic": "orders"} trailing', "line 3: not JSON (Extra data at column 21)"),
    ],
)
def test_a_line_that_is_not_json_is_named_once(tmp_path: Path, bad: str, message: str) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(f"{GOOD}\n\n{bad}\n{GOOD}\n")
    result = CliRunner().invoke(replay, [str(events)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {events}: {message}"
    assert len(re.findall(r"\bline\b", result.output)) == 1


def test_parse_lines_says_not_json_with_the_column() -> None:
    with pytest.raises(ReplayError) as caught:
        list(parse_lines([GOOD, "{oops}\n"]))
    assert str(caught.value).startswith("line 2: not JSON (")
    assert "column 2" in str(caught.value)


def test_summary_counts_per_outcome_on_stderr(tmp_path: Path) -> None:
    scenario = SCENARIOS / "flash-sale.jsonl"
    expected = (SCENARIOS / "flash-sale.expected.jsonl").read_text()
    result = CliRunner().invoke(replay, [str(scenario), "--summary"])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected  # the output lines are unchanged
    summary = result.stderr.splitlines()
    assert summary[0] == "21 input records, 25 output records"
    rows = {" ".join(line.split()[:-1]): int(line.split()[-1]) for line in summary[1:-1]}
    assert rows == {
        "OrderRejected insufficient_stock": 15,
        "OrderReserved": 5,
        "ProductReserved": 5,
    }
    assert summary[-1] == "20 orders decided: 15 OrderRejected insufficient_stock, 5 OrderReserved"


def test_summary_with_out_file_and_dead_letters(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    scenario = SCENARIOS / "bad-input.jsonl"
    result = CliRunner().invoke(replay, [str(scenario), "--summary", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == (SCENARIOS / "bad-input.expected.jsonl").read_text()
    assert result.stdout == ""
    assert "  DeadLetter" in result.stderr
    dead = next(line for line in result.stderr.splitlines() if "DeadLetter" in line)
    assert int(dead.split()[-1]) == 11


def test_summary_of_nothing() -> None:
    assert summary_lines([], inputs=0) == ["0 input records, 0 output records", "0 orders decided"]


def test_summary_names_release_reasons() -> None:
    lines = (SCENARIOS / "lifecycle.expected.jsonl").read_text().splitlines()
    text = "\n".join(summary_lines(lines, inputs=1))
    assert "ReservationReleased expired" in text
    assert "ReservationReleased cancelled" in text
    assert "ReservationConfirmFailed" in text
