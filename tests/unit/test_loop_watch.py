"""stockflow.observability.loop_watch: how late the event loop ran, as a histogram and, past
the heartbeat interval, a warning; registered by install() as one of the app's tasks."""

from __future__ import annotations

import asyncio
import logging
import time

import faust
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stockflow.observability import LoopWatch, Metrics
from stockflow.observability.loop_watch import INTERVAL, register_loop_watch


def samples(metrics: Metrics) -> dict[str, float]:
    """The stall histogram's samples, by name and labels."""
    text = metrics.exposition().decode()
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "stockflow_event_loop_stall_seconds"
        for sample in family.samples
    }


def test_each_wake_up_is_observed_and_a_long_stall_is_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    watch = LoopWatch(metrics.loop_stalls.observe, warn_after=1.0, session_timeout=6.0)

    with caplog.at_level(logging.WARNING, logger="stockflow.observability.loop_watch"):
        watch.woke(0.003)
        watch.woke(-0.001)  # woke early: counted as on time
        watch.woke(0.4)
        watch.woke(1.5)

    seen = samples(metrics)
    assert seen["stockflow_event_loop_stall_seconds_count[]"] == 4
    assert seen["stockflow_event_loop_stall_seconds_sum[]"] == pytest.approx(1.903)
    assert seen["stockflow_event_loop_stall_seconds_bucket[('le', '0.01')]"] == 2
    assert seen["stockflow_event_loop_stall_seconds_bucket[('le', '0.5')]"] == 3
    assert seen["stockflow_event_loop_stall_seconds_bucket[('le', '2.5')]"] == 4
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "held for 1.50 s" in warnings[0]
    assert "past 3.0 s" in warnings[0] and "past 6.0 s" in warnings[0]


def test_run_measures_each_sleep_against_the_clock() -> None:
    """A fake clock: the second sleep is held 0.7 s past its interval."""
    now = [100.0]
    held = iter([0.0, 0.7, 0.02])
    seen: list[float] = []

    async def sleep(seconds: float) -> None:
        assert seconds == INTERVAL
        try:
            now[0] += seconds + next(held)
        except StopIteration:
            raise asyncio.CancelledError from None

    watch = LoopWatch(seen.append, warn_after=1.0, session_timeout=6.0)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(watch.run(clock=lambda: now[0], sleep=sleep))

    assert seen == pytest.approx([0.0, 0.7, 0.02])


def test_a_real_loop_held_by_a_blocking_call_is_seen() -> None:
    seen: list[float] = []
    watch = LoopWatch(seen.append, warn_after=10.0, session_timeout=6.0, interval=0.01)

    async def run() -> None:
        task = asyncio.ensure_future(watch.run())
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # holds the loop
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(run())

    assert max(seen) >= 0.25


def test_the_watch_is_one_of_the_apps_tasks() -> None:
    app = faust.App("loop-watch-test", broker="memory://", store="memory://")
    before = {task.__name__ for task in app._app_tasks}

    register_loop_watch(app, LoopWatch(lambda _: None, warn_after=1.0, session_timeout=6.0))

    assert {task.__name__ for task in app._app_tasks} - before == {"watch_event_loop"}
