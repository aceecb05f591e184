"""SelfHealingRecovery.on_recovery_completed: stream partitions are sought while still paused,
and nothing can be fetched between resuming them and resuming flow (which empties the streams'
queues). Faust's own order - resume, seek, resume flow - lost the records fetched in between.
A changelog that grew while it was recovered is restored only to the end Faust read first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from stockflow._faust.recovery import within_known_ends
from stockflow.tables import SelfHealingRecovery

ORDERS = TP("orders", 0)
CHANGELOG = TP("app-table-changelog", 0)


def make_recovery(calls: list[str]) -> Any:
    async def perform_seek() -> None:
        calls.append("seek:start")
        await asyncio.sleep(0)  # the seek goes to the consumer thread
        calls.append("seek:end")

    async def on_rebalance_complete_send() -> None:
        return None

    async def maybe_start() -> None:
        calls.append("fetcher")

    consumer = SimpleNamespace(
        assignment=lambda: {ORDERS, CHANGELOG},
        perform_seek=perform_seek,
        resume_partitions=lambda tps: calls.append(f"resume:{sorted(tp.topic for tp in tps)}"),
        resume_flow=lambda: calls.append("resume_flow"),
    )
    app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=7,
        on_rebalance_complete=SimpleNamespace(send=on_rebalance_complete_send),
        conf=SimpleNamespace(broker_request_timeout=5.0),
        flow_control=SimpleNamespace(resume=lambda: calls.append("flow_control.resume")),
        _fetcher=SimpleNamespace(maybe_start=maybe_start),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: calls.append("rebalance_end"),
    )
    recovery: Any = SelfHealingRecovery.__new__(SelfHealingRecovery)
    recovery.app = app
    recovery.log = logging.getLogger("test")
    recovery.tables = SimpleNamespace(
        values=lambda: [],
        changelog_topics={CHANGELOG.topic},
        on_actives_ready=lambda: None,
        on_standbys_ready=lambda: None,
    )
    recovery._set_recovery_ended = lambda: None
    recovery.completed = asyncio.Event()

    async def wait(coro: Any, timeout: float | None = None) -> None:
        await coro

    recovery._wait = wait
    return recovery


def test_stream_partitions_are_sought_before_they_are_resumed() -> None:
    calls: list[str] = []
    recovery = make_recovery(calls)

    asyncio.run(recovery.on_recovery_completed(generation_id=7))

    assert calls[:5] == [
        "seek:start",
        "seek:end",
        "resume:['orders']",  # changelog partitions stay paused
        "flow_control.resume",
        "resume_flow",
    ]
    assert recovery.completed.is_set()


def test_a_rebalance_in_between_leaves_the_partitions_paused() -> None:
    calls: list[str] = []
    recovery = make_recovery(calls)

    asyncio.run(recovery.on_recovery_completed(generation_id=6))  # another generation began

    assert calls == []
    assert not recovery.completed.is_set()


def test_a_changelog_that_grew_during_the_recovery_is_restored_to_the_end_faust_read() -> None:
    """Faust read the end (its last offset: 300) before the worker froze; meanwhile another
    worker wrote on (482). Restored to 482, Faust's own check (offset > highwater) raised
    ConsistencyError and stopped the worker (the chaos suite's freeze scenario)."""
    grown, other = TP("app-orders-changelog", 2), TP("app-orders-changelog", 0)
    fresh = {grown: 482, other: 267, CHANGELOG: 5}
    known = Counter({grown: 300, other: 300})  # CHANGELOG: Faust read none

    ends = within_known_ends(fresh, known)

    assert ends == {grown: 301, other: 267, CHANGELOG: 5}
    assert all(ends[tp] - 1 <= known[tp] for tp in known)
