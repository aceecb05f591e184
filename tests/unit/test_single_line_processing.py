"""The processors with single-line orders decided by their product writer (the default) against
the processors with the saga deciding them (``Policy.forward_single_line=False``, the way
before): fed the same inputs, the same public events per order (first occurrences, in order),
the same counters, the same order status in the read model. And what the new way saves: no
reply for a held reservation."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.commands import FireTimers
from stockflow.core.policy import Policy
from stockflow.models import Confirm, LineAnswer, Release, Reserve, SetStock
from stockflow.processing.codec import decode_saga, encode
from stockflow.processing.expiries import expiring
from stockflow.processing.orders import OrderDesk
from stockflow.processing.pipeline import LocalPipeline
from stockflow.processing.products import ProductWriter
from stockflow.processing.records import Out
from stockflow.processing.store import MemoryStore

from fixtures import (
    meta,
    order_cancelled,
    order_paid,
    order_placed,
    saga_of,
    stock_adjusted,
    stock_of,
    stock_set,
)

TTL = 10_000
POLICY = Policy(reservation_ttl_ms=TTL, saga_timeout_ms=5_000, retention_ms=3_600_000)
LEGACY = replace(POLICY, forward_single_line=False)
EXACT = replace(POLICY, expiry_bucket_ms=1)
"""Expiry checked at the millisecond, as the saga's own timer (the default shares a timer by
100 ms: the expiry then comes up to 100 ms later, which a payment in between decides first)."""
T0 = 1_700_000_000_000
PRODUCTS = ("p", "q")
ORDERS = ("o-1", "o-2", "o-3", "o-4")


def _run(policy: Policy, inputs: list[tuple[str, Any, int]]) -> tuple[Any, ...]:
    pipeline = LocalPipeline(policy=policy, partitions=3)
    for product in PRODUCTS:
        pipeline.feed("inventory", product.encode(), stock_set(product, 2), T0)
    placed: set[str] = set()
    for index, (kind, target, delay) in enumerate(inputs):
        at = T0 + 1 + delay
        if kind == "place":
            order_id, product, quantity = target
            placed.add(order_id)
            value = order_placed(order_id, (product, quantity))
            pipeline.feed("orders", order_id.encode(), value, at)
        elif kind == "pay":
            pipeline.feed("orders", target.encode(), order_paid(target), at)
        elif kind == "cancel":
            pipeline.feed("orders", target.encode(), order_cancelled(target), at)
        elif kind == "restock":
            value = stock_adjusted(target, 1, f"a-{index}")
            pipeline.feed("inventory", target.encode(), value, at)
        else:
            pipeline.advance(at)
    pipeline.advance(T0 + 2 * TTL)  # every reservation has expired or ended
    events: dict[bytes | None, list[bytes]] = defaultdict(list)
    for record in pipeline.emitted:
        if record.value not in events[record.key]:
            events[record.key].append(record.value)
    counters = {p: stock_of(pipeline.product_store, p) for p in PRODUCTS}
    statuses = {}
    for order_id in placed:
        saga = saga_of(pipeline.order_store, order_id, pipeline.product_store)
        statuses[order_id] = None if saga is None else saga.status
    return dict(events), counters, statuses


order_ids = st.sampled_from(ORDERS)
delays = st.sampled_from([0, 1, 5_000, TTL - 1, TTL, TTL + 1])
step = st.one_of(
    st.tuples(
        st.just("place"),
        st.tuples(order_ids, st.sampled_from(PRODUCTS), st.integers(1, 2)),
        delays,
    ),
    st.tuples(st.sampled_from(["pay", "cancel"]), order_ids, delays),
    st.tuples(st.just("restock"), st.sampled_from(PRODUCTS), delays),
    st.tuples(st.just("tick"), st.none(), delays),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=12))
def test_the_writer_decides_as_the_saga_did(inputs: list[tuple[str, Any, int]]) -> None:
    # Inputs in time order, as a partition's log has them (delays are offsets from T0).
    inputs = sorted(inputs, key=lambda item: item[2])
    legacy = _run(LEGACY, inputs)
    assert _run(EXACT, inputs) == legacy
    # Every shared expiry timer full after one order: each in a timer of its own.
    assert _run(replace(EXACT, expiry_bucket_bytes=1), inputs) == legacy


def test_a_held_single_line_order_sends_no_reply_and_ends_reported() -> None:
    pipeline = LocalPipeline(policy=POLICY, partitions=1)
    pipeline.feed("inventory", b"p", stock_set("p", 3), T0)
    sent: list[Any] = []
    handle = pipeline.handlers["product_commands"]

    def record(raw: bytes | None, meta: Any) -> Any:
        step = handle(raw, meta)
        sent.extend((out.role, out.value) for out in step.outputs)
        return step

    pipeline.handlers["product_commands"] = record
    pipeline.feed("orders", b"o-1", order_placed("o-1", ("p", 1)), T0 + 1)
    assert [role for role, _value in sent] == ["reservations", "reservations"]
    saga = decode_saga(pipeline.order_store.get("o:o-1") or b"")
    assert saga.forwards and saga.status == "reserving"
    # The read model shows it held, from the writer's entry.
    seen = saga_of(pipeline.order_store, "o-1", pipeline.product_store)
    assert seen is not None and seen.status == "reserved"

    sent.clear()
    pipeline.feed("orders", b"o-1", order_paid("o-1"), T0 + 2)
    roles = [role for role, _value in sent]
    assert roles == ["reservations", "order_replies"]
    report = LineAnswer.model_validate_json(sent[1][1])
    assert (report.status, report.quantity) == ("confirmed", 1)
    ended = decode_saga(pipeline.order_store.get("o:o-1") or b"")
    assert ended.status == "confirmed" and ended.finished_at_ms == T0 + 2
    assert stock_of(pipeline.product_store, "p") == stock_of(pipeline.product_store, "p")
    counters = stock_of(pipeline.product_store, "p")
    assert counters is not None and (counters.on_hand, counters.reserved) == (2, 0)


def test_the_desk_forwards_payment_cancellation_and_expiry() -> None:
    pipeline = LocalPipeline(policy=POLICY, partitions=1)
    pipeline.feed("inventory", b"p", stock_set("p", 3), T0)
    commands: list[Any] = []
    handle = pipeline.handlers["orders"]
    fire = pipeline.handlers["order_replies"]

    def record(step: Any) -> Any:
        commands.extend(o.value for o in step.outputs if o.role == "product_commands")
        return step

    pipeline.handlers["orders"] = lambda raw, meta: record(handle(raw, meta))
    pipeline.handlers["order_replies"] = lambda raw, meta: record(fire(raw, meta))
    for order_id in ("o-1", "o-2", "o-3"):
        pipeline.feed("orders", order_id.encode(), order_placed(order_id, ("p", 1)), T0 + 1)
    reserves = [Reserve.model_validate_json(raw) for raw in commands]
    assert all(r.outcome and r.decides for r in reserves)
    commands.clear()
    pipeline.feed("orders", b"o-1", order_paid("o-1"), T0 + 2)
    pipeline.feed("orders", b"o-2", order_cancelled("o-2"), T0 + 3)
    pipeline.advance(T0 + 1 + TTL)
    assert len(commands) == 2  # the expiry's timer is shared: due at the next 100 ms
    pipeline.advance(T0 + 100 + TTL)
    confirm = Confirm.model_validate_json(commands[0])
    cancel, expire = (Release.model_validate_json(raw) for raw in commands[1:])
    assert (confirm.at_ms, confirm.reply_partition) == (T0 + 2, 0)
    assert (cancel.reason, cancel.at_ms) == ("cancelled", T0 + 3)
    assert (expire.order_id, expire.reason, expire.at_ms) == ("o-3", "expired", T0 + 100 + TTL)
    statuses = [
        decode_saga(pipeline.order_store.get(f"o:{o}") or b"").status for o in ("o-1", "o-2", "o-3")
    ]
    assert statuses == ["confirmed", "cancelled", "expired"]


def test_inputs_that_outrun_the_report_are_answered_by_the_writer() -> None:
    # The desk forwards while it has not heard how the order ended; the writer answers from the
    # entry, in its partition's order: a payment stamped after the expiry (before any tick ran)
    # fails and releases; a cancellation after that is ignored; both report the end again.
    desk_store, writer_store = MemoryStore(), MemoryStore()
    desk, writer = OrderDesk(desk_store, POLICY, writer_store), ProductWriter(writer_store, POLICY)
    offsets = iter(range(100))

    def at_writer(outs: list[Out], now: int) -> list[Out]:
        done: list[Out] = []
        for out in outs:
            assert out.role == "product_commands"
            step = writer.handle(
                out.value, meta("product-commands", offset=next(offsets), timestamp_ms=now)
            )
            done.extend(step.outputs)
        return done

    at_writer(
        [Out("product_commands", b"p", encode(SetStock(product_id="p", on_hand=1, source="s")))], T0
    )
    placed = desk.handle_order(
        order_placed("o-1", ("p", 1)), meta(offset=0, timestamp_ms=T0, key=b"o-1")
    )
    assert [o.role for o in at_writer(placed.outputs, T0)] == ["reservations"] * 2

    late = T0 + TTL
    paid = desk.handle_order(order_paid("o-1"), meta(offset=1, timestamp_ms=late, key=b"o-1"))
    out = at_writer(paid.outputs, late)
    assert [(o.role, decode(o)) for o in out] == [
        ("reservations", ("ReservationConfirmFailed", "expired")),
        ("reservations", ("ReservationReleased", "expired")),
        ("order_replies", ("LineAnswer", "expired")),
    ]
    cancelled = desk.handle_order(
        order_cancelled("o-1"), meta(offset=2, timestamp_ms=late + 1, key=b"o-1")
    )
    again = at_writer(cancelled.outputs, late + 1)
    assert [(o.role, decode(o)) for o in again] == [
        ("reservations", ("OrderCancelIgnored", "already_released")),
        ("order_replies", ("LineAnswer", "expired")),
    ]
    for number, report in enumerate((out[-1], again[-1])):
        desk.handle_reply(report.value, meta("order-replies", offset=number, timestamp_ms=late + 2))
    saga = desk.saga("o-1")
    assert saga is not None and saga.status == "expired"
    counters = stock_of(writer_store, "p")
    assert counters is not None and (counters.on_hand, counters.reserved) == (1, 0)


def test_a_full_expiry_timer_is_followed_by_another_and_every_order_expires_once() -> None:
    policy = replace(POLICY, expiry_bucket_bytes=8)  # "3:o-1" and "3:o-2" fill one
    pipeline = LocalPipeline(policy=policy, partitions=1)
    pipeline.feed("inventory", b"p", stock_set("p", 9), T0)
    ids = ["o-1", "o-2", "o-3", "o-4", "o-5"]
    for order_id in ids:
        pipeline.feed("orders", order_id.encode(), order_placed(order_id, ("p", 1)), T0 + 1)
    timers = sorted(key for key in pipeline.order_store.items() if ":expiries:" in key)
    assert [key.rsplit(":", 1)[1] for key in timers] == ["", "1", "2"]
    held = [expiring(pipeline.order_store.get(key)) for key in timers]
    assert held == [["o-1", "o-2"], ["o-3", "o-4"], ["o-5"]]
    # A desk started afresh (a restart: no memory of the parts) finds the one with room.
    pipeline.restart()
    pipeline.feed("orders", b"o-6", order_placed("o-6", ("p", 1)), T0 + 1)
    assert expiring(pipeline.order_store.get(timers[2])) == ["o-5", "o-6"]
    held_now = stock_of(pipeline.product_store, "p")
    assert held_now is not None and held_now.reserved == 6

    expired = pipeline.advance(T0 + 100 + TTL)
    assert [key for key in pipeline.order_store.items() if ":expiries:" in key] == []
    released = [
        json.loads(out.value)["order_id"]
        for out in expired
        if json.loads(out.value)["type"] == "ReservationReleased"
    ]
    assert sorted(released) == [*ids, "o-6"]
    counters = stock_of(pipeline.product_store, "p")
    assert counters is not None and (counters.on_hand, counters.reserved) == (9, 0)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(ids=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=12))
def test_a_shared_expiry_timer_lists_any_ids_it_was_given(ids: list[str]) -> None:
    """Every order added to a shared expiry timer is read back from it, whatever its id."""
    policy = replace(POLICY, expiry_bucket_bytes=1 << 20)
    store = MemoryStore()
    desk = OrderDesk(store, policy)
    for order_id in ids:
        desk.expiries.join(order_id, 0, T0 + TTL)
    timers = [key for key in store.items() if ":expiries:" in key]
    assert len(timers) == 1
    assert expiring(store.get(timers[0])) == list(dict.fromkeys(ids))


def decode(out: Out) -> tuple[str, str | None]:
    value = json.loads(out.value)
    return value["type"], value.get("reason") or value.get("status")


def test_orders_expiring_together_share_one_timer_and_all_expire() -> None:
    pipeline = LocalPipeline(policy=POLICY, partitions=1)
    pipeline.feed("inventory", b"p", stock_set("p", 9), T0)
    # Ids that look like the encoding, one placed twice, and ids longer in UTF-8 bytes than
    # in characters (their lengths count characters).
    ids = ["o:1", "12:x", "заказ-✓", "o-3", "o:1", "🎁:2", "e\u0301"]
    for order_id in ids:
        pipeline.feed("orders", order_id.encode(), order_placed(order_id, ("p", 1)), T0 + 1)
    timers = [key for key in pipeline.order_store.items() if ":expiries:" in key]
    assert len(timers) == 1
    assert expiring(pipeline.order_store.get(timers[0])) == [
        "o:1",
        "12:x",
        "заказ-✓",
        "o-3",
        "🎁:2",
        "e\u0301",
    ]
    pipeline.advance(T0 + 100 + TTL)
    assert [key for key in pipeline.order_store.items() if ":expiries:" in key] == []
    for order_id in ids:
        saga = decode_saga(pipeline.order_store.get(f"o:{order_id}") or b"")
        assert saga.status == "expired"
    counters = stock_of(pipeline.product_store, "p")
    assert counters is not None and (counters.on_hand, counters.reserved) == (9, 0)


def test_an_order_joining_a_fired_expiry_timer_before_its_deletion_still_expires() -> None:
    # A tick fires a shared expiry timer; its key is deleted only after the flush
    # (Step.after_flush). An order processed late (placed during a worker's freeze, with a
    # TTL already over) whose expiry falls in that bucket must not join the key about to go:
    # found in a soak, such an order was never released.
    store = MemoryStore()
    desk = OrderDesk(store, POLICY)
    desk.handle_order(order_placed("o-a", ("p", 1)), meta(offset=0, timestamp_ms=T0, key=b"o-a"))
    tick = T0 + TTL + 500

    def fire(now_ms: int) -> tuple[list[str], list[str]]:
        value = encode(FireTimers(partition=0, now_ms=now_ms))
        step = desk.handle_reply(value, meta("order_replies", timestamp_ms=now_ms))
        released = [
            json.loads(out.value)["order_id"]
            for out in step.outputs
            if json.loads(out.value)["type"] == "Release"
        ]
        return released, list(step.after_flush)

    released, to_delete = fire(tick)
    assert released == ["o-a"] and len(to_delete) == 1
    # In the same bucket as o-a's (T0 + TTL), processed after the tick, before the deletion.
    late = order_placed("o-b", ("p", 1), ttl=1.0)
    desk.handle_order(late, meta(offset=1, timestamp_ms=T0 + TTL - 1_000, key=b"o-b"))
    for key in to_delete:
        store.delete(key)
    released, _ = fire(tick + POLICY.expiry_bucket_ms)
    assert released == ["o-b"]
