"""stockflow.garbage: the worker's collector tuning freezes the startup heap, collects the young
generation between batches once enough objects outlived the last collection, and keeps
Python's own trigger only as a backstop; 0 leaves Python's collector exactly as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stockflow import Settings
from stockflow.garbage import (
    BACKSTOP_FACTOR,
    collect_between_batches,
    release_garbage_collector,
    tune_garbage_collector,
)


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    release_garbage_collector(thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_the_startup_heap_is_frozen_and_python_collects_young_objects_only_as_a_backstop() -> None:
    _young, middle, old = gc.get_threshold()
    assert tune_garbage_collector(50_000)
    assert gc.get_threshold() == (50_000 * BACKSTOP_FACTOR, middle, old)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()  # cycles are still collected


@pytest.mark.usefixtures("restored_collector")
def test_young_objects_are_collected_between_batches_once_enough_outlived_the_last() -> None:
    tune_garbage_collector(1_000)
    assert collect_between_batches() is None  # just collected: nothing is due
    kept = [[] for _ in range(2_000)]  # outlive the "batch": young, tracked, alive
    cycle: list[object] = []
    cycle.append(cycle)
    collected: list[int] = []
    gc.callbacks.append(
        lambda phase, info: collected.append(info["collected"]) if phase == "stop" else None
    )
    try:
        del cycle
        assert collect_between_batches() in (0, 1, 2)
    finally:
        gc.callbacks.pop()
    assert sum(collected) >= 1  # the unreachable cycle went
    assert gc.get_count()[0] < 1_000
    assert collect_between_batches() is None
    assert len(kept) == 2_000


@pytest.mark.usefixtures("restored_collector")
def test_the_older_generations_are_collected_between_batches_when_their_counts_are_due() -> None:
    tune_garbage_collector(100)
    _backstop, middle, old = gc.get_threshold()
    seen: list[int] = []
    kept: list[list[list[int]]] = []
    for _ in range((middle + 1) * (old + 1)):
        kept.append([[] for _ in range(150)])  # each "batch" leaves objects that outlive it
        generation = collect_between_batches()
        assert generation is not None
        seen.append(generation)
    # As Python's own trigger: the middle generation with every (middle + 1)th young
    # collection, the oldest with every (old + 1)th of those.
    assert seen.count(1) + seen.count(2) == old + 1
    assert seen.count(2) == 1


def test_nothing_is_collected_between_batches_when_the_collector_was_not_tuned() -> None:
    kept = [[] for _ in range(5_000)]
    assert collect_between_batches() is None
    assert len(kept) == 5_000


@pytest.mark.usefixtures("restored_collector")
def test_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    assert not tune_garbage_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen
    assert collect_between_batches() is None


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_threshold == 50_000
    monkeypatch.setenv("STOCKFLOW_GC_THRESHOLD", "0")
    assert Settings().gc_threshold == 0
