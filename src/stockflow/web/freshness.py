"""How stale an answer of the read model is.

Two things are known about a partition's state on the worker that owns it:

- what was applied: :class:`Progress` holds the offset of the last record each agent processed,
  by topic partition (the agents' probes write it: one dictionary store per record);
- what is still waiting: the partition's high watermark, from the consumer's last fetch.

``lag = highwater - position``, where ``position`` is the next offset this worker will process:
one past the last applied record, or the group's committed offset when the worker has applied
nothing since it got the partition (nothing fetched since was processed either). The lag counts
records of that partition not yet applied *to this state*; records still upstream (an order
whose Reserve the order agent has not sent yet) are not in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

from stockflow._faust.app_state import committed_offset
from stockflow.models import iso_from_ms

if TYPE_CHECKING:
    from faust.types import TP, AppT

__all__ = [
    "EventTime",
    "Position",
    "Progress",
    "consumer_lags",
    "event_time",
    "partition_position",
]


class Position(TypedDict):
    """Where this worker is in one partition (see the module docstring)."""

    topic: str
    partition: int
    position: int
    highwater: int | None
    lag: int | None


class EventTime(TypedDict):
    event_time: str | None
    event_time_ms: int | None


class Progress:
    """The last offset applied per topic partition, ``{(topic, partition): offset}``; keys are
    Faust ``TP`` tuples (equal to plain tuples)."""

    def __init__(self) -> None:
        self.applied: dict[tuple[str, int], int] = {}

    def next_offset(self, tp: tuple[str, int], committed: int | None) -> int:
        """The next offset to process: one past the last applied, never before ``committed``
        (after a partition comes back, another worker may have gone further)."""
        applied = self.applied.get(tp)
        after_applied = applied + 1 if applied is not None else 0
        return max(after_applied, committed or 0)


def partition_position(app: AppT, progress: Progress, topic: str, partition: int) -> Position:
    """``{topic, partition, position, highwater, lag}`` for one partition (``highwater`` and
    ``lag`` are ``None`` until the consumer has fetched from it)."""
    from faust.types import TP

    tp = TP(topic, partition)
    position = progress.next_offset(tp, committed_offset(app, tp))
    highwater = _highwater(app, tp)
    lag = None if highwater is None else max(0, highwater - position)
    return {
        "topic": topic,
        "partition": partition,
        "position": position,
        "highwater": highwater,
        "lag": lag,
    }


def consumer_lags(
    app: AppT, progress: Progress, topics: Iterable[str]
) -> list[tuple[str, int, int]]:
    """``(topic, partition, lag)`` for every active partition of ``topics`` on this worker
    (for the ``stockflow_consumer_lag`` gauge)."""
    wanted = set(topics)
    result = []
    for tp in sorted(app.assignor.assigned_actives()):
        if tp.topic in wanted:
            lag = partition_position(app, progress, tp.topic, tp.partition)["lag"]
            if lag is not None:
                result.append((tp.topic, tp.partition, lag))
    return result


def event_time(event_ms: int | None) -> EventTime:
    """``{event_time (ISO 8601 UTC), event_time_ms}`` of a record timestamp, or nulls."""
    if event_ms is None:
        return {"event_time": None, "event_time_ms": None}
    return {"event_time": iso_from_ms(event_ms), "event_time_ms": event_ms}


def _highwater(app: AppT, tp: TP) -> int | None:
    try:
        value = app.consumer.highwater(tp)
    except Exception:  # not assigned (any more), consumer not started: unknown
        return None
    return value if isinstance(value, int) and value >= 0 else None
