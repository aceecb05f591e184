"""The Faust agents move records between topics, tables and the processors, and nothing else."""

from __future__ import annotations

import base64
import json

from stockflow.keys import entry_key, saga_key, stock_key
from stockflow.models import Confirm, FireTimers, LineAnswer, Reserve
from stockflow.processing.codec import decode_entry, decode_saga, decode_stock, encode

from agent_world import AgentWorld, put_from


def _placed(order_id: str, *lines: tuple[str, int]) -> bytes:
    event = {
        "type": "OrderPlaced",
        "order_id": order_id,
        "lines": [{"product_id": p, "quantity": q} for p, q in lines],
    }
    return json.dumps(event).encode()


async def test_inventory_agent_rekeys_stock_events_by_product(world: AgentWorld) -> None:
    topic = world.handle.settings.inventory_topic
    stock_set = {"type": "StockSet", "product_id": "sku", "on_hand": 7}
    async with world.agent("inventory").test_context() as agent:
        await put_from(agent, topic, json.dumps(stock_set).encode(), key=None, partition=2)
    (command,) = world.sent_to("product_commands")
    assert command.key == b"sku"
    assert command.json() == {
        "type": "SetStock",
        "product_id": "sku",
        "on_hand": 7,
        "source": f"{topic}/2/0",
    }


async def test_product_agent_reserves_and_answers_the_saga_partition(world: AgentWorld) -> None:
    topic = world.handle.settings.product_commands_topic
    set_stock = {"type": "SetStock", "product_id": "sku", "on_hand": 1, "source": "inv/0/0"}
    reserve = Reserve(
        order_id="o1", product_id="sku", quantity=1, expires_at_ms=10_000, reply_partition=3
    )
    late = Reserve(
        order_id="o2", product_id="sku", quantity=1, expires_at_ms=10_000, reply_partition=1
    )
    async with world.agent("products").test_context() as agent:
        await put_from(agent, topic, json.dumps(set_stock).encode(), key=b"sku")
        await put_from(agent, topic, encode(reserve), key=b"sku")
        await put_from(agent, topic, encode(late), key=b"sku")

    replies = world.sent_to("order_replies")
    assert [(r.partition, r.json()["status"]) for r in replies] == [(3, "reserved"), (1, "refused")]
    assert [r.json()["type"] for r in world.sent_to("reservations")] == ["ProductReserved"]
    store = world.handle.product_store
    stock = decode_stock(store.get(stock_key("sku")) or b"").stock
    assert (stock.on_hand, stock.reserved) == (1, 1)
    assert decode_entry(store.get(entry_key("sku", "o1")) or b"").status == "pending"
    refusal = decode_entry(store.get(entry_key("sku", "o2")) or b"")  # a replay answers the same
    assert (refusal.status, refusal.refusal, refusal.available) == (
        "refused",
        "insufficient_stock",
        0,
    )


async def test_order_agent_runs_the_saga_across_both_topics(world: AgentWorld) -> None:
    settings = world.handle.settings
    # Two lines: the saga decides the outcome (a single-line order's comes from its product).
    answers = [
        LineAnswer(order_id="o1", product_id=pid, status="reserved", quantity=2)
        for pid in ("sku", "sku2")
    ]
    async with world.agent("orders").test_context() as agent:
        placed = _placed("o1", ("sku", 2), ("sku2", 2))
        await put_from(agent, settings.orders_topic, placed, key=b"o1", partition=2)
        reserve, _other = world.sent_to("product_commands")
        assert reserve.key == b"sku" and reserve.json()["reply_partition"] == 2
        for answer in answers:
            await put_from(
                agent, settings.order_replies_topic, encode(answer), key=b"o1", partition=2
            )
        paid = json.dumps({"type": "OrderPaid", "order_id": "o1"}).encode()
        await put_from(agent, settings.orders_topic, paid, key=b"o1", partition=2)

    (outcome,) = world.sent_to("reservations")
    assert outcome.key == b"o1" and outcome.json()["type"] == "OrderReserved"
    confirm = world.sent_to("product_commands")[-2]
    assert Confirm.model_validate(confirm.json()) == Confirm(order_id="o1", product_id="sku")
    saga = decode_saga(world.handle.order_store.get(saga_key("o1")) or b"")
    assert saga.status == "confirmed"


async def test_bad_input_goes_to_dead_letters_with_its_bytes(world: AgentWorld) -> None:
    raw = b"\x00\xffnot json"
    async with world.agent("orders").test_context() as agent:
        await put_from(agent, world.handle.settings.orders_topic, raw, key=b"k", partition=1)
        await put_from(
            agent, world.handle.settings.orders_topic, _placed("ok", ("p", 1)), key=b"ok"
        )
    (letter,) = world.sent_to("dead_letters")
    body = letter.json()
    assert base64.b64decode(body["value_b64"]) == raw
    assert (body["topic"], body["partition"], body["key_b64"]) == (
        world.handle.settings.orders_topic,
        1,
        base64.b64encode(b"k").decode(),
    )
    # The agent went on: the next order fanned out its reserve.
    assert [c.json()["order_id"] for c in world.sent_to("product_commands")] == ["ok"]


async def test_fired_saga_timers_are_deleted_only_after_a_flush(
    world: AgentWorld, monkeypatch: object
) -> None:
    settings = world.handle.settings
    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(len(world.sent))

    world.app.producer.flush = flush  # type: ignore[method-assign]
    async with world.agent("orders").test_context() as agent:
        # Two lines: a single-line order has no answer deadline (its product decides).
        placed = _placed("o1", ("sku", 1), ("sku2", 1))
        await put_from(agent, settings.orders_topic, placed, key=b"o1")
        placed_at = decode_saga(world.handle.order_store.get(saga_key("o1")) or b"").placed_at_ms
        tick = FireTimers(partition=0, now_ms=placed_at + 10 * 60_000)
        await put_from(agent, settings.order_replies_topic, encode(tick), key=None)

    outcome = world.sent_to("reservations")[-1]
    rejected = outcome.json()
    assert rejected["type"] == "OrderRejected" and rejected["reason"] == "timeout"
    # Flushed once, after the timeout's outputs were sent; only then the timer's deletion.
    assert len(flushed) == 1
    before, after = world.sent[: flushed[0]], world.sent[flushed[0] :]
    assert outcome in before
    changelog = world.handle.order_table.changelog_topic.get_topic_name()
    assert [(s.topic, s.value) for s in after] == [(changelog, None)]
    assert ":deadline:" in after[0].key.decode()
    remaining = list(world.handle.order_store.scan("t:", partition=0))
    assert all(":deadline:" not in key for key, _ in remaining)


async def test_table_changes_reach_the_changelog_of_their_partition_in_write_order(
    world: AgentWorld,
) -> None:
    topic = world.handle.settings.product_commands_topic
    set_stock = {"type": "SetStock", "product_id": "sku", "on_hand": 2, "source": "inv/0/0"}
    reserve = Reserve(
        order_id="o1", product_id="sku", quantity=1, expires_at_ms=10_000, reply_partition=3
    )
    confirm = Confirm(order_id="o1", product_id="sku")
    async with world.agent("products").test_context() as agent:
        for value in (json.dumps(set_stock).encode(), encode(reserve), encode(confirm)):
            await put_from(agent, topic, value, key=b"sku", partition=2)

    changelog = world.handle.product_table.changelog_topic.get_topic_name()
    records = [s for s in world.sent if s.topic == changelog]
    assert records and {s.partition for s in records} == {2}
    # Replaying the changelog (what a restore does) gives exactly the table's partition.
    replayed: dict[str, bytes] = {}
    for record in records:
        assert record.key is not None
        if record.value is None:
            replayed.pop(record.key.decode(), None)
        else:
            replayed[record.key.decode()] = record.value
    assert replayed == dict(world.handle.product_store.scan("", partition=2))
    assert decode_entry(replayed[entry_key("sku", "o1")]).status == "confirmed"
