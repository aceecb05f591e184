"""Plain aiokafka clients outside the worker: where the broker is, how to authenticate, and a
consumer without a group for reading topics, and whole topics read with it.

The audit, the client, ``stockflow record``, topic provisioning, the chaos and test tools and
the bench all talk to the broker directly. They take the broker and its security settings from
:class:`~stockflow.settings.Settings` (``STOCKFLOW_BROKER``, ``STOCKFLOW_SECURITY_PROTOCOL``,
``STOCKFLOW_SASL_*``, ``STOCKFLOW_SSL_*``) through :func:`bootstrap_servers` and
:func:`client_kwargs`, the same arguments the worker's Faust app derives from them.

:func:`groupless_consumer` builds the reader they share: no consumer group, so it never joins a
rebalance or moves a worker's committed offsets, and never commits; it reads the partitions it
is assigned from where it is told (``auto_offset_reset`` ``earliest`` unless asked otherwise).

:func:`read_topics` reads whole topics from the beginning to the high watermark that Fetch
responses report (correct on every broker, unlike ListOffsets on tansu 0.6).

Importing this module imports neither Faust, aiokafka nor any of stockflow but its errors and
:mod:`stockflow.holes`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from stockflow.errors import BrokerError
from stockflow.fencing import record_epoch
from stockflow.holes import from_beginning

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stockflow.settings import Settings

__all__ = [
    "Record",
    "bootstrap_servers",
    "client_kwargs",
    "groupless_consumer",
    "read_topic",
    "read_topics",
    "topic_partitions",
]


def bootstrap_servers(broker: str) -> str:
    """``kafka://h1:9092;kafka://h2:9092`` (Faust's form, ``STOCKFLOW_BROKER``) ->
    ``h1:9092,h2:9092`` (aiokafka's). Plain ``host:port`` lists pass through."""
    hosts = []
    for part in broker.replace(",", ";").split(";"):
        part = part.strip()
        if part:
            hosts.append(part.split("://", 1)[-1].rstrip("/"))
    return ",".join(hosts)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka security arguments from the settings (TLS and SASL), none for plaintext: what
    :meth:`Settings.faust_kwargs` gives the worker, without importing Faust."""
    kwargs: dict[str, Any] = {}
    if settings.security_protocol == "PLAINTEXT":
        return kwargs
    kwargs["security_protocol"] = settings.security_protocol
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
            keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        )
    if settings.security_protocol.startswith("SASL"):
        # The worker's redaction of SASL tokens in aiokafka's debug log, for these clients too
        # (idempotent: a logger holds a given filter once).
        from stockflow.observability.logs import redact_sasl_tokens

        redact_sasl_tokens()
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_username or ""
        password = settings.sasl_password
        kwargs["sasl_plain_password"] = password.get_secret_value() if password else ""
    return kwargs


def groupless_consumer(
    bootstrap: str | list[str],
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    auto_offset_reset: Literal["earliest", "latest"] = "earliest",
    **options: Any,
) -> AIOKafkaConsumer:
    """An unstarted consumer without a group that never commits, for reading topics whole or
    following them. ``client_kwargs`` are the security arguments (:func:`client_kwargs`);
    ``options`` are any other :class:`aiokafka.AIOKafkaConsumer` arguments (fetch sizes and
    waits, timeouts)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        **dict(client_kwargs or {}),
        **options,
    )


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of each topic, in order; none for a topic that does not exist. Metadata
    is fetched again once for a topic the consumer has not seen yet (created after it started)."""
    from aiokafka import TopicPartition

    partitions: list[TopicPartition] = []
    for name in dict.fromkeys(topics):
        ids = consumer.partitions_for_topic(name)
        if ids is None:
            await consumer._client.force_metadata_update()  # first look at a new topic
            ids = consumer.partitions_for_topic(name)
        partitions.extend(TopicPartition(name, p) for p in sorted(ids or ()))
    return partitions


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    epoch: int | None = None
    """The writer's epoch of a changelog record (:mod:`stockflow.fencing`), if it has one."""

    def json(self) -> Any:
        """The value parsed as JSON (raises for values that are not JSON)."""
        assert self.value is not None
        return json.loads(self.value)


async def read_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    timeout: float = 30.0,
    client_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, list[Record]]:
    """Every record of each topic, from the beginning to its current end. ``timeout``: the
    seconds a read may go without a record before it fails (a long soak's topics take longer
    than that to read whole, and a stalled broker must still not hang the reader)."""
    names = list(dict.fromkeys(topics))
    consumer = groupless_consumer(
        bootstrap,
        client_kwargs=client_kwargs,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    try:
        await consumer.start()
        partitions = await topic_partitions(consumer, names)
        result: dict[str, list[Record]] = {name: [] for name in names}
        if not partitions:
            return result
        consumer.assign(partitions)
        # Not past a record a fetch skipped while producers still write (stockflow.holes).
        guard = await from_beginning(consumer, partitions)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pending = set(partitions)
        while pending:
            if loop.time() > deadline:
                raise BrokerError(f"reading {names} got no record for {timeout}s before the end")
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            if batch:
                deadline = loop.time() + timeout
            for tp, messages in batch.items():
                result[tp.topic].extend(
                    Record(
                        tp.topic,
                        tp.partition,
                        m.offset,
                        m.key,
                        m.value,
                        m.timestamp,
                        record_epoch(m.headers),
                    )
                    for m in guard.take(tp, messages)
                )
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    pending.discard(tp)
        for records in result.values():
            records.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
        return result
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str, **kwargs: Any) -> list[Record]:
    return (await read_topics(bootstrap, [topic], **kwargs))[topic]
