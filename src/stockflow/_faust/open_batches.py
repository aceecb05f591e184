"""A record batch that stays open to :class:`~stockflow._faust.producing.BatchSender` until
aiokafka's sender drains it into a produce request, and the seal put on it at that moment."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

__all__ = ["OpenBuilder", "seal_on_drain"]


class OpenBuilder(BatchBuilder):  # type: ignore[misc]  # aiokafka is untyped
    """A record batch that takes ``BatchSender``'s records until aiokafka builds it.

    A partition's batch handed to the client waits in aiokafka's accumulator until the
    produce request before it is answered (one request in flight per broker). Records of the
    partition's later processed batches join it there (:meth:`add`) instead of waiting in a
    batch of their own for it to leave, which would take them to the broker one produce round
    trip later. The moment the client's sender drains it into a request, the batch is sealed
    (:func:`seal_on_drain`) and :meth:`add` returns ``None`` as for a full batch: a record
    that joined it after that would travel in a request before changelog records handed to
    the client ahead of it, which wait for the next drain.

    To aiokafka it is closed from the start: the sender takes it without waiting out the
    producer's linger, and the producer's own sends (``producer.send``, whose records
    aiokafka appends to the partition's last batch) never join it, so its records and their
    offsets are stockflow's alone."""

    def closed(self) -> bool:
        return True

    def append(self, *, timestamp: Any, key: Any, value: Any, headers: Any = None) -> None:
        return None  # ``producer.send``'s record goes in a batch of its own

    add = BatchBuilder.append
    """``add(timestamp=, key=, value=)``: append a record; ``None`` if the batch is full or
    already built. aiokafka's own method under another name, not a wrapper: it runs for
    every record a worker produces."""


_SEALING = "_stockflow_sealing"


def seal_on_drain(sender: Any) -> None:
    """Wrap aiokafka's ``Sender._send_produce_req`` (once, outermost) so that the record
    batches it is given take no more records: its sender routine calls it right after
    draining them from the accumulator, before anything else runs, where a coroutine
    function's body would start only a task switch later (when other tasks' records could
    still join a request already drained)."""
    if getattr(sender, _SEALING, False):
        return
    send: Callable[[int, dict[Any, Any]], Awaitable[None]] = sender._send_produce_req

    def sealing(node_id: int, batches: dict[Any, Any]) -> Awaitable[None]:
        for batch in batches.values():
            batch._builder.close()  # drained: OpenBuilder.add refuses from now on
        return send(node_id, batches)

    sender._send_produce_req = sealing
    setattr(sender, _SEALING, True)
