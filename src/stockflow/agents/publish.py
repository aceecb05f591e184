"""From a processor's :class:`Step` to records on the broker."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from stockflow._faust.batches import Answers
from stockflow._faust.changelog import check_delivery
from stockflow._faust.commands_here import Published
from stockflow._faust.producing import BatchSender
from stockflow.keys import partition_for
from stockflow.processing.records import Out, Role

if TYPE_CHECKING:
    from faust.types import AppT, TopicT

__all__ = ["Publisher"]


_BATCH_PREFIX: dict[Role, bytes] = {
    "product_commands": b'{"type":"ProductBatch","commands":[',
    "order_replies": b'{"type":"ReplyBatch","answers":[',
}


class Publisher:
    """Sends outputs through the app's producer, one record batch per topic partition
    (:class:`~stockflow._faust.producing.BatchSender`).

    Records for stockflow's internal topics are grouped: one record per destination partition
    per call (:class:`stockflow.models.ProductBatch`, :class:`stockflow.models.ReplyBatch`),
    in the order the commands were produced. Public outputs stay one record per event, in the
    partition Kafka's default partitioner gives their key.
    """

    def __init__(
        self, app: AppT, topics: Mapping[Role, TopicT], *, partitions: int, sender: BatchSender
    ) -> None:
        self.app = app
        self.names: dict[Role, str] = {
            role: topic.get_topic_name() for role, topic in topics.items()
        }
        self.partitions = partitions
        self.sender = sender

    async def publish(
        self, outputs: Iterable[Out], *, commands: list[Published] | None = None
    ) -> Answers:
        """Send ``outputs``; returns the answer records sent (``order_replies``), as
        ``(partition, key, value)``: the processor may apply them here (stockflow._faust.
        answers). ``commands``: the product command records sent are appended to it, with
        their deliveries (:mod:`stockflow._faust.commands_here`)."""
        names = self.names
        records: list[tuple[str, int, bytes | None, bytes]] = []
        batches: dict[tuple[Role, int], list[Out]] = {}
        counts: dict[str, int] = {}
        for out in outputs:
            partition = out.partition
            if out.role in _BATCH_PREFIX:
                if partition is None:
                    partition = partition_for(out.key or b"", self.partitions)
                batches.setdefault((out.role, partition), []).append(out)
                continue
            topic = names[out.role]
            if partition is None:
                count = counts.get(topic)
                if count is None:
                    count = counts[topic] = await self.sender.partitions(topic)
                partition = partition_for(out.key or b"", count)
            records.append((topic, partition, out.key, out.value))
        answers: Answers = []
        written: list[tuple[int, bytes | None, bytes]] = []
        for (role, partition), batch in batches.items():
            if len(batch) == 1:
                key, value = batch[0].key, batch[0].value
            else:
                key, value = None, _BATCH_PREFIX[role] + b",".join(o.value for o in batch) + b"]}"
            records.append((names[role], partition, key, value))
            if role == "order_replies":
                answers.append((partition, key, value))
            elif commands is not None:
                written.append((partition, key, value))
        if records:
            # Stamped here, not by the client: a command applied where it was published
            # must carry the timestamp its fetched copy will (its clock for the decision).
            timestamp = int(time.time() * 1000)
            sent = await self.sender.send(records, after_state=True, timestamp=timestamp)
            check_delivery(self.app, sent, "an output")
            if written:
                assert commands is not None
                topic = names["product_commands"]
                # Each command partition has one record in the call: the last it went into.
                where = {
                    partition: (delivery, count)
                    for to, partition, delivery, count in sent
                    if to == topic
                }
                for partition, key, value in written:
                    delivery, count = where[partition]
                    commands.append(
                        Published(topic, partition, key, value, timestamp, delivery, count)
                    )
        return answers

    async def flush(self) -> None:
        """Wait until everything published so far is acknowledged by the broker."""
        await self.sender.flushed()
        await self.app.producer.flush()
