"""From a processor's :class:`Step` to records on the broker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from stockflow._faust.changelog import check_delivery
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


_KNOWN_KEYS = 100_000
"""(topic, count, key) partitions remembered at most before the memory is cleared."""


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
        self._partition_of: dict[tuple[str, int, bytes], int] = {}
        """Partitions of recent (topic, partition count, key): an order's events share its
        key, and a product's commands keep coming under its key (murmur2: ~2 us a key)."""

    async def publish(self, outputs: Iterable[Out]) -> None:
        names = self.names
        records: list[tuple[str, int, bytes | None, bytes]] = []
        batches: dict[tuple[Role, int], list[Out]] = {}
        counts: dict[str, int] = {}
        known = self._partition_of
        if len(known) > _KNOWN_KEYS:
            known.clear()  # order keys are new every time: keep the memory bounded
        for out in outputs:
            partition = out.partition
            topic = names[out.role]
            if partition is None:
                if out.role in _BATCH_PREFIX:
                    count = self.partitions
                else:
                    count = counts.get(topic) or await self._count(topic, counts)
                # The count is part of the key: a topic given more partitions re-keys at once.
                remembered = (topic, count, out.key or b"")
                partition = known.get(remembered)
                if partition is None:
                    partition = known[remembered] = partition_for(remembered[2], count)
            if out.role in _BATCH_PREFIX:
                batches.setdefault((out.role, partition), []).append(out)
            else:
                records.append((topic, partition, out.key, out.value))
        for (role, partition), batch in batches.items():
            if len(batch) == 1:
                records.append((names[role], partition, batch[0].key, batch[0].value))
            else:
                value = _BATCH_PREFIX[role] + b",".join(o.value for o in batch) + b"]}"
                records.append((names[role], partition, None, value))
        if records:
            check_delivery(self.app, await self.sender.send(records), "an output")

    async def _count(self, topic: str, counts: dict[str, int]) -> int:
        count = counts[topic] = await self.sender.partitions(topic)
        return count

    async def flush(self) -> None:
        """Wait until everything published so far is acknowledged by the broker."""
        await self.sender.flushed()
        await self.app.producer.flush()
