"""``stockflow audit``: check a broker's stockflow topics from the beginning, independently.

Exit status: 0 when there is no violation, 1 when there is one (or more), 2 for usage errors
and 3 when the topics could not be read (one line on stderr says what was tried and what to do).
"""

from __future__ import annotations

import click

__all__ = ["audit"]

EXIT_VIOLATIONS = 1


@click.command()
@click.pass_context
@click.option(
    "--broker",
    envvar="STOCKFLOW_BROKER",
    default=None,
    help="Broker URL(s) or host:port list. Default: STOCKFLOW_BROKER, else the settings default.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to keep re-reading while inputs have no outcome yet (consumer lag).",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Inputs still without an outcome (after --settle) are violations: lost orders.",
)
@click.option("--orders-topic", default=None, help="Default: STOCKFLOW_ORDERS_TOPIC / orders.")
@click.option("--inventory-topic", default=None, help="Default: STOCKFLOW_INVENTORY_TOPIC.")
@click.option("--reservations-topic", default=None, help="Default: STOCKFLOW_RESERVATIONS_TOPIC.")
@click.option("--dead-letter-topic", default=None, help="Default: STOCKFLOW_DEAD_LETTER_TOPIC.")
@click.option(
    "--clock-skew-ms",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Largest clock difference between the hosts that stamp records (producers, workers).",
)
@click.option(
    "--max-lag",
    type=click.FloatRange(min=0),
    default=None,
    help="Assume every inventory event is applied within this many seconds (off by default: "
    "stock removals are then only enforced where later decisions prove them applied).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds allowed for one read of the topics.",
)
def audit(
    ctx: click.Context,
    broker: str | None,
    as_json: bool,
    settle: float,
    strict: bool,
    orders_topic: str | None,
    inventory_topic: str | None,
    reservations_topic: str | None,
    dead_letter_topic: str | None,
    clock_skew_ms: int,
    max_lag: float | None,
    timeout: float,
) -> None:
    """Check that no order got two different outcomes, no product was oversold, every release
    had something to release, every dead letter carries its input's bytes and every input is
    accounted for. Reads the input and output topics from the beginning without a consumer group.
    """
    from aiokafka.errors import KafkaError

    from stockflow.audit import AuditTopics, audit_topics, print_report, to_json
    from stockflow.cli.reach import quiet_kafka_logs, require_broker, topics_unreadable
    from stockflow.errors import StockflowError
    from stockflow.kafka import bootstrap_servers, client_kwargs
    from stockflow.settings import Settings

    settings = Settings()
    topics = AuditTopics.from_settings(
        settings,
        orders=orders_topic,
        inventory=inventory_topic,
        reservations=reservations_topic,
        dead_letters=dead_letter_topic,
    )
    url = broker or settings.broker
    servers = bootstrap_servers(url)
    require_broker("audit", servers, ctx, client_kwargs=client_kwargs(settings))
    try:
        with quiet_kafka_logs():
            result = audit_topics(
                url,
                settings,
                topics=topics,
                settle=settle,
                strict=strict,
                clock_skew_ms=clock_skew_ms,
                max_lag_ms=None if max_lag is None else round(max_lag * 1000),
                read_timeout=timeout,
            )
    except (StockflowError, KafkaError, OSError) as exc:
        hint = "Check the broker and the topic settings (STOCKFLOW_*_TOPIC), or raise --timeout."
        topics_unreadable("audit", "the topics", servers, exc, hint)
    if as_json:
        click.echo(to_json(result))
    else:
        print_report(result)
    if not result.ok:
        raise SystemExit(EXIT_VIOLATIONS)
