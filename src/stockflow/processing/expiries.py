"""The expiry timers that single-line orders share.

A single-line order that its product writer decides (``Saga.forwards``) needs an expiry timer
in its saga's partition. Orders that expire within one ``Policy.expiry_bucket_ms`` share one:
its key is due at the end of the bucket and its value lists their ids, so a batch of orders
costs the table one write instead of one per order. When it is due, the order desk forwards
each order it lists its expiry (:meth:`stockflow.processing.orders.OrderDesk._fire`).
"""

from __future__ import annotations

from typing import Final

from stockflow.core.policy import Policy
from stockflow.keys import timer_key
from stockflow.processing.store import StateStore

__all__ = ["EXPIRIES", "SharedExpiries", "expiring"]

EXPIRIES: Final = "expiries"
"""The kind of a timer shared by the single-line orders that their product writer decides
(``Saga.forwards``) and that expire within one ``Policy.expiry_bucket_ms``: its value lists
their ids (each as ``{length}:{id}``); when due, each is forwarded its expiry."""


class SharedExpiries:
    """Adds orders to the shared expiry timers of one order desk's store (the desk's stream
    is their single writer), remembering which timer each partition's orders join now."""

    def __init__(self, store: StateStore, policy: Policy) -> None:
        self.store = store
        self.policy = policy
        self._parts: dict[tuple[int, int], int] = {}
        """Per (partition, due time) of a shared expiry timer that has filled up, the part
        written last (see :meth:`join`); empty after a restart, found again then."""
        self._last: dict[int, tuple[int, int, str]] = {}
        """Per partition, the due time, part and key of the shared expiry timer written last:
        the orders of a batch mostly share it, and formatting its key was 0.4 us an order."""
        self._fired: dict[int, int] = {}
        """Per partition, the latest tick at which the desk fired timers (:meth:`fired`)."""

    def fired(self, partition: int, now_ms: int) -> None:
        """The desk fires ``partition``'s timers due by ``now_ms``. A fired timer's key is
        deleted only once what it caused is durable (``Step.after_flush``), so an order that
        joined it in between was deleted with it and never expired (found in a soak: an order
        with a TTL of 1.6 s, placed during a worker's freeze and processed after its bucket
        had fired). :meth:`join` now puts such an order in the first bucket after the tick."""
        if now_ms > self._fired.get(partition, -1):
            self._fired[partition] = now_ms

    def join(self, order_id: str, partition: int, due: int) -> None:
        """Adds the order to the expiry timer it shares with the orders that expire in the same
        ``expiry_bucket_ms``: the table keeps one value per key and batch, so a batch of orders
        costs one write. A timer full (``expiry_bucket_bytes``) is followed by another of the
        same due time (the key's ref ``""``, then ``"1"``, ``"2"``...); which one an order is
        in changes nothing but the key."""
        policy = self.policy
        size = policy.expiry_bucket_ms
        bucket_due = -(-due // size) * size
        fired = self._fired.get(partition)
        if fired is not None and bucket_due <= fired:
            # That bucket's timer has fired, and may be waiting for its deletion (see fired):
            # the next tick fires the first bucket after it as well.
            bucket_due = (fired // size + 1) * size
        last = self._last.get(partition)
        if last is not None and last[0] == bucket_due:
            key = last[2]
            held = self.store.get(key)
            if held is not None and len(held) >= policy.expiry_bucket_bytes:
                key, held = self._open(partition, bucket_due, last[1])
            # else the usual order: the timer the last one joined has room (nothing to note).
        else:
            part = self._parts.get((partition, bucket_due), 0)
            key, held = self._open(partition, bucket_due, part)
        named = f"{len(order_id)}:{order_id}".encode()  # characters, not bytes: see expiring
        self.store.put_shared(key, named if held is None else held + named)

    def _open(self, partition: int, bucket_due: int, part: int) -> tuple[str, bytes | None]:
        """The key and value of the first expiry timer due at ``bucket_due`` from ``part`` on
        with room left, noted as the one the next orders join."""
        key = timer_key(partition, bucket_due, EXPIRIES, str(part) if part else "")
        while True:
            held = self.store.get(key)
            if held is None or len(held) < self.policy.expiry_bucket_bytes:
                break
            part += 1
            key = timer_key(partition, bucket_due, EXPIRIES, str(part))
        if part:
            if len(self._parts) >= 1024:  # only a cache: buckets long fired go
                self._parts.clear()
            self._parts[(partition, bucket_due)] = part
        self._last[partition] = (bucket_due, part, key)
        return key, held


def expiring(raw: bytes | None) -> list[str]:
    """The order ids an :data:`EXPIRIES` timer holds (each once, in the order armed)."""
    ids: dict[str, None] = {}
    # Read as text: each length counts the id's characters, as SharedExpiries.join wrote it
    # (and as every stored timer holds it). Read as bytes, a non-ASCII id's length fell short
    # of its UTF-8 bytes and the value could not be split: the worker crashed on every restart
    # when the timer came due (found when the chaos load gave orders TTLs of seconds).
    text = "" if raw is None else raw.decode()
    at = 0
    while at < len(text):
        colon = text.index(":", at)
        end = colon + 1 + int(text[at:colon])
        ids[text[colon + 1 : end]] = None
        at = end
    return list(ids)
