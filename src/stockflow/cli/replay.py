"""``stockflow replay`` and ``stockflow record``: incidents as JSON lines, replayed offline.

Example::

    stockflow record --broker kafka://kafka-1:9092 --topics orders,inventory --out incident.jsonl
    stockflow replay incident.jsonl --reservation-ttl 60 --until 1764064800000

The line format is described in :mod:`stockflow.replay`.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from stockflow.settings import Settings

__all__ = ["record", "replay", "summary_lines"]


def _write(lines: Iterable[str], out: Path | None) -> None:
    if out is None:
        for line in lines:
            click.echo(line)
        return
    with out.open("w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line + "\n")


@click.command()
@click.argument("events", type=click.File("r", encoding="utf-8"))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the output lines here. Default: stdout.",
)
@click.option(
    "--reservation-ttl",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a reservation is held. Default: Settings (STOCKFLOW_RESERVATION_TTL, 900).",
)
@click.option(
    "--saga-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds an order waits for its lines. Default: Settings (STOCKFLOW_SAGA_TIMEOUT, 30).",
)
@click.option(
    "--retention",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds finished state is kept. Default: Settings (STOCKFLOW_RETENTION, 7 days).",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 1024),
    help="Partitions of the stockflow topics. Default: Settings (STOCKFLOW_PARTITIONS, 8).",
)
@click.option(
    "--until",
    "until_ms",
    type=int,
    help="After the last record, move the clock to this epoch ms (fires expiries). Default: no.",
)
@click.option(
    "--summary",
    is_flag=True,
    help="Also print the counts per outcome (to stderr, so that the output lines stay clean).",
)
def replay(
    events: TextIO,
    out: Path | None,
    reservation_ttl: float | None,
    saga_timeout: float | None,
    retention: float | None,
    partitions: int | None,
    until_ms: int | None,
    summary: bool,
) -> None:
    """Replay EVENTS (JSON lines; - for stdin) through stockflow's decision code, offline.

    Prints one line per output record (reservations and dead letters), deterministically.
    Topic names and the policy not given as options come from the STOCKFLOW_* environment.
    The line format: {"topic", "key", "value", "timestamp"?}, one JSON object per line
    (README, "Replaying an incident").
    """
    from stockflow.replay import ReplayError, replay_lines

    overrides = {
        "reservation_ttl": reservation_ttl,
        "saga_timeout": saga_timeout,
        "retention": retention,
        "partitions": partitions,
    }
    settings = _settings({k: v for k, v in overrides.items() if v is not None})
    read = Counter[str]()

    def counted(lines: Iterable[str]) -> Iterator[str]:
        for line in lines:
            read["lines"] += bool(line.strip())
            yield line

    try:
        lines = replay_lines(counted(events), settings, until_ms=until_ms)
    except ReplayError as exc:
        raise click.ClickException(f"{events.name}: {exc}") from None
    _write(lines, out)
    if summary:
        for text in summary_lines(lines, inputs=read["lines"]):
            click.echo(text, err=True)


# Output types whose reason is part of the outcome (an order rejected for insufficient stock is
# a different outcome from one rejected as unknown_product).
_WITH_REASON = frozenset(
    {"OrderRejected", "ReservationReleased", "ReservationConfirmFailed", "OrderCancelIgnored"}
)


def summary_lines(lines: Iterable[str], *, inputs: int) -> list[str]:
    """The ``--summary`` of replay's output ``lines``: records per outcome (event type, with
    the reason where it has one), and orders by their (first) outcome."""
    records: Counter[str] = Counter()
    orders: dict[str, str] = {}
    total = 0
    for line in lines:
        total += 1
        value = json.loads(line).get("value")
        if not isinstance(value, dict):
            records["(not an event)"] += 1
            continue
        kind = str(value.get("type", "DeadLetter" if "error" in value else "?"))
        if kind in _WITH_REASON and value.get("reason"):
            kind = f"{kind} {value['reason']}"
        records[kind] += 1
        if kind.startswith(("OrderReserved", "OrderRejected")):
            orders.setdefault(str(value.get("order_id")), kind)
    width = max((len(kind) for kind in records), default=0)
    result = [f"{inputs} input records, {total} output records"]
    result += [f"  {kind:<{width}}  {n:>6}" for kind, n in sorted(records.items())]
    decided = Counter(orders.values())
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(decided.items()))
    result.append(f"{len(orders)} orders decided" + (f": {parts}" if parts else ""))
    return result


@click.command()
@click.pass_context
@click.option(
    "--broker",
    help="Broker URL(s), kafka://host:port[;kafka://host2:port]. Default: STOCKFLOW_BROKER.",
)
@click.option(
    "--topics",
    help="Comma-separated topics to read. Default: the configured orders and inventory topics.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the lines here. Default: stdout.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds a read may go without a record before it fails.",
)
def record(
    ctx: click.Context, broker: str | None, topics: str | None, out: Path | None, timeout: float
) -> None:
    """Write the topics' records, from the beginning to their current end, as lines that
    ``stockflow replay`` reads. Uses no consumer group (nothing is committed). Security
    settings (TLS, SASL) come from the STOCKFLOW_* environment. Exits 3 (one line on stderr)
    when the broker cannot be reached or read."""
    from aiokafka.errors import KafkaError

    from stockflow.cli.reach import quiet_kafka_logs, require_broker, topics_unreadable
    from stockflow.errors import BrokerError
    from stockflow.kafka import bootstrap_servers, client_kwargs, read_topics
    from stockflow.replay import record_lines

    settings = _settings({"broker": broker} if broker else {})
    if topics:
        names = [name.strip() for name in topics.split(",") if name.strip()]
    else:
        names = [settings.orders_topic, settings.inventory_topic]
    if not names:
        raise click.BadParameter("name at least one topic", param_hint="--topics")
    servers = bootstrap_servers(settings.broker)
    kwargs = client_kwargs(settings)
    require_broker("record", servers, ctx, client_kwargs=kwargs)
    try:
        with quiet_kafka_logs():
            read = asyncio.run(read_topics(servers, names, timeout=timeout, client_kwargs=kwargs))
    except (BrokerError, KafkaError, OSError) as exc:
        hint = "Check the topic names (--topics) or raise --timeout."
        topics_unreadable("record", ", ".join(names), servers, exc, hint)
    _write(record_lines(r for records in read.values() for r in records), out)


def _settings(overrides: Mapping[str, Any]) -> Settings:
    """Invalid ones raise ConfigurationError: the ``stockflow`` group prints it and exits 2."""
    from stockflow.settings import Settings

    return Settings(**overrides)
