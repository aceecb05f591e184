"""Runs the processors in one process, routing records the way the broker would.

Used by ``stockflow replay`` and by tests: the same processor code as the worker, with topics
replaced by one FIFO queue and the wall clock replaced by the input records' timestamps. Timers
fire as the clock passes them (before each input, and at the end up to ``until_ms``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import starmap
from typing import Final, overload

from stockflow.commands import FireTimers
from stockflow.core.policy import Policy
from stockflow.keys import murmur2, partition_for, timer_due, timer_prefix
from stockflow.processing.codec import encode
from stockflow.processing.inventory import InventoryRouter
from stockflow.processing.orders import OrderDesk
from stockflow.processing.products import ProductWriter
from stockflow.processing.records import Meta, Role, Step
from stockflow.processing.store import MemoryStore

__all__ = ["Emitted", "EmittedLog", "LocalPipeline"]

INPUT_ROLES: Final = ("orders", "inventory")


def _first_due(store: MemoryStore, partition: int) -> int | None:
    # timers.next_due without its generator: checked for every partition on every input.
    key = store.first_key(timer_prefix(partition))
    return None if key is None else timer_due(key)


class _Earliest:
    """The earliest timer of each partition of one store, looked up again only when one of
    them changed (:attr:`MemoryStore.first_changes`): most inputs add no new first timer."""

    __slots__ = ("changes", "due", "earliest", "store")

    def __init__(self, store: MemoryStore, partitions: int) -> None:
        self.store = store
        self.changes = -1
        self.due: list[int | None] = [None] * partitions
        self.earliest: int | None = None

    def any_due(self, now_ms: int) -> bool:
        store = self.store
        if store.first_changes != self.changes:
            self.due = [_first_due(store, partition) for partition in range(len(self.due))]
            # Read after the lookups: caching a new prefix's first key is no change to see.
            self.changes = store.first_changes
            self.earliest = min((due for due in self.due if due is not None), default=None)
        return self.earliest is not None and self.earliest <= now_ms

    def is_due(self, partition: int, now_ms: int) -> bool:
        due = self.due[partition]
        return due is not None and due <= now_ms


@dataclass(slots=True)  # not frozen: one per output, see processing.records.Meta
class Emitted:
    """A record that left the pipeline (to ``reservations`` or the dead-letter topic)."""

    role: Role
    key: bytes | None
    value: bytes
    timestamp_ms: int


_Record = tuple[Role, bytes | None, bytes, int]


class EmittedLog(Sequence[Emitted]):
    """Every record that left the pipeline, in order, as :class:`Emitted` (made on access).

    Kept as plain tuples: the log grows by two records an order for a whole replay, and a
    tuple of bytes and ints is one the garbage collector stops tracking, where an object
    stays tracked and each full collection walks it again (6-9% of a single-line order over
    50,000 orders with Python's default collector, as ``stockflow replay`` runs).
    """

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: list[_Record] = []

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, index: int) -> Emitted: ...

    @overload
    def __getitem__(self, index: slice) -> list[Emitted]: ...

    def __getitem__(self, index: int | slice) -> Emitted | list[Emitted]:
        if isinstance(index, slice):
            return list(starmap(Emitted, self._records[index]))
        return Emitted(*self._records[index])

    def __iter__(self) -> Iterator[Emitted]:
        return starmap(Emitted, self._records)

    def __repr__(self) -> str:
        return f"EmittedLog({len(self._records)} records)"


@dataclass
class LocalPipeline:
    policy: Policy = field(default_factory=Policy)
    partitions: int = 4
    product_store: MemoryStore = field(default_factory=MemoryStore)
    order_store: MemoryStore = field(default_factory=MemoryStore)
    emitted: EmittedLog = field(default_factory=EmittedLog)
    clock_ms: int = 0

    def __post_init__(self) -> None:
        self.restart()
        self._offsets: dict[str, list[int]] = {}
        """Per topic, the next offset of each partition."""
        self._orders_due = _Earliest(self.order_store, self.partitions)
        self._products_due = _Earliest(self.product_store, self.partitions)
        self._queue: deque[tuple[str, int, bytes | None, bytes | None, int]] = deque()

    def restart(self) -> None:
        """The processors started afresh over the same stores, as a worker restarted on them
        finds them: nothing is kept but what the stores hold (no cache, no memory of which
        shared expiry timer has room)."""
        self.products = ProductWriter(self.product_store, self.policy)
        self.orders = OrderDesk(self.order_store, self.policy, self.product_store)
        self.inventory = InventoryRouter()
        self.handlers: dict[str, Callable[[bytes | None, Meta], Step]] = {
            "orders": self.orders.handle_order,
            "inventory": self.inventory.handle,
            "product_commands": self.products.handle,
            "order_replies": self.orders.handle_reply,
        }
        """What handles each topic's records, looked up per record: a test (or a tool) may
        wrap one to watch or change what it returns. A processor's own methods cannot be
        replaced on it in a compiled build of stockflow."""

    # --- feeding -------------------------------------------------------------------------------

    def feed(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int
    ) -> list[Emitted]:
        """One input record (topic ``orders`` or ``inventory``); returns what it caused."""
        records = self.emitted._records  # the log's own list: two calls fewer per input
        start = len(records)
        self.process(topic, key, value, timestamp_ms)
        return list(starmap(Emitted, records[start:]))

    def process(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int
    ) -> None:
        """As :meth:`feed`, but what the record caused is only appended to :attr:`emitted`: for
        a caller that reads the log at the end (a replay). Building each record's list of
        :class:`Emitted` was ~5% of a single-line order (two objects and a list)."""
        if topic not in INPUT_ROLES:
            raise ValueError(f"not an input topic: {topic!r}")
        if not self._quiet(timestamp_ms):
            self.advance(timestamp_ms)
        # murmur2 itself, not partition_for's cache: nearly every input's key (an order id) is
        # new, and only the outputs' keys (product ids) repeat.
        partition = (murmur2(key) & 0x7FFFFFFF) % self.partitions if key is not None else 0
        self._queue.append((topic, partition, key, value, timestamp_ms))
        self._drain()

    def feed_all(self, records: Iterable[tuple[str, bytes | None, bytes | None, int]]) -> None:
        """:meth:`process` each record in turn."""
        process = self.process
        for topic, key, value, timestamp in records:
            process(topic, key, value, timestamp)

    def _quiet(self, now_ms: int) -> bool:
        """Whether :meth:`advance` to ``now_ms`` would neither move the clock nor fire a timer
        (told from the cached earliest timers: the common case, asked on every input). Timers
        are due by the clock, which an input with an older timestamp does not move back.
        :meth:`_Earliest.any_due` written out: three calls per input were 1% of an order."""
        clock = self.clock_ms
        orders, products = self._orders_due, self._products_due
        if (
            now_ms > clock
            or orders.changes != orders.store.first_changes
            or products.changes != products.store.first_changes
        ):
            return False  # the clock moves, or a first timer changed: advance looks again
        due = orders.earliest
        if due is not None and due <= clock:
            return False
        due = products.earliest
        return due is None or due > clock

    def advance(self, now_ms: int) -> list[Emitted]:
        """Move the clock forward and fire every timer that became due."""
        start = len(self.emitted)
        self.clock_ms = max(self.clock_ms, now_ms)
        for _ in range(10_000):  # bounded: each round fires at most a batch per partition
            now = self.clock_ms
            orders, products = self._orders_due, self._products_due
            # Both refreshed before any partition is looked at.
            if not (orders.any_due(now) | products.any_due(now)):
                break
            fired = False
            for partition in range(self.partitions):
                due_orders = orders.is_due(partition, now)
                due_products = products.is_due(partition, now)
                if not (due_orders or due_products):
                    continue
                fired = True
                tick = encode(FireTimers(partition=partition, now_ms=self.clock_ms))
                if due_orders:
                    self._queue.append(("order_replies", partition, None, tick, self.clock_ms))
                if due_products:
                    self._queue.append(("product_commands", partition, None, tick, self.clock_ms))
            if not fired:
                break
            self._drain()
        return self.emitted[start:]

    # --- routing ------------------------------------------------------------------------------

    def _drain(self) -> None:
        # One loop with the routing written in: it runs twice per order (LocalPipeline's own
        # cost was ~15% of a single-line order, a method call per record and per output).
        queue, offsets = self._queue, self._offsets
        emitted, partitions = self.emitted._records, self.partitions
        handlers = self.handlers
        while queue:
            topic, partition, key, value, ts = queue.popleft()
            topic_offsets = offsets.get(topic)
            if topic_offsets is None:
                topic_offsets = offsets[topic] = [0] * partitions
            offset = topic_offsets[partition]
            topic_offsets[partition] = offset + 1
            step = handlers[topic](value, Meta(topic, partition, offset, ts, key))
            for out in step.outputs:
                role = out.role
                if role == "reservations" or role == "dead_letters":
                    emitted.append((role, out.key, out.value, ts))
                    continue
                to = out.partition
                if to is None:
                    to = 0 if out.key is None else partition_for(out.key, partitions)
                queue.append((role, to, out.key, out.value, ts))
            for timer in step.after_flush:
                self.order_store.delete(timer)
