"""BatchSender's output order ``acks``: a batch's outputs go only once the changelog writes
queued before them are acknowledged, so that with several brokers a changelog request that
fails after its retries cannot leave on the broker an output its lost write decided. In every
order, no output goes once a changelog write has been lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from stockflow._faust.membership import MembershipLost
from stockflow._faust.producing import BatchSender
from stockflow.settings import Settings

CHANGELOG = "app-orders-changelog"
LOST = RuntimeError("changelog request failed after its retries")


class AckingClient:
    """aiokafka's batch API: every batch is taken at once (``handed``, in order); the
    broker's answer to it is ``acks[n]``, the n-th batch's, resolved by the test."""

    def __init__(self, brokers: int = 1) -> None:
        self.handed: list[tuple[str, list[bytes | None]]] = []
        self.acks: list[asyncio.Future[Any]] = []
        self.client = SimpleNamespace(
            cluster=SimpleNamespace(brokers=lambda: {f"b{n}" for n in range(brokers)})
        )

    def _ensure_producer(self) -> AckingClient:
        return self

    async def send_batch(self, builder: BatchBuilder, topic: str, *, partition: int) -> Any:
        records = DefaultRecordBatch(bytearray(builder._build()))
        self.handed.append((topic, [record.value for record in records]))
        ack: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack

    def ack(self, index: int, error: BaseException | None = None) -> None:
        if error is None:
            self.acks[index].set_result(SimpleNamespace(offset=0))
        else:
            self.acks[index].set_exception(error)


def run(
    script: Callable[[AckingClient, BatchSender], Awaitable[None]],
    *,
    output_order: str = "acks",
    brokers: int = 1,
) -> AckingClient:
    async def main() -> AckingClient:
        client = AckingClient(brokers)
        conf = SimpleNamespace(producer_max_batch_size=64 * 1024, producer_compression_type=None)
        app = SimpleNamespace(producer=client, conf=conf)
        await script(client, BatchSender(app, output_order=output_order))
        return client

    return asyncio.run(main())


async def turn() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def topics(client: AckingClient) -> list[str]:
    return [topic for topic, _values in client.handed]


def test_outputs_wait_for_their_changelog_writes_acknowledgements() -> None:
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"rejected")])
        await sender.send([("reservations", 0, b"o-1", b"OrderRejected")], after_state=True)
        await turn()
        assert topics(client) == [CHANGELOG]  # in the client, not yet acknowledged
        client.ack(0)
        await sender.flushed()
        assert topics(client) == [CHANGELOG, "reservations"]

    run(script)


def test_the_outputs_of_a_lost_changelog_write_are_never_sent() -> None:
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"rejected")])
        (out,) = await sender.send([("reservations", 0, b"o-1", b"x")], after_state=True)
        await turn()
        client.ack(0, LOST)
        await sender.flushed()
        assert topics(client) == [CHANGELOG]
        assert out[2].exception() is LOST

    run(script)


@pytest.mark.parametrize("output_order", ["client", "acks"])
def test_no_output_goes_once_a_changelog_write_was_lost(output_order: str) -> None:
    # Decided after the lost write (which the worker's table still holds): the worker is
    # stopping, and those outputs may rest on it.
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"held")])
        await turn()
        client.ack(0, LOST)
        await turn()
        (out,) = await sender.send([("reservations", 0, b"o-2", b"y")], after_state=True)
        await sender.flushed()
        assert topics(client) == [CHANGELOG]
        assert out[2].exception() is LOST

    run(script, output_order=output_order)


def test_a_dropped_worker_s_lost_write_fails_only_its_own_outputs() -> None:
    # MembershipLost: the group dropped the worker, its partitions' records are processed
    # again by their next owner; the worker goes on with what it is assigned next.
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"held")])
        (first,) = await sender.send([("reservations", 0, b"o-1", b"x")], after_state=True)
        await turn()
        dropped = MembershipLost("the group dropped this worker")
        client.ack(0, dropped)
        await turn()
        assert first[2].exception() is dropped
        await sender.send([(CHANGELOG, 2, b"o:o-2", b"held")])
        await sender.send([("reservations", 0, b"o-2", b"y")], after_state=True)
        await turn()
        client.ack(1)
        await sender.flushed()
        assert client.handed[-1] == ("reservations", [b"y"])

    run(script)


def test_an_output_batch_waiting_for_acks_takes_no_later_outputs() -> None:
    # Joining it, they would add acknowledgements for it to wait for: at a steady load it
    # would never go. They start another batch, which follows it in the partition's order.
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"one")])
        await sender.send([("reservations", 0, b"o-1", b"1")], after_state=True)
        await turn()
        await sender.send([(CHANGELOG, 3, b"o:o-2", b"two")])
        await sender.send([("reservations", 0, b"o-2", b"2")], after_state=True)
        await turn()
        client.ack(0)
        await turn()
        assert client.handed[-1] == ("reservations", [b"1"])
        client.ack(1)
        await sender.flushed()
        assert client.handed[-1] == ("reservations", [b"2"])

    run(script)


@pytest.mark.parametrize(("brokers", "waits"), [(1, False), (3, True)])
def test_auto_waits_for_acks_only_with_several_brokers(brokers: int, waits: bool) -> None:
    async def script(client: AckingClient, sender: BatchSender) -> None:
        await sender.send([(CHANGELOG, 2, b"o:o-1", b"held")])
        await sender.send([("reservations", 0, b"o-1", b"x")], after_state=True)
        await turn()
        assert ("reservations" in topics(client)) is not waits

    run(script, output_order="auto", brokers=brokers)


def test_the_order_is_a_setting() -> None:
    assert Settings().output_order == "auto"
    assert Settings(output_order="acks").output_order == "acks"
    with pytest.raises(ValueError, match="output_order"):
        BatchSender(SimpleNamespace(), output_order="whenever")
