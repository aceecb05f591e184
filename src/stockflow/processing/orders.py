"""The order desk: runs each order's saga. Consumes ``orders`` and the reply topic, both
partitioned the same way, so one stream owns an order's whole life.

A single-line order's saga is written once at placement; its writer's usual answer is kept in
its expiry timer (:mod:`stockflow.processing.held`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

from pydantic import BaseModel
from pydantic_core import to_json

from stockflow.core import saga as decide
from stockflow.core.policy import Policy
from stockflow.core.saga import LineState, Plain, Saga, SagaDecision, TimerKind
from stockflow.core.saga_state import FINISHED
from stockflow.core.single_line import seen_at_writer
from stockflow.keys import SAGA_KEYS, entry_key, saga_key, timer_key
from stockflow.models import OrderCancelled, OrderPaid, OrderPlaced
from stockflow.processing.codec import (
    dead_letter,
    decode_entry,
    decode_saga,
    encode,
    encode_new_single,
    encode_saga,
)
from stockflow.processing.expiries import EXPIRIES, SharedExpiries, expiring
from stockflow.processing.held import HELD, expiry_key, with_held
from stockflow.processing.internal import Command, parse_replies
from stockflow.processing.order_input import OrderInput, Placed, parse_order
from stockflow.processing.records import Meta, Out, Step
from stockflow.processing.store import StateStore
from stockflow.processing.sweep import due_after_sweeping, ensure_sweep
from stockflow.processing.written import Written

__all__ = ["SAGA_CACHE", "OrderDesk"]

SAGA_CACHE: Final = 8_192
"""Multi-line sagas whose last written value :class:`OrderDesk` remembers decoded (a few
MiB at most: ~1 KiB an entry for three lines). Their answers come back within a batch or two,
while the table store still hands back the very value written (until its changelog record is
acknowledged; always, in the memory store): decoding it again cost 1.9 us of a three-line
order's reply."""


class OrderDesk:
    """One instance per worker; each call is one step of the stream owning ``meta.partition``."""

    def __init__(
        self,
        store: StateStore,
        policy: Policy,
        products: StateStore | None = None,
        parse: Callable[[bytes | None], OrderInput | str] = parse_order,
    ) -> None:
        self.store = store
        self.parse = parse
        """How a record of the ``orders`` topic is read (:func:`parse_order`): a test may
        have every order read through the models instead, the desk's general path."""
        self.policy = policy
        self.products = products
        """The product writers' store, for the read model only (:meth:`saga`)."""
        self.expiries = SharedExpiries(store, policy)
        self._forwards_single = policy.forward_single_line and policy.max_lines >= 1
        """Whether place() starts a new single-line order as one its writer decides."""
        self._written: Written[Saga] = Written(SAGA_CACHE)
        """The multi-line sagas this desk last put, decoded (see :class:`Written`)."""

    def handle_order(self, raw: bytes | None, meta: Meta) -> Step:
        """A record from the public ``orders`` topic."""
        event = self.parse(raw)
        if isinstance(event, str):
            return Step(outputs=[dead_letter(meta, raw, event)])
        if meta.key is not None and meta.key != event.order_id.encode():
            # The key decides the partition, and so which saga sees the order's later payment or
            # cancellation: a record keyed by something else would orphan them.
            key = meta.key.decode(errors="backslashreplace")
            error = f"record key {key!r} does not match order_id {event.order_id!r}"
            return Step(outputs=[dead_letter(meta, raw, error)])
        key = saga_key(event.order_id)
        raw_saga = self.store.get(key)  # _load, spelled out for the usual new order
        if (
            raw_saga is None
            and isinstance(event, Placed)
            and len(event.lines) == 1
            and self._forwards_single
        ):
            return self._place_single(event, key, meta)
        saga = None if raw_saga is None else self._loaded(key, raw_saga, event.order_id)
        now = meta.timestamp_ms
        if isinstance(event, (Placed, OrderPlaced)):  # the plain values, or the model
            ttl_ms = None if event.reservation_ttl is None else round(event.reservation_ttl * 1000)
            decision = decide.place(
                saga,
                order_id=event.order_id,
                lines=event.lines,
                fulfilment=event.fulfilment,
                ttl_ms=ttl_ms,
                now_ms=now,
                reply_partition=meta.partition,
                policy=self.policy,
                placed_at=(meta.partition, meta.offset),
                started_ms=meta.clock_ms,
            )
            placed = decision.saga
            if saga is None and placed is not None and placed.forwards:
                # New, its one line decided by its product writer (an order with a TTL of its
                # own, or lines merged into one): _outputs written out, as _place_single.
                self._arm(event.order_id, meta.partition, decision)
                return self._write_new_single(
                    key,
                    meta,
                    placed.order_id,
                    placed.lines[0],
                    placed.fulfilment,
                    placed.deadline_ms,
                    placed.expires_at_ms,
                )
        elif isinstance(event, OrderPaid):
            decision = decide.pay(
                saga,
                order_id=event.order_id,
                now_ms=now,
                policy=self.policy,
                command_at=(meta.partition, meta.offset),
            )
        else:
            assert isinstance(event, OrderCancelled)
            decision = decide.cancel(
                saga,
                order_id=event.order_id,
                now_ms=now,
                policy=self.policy,
                command_at=(meta.partition, meta.offset),
            )
        return Step(outputs=self._outputs(event.order_id, meta.partition, decision, key))

    def _place_single(self, event: Placed, key: str, meta: Meta) -> Step:
        """A new single-line order (plain values: no TTL of its own) its writer decides: what
        :func:`stockflow.core.saga.place` decides, with no saga, line or decision built (8% of
        an order's instructions in ``LocalPipeline``). A property test holds the two equal."""
        deadline_ms, expires_at_ms = decide.placement_times(
            self.policy, meta.timestamp_ms, None, meta.clock_ms
        )
        # The expiry timer first, as place()'s decision arms it before its saga is written.
        self.expiries.join(event.order_id, meta.partition, expires_at_ms)
        line, fulfilment = event.lines[0], event.fulfilment
        return self._write_new_single(
            key, meta, event.order_id, line, fulfilment, deadline_ms, expires_at_ms
        )

    def _write_new_single(
        self,
        key: str,
        meta: Meta,
        order_id: str,
        line: LineState,
        fulfilment: str,
        deadline: int,
        expiry: int,
    ) -> Step:
        """The saga ``place`` starts for a new single-line order its writer decides (timers
        armed already), written under ``key``, and its Reserve (:func:`encode_new_single`)."""
        partition = meta.partition
        raw_saga, reserve = encode_new_single(
            order_id,
            line.product_id,
            line.quantity,
            fulfilment,
            meta.timestamp_ms,
            deadline,
            expiry,
            partition,
            (partition, meta.offset),
        )
        self.store.put(key, raw_saga)
        return Step([Out("product_commands", line.product_id.encode(), reserve)])

    def handle_reply(self, raw: bytes | None, meta: Meta) -> Step:
        """A record from the internal reply topic: a line answer or a timer tick."""
        answers = parse_replies(raw)
        if isinstance(answers, str):
            return Step(outputs=[dead_letter(meta, raw, answers)])
        if len(answers) == 1 and answers[0]["type"] == "FireTimers":
            return self._fire(meta.partition, answers[0]["now_ms"])
        # The answers of one record are one step: each saga they change is written once, after
        # every timer they arm (a crash losing a suffix of these writes only makes the
        # redelivered record decide them all again). They are taken order by order (answers
        # of different orders are independent; one order's keep their record order), so a
        # multi-line order's answers, which usually come in one record, rebuild its saga once.
        partition = meta.partition
        by_order: dict[str, list[Command]] = {}
        for answer in answers:
            by_order.setdefault(answer["order_id"], []).append(answer)
        changed: dict[str, Saga | None] = {}
        outputs: list[Out] = []
        for order_id, group in by_order.items():
            self._answer(order_id, group, partition, meta.timestamp_ms, changed, outputs)
        for order_id, saga in changed.items():
            if saga is None:
                self.store.delete(saga_key(order_id))
            else:
                self._write(saga_key(order_id), saga)
        return Step(outputs=outputs)

    def _answer(
        self,
        order_id: str,
        answers: list[Command],
        partition: int,
        now: int,
        changed: dict[str, Saga | None],
        outputs: list[Out],
    ) -> None:
        """One order's answers of a reply record: its timers armed, its new saga (or ``None``:
        forgotten) left in ``changed``, what it publishes added to ``outputs``."""
        saga = self._read(saga_key(order_id))
        if saga is None:
            pass  # nothing to answer (see answer_line): decided one by one below
        elif len(answers) == 1:
            first = answers[0]
            if (
                first["status"] == "reserved"
                and saga.reply_partition == partition
                and decide.may_be_held(saga)
                and saga.lines[0].product_id == first["product_id"]
            ):
                # One write instead of the saga's and its timer's (see HELD). Decided on the
                # stored saga: if HELD is there already (a redelivery), this writes the same
                # value again, which is all that answer would decide.
                self.store.put(expiry_key(saga, order_id), HELD)
                return
            saga = with_held(self.store, order_id, saga)
        else:
            saga = with_held(self.store, order_id, saga)
            if all(answer["status"] == "reserved" for answer in answers):
                together = decide.answer_reserved(saga, [a["product_id"] for a in answers])
                if together is not None:
                    self._arm(order_id, partition, together)
                    changed[order_id] = together.saga
                    outputs.extend(_outputs(together))
                    return
        for answer in answers:
            decision = decide.answer_line(
                saga,
                answer["product_id"],
                answer["status"],
                answer["reason"],
                answer["available"],
                now_ms=now,
                policy=self.policy,
            )
            self._arm(order_id, partition, decision)
            if decision.forget:
                changed[order_id] = saga = None
            elif decision.saga is not None:
                changed[order_id] = saga = decision.saga
            outputs.extend(_outputs(decision))

    def saga(self, order_id: str) -> Saga | None:
        """The order's current state (for the read model): a single-line order its product
        writer decides is read from the writer's ledger entry while the desk has not heard
        how it ended (when that entry is in :attr:`products` here)."""
        saga = self._load(order_id)
        if saga is None or not saga.forwards or self.products is None:
            return saga
        raw = self.products.get(entry_key(saga.lines[0].product_id, order_id))
        return seen_at_writer(saga, None if raw is None else decode_entry(raw))

    def _load(self, order_id: str) -> Saga | None:
        """:func:`load_saga`, through the sagas this desk wrote (:attr:`_written`)."""
        key = saga_key(order_id)
        raw = self.store.get(key)
        return None if raw is None else self._loaded(key, raw, order_id)

    def _loaded(self, key: str, raw: bytes, order_id: str) -> Saga:
        """:meth:`_load` of the saga stored as ``raw`` under ``key``."""
        saga = self._written.get(key, raw)
        return with_held(self.store, order_id, decode_saga(raw) if saga is None else saga)

    def _read(self, key: str) -> Saga | None:
        raw = self.store.get(key)
        if raw is None:
            return None
        saga = self._written.get(key, raw)
        return decode_saga(raw) if saga is None else saga

    def _write(self, key: str, saga: Saga) -> None:
        raw = encode_saga(saga)
        self.store.put(key, raw)
        # Single-line sagas are read again only on a payment or a cancellation, seconds later.
        if not saga.product_decides:
            self._written.put(key, raw, saga)

    def _outputs(
        self, order_id: str, partition: int, decision: SagaDecision, key: str | None = None
    ) -> list[Out]:
        """``key``: the saga's key, when the caller has it already."""
        # Timers first, then the saga: a timer without its saga is ignored when it fires, and a
        # redelivered input re-arms timers whose write was lost.
        self._arm(order_id, partition, decision)
        if key is None:
            key = saga_key(order_id)
        if decision.forget:
            self.store.delete(key)
        elif decision.saga is not None:
            self._write(key, decision.saga)
        return _outputs(decision)

    def _arm(self, order_id: str, partition: int, decision: SagaDecision) -> None:
        for due, kind in decision.timers:
            if kind == "forget":
                # The finished saga's own finish time is its retention timer (see sweep).
                finished = due - self.policy.retention_ms
                ensure_sweep(self.store, partition, finished, self.policy.retention_ms)
            elif kind == "expiry" and decision.saga is not None and decision.saga.forwards:
                self.expiries.join(order_id, partition, due)
            else:
                self.store.put(timer_key(partition, due, kind, order_id), b"")

    def _forget(self, key: str, raw: bytes, now_ms: int) -> None:
        decision = decide.fire_timer(decode_saga(raw), "forget", now_ms=now_ms, policy=self.policy)
        if decision.forget:
            self.store.delete(key)

    def _fire(self, partition: int, now_ms: int) -> Step:
        self.expiries.fired(partition, now_ms)
        outputs: list[Out] = []
        fired: list[str] = []
        # Forgetting publishes nothing: the sweep need not wait for a flush.
        for timer in due_after_sweeping(
            self.store,
            partition,
            now_ms,
            prefix=SAGA_KEYS,
            retention_ms=self.policy.retention_ms,
            forget=lambda key, raw: self._forget(key, raw, now_ms),
        ):
            # A shared expiry timer fires each order it lists; any other, its own order.
            shared = timer.kind == EXPIRIES
            kind: TimerKind = "expiry" if shared else cast(TimerKind, timer.kind)
            caused = len(outputs)
            finished = False
            for order_id in expiring(self.store.get(timer.key)) if shared else (timer.ref,):
                saga = self._load(order_id)
                finished = finished or (saga is not None and saga.status in FINISHED)
                decision = decide.fire_timer(saga, kind, now_ms=now_ms, policy=self.policy)
                outputs.extend(self._outputs(order_id, partition, decision))
            if len(outputs) > caused or finished:
                # Deleted only after what it caused is durable (see Step.after_flush); a finished
                # order's too, which an earlier tick of the batch may have fired: deleted now, a
                # crash before those outputs left no timer for the redelivered tick (a soak at
                # 2,000/s on 12 partitions: 15 orders never expired). No input re-arms it.
                fired.append(timer.key)
            else:
                # Nothing to wait for: deleted now, so that a later record of the batch can arm
                # it again. After a crash the table can hold a timer a later input armed while
                # its saga's write was lost: the redelivered tick before that input fires it for
                # nothing, the input arms it again, and a deletion at the batch's end took that
                # too, so the order never expired (found by a soak at 1,000 orders/s).
                self.store.delete(timer.key)
        return Step(outputs, tuple(fired))


def _outputs(decision: SagaDecision) -> list[Out]:
    # Plain loops: a placed order has one command and no event, and a generator per decision
    # cost more than building its one record.
    outputs: list[Out] = []
    for event in decision.raw_events:
        key, value = _keyed(event, "order_id")
        outputs.append(Out("reservations", key, value))
    for command in decision.raw_commands:
        key, value = _keyed(command, "product_id")
        outputs.append(Out("product_commands", key, value))
    return outputs


def _keyed(item: BaseModel | Plain, field: str) -> tuple[bytes, bytes]:
    """(key, value) of an event or command, whether a model or its plain JSON object."""
    if isinstance(item, dict):
        return str(item[field]).encode(), to_json(item)
    return str(getattr(item, field)).encode(), encode(item)
