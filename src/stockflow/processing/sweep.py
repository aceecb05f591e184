"""Retention by sweeping: a finished record is its own timer.

A finished ledger entry or saga carries ``finished_at_ms``; it is forgotten ``retention`` after
that. Instead of a ``gc``/``forget`` timer key per record (a write when the record finishes and a
delete when the timer fires: two of a single-line order's changelog records), each partition of
each table has one *sweep*: a timer key ``t:{partition}:{due}:sweep:`` plus its state
``w:{partition}`` = ``[due_ms, cursor]``. When the timer fires, the owning stream visits up to
:data:`SWEEP_BATCH` records of the partition after ``cursor`` and forgets those whose retention is
over; the next sweep is due at once if records remain, else :func:`sweep_interval` later.

A record is therefore forgotten between ``retention`` and ``retention + sweep_interval`` after it
finished. The sweep is armed by the first record that finishes in a partition (one read per
finished record, no write once armed). Every step is idempotent: a sweep timer that is not the
one ``w:{partition}`` names (left behind by a torn step) is deleted without sweeping, one with
no state at all sweeps from the start (its arming lost the state write), and a lost suffix of
a sweep's writes only repeats it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

from pydantic_core import from_json, to_json

from stockflow.keys import TimerKey, sweep_state_key, timer_key
from stockflow.processing.store import StateStore
from stockflow.processing.timers import due_timers

__all__ = [
    "SWEEP_BATCH",
    "SWEEP_KIND",
    "due_after_sweeping",
    "ensure_sweep",
    "run_sweep",
    "sweep_interval",
]

SWEEP_BATCH = 2000
"""Records visited per sweep tick at most, so one tick never stalls the stream for long (a few
ms of decoding). The scheduler ticks a partition at most once a second, so a partition holding
more than ~7M records takes longer than an hour per pass: its records are forgotten later,
never early."""

SWEEP_KIND = "sweep"

SWEEP_MAX_INTERVAL_MS = 3_600_000
"""A full sweep of a partition starts at most hourly (and at least once per retention)."""


def sweep_interval(retention_ms: int) -> int:
    return max(min(SWEEP_MAX_INTERVAL_MS, retention_ms), 1)


def ensure_sweep(store: StateStore, partition: int, now_ms: int, retention_ms: int) -> None:
    """Arm the partition's sweep unless it is armed already (called when a record finishes)."""
    if store.get(sweep_state_key(partition)) is None:
        _arm(store, partition, now_ms + sweep_interval(retention_ms), None)


def run_sweep(
    store: StateStore,
    partition: int,
    now_ms: int,
    timer: TimerKey,
    *,
    prefix: str,
    retention_ms: int,
    forget: Callable[[str, bytes], None],
) -> None:
    """Fire a due sweep timer: ``forget(key, value)`` is called for up to :data:`SWEEP_BATCH`
    records of ``prefix`` after the cursor and decides itself whether the record is over."""
    raw = store.get(sweep_state_key(partition))
    state = None if raw is None else from_json(raw)
    if state is not None and timer.key != timer_key(partition, state[0], SWEEP_KIND, ""):
        store.delete(timer.key)  # stale: the sweep moved on
        return
    # No state: the arming step lost its second write; sweep from the start, which records it.
    cursor: str | None = None if state is None else state[1]
    start = prefix if cursor is None else cursor
    # Taken before any delete: a store's scan need not survive writes to what it iterates.
    batch = list(islice(store.scan(prefix, partition=partition, start=start), SWEEP_BATCH + 1))
    if cursor is not None and batch and batch[0][0] == cursor:
        batch = batch[1:]  # the scan starts at the cursor, which was visited last time
    batch = batch[:SWEEP_BATCH]
    for key, value in batch:
        forget(key, value)
    if len(batch) == SWEEP_BATCH:
        due, cursor = now_ms, batch[-1][0]  # more to visit: at the next tick
    else:
        due, cursor = now_ms + sweep_interval(retention_ms), None
    _arm(store, partition, due, cursor)
    if timer.key != timer_key(partition, due, SWEEP_KIND, ""):
        store.delete(timer.key)


def due_after_sweeping(
    store: StateStore,
    partition: int,
    now_ms: int,
    *,
    prefix: str,
    retention_ms: int,
    forget: Callable[[str, bytes], None],
) -> Iterator[TimerKey]:
    """The partition's due timers other than its sweep, which is run (:func:`run_sweep`)
    when it comes up: a timer tick of either table, once the sweep is taken care of."""
    for timer in list(due_timers(store, partition, now_ms)):
        if timer.kind == SWEEP_KIND:
            run_sweep(
                store,
                partition,
                now_ms,
                timer,
                prefix=prefix,
                retention_ms=retention_ms,
                forget=forget,
            )
        else:
            yield timer


def _arm(store: StateStore, partition: int, due_ms: int, cursor: str | None) -> None:
    # Timer first: if the state write is lost, the previous state still names the previous
    # timer (deleted only after this), which fires again; the new one is then stale.
    store.put(timer_key(partition, due_ms, SWEEP_KIND, ""), b"")
    store.put(sweep_state_key(partition), to_json([due_ms, cursor]))
