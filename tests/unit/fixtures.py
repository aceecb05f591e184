"""Shared helpers for the unit tier: input records as bytes, decoding what came out, and
reading the processors' state back out of a :class:`MemoryStore`.

Imported as a plain module (``from fixtures import ...``); pytest puts ``tests/unit`` on
``sys.path`` because the tier has no package ``__init__``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from pydantic import BaseModel

from stockflow.core import saga as saga_core
from stockflow.core.policy import Policy
from stockflow.core.saga import LineState, Saga, SagaDecision
from stockflow.core.stock import Reservation, Stock
from stockflow.keys import ledger_prefix, stock_key
from stockflow.models import (
    OUTPUT_EVENT_ADAPTER,
    DeadLetter,
    LineAnswer,
    OrderLine,
    OrderRejected,
    OrderReserved,
)
from stockflow.processing.codec import decode_entry, decode_stock
from stockflow.processing.entry_events import encode_outcome
from stockflow.processing.held import load_saga
from stockflow.processing.orders import OrderDesk
from stockflow.processing.pipeline import Emitted, EmittedLog, LocalPipeline
from stockflow.processing.records import Meta, Out, Step
from stockflow.processing.store import MemoryStore

# Surrogates cannot come in: every id is parsed from JSON, which refuses a lone one.
JSON_IDS = st.text(
    st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20
) | st.sampled_from(['"', "\\", "\n", "\x00\x1f\x7f", "é€😀", "\u2028"])
"""Any id an order or product may have (quotes, backslashes, control characters, any
Unicode): what the codec's bytes templates must escape exactly as ``to_json`` does."""

# --- policies -----------------------------------------------------------------------------------

# The saga tests' policy: the saga decides single-line orders too (test_single_line covers the
# product writer deciding them).
SAGA_POLICY = Policy(
    reservation_ttl_ms=60_000,
    saga_timeout_ms=5_000,
    retention_ms=100_000,
    max_lines=3,
    forward_single_line=False,
)

# --- input records ----------------------------------------------------------------------------


def raw(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def order_placed(
    order_id: str,
    *lines: tuple[str, int],
    fulfilment: str | None = None,
    ttl: float | None = None,
) -> bytes:
    payload: dict[str, Any] = {
        "type": "OrderPlaced",
        "order_id": order_id,
        "lines": [{"product_id": pid, "quantity": qty} for pid, qty in lines],
    }
    if fulfilment is not None:
        payload["fulfilment"] = fulfilment
    if ttl is not None:
        payload["reservation_ttl"] = ttl
    return raw(payload)


def order_paid(order_id: str) -> bytes:
    return raw({"type": "OrderPaid", "order_id": order_id})


def order_cancelled(order_id: str) -> bytes:
    return raw({"type": "OrderCancelled", "order_id": order_id})


def stock_set(product_id: str, on_hand: int) -> bytes:
    return raw({"type": "StockSet", "product_id": product_id, "on_hand": on_hand})


def stock_adjusted(product_id: str, delta: int, adjustment_id: str) -> bytes:
    return raw(
        {
            "type": "StockAdjusted",
            "product_id": product_id,
            "delta": delta,
            "adjustment_id": adjustment_id,
        }
    )


def meta(
    topic: str = "orders",
    *,
    partition: int = 0,
    offset: int = 0,
    timestamp_ms: int = 0,
    key: bytes | None = None,
) -> Meta:
    return Meta(topic=topic, partition=partition, offset=offset, timestamp_ms=timestamp_ms, key=key)


# --- outputs ----------------------------------------------------------------------------------


def decode_event(value: bytes) -> BaseModel:
    """A record published to ``reservations`` or the dead-letter topic, as its model."""
    if b'"type":"DeadLetter"' in value:
        return DeadLetter.model_validate_json(value)
    event = OUTPUT_EVENT_ADAPTER.validate_json(value)
    assert isinstance(event, BaseModel)
    return event


def events_of(records: Iterable[Emitted | Out]) -> list[BaseModel]:
    return [decode_event(record.value) for record in records]


def outcomes(records: Iterable[Emitted | Out]) -> dict[str, set[bytes]]:
    """Distinct order-level outcome records (OrderReserved/OrderRejected) per order id."""
    found: dict[str, set[bytes]] = {}
    for record in records:
        event = decode_event(record.value)
        if isinstance(event, OrderReserved | OrderRejected):
            found.setdefault(event.order_id, set()).add(record.value)
    return found


# --- state ------------------------------------------------------------------------------------


def stock_of(store: MemoryStore, product_id: str) -> Stock | None:
    value = store.get(stock_key(product_id))
    return None if value is None else decode_stock(value).stock


def ledger_of(store: MemoryStore, product_id: str) -> list[Reservation]:
    return [decode_entry(value) for _key, value in store.scan(ledger_prefix(product_id))]


def saga_of(store: MemoryStore, order_id: str, products: MemoryStore | None = None) -> Saga | None:
    """The saga as the order desk reads it (a plain reservation may be held by its timer);
    with ``products``, as the read model shows it (a single-line order its product writer
    decides, from the writer's ledger entry: :meth:`OrderDesk.saga`)."""
    if products is None:
        return load_saga(store, order_id)
    return OrderDesk(store, Policy(), products).saga(order_id)


# --- a pipeline with a clock ------------------------------------------------------------------


@dataclass
class Shop:
    """A :class:`LocalPipeline` driven by a monotonic clock."""

    policy: Policy = field(default_factory=Policy)
    partitions: int = 4
    now: int = 1_000

    def __post_init__(self) -> None:
        self.pipeline = LocalPipeline(policy=self.policy, partitions=self.partitions)

    def feed(self, topic: str, key: str, value: bytes, *, at: int | None = None) -> list[Emitted]:
        timestamp = self.now if at is None else at
        self.now = max(self.now, timestamp)
        return self.pipeline.feed(topic, key.encode(), value, timestamp)

    def tick(self, ms: int = 1) -> list[Emitted]:
        self.now += ms
        return self.pipeline.advance(self.now)

    # inputs
    def set_stock(self, product_id: str, on_hand: int) -> list[Emitted]:
        return self.feed("inventory", product_id, stock_set(product_id, on_hand))

    def adjust(self, product_id: str, delta: int, adjustment_id: str) -> list[Emitted]:
        return self.feed("inventory", product_id, stock_adjusted(product_id, delta, adjustment_id))

    def place(self, order_id: str, *lines: tuple[str, int], **kwargs: Any) -> list[Emitted]:
        return self.feed("orders", order_id, order_placed(order_id, *lines, **kwargs))

    def pay(self, order_id: str) -> list[Emitted]:
        return self.feed("orders", order_id, order_paid(order_id))

    def cancel(self, order_id: str) -> list[Emitted]:
        return self.feed("orders", order_id, order_cancelled(order_id))

    # reads
    @property
    def emitted(self) -> EmittedLog:
        return self.pipeline.emitted

    def events(self) -> list[BaseModel]:
        return events_of(self.pipeline.emitted)

    def stock(self, product_id: str) -> Stock | None:
        return stock_of(self.pipeline.product_store, product_id)

    def ledger(self, product_id: str) -> list[Reservation]:
        return ledger_of(self.pipeline.product_store, product_id)

    def saga(self, order_id: str) -> Saga | None:
        return saga_of(self.pipeline.order_store, order_id, self.pipeline.product_store)


# --- driving one saga through the pure core ---------------------------------------------------


def as_json(items: Iterable[BaseModel]) -> list[str]:
    return [item.model_dump_json() for item in items]


@dataclass
class SagaDriver:
    """Applies saga decisions the way the order desk does, and keeps everything they emitted.

    ``inputs`` records every input with its timestamp so a test can redeliver any of them.
    """

    policy: Policy
    order_id: str = "o-1"
    reply_partition: int = 0
    saga: Saga | None = None
    events: list[BaseModel] = field(default_factory=list)
    commands: list[BaseModel] = field(default_factory=list)
    timers: list[tuple[int, str]] = field(default_factory=list)
    inputs: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    decisions: list[SagaDecision] = field(default_factory=list)
    """What each of ``inputs`` decided the first time."""

    def decide(self, kind: str, now: int, **kwargs: Any) -> SagaDecision:
        """What the saga would decide for this input now, without applying it."""
        if kind == "place":
            return saga_core.place(
                self.saga,
                order_id=self.order_id,
                lines=kwargs["lines"],
                fulfilment=kwargs.get("fulfilment", "all_or_nothing"),
                ttl_ms=kwargs.get("ttl_ms"),
                now_ms=now,
                reply_partition=self.reply_partition,
                policy=self.policy,
            )
        if kind == "answer":
            return saga_core.answer(self.saga, kwargs["reply"], now_ms=now, policy=self.policy)
        if kind == "pay":
            return saga_core.pay(self.saga, order_id=self.order_id, now_ms=now, policy=self.policy)
        if kind == "cancel":
            return saga_core.cancel(
                self.saga, order_id=self.order_id, now_ms=now, policy=self.policy
            )
        assert kind == "timer"
        return saga_core.fire_timer(self.saga, kwargs["timer"], now_ms=now, policy=self.policy)

    def apply(self, decision: SagaDecision) -> SagaDecision:
        if decision.forget:
            self.saga = None
        elif decision.saga is not None:
            self.saga = decision.saga
        self.events.extend(decision.events)
        self.commands.extend(decision.commands)
        self.timers.extend(decision.timers)
        return decision

    def do(self, kind: str, now: int, **kwargs: Any) -> SagaDecision:
        self.inputs.append((kind, now, kwargs))
        if kind == "answer":
            self.events.extend(self.product_outcome(kwargs["reply"]))
        self.decisions.append(self.apply(self.decide(kind, now, **kwargs)))
        return self.decisions[-1]

    def product_outcome(self, reply: LineAnswer) -> list[BaseModel]:
        """What the product writer published with this answer: a single-line order's outcome
        (``Saga.product_decides``), encoded as the writer encodes it."""
        saga = self.saga
        if saga is None or not saga.product_decides or reply.status not in ("reserved", "refused"):
            return []
        entry = Reservation(
            order_id=reply.order_id,
            product_id=reply.product_id,
            quantity=reply.quantity,
            seq=0,
            expires_at_ms=saga.expires_at_ms,
            status="pending" if reply.status == "reserved" else "refused",
            refusal=reply.reason,
            available=reply.available,
        )
        return [OUTPUT_EVENT_ADAPTER.validate_json(encode_outcome(entry))]  # type: ignore[list-item]

    # shorthands
    def place(self, *lines: tuple[str, int], now: int, **kwargs: Any) -> SagaDecision:
        order_lines = [OrderLine(product_id=pid, quantity=qty) for pid, qty in lines]
        return self.do("place", now, lines=order_lines, **kwargs)

    def answer(
        self,
        product_id: str,
        status: str = "reserved",
        *,
        now: int,
        quantity: int = 1,
        reason: str | None = None,
        available: int | None = None,
    ) -> SagaDecision:
        if status == "refused" and reason is None:
            reason = "insufficient_stock"
        reply = LineAnswer(
            order_id=self.order_id,
            product_id=product_id,
            status=status,  # type: ignore[arg-type]
            quantity=quantity,
            reason=reason,  # type: ignore[arg-type]
            available=available,
        )
        return self.do("answer", now, reply=reply)

    def pay(self, *, now: int) -> SagaDecision:
        return self.do("pay", now)

    def cancel(self, *, now: int) -> SagaDecision:
        return self.do("cancel", now)

    def fire(self, timer: str, *, now: int) -> SagaDecision:
        return self.do("timer", now, timer=timer)

    def outcomes(self) -> set[str]:
        return {
            event.model_dump_json()
            for event in self.events
            if isinstance(event, OrderReserved | OrderRejected)
        }


class RecordingPipeline:
    """A :class:`LocalPipeline` (every attribute not defined here is the pipeline's) that
    remembers every input record as delivered (with its offset), so a test can deliver it
    again the way Kafka redelivers after a crash: same topic, partition, offset, key, value
    and timestamp.

    It watches the pipeline's :attr:`~LocalPipeline.handlers`, which the pipeline looks up per
    record, and not the pipeline's own routing: that is written into one loop (``_drain``),
    and hooks on the methods it once called were silently never called (the property tests
    then redelivered nothing and duplicated nothing). :attr:`echoed` counts what ``echo``
    duplicated, so that a test can tell. It wraps the pipeline rather than subclassing it: a
    compiled build of stockflow allows no Python subclass of its classes."""

    echo: Callable[[Out], bool] | None = None
    """Asked for every internal record (product command, saga reply): ``True`` delivers it a
    second time, right behind the first, as at-least-once delivery may."""

    def __init__(self, **pipeline: Any) -> None:
        self.pipeline = LocalPipeline(**pipeline)
        self.delivered: list[tuple[str, bytes | None, Meta]] = []
        self.echoed = 0
        self._redelivering = False
        handlers = self.pipeline.handlers
        for topic, handle in list(handlers.items()):
            recorded = topic if topic in ("orders", "inventory") else None  # the inputs
            handlers[topic] = self._watch(recorded, handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    def _watch(
        self, topic: str | None, handle: Callable[[bytes | None, Meta], Step]
    ) -> Callable[[bytes | None, Meta], Step]:
        """``handle`` that records the input records of ``topic`` and echoes internal outputs."""

        def watched(raw: bytes | None, meta: Meta) -> Step:
            if topic is not None and not self._redelivering:
                self.delivered.append((topic, raw, meta))
            step = handle(raw, meta)
            if self.echo is not None:
                outputs: list[Out] = []
                for out in step.outputs:
                    outputs.append(out)
                    internal = out.role in ("product_commands", "order_replies")
                    if internal and self.echo(out):
                        outputs.append(out)
                        self.echoed += 1
                step.outputs = outputs
            return step

        return watched

    def redeliver(self, topic: str, value: bytes | None, meta: Meta) -> list[Emitted]:
        """The input record ``meta`` describes, delivered again at its own offset (the pipeline
        numbers each input partition's records; only inputs are taken there, so no other
        record takes an offset of that partition while this one is processed)."""
        pipeline = self.pipeline
        offsets = pipeline._offsets[topic]
        following = offsets[meta.partition]
        offsets[meta.partition] = meta.offset
        start = len(pipeline.emitted)
        self._redelivering = True
        try:
            pipeline._queue.append((topic, meta.partition, meta.key, value, meta.timestamp_ms))
            pipeline._drain()
        finally:
            self._redelivering = False
            offsets[meta.partition] = following
        return pipeline.emitted[start:]


# Any saga the codec may meet: every field over its whole range (not only what the core
# decides), so that a field out of place in a record fails.
SAGA_NAMES = st.text(min_size=1, max_size=12)
SAGA_LINES = st.builds(
    LineState,
    product_id=SAGA_NAMES,
    quantity=st.integers(1, 10**6),
    answer=st.sampled_from(["pending", "reserved", "refused"]),
    reason=st.none()
    | st.sampled_from(
        ["insufficient_stock", "unknown_product", "timeout", "compensated", "invalid_order"]
    ),
    available=st.none() | st.integers(0, 10**6),
    action=st.sampled_from(["reserve", "confirm", "release", "none"]),
    release_reason=st.none() | st.sampled_from(["cancelled", "expired", "compensation"]),
)
SAGA_MS = st.integers(0, 2**53)
SAGAS = st.builds(
    Saga,
    order_id=SAGA_NAMES,
    lines=st.lists(SAGA_LINES, min_size=1, max_size=4).map(tuple),
    fulfilment=st.sampled_from(["all_or_nothing", "partial"]),
    status=st.sampled_from(
        ["reserving", "reserved", "rejected", "confirmed", "cancelled", "expired"]
    ),
    placed_at_ms=SAGA_MS,
    deadline_ms=SAGA_MS,
    expires_at_ms=SAGA_MS,
    reply_partition=st.integers(0, 1000),
    rejection=st.none()
    | st.sampled_from(["insufficient_stock", "unknown_product", "invalid_order", "timeout"]),
    pay_requested=st.booleans(),
    cancel_requested=st.booleans(),
    finished_at_ms=st.none() | SAGA_MS,
    placed_at=st.none() | st.tuples(st.integers(0, 1000), st.integers(0, 2**40)),
    first_request=st.none() | st.sampled_from(["pay", "cancel"]),
    product_decides=st.booleans(),
)
