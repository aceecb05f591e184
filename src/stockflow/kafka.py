"""Plain aiokafka clients outside the worker: where the broker is, how to authenticate, and a
consumer without a group for reading topics.

The audit, the client, ``stockflow record``, topic provisioning, the chaos and test tools and
the bench all talk to the broker directly. They take the broker and its security settings from
:class:`~stockflow.settings.Settings` (``STOCKFLOW_BROKER``, ``STOCKFLOW_SECURITY_PROTOCOL``,
``STOCKFLOW_SASL_*``, ``STOCKFLOW_SSL_*``) through :func:`bootstrap_servers` and
:func:`client_kwargs`, the same arguments the worker's Faust app derives from them.

:func:`groupless_consumer` builds the reader they share: no consumer group, so it never joins a
rebalance or moves a worker's committed offsets, and never commits; it reads the partitions it
is assigned from where it is told (``auto_offset_reset`` ``earliest`` unless asked otherwise).

Importing this module imports neither Faust, aiokafka nor the rest of stockflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stockflow.settings import Settings

__all__ = ["bootstrap_servers", "client_kwargs", "groupless_consumer", "topic_partitions"]


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
