"""One-line answers for commands that cannot reach a broker or a worker.

A command that cannot reach what it needs prints one line to stderr (what it tried, where the
address came from, what went wrong, what to do) and exits with :data:`EXIT_UNREACHABLE` (3),
never a traceback. Example::

    stockflow audit: no Kafka broker answered at 127.0.0.1:1 (from --broker): connection
    refused. Start one (`stockflow dev` runs one locally), check STOCKFLOW_BROKER or pass --broker.

Every wait is bounded: :func:`probe_broker` gives up after :data:`CONNECT_TIMEOUT` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import click

__all__ = [
    "CONNECT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "broker_source",
    "broker_unreachable",
    "probe_broker",
    "quiet_kafka_logs",
    "reason",
    "require_broker",
    "topics_unreadable",
    "worker_unreachable",
]

EXIT_UNREACHABLE = 3
CONNECT_TIMEOUT = 10.0
"""Seconds a command waits for a broker's first answer before it gives up."""

BROKER_HINT = (
    "Start one (`stockflow dev` runs one locally), check STOCKFLOW_BROKER or pass --broker."
)
WORKER_HINT = (
    "Start a worker (`stockflow dev`, or `faust -A stockflow worker`), "
    "or pass --url (or set STOCKFLOW_URL) to a running one."
)


class BrokerUnreachable(OSError):
    """:func:`probe_broker` got no Kafka answer; the message says why, in a few words."""


def broker_source(ctx: click.Context, parameter: str = "broker") -> str:
    """Where the broker address came from: ``--broker``, ``STOCKFLOW_BROKER`` or the default."""
    source = ctx.get_parameter_source(parameter)
    if source is click.core.ParameterSource.COMMANDLINE:
        return f"from --{parameter}"
    if source is click.core.ParameterSource.ENVIRONMENT:
        return "from STOCKFLOW_BROKER"
    return "from STOCKFLOW_BROKER" if os.environ.get("STOCKFLOW_BROKER") else "the default"


def reason(exc: BaseException) -> str:
    """A few words for a connection failure: ``connection refused``, ``no answer within 10 s``,
    ``unknown host``, else the exception's first line (without its class name)."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, BrokerUnreachable):
            return str(current)
        if isinstance(current, ConnectionRefusedError) or getattr(current, "errno", None) == (
            errno.ECONNREFUSED
        ):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "unknown host"
        if isinstance(current, TimeoutError | socket.timeout):
            return "no answer in time"
        reason_attr = getattr(current, "reason", None)  # urllib.error.URLError
        if isinstance(reason_attr, BaseException):
            current = reason_attr
            continue
        current = current.__cause__ or current.__context__
    # The first line only (a WorkerError carries the worker's log after it), without the
    # colon that introduced what followed.
    text = str(exc).strip().splitlines()[0].rstrip(": ") if str(exc).strip() else ""
    text = text or type(exc).__name__
    if "Unable to bootstrap" in text:
        return "nothing answered"
    return text


def broker_unreachable(
    command: str, servers: str, source: str, exc: BaseException, *, hint: str = BROKER_HINT
) -> NoReturn:
    """Print the one line for a broker that cannot be reached and exit 3."""
    click.echo(
        f"stockflow {command}: no Kafka broker answered at {servers} ({source}): "
        f"{reason(exc)}. {hint}",
        err=True,
    )
    raise SystemExit(EXIT_UNREACHABLE)


def require_broker(
    command: str,
    servers: str,
    ctx: click.Context,
    *,
    client_kwargs: Mapping[str, Any] | None = None,
    hint: str = BROKER_HINT,
) -> None:
    """Return once a broker at ``servers`` answers (:func:`probe_broker`, aiokafka's log lines
    silenced); else print the one line (:func:`broker_unreachable`, the address's source from
    ``ctx``'s ``--broker``) and exit 3."""
    try:
        with quiet_kafka_logs():
            probe_broker(servers, client_kwargs=client_kwargs)
    except OSError as exc:
        broker_unreachable(command, servers, broker_source(ctx), exc, hint=hint)


def topics_unreadable(
    command: str, what: str, servers: str, exc: BaseException, hint: str
) -> NoReturn:
    """Print the one line for topics that a reachable broker did not let be read to their end,
    and exit 3."""
    click.echo(
        f"stockflow {command}: could not read {what} from {servers}: {reason(exc)}. {hint}",
        err=True,
    )
    raise SystemExit(EXIT_UNREACHABLE)


def worker_unreachable(command: str, url: str, source: str, exc: BaseException) -> NoReturn:
    """Print the one line for a worker web server that cannot be reached and exit 3."""
    click.echo(
        f"stockflow {command}: no stockflow worker answered at {url} ({source}): "
        f"{reason(exc)}. {WORKER_HINT}",
        err=True,
    )
    raise SystemExit(EXIT_UNREACHABLE)


@contextlib.contextmanager
def quiet_kafka_logs() -> Iterator[None]:
    """Silence aiokafka's log lines while a command runs.

    aiokafka logs each failed connection at ERROR; with no logging configured Python prints it
    through its last-resort handler, so the user saw ``Unable connect to ...`` above the
    command's own message. The command says it once, itself."""
    logger = logging.getLogger("aiokafka")
    saved = logger.propagate, list(logger.handlers)
    logger.propagate = False
    logger.handlers = [logging.NullHandler()]
    try:
        yield
    finally:
        logger.propagate, logger.handlers = saved[0], saved[1]


def probe_broker(
    servers: str,
    *,
    timeout: float | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`BrokerUnreachable` unless a Kafka broker at ``servers`` (``host:port``
    list) answers a metadata request within ``timeout`` seconds (default
    :data:`CONNECT_TIMEOUT`)."""
    bound = CONNECT_TIMEOUT if timeout is None else timeout
    _tcp_reachable(servers, bound)
    try:
        asyncio.run(asyncio.wait_for(_bootstrap(servers, bound, client_kwargs), bound))
    except TimeoutError as exc:
        raise BrokerUnreachable(f"no Kafka answer within {bound:g} s") from exc
    except Exception as exc:  # any failure to bootstrap means "not reachable"
        raise BrokerUnreachable(f"no Kafka answer ({reason(exc)})") from exc


def _tcp_reachable(servers: str, bound: float) -> None:
    """Return when one of ``servers`` accepts a TCP connection; else raise with the first
    server's reason (aiokafka's own error says only "Unable to bootstrap")."""
    first: BaseException | None = None
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=bound):
                return
        except (OSError, ValueError) as exc:
            first = first or exc
    if isinstance(first, TimeoutError | socket.timeout):
        raise BrokerUnreachable(f"no connection within {bound:g} s")
    raise BrokerUnreachable(reason(first) if first else "no server given")


async def _bootstrap(servers: str, bound: float, client_kwargs: Mapping[str, Any] | None) -> None:
    from aiokafka.client import AIOKafkaClient

    client = AIOKafkaClient(
        bootstrap_servers=servers,
        request_timeout_ms=max(1000, int(bound * 1000)),
        **dict(client_kwargs or {}),
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()
