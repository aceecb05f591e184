"""Durable timers kept in the same table as the state they act on.

A timer is a key ``t:{partition}:{due}:{kind}:{ref}`` (:func:`stockflow.keys.timer_key`). Each
worker's scheduler *reads* its partitions' first timer key (reads are allowed outside the stream)
and, when one is due, sends a ``FireTimers`` tick into that partition; the stream then fires every
due timer as an ordinary step. Timers are never cancelled: a timer that fires for state that moved
on does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from stockflow.keys import TimerKey, timer_due, timer_prefix
from stockflow.processing.store import StateStore

__all__ = ["due_timers", "has_due_timer", "next_due"]

FIRE_BATCH = 500
"""Timers fired per tick at most, so one tick never stalls the stream for long."""


def due_timers(store: StateStore, partition: int, now_ms: int) -> Iterator[TimerKey]:
    """Timers of ``partition`` due at ``now_ms``, earliest first, at most :data:`FIRE_BATCH`."""
    for count, (key, _value) in enumerate(store.scan(timer_prefix(partition), partition=partition)):
        timer = TimerKey(key)
        if timer.due_ms > now_ms or count >= FIRE_BATCH:
            return
        yield timer


def next_due(store: StateStore, partition: int) -> int | None:
    """Due time of the partition's earliest timer, or ``None``."""
    key = store.first_key(timer_prefix(partition), partition=partition)
    return None if key is None else timer_due(key)


def has_due_timer(store: StateStore, partition: int, now_ms: int) -> bool:
    due = next_due(store, partition)
    return due is not None and due <= now_ms
