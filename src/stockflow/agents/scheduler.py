"""Each worker's timer scheduler.

Faust forbids table writes outside a stream, and each partition has a single writer, so the
scheduler never acts on a timer itself. It reads the earliest timer of every partition it owns
and, when one is due, sends a ``FireTimers`` tick into that very partition; the owning stream
fires the timers as an ordinary, replayable step. Deadlines that passed while no worker ran are
fired by the first tick after the partition is recovered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from stockflow._faust.app_state import tables_recovered
from stockflow.commands import FireTimers
from stockflow.processing.codec import encode
from stockflow.processing.timers import has_due_timer
from stockflow.tables.store import TableStore

if TYPE_CHECKING:
    from faust.types import AppT, TopicT

__all__ = ["register_scheduler"]

log = logging.getLogger(__name__)

RESEND_AFTER = 1.0
"""Seconds before a partition whose timers are still due gets another tick (a tick may be
waiting behind a backlog; flooding it would not help)."""


def register_scheduler(
    app: AppT, *, name: str, interval: float, targets: Mapping[str, tuple[TopicT, TableStore]]
) -> object:
    """``targets`` maps a topic name to (topic, the store whose timers it fires)."""
    last_sent: dict[tuple[str, int], float] = {}

    async def fire_due_timers() -> None:
        if app.rebalancing or not tables_recovered(app):
            return
        now = time.time()
        now_ms = int(now * 1000)
        for tp in sorted(app.assignor.assigned_actives()):
            target = targets.get(tp.topic)
            if target is None:
                continue
            topic, store = target
            if now - last_sent.get((tp.topic, tp.partition), 0.0) < RESEND_AFTER:
                continue
            if not has_due_timer(store, tp.partition, now_ms):
                continue
            tick = FireTimers(partition=tp.partition, now_ms=now_ms)
            await topic.send(key=None, value=encode(tick), partition=tp.partition)
            last_sent[(tp.topic, tp.partition)] = now

    return app.timer(interval=interval, name=name)(fire_due_timers)
