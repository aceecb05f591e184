"""stockflow.garbage: the worker's collector tuning freezes the startup heap and raises the
youngest generation's threshold; 0 leaves Python's collector exactly as it was."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stockflow import Settings
from stockflow.garbage import tune_garbage_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_the_startup_heap_is_frozen_and_young_collections_are_rarer() -> None:
    _young, middle, old = gc.get_threshold()
    assert tune_garbage_collector(50_000)
    assert gc.get_threshold() == (50_000, middle, old)
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()  # cycles are still collected


@pytest.mark.usefixtures("restored_collector")
def test_zero_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    assert not tune_garbage_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_threshold == 50_000
    monkeypatch.setenv("STOCKFLOW_GC_THRESHOLD", "0")
    assert Settings().gc_threshold == 0
