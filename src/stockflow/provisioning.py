"""Creating and checking stockflow's topics on the broker, with an admin client.

Nothing here lets a broker auto-create a topic: topics are read with one metadata request for
*all* topics (a request naming a topic makes tansu, and Kafka with ``auto.create.topics.enable``,
create it with the broker default partition count: 4 on tansu 0.6, see BROKER.md) and created
with CreateTopics and the specs of :func:`stockflow.topics.required_topics`.

Failures are :class:`stockflow.errors.StockflowError` with one clear message:
:class:`~stockflow.errors.BrokerError` when the broker cannot be reached within
``STOCKFLOW_PROVISION_TIMEOUT`` (default 30 s), :class:`~stockflow.errors.ConfigurationError`
when the broker refuses (no permission) or the partitions of existing topics do not agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from stockflow.errors import BrokerError, ConfigurationError
from stockflow.settings import Settings
from stockflow.topics import (
    ObservedTopic,
    TopicCheck,
    TopicSpec,
    check_topics,
    copartition_problems,
    describe_problems,
)

__all__ = [
    "ensure_topics",
    "inspect_topics",
    "provision",
    "servers_and_auth",
]

log = logging.getLogger(__name__)

_ALREADY_EXISTS = 36
_AUTHORIZATION_FAILED = {29, 31}  # topic, cluster


def servers_and_auth(settings: Settings) -> tuple[list[str], dict[str, Any]]:
    """Bootstrap servers and aiokafka security arguments from ``settings`` (no Faust app)."""
    from stockflow.kafka import bootstrap_servers, client_kwargs

    return bootstrap_servers(settings.broker).split(","), client_kwargs(settings)


async def _describe(admin: Any, names: Iterable[str]) -> dict[str, ObservedTopic]:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    wanted = set(names)
    observed: dict[str, ObservedTopic] = {}
    for topic in await admin.describe_topics(None):  # all topics: never auto-creates
        name = topic["topic"]
        if name in wanted and topic.get("error_code", 0) == 0:
            observed[name] = ObservedTopic(name, len(topic["partitions"]))
    if not observed:
        return observed
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in sorted(observed)]
    try:
        responses = await admin.describe_configs(resources)
    except Exception as exc:  # configs are informative; partitions are what a worker needs
        log.warning("could not read topic configs: %r", exc)
        return observed
    for response in responses:
        for resource in response.resources:
            error_code, _message, _type, name, entries = resource[:5]
            if error_code == 0 and name in observed:
                config = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
                observed[name] = ObservedTopic(name, observed[name].partitions, config)
    return observed


async def _create(admin: Any, specs: Sequence[TopicSpec]) -> None:
    from aiokafka.admin import NewTopic

    if not specs:
        return
    response = await admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication, topic_configs=dict(s.config)) for s in specs]
    )
    refused = []
    for error in response.topic_errors:
        name, code = error[0], error[1]
        message = error[2] if len(error) > 2 else None
        if code == 0 or code == _ALREADY_EXISTS:
            continue
        if code in _AUTHORIZATION_FAILED:
            raise ConfigurationError(
                f"the broker refused to create topic {name!r}: not authorized. Give stockflow's "
                "user permission to create topics, or create them yourself "
                "(`stockflow topics check` lists them)."
            )
        refused.append(f"{name}: error {code} {message or ''}".strip())
    if refused:
        raise ConfigurationError("the broker refused to create topics: " + "; ".join(refused))
    for spec in specs:
        log.info("created topic %s (%d partitions, %s)", spec.name, spec.partitions, spec.role)


async def inspect_topics(
    servers: Sequence[str],
    specs: Sequence[TopicSpec],
    *,
    create: bool,
    timeout: float,
    client_kwargs: Mapping[str, Any] | None = None,
) -> list[TopicCheck]:
    """Describe ``specs``' topics on the broker, creating the missing ones first if ``create``
    and the existing ones agree on their partitions; one check per spec. Raises
    :class:`BrokerError` if the broker does not answer within ``timeout`` seconds."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=list(servers),
        request_timeout_ms=max(1000, int(timeout * 1000)),
        **dict(client_kwargs or {}),
    )

    async def run() -> list[TopicCheck]:
        await admin.start()
        observed = await _describe(admin, (s.name for s in specs))
        missing = [s for s in specs if s.name not in observed]
        # Topics that already disagree are not joined by new ones: nothing changes on the
        # broker until the operator has decided how to fix it.
        if create and missing and not copartition_problems(check_topics(specs, observed)):
            await _create(admin, missing)
            observed = await _describe(admin, (s.name for s in specs))
        return check_topics(specs, observed)

    try:
        return await asyncio.wait_for(run(), timeout)
    except TimeoutError as exc:
        raise BrokerError(
            f"the broker at {','.join(servers)} did not answer within {timeout:g} s: check "
            "STOCKFLOW_BROKER and that the broker is running (STOCKFLOW_PROVISION_TIMEOUT sets "
            "the wait)"
        ) from exc
    except ConfigurationError:
        raise
    except Exception as exc:
        if type(exc).__name__ in {"KafkaConnectionError", "NodeNotReadyError"}:
            raise BrokerError(
                f"cannot reach the broker at {','.join(servers)} ({exc}): check "
                "STOCKFLOW_BROKER and that the broker is running"
            ) from exc
        if "Authorization" in type(exc).__name__:
            raise ConfigurationError(
                f"the broker refused to describe topics: {exc}. Give stockflow's user "
                "permission to describe and create its topics."
            ) from exc
        raise
    finally:
        await admin.close()


async def provision(
    settings: Settings,
    specs: Sequence[TopicSpec],
    *,
    servers: Sequence[str] | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> list[TopicCheck]:
    """Create the missing topics of ``specs`` and check them all; raises
    :class:`ConfigurationError` naming each topic whose partitions disagree."""
    if servers is None:
        servers, client_kwargs = servers_and_auth(settings)
    checks = await inspect_topics(
        servers,
        specs,
        create=True,
        timeout=settings.provision_timeout,
        client_kwargs=client_kwargs,
    )
    problems = copartition_problems(checks)
    if problems:
        raise ConfigurationError(describe_problems(problems, settings))
    still_missing = [c.spec.name for c in checks if c.missing]
    if still_missing:
        raise ConfigurationError(
            f"topics still missing after creating them: {', '.join(still_missing)}"
        )
    return checks


def ensure_topics(
    settings: Settings,
    specs: Sequence[TopicSpec],
    *,
    servers: Sequence[str] | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> list[TopicCheck]:
    """:func:`provision` from synchronous code (the ``stockflow topics`` command)."""
    return asyncio.run(provision(settings, specs, servers=servers, client_kwargs=client_kwargs))
