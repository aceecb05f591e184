"""The instruction counter (bench.instructions) without valgrind: its arithmetic, and a clear
exit when valgrind is missing. Running callgrind itself takes ~40 s: not a test."""

from __future__ import annotations

from pathlib import Path

import bench.instructions as instructions
import pytest


def test_the_count_per_order_is_the_difference_over_the_orders_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[int, Path | None]] = []

    def collected(orders: int, src: Path | None) -> int:
        seen.append((orders, src))
        return 1_000_000 + 250 * orders  # startup, then 250 per order

    monkeypatch.setattr(instructions, "_collected", collected)
    assert instructions.count_instructions(2_000, 6_000, Path("/x/src")) == 250
    assert seen == [(6_000, Path("/x/src")), (2_000, Path("/x/src"))]


def test_the_larger_count_must_be_larger() -> None:
    with pytest.raises(ValueError, match="--large"):
        instructions.count_instructions(2_000, 2_000)


def test_without_valgrind_it_says_so_and_exits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda _name: None)
    with pytest.raises(SystemExit) as exited:
        instructions.main([])
    assert exited.value.code == 2
    assert "needs valgrind" in capsys.readouterr().err
