"""Changelog writes sent with ``after_state=True, output=False``: a saga's writes decided by a
line answer the worker applied itself (stockflow._faust.answers). They wait for the changelog
writes queued before them, as outputs do (the ledger write that decided the answer), and
outputs sent after them wait for them in turn. A lost write before them keeps them off the
broker, in both output orders."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from test_batch_sender_acks import LOST, AckingClient, run, topics, turn
from test_batch_sender_order import CHANGELOG, SlowChangelogProducer

from stockflow._faust.producing import BatchSender

LEDGER = CHANGELOG  # the client takes its batches only once ``turn`` is set
SAGAS = "app-sagas-changelog"


def sender_for(client: Any) -> BatchSender:
    conf = SimpleNamespace(producer_max_batch_size=64 * 1024, producer_compression_type=None)
    return BatchSender(SimpleNamespace(producer=client, conf=conf), output_order="client")


def test_a_saga_write_after_state_waits_for_the_ledger_write_and_outputs_wait_for_it() -> None:
    async def main() -> list[tuple[str, list[bytes | None]]]:
        client = SlowChangelogProducer()
        sender = sender_for(client)
        await sender.send([(LEDGER, 2, b"e:p-1:o-1", b"held")])
        await sender.send([("replies", 1, b"o-1", b"reserved")], after_state=True)
        await sender.send([(SAGAS, 1, b"o:o-1", b"answered")], after_state=True, output=False)
        await sender.send([("reservations", 0, b"o-1", b"OrderReserved")], after_state=True)
        await asyncio.sleep(0.01)
        assert client.handed == []  # everything waits while the ledger write waits
        client.turn.set()
        await asyncio.wait_for(sender.flushed(), 1.0)
        return client.handed

    handed = asyncio.run(main())
    order = [topic for topic, _values in handed]
    assert order.index(LEDGER) < order.index(SAGAS) < order.index("reservations")


def test_plain_writes_join_a_waiting_saga_batch_and_later_waiting_ones_never_do() -> None:
    """A waiting batch is never given more to wait for: two saga partitions written in turn
    after state would otherwise wait for each other."""

    async def main() -> list[tuple[str, list[bytes | None]]]:
        client = SlowChangelogProducer()
        sender = sender_for(client)
        await sender.send([(LEDGER, 0, b"e", b"w1")])
        await sender.send([(SAGAS, 1, b"o:a", b"a1")], after_state=True, output=False)
        await sender.send([(SAGAS, 2, b"o:b", b"b1")], after_state=True, output=False)
        await sender.send([(SAGAS, 1, b"o:a", b"a2")], after_state=True, output=False)
        await sender.send([(SAGAS, 1, b"o:c", b"plain")])  # joins a2's batch
        client.turn.set()
        await asyncio.wait_for(sender.flushed(), 1.0)  # no batch waits for another for ever
        return client.handed

    handed = asyncio.run(main())
    assert handed[0] == (LEDGER, [b"w1"])
    assert (SAGAS, [b"a1"]) in handed and (SAGAS, [b"b1"]) in handed
    assert (SAGAS, [b"a2", b"plain"]) in handed
    assert handed.index((SAGAS, [b"a1"])) < handed.index((SAGAS, [b"a2", b"plain"]))


def test_with_nothing_before_them_they_are_plain_changelog_writes() -> None:
    async def main() -> list[tuple[str, list[bytes | None]]]:
        client = SlowChangelogProducer()
        client.turn.set()
        sender = sender_for(client)
        await sender.send([(SAGAS, 1, b"o:a", b"a1")], after_state=True, output=False)
        await sender.send([(SAGAS, 1, b"o:b", b"b1")])
        await asyncio.wait_for(sender.flushed(), 1.0)
        return client.handed

    assert asyncio.run(main()) == [(SAGAS, [b"a1", b"b1"])]


def test_with_acks_they_wait_for_the_ledger_write_s_acknowledgement() -> None:
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(LEDGER, 2, b"e:p-1:o-1", b"held")])
        await sender.send([(SAGAS, 1, b"o:o-1", b"answered")], after_state=True, output=False)
        await sender.send([("reservations", 0, b"o-1", b"OrderReserved")], after_state=True)
        await turn()
        assert topics(client) == [LEDGER]
        client.ack(0)
        await turn()
        assert topics(client) == [LEDGER, SAGAS]  # the outcome waits for the saga's ack
        client.ack(1)
        await turn()
        assert topics(client) == [LEDGER, SAGAS, "reservations"]
        client.ack(2)
        await sender.flushed()

    run(script)


@pytest.mark.parametrize("output_order", ["client", "acks"])
def test_they_never_go_after_a_lost_changelog_write(output_order: str) -> None:
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(LEDGER, 2, b"e:p-1:o-1", b"held")])
        await turn()
        client.ack(0, LOST)
        await turn()
        sent = await sender.send(
            [(SAGAS, 1, b"o:o-1", b"answered")], after_state=True, output=False
        )
        await sender.flushed()
        assert topics(client) == [LEDGER]
        delivery = sent[0][2]
        assert delivery.done() and delivery.exception() is LOST

    run(script, output_order=output_order)
