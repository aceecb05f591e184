"""Issue 13: ``stockflow.Client`` against a real broker and worker: one call per order, its
answer, idempotence by order id, timeouts, payment and cancellation, one shared consumer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import stockflow
from stockflow.client import client as client_module
from stockflow.errors import OrderConflict, OrderTimeout
from stockflow.models import (
    OrderCancelIgnored,
    OrderRejected,
    OrderReserved,
    ReservationConfirmed,
    ReservationConfirmFailed,
    ReservationReleased,
)
from stockflow.testing.harness import Harness

from expectations import assert_one_outcome_each


def orders_sent(harness: Harness, order_id: str) -> int:
    name = harness.settings.orders_topic
    return sum(1 for r in harness.read(name)[name] if r.key == order_id.encode())


def test_place_returns_the_outcome_and_is_idempotent(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 5)

    async def scenario() -> None:
        async with stockflow.Client(harness.settings) as client:
            first = await client.place("o-1", [("sku", 3)], timeout=30)
            assert isinstance(first, OrderReserved)
            assert [(line.product_id, line.quantity) for line in first.lines] == [("sku", 3)]
            too_many = await client.place("o-2", [{"product_id": "sku", "quantity": 3}])
            assert isinstance(too_many, OrderRejected)
            assert too_many.reason == "insufficient_stock"
            assert too_many.lines[0].available == 2
            # Known here: answered without sending anything.
            assert await client.place("o-1", [("sku", 3)]) == first
            assert await asyncio.to_thread(orders_sent, harness, "o-1") == 1
            # Same id, other lines: an error naming the difference, nothing sent.
            with pytest.raises(OrderConflict) as conflict:
                await client.place("o-1", [("sku", 1), ("other", 1)])
            assert conflict.value.order_id == "o-1"
            assert conflict.value.differences == [
                "sku: quantity 3 placed, 1 asked now",
                "other: not placed, quantity 1 asked now",
            ]
            assert conflict.value.outcome == first
            # Remembered here: the fulfilment and the TTL are compared too.
            with pytest.raises(OrderConflict) as conflict:
                await client.place("o-1", [("sku", 3)], fulfilment="partial", reservation_ttl=60)
            assert conflict.value.differences == [
                "fulfilment all_or_nothing placed, partial asked now",
                "reservation_ttl None placed, 60.0 asked now",
            ]
            assert await asyncio.to_thread(orders_sent, harness, "o-1") == 1

        # A new client (a restarted checkout) knows nothing: it sends the order again and the
        # worker answers with the first decision.
        async with stockflow.Client(harness.settings) as client:
            assert await client.place("o-1", [("sku", 3)], timeout=30) == first
            with pytest.raises(OrderConflict) as conflict:
                await client.place("o-2", [("sku", 1)], timeout=30)
            assert conflict.value.differences == ["sku: quantity 3 placed, 1 asked now"]
            assert conflict.value.outcome == too_many

    asyncio.run(scenario())
    harness.wait_settled()
    decisions = harness.decisions()
    assert_one_outcome_each(decisions, ["o-1", "o-2"])
    # Reserved once: 3 of 5, although o-1 was sent twice and o-2 once more with 1 unit.
    assert harness.stock_state()["sku"] == {"on_hand": 5, "reserved": 3, "pending_sum": 3}


def test_retry_after_a_timeout(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    worker = harness.start_worker()
    harness.stock("sku", 2)
    worker.stop()  # nobody decides: the call times out, the order waits in the log

    async def place_unanswered() -> None:
        async with stockflow.Client(harness.settings) as client:
            with pytest.raises(OrderTimeout) as timeout:
                await client.place("late", [("sku", 1)], timeout=1.0)
            assert timeout.value.order_id == "late"
            assert isinstance(timeout.value, stockflow.StockflowError)
            await asyncio.to_thread(harness.start_worker)
            # The decision that comes afterwards: fetched by outcome(), or by a retry.
            outcome = await client.outcome("late", timeout=60)
            assert isinstance(outcome, OrderReserved)
            assert await client.place("late", [("sku", 1)], timeout=30) == outcome

        async with stockflow.Client(harness.settings) as client:
            assert await client.place("late", [("sku", 1)], timeout=30) == outcome

    asyncio.run(place_unanswered())
    harness.wait_settled()
    assert_one_outcome_each(harness.decisions(), ["late"])
    assert harness.stock_state()["sku"] == {"on_hand": 2, "reserved": 1, "pending_sum": 1}


def test_pay_and_cancel_return_the_resulting_events(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock_many({"a": 10, "b": 10})

    async def scenario() -> None:
        async with stockflow.Client(harness.settings) as client:
            await client.place("paid", [("a", 1), ("b", 2)], timeout=30)
            await client.place("left", [("a", 3)], timeout=30)
            paid = await client.pay("paid", timeout=30)
            assert sorted((e.product_id, e.quantity) for e in paid) == [("a", 1), ("b", 2)]
            assert all(isinstance(e, ReservationConfirmed) for e in paid)
            released = await client.cancel("left", reason="changed mind", timeout=30)
            assert [type(e) for e in released] == [ReservationReleased]
            assert released[0].quantity == 3 and released[0].reason == "cancelled"
            assert await client.pay("left", timeout=30) == [
                ReservationConfirmFailed(order_id="left", reason="cancelled")
            ]
            assert await client.cancel("paid", timeout=30) == [
                OrderCancelIgnored(order_id="paid", reason="already_confirmed")
            ]
        async with stockflow.Client(harness.settings) as client:
            # Outcome unknown to this client: it still gets the payment's answer.
            assert await client.pay("never", timeout=30) == [
                ReservationConfirmFailed(order_id="never", reason="unknown_order")
            ]

    asyncio.run(scenario())
    harness.wait_settled()
    state = harness.stock_state()
    assert state["a"] == {"on_hand": 9, "reserved": 0, "pending_sum": 0}
    assert state["b"] == {"on_hand": 8, "reserved": 0, "pending_sum": 0}


def test_a_thousand_concurrent_calls_share_one_consumer(
    stockflow_harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("hot", 100)
    consumers: list[Any] = []
    original = client_module.groupless_consumer

    def counted(*args: Any, **kwargs: Any) -> Any:
        consumers.append(original(*args, **kwargs))
        return consumers[-1]

    monkeypatch.setattr(client_module, "groupless_consumer", counted)
    ids = [f"c-{n}" for n in range(1000)]

    async def flash_sale() -> list[Any]:
        async with stockflow.Client(harness.settings) as client:
            return await asyncio.gather(
                *(client.place(order_id, [("hot", 1)], timeout=120) for order_id in ids)
            )

    outcomes = asyncio.run(flash_sale())
    assert len(consumers) == 1
    assert [o.order_id for o in outcomes] == ids
    assert sum(isinstance(o, OrderReserved) for o in outcomes) == 100
    harness.wait_settled()
    decisions = harness.decisions()
    assert_one_outcome_each(decisions, ids)
    answered = {d["order_id"]: d["type"] for d in decisions if d["type"].startswith("Order")}
    assert answered == {o.order_id: o.type for o in outcomes}
    assert harness.stock_state()["hot"] == {"on_hand": 100, "reserved": 100, "pending_sum": 100}


def test_blocking_client_from_several_threads(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 3)
    results: dict[str, Any] = {}
    with stockflow.BlockingClient(harness.settings) as client:

        def buy(order_id: str) -> None:
            results[order_id] = client.place(order_id, [("sku", 1)], timeout=30)

        threads = [threading.Thread(target=buy, args=(f"t-{n}",)) for n in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        kinds = sorted(type(o).__name__ for o in results.values())
        assert kinds == ["OrderRejected"] * 2 + ["OrderReserved"] * 3
        reserved = sorted(k for k, o in results.items() if isinstance(o, OrderReserved))
        paid = client.pay(reserved[0], timeout=30)
        assert [(type(e), e.order_id) for e in paid] == [(ReservationConfirmed, reserved[0])]
    harness.wait_settled()
    assert harness.stock_state()["sku"] == {"on_hand": 2, "reserved": 2, "pending_sum": 2}


def test_worker_killed_while_calls_are_in_flight(stockflow_harness: Harness) -> None:
    """Every call gets its answer, or a timeout and then the same answer from outcome()."""
    harness = stockflow_harness
    worker = harness.start_worker()
    harness.stock("hot", 150)
    ids = [f"k-{n}" for n in range(400)]

    async def scenario() -> tuple[dict[str, Any], int]:
        async with stockflow.Client(harness.settings) as client:

            async def call(order_id: str) -> Any:
                try:
                    return await client.place(order_id, [("hot", 1)], timeout=2.0)
                except OrderTimeout as exc:
                    return exc

            calls = [asyncio.create_task(call(order_id)) for order_id in ids[:300]]
            await asyncio.sleep(0.2)  # some answered, many in flight
            await asyncio.to_thread(worker.kill)
            # Calls made while no worker runs: in flight across the whole restart, which takes
            # longer than their timeout (the group's session timeout alone is 3 s).
            calls += [asyncio.create_task(call(order_id)) for order_id in ids[300:]]
            await asyncio.to_thread(harness.start_worker)
            results = await asyncio.gather(*calls)
            timed_out = 0
            answers: dict[str, Any] = {}
            for order_id, result in zip(ids, results, strict=True):
                if isinstance(result, OrderTimeout):
                    assert result.order_id == order_id
                    timed_out += 1
                    result = await client.outcome(order_id, timeout=60)
                answers[order_id] = result
            return answers, timed_out

    answers, timed_out = asyncio.run(scenario())
    assert timed_out >= 100, "the calls made during the outage must time out"
    harness.wait_settled()
    decisions = harness.decisions()
    assert_one_outcome_each(decisions, ids)
    on_topic = {
        d["order_id"]: d for d in decisions if d["type"] in ("OrderReserved", "OrderRejected")
    }
    assert {k: v.model_dump() for k, v in answers.items()} == {k: on_topic[k] for k in ids}
    reserved = sum(isinstance(a, OrderReserved) for a in answers.values())
    assert reserved == 150
    assert harness.stock_state()["hot"] == {"on_hand": 150, "reserved": 150, "pending_sum": 150}


def test_an_answer_that_comes_before_the_call_waits_is_not_missed(
    stockflow_harness: Harness,
) -> None:
    harness = stockflow_harness
    harness.start_worker()
    harness.stock("sku", 1)

    async def scenario() -> Any:
        async with stockflow.Client(harness.settings) as client:
            producer: Any = client._producer
            send = producer.send_and_wait

            async def send_then_stall(topic: str, value: bytes, key: bytes) -> Any:
                sent = await send(topic, value, key=key)
                # Hold the call until its outcome is on the broker and read by the client's
                # consumer: the answer arrives before the call starts waiting for it.
                await asyncio.to_thread(harness.wait_outcomes, [key.decode()], timeout=30)
                await asyncio.sleep(0.5)
                return sent

            producer.send_and_wait = send_then_stall
            return await client.place("early", [("sku", 1)], timeout=60)

    outcome = asyncio.run(scenario())
    assert isinstance(outcome, OrderReserved) and outcome.order_id == "early"
