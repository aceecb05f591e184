"""The real agents feed metrics, freshness and the read model (issue 7)."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from stockflow.keys import stock_key
from stockflow.models import Reserve
from stockflow.processing.codec import decode_stock, encode

from agent_world import AgentWorld, put_from


def _samples(world: AgentWorld) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = world.handle.metrics.exposition().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_the_product_agent_counts_and_records_what_it_applied(world: AgentWorld) -> None:
    topic = world.handle.settings.product_commands_topic
    set_stock = {"type": "SetStock", "product_id": "sku", "on_hand": 1, "source": "inv/0/0"}
    first = Reserve(
        order_id="o1", product_id="sku", quantity=1, expires_at_ms=10**13, reply_partition=0
    )
    second = first.model_copy(update={"order_id": "o2"})
    async with world.agent("products").test_context() as agent:
        await put_from(agent, topic, json.dumps(set_stock).encode(), key=b"sku", partition=2)
        await put_from(agent, topic, encode(first), key=b"sku", partition=2)
        await put_from(agent, topic, encode(second), key=b"sku", partition=2)
        await put_from(agent, topic, b"{", key=b"sku", partition=2)

    samples = _samples(world)
    assert samples[("stockflow_events_in_total", (("topic", topic), ("type", "Reserve")))] == 2
    assert samples[("stockflow_events_in_total", (("topic", topic), ("type", "invalid")))] == 1
    assert samples[("stockflow_dead_letters_total", (("topic", topic),))] == 1
    refused = (("outcome", "line_refused"), ("reason", "insufficient_stock"))
    assert samples[("stockflow_decisions_total", refused)] == 1
    assert samples[("stockflow_processing_seconds_count", (("agent", "products"),))] == 4

    # Freshness: the last offset applied in the partition, and the input that changed the product.
    applied = {tuple(tp): offset for tp, offset in world.handle.progress.applied.items()}
    assert applied == {(topic, 2): 3}
    record = decode_stock(world.handle.product_store.get(stock_key("sku")) or b"")
    assert record.offset == 1 and record.event_ms is not None
