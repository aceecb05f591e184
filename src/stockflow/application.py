"""Building stockflow into a Faust app: standalone (:func:`create_app`) or embedded
(:func:`install` into an app you already run)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from stockflow._faust.batches import BatchProcessor, Route
from stockflow._faust.internals import check_internals
from stockflow._faust.producing import BatchSender
from stockflow._faust.transport import TunedTransport, complete_producer_flush, use_tuned_transport
from stockflow.agents import Batching, register_agents, register_scheduler
from stockflow.agents.publish import Publisher
from stockflow.brokerwatch import register_broker_watch
from stockflow.core.policy import Policy
from stockflow.lifecycle import attach
from stockflow.observability import DecisionLog, Metrics
from stockflow.processing import InventoryRouter, OrderDesk, ProductWriter, Role
from stockflow.settings import Settings
from stockflow.tables import (
    ChangelogWriter,
    SelfHealingTableManager,
    TableStore,
    UncleanShutdownGuard,
    create_state_table,
)
from stockflow.topics import required_topics
from stockflow.web import Progress, register_views
from stockflow.web.freshness import consumer_lags
from stockflow.web.health import register_health

__all__ = ["Stockflow", "create_app", "install"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stockflow:
    """What :func:`install` added to an app: topics, tables, processors, agents and metrics."""

    app: Any
    settings: Settings
    topics: dict[str, Any]
    product_table: Any
    order_table: Any
    product_store: TableStore
    order_store: TableStore
    products: ProductWriter
    orders: OrderDesk
    metrics: Metrics
    """Prometheus counters and registry (served at ``/metrics``)."""
    progress: Progress
    """Last offset applied per topic partition (the read model's freshness)."""
    processor: BatchProcessor
    """Runs the processors over the records of stockflow's topics (its ``routes``: by topic)."""


def create_app(settings: Settings | None = None) -> faust.App:
    """A standalone Faust app running stockflow, configured from ``settings`` (default: the
    ``STOCKFLOW_*`` environment)."""
    settings = settings or Settings()
    app = faust.App(
        **settings.faust_kwargs(),
        TableManager=SelfHealingTableManager,
        autodiscover=False,
    )
    use_tuned_transport(app, settings.fetch_max_wait_ms)
    # For code that holds only the app (tests, ``stockflow.app.stockflow``); stockflow itself
    # never reads it back: install() hands each part what it needs.
    app.stockflow = install(app, settings)  # type: ignore[attr-defined]
    return app


def install(app: Any, settings: Settings | None = None) -> Stockflow:
    """Add stockflow's topics, tables, agents and timer scheduler to an existing Faust app.

    Names come from ``settings`` (topic names, partitions); agent and table names are prefixed
    with ``settings.app_id`` so that they cannot clash with the app's own. Call it before the
    app declares its own topics to also get stockflow's transport fixes, and create the app
    with ``TableManager=stockflow.tables.SelfHealingTableManager`` for self-healing recovery.

    It also adds ``GET /stock/{product_id}``, ``/orders/{order_id}`` and ``/metrics`` to the
    app's web server (:mod:`stockflow.web`), with a Prometheus registry of its own
    (:attr:`Stockflow.metrics`).
    """
    settings = settings or Settings()
    check_internals()  # before anything is patched: a clear error, not a broken rebalance
    transport = getattr(app, "_transport", None)
    if transport is None:
        use_tuned_transport(app, settings.fetch_max_wait_ms)
    elif not isinstance(transport, TunedTransport):
        log.warning("stockflow.install: app transport exists already; fetch-wait fix not applied")
    policy = Policy.from_seconds(
        reservation_ttl=settings.reservation_ttl,
        saga_timeout=settings.saga_timeout,
        retention=settings.retention,
        max_lines=settings.max_lines,
    )
    prefix = settings.app_id

    def topic(name: str) -> Any:
        return app.topic(
            name,
            partitions=settings.partitions,
            replicas=settings.replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,  # created with the right partition count if missing
        )

    topics: dict[str, Any] = {
        "orders": topic(settings.orders_topic),
        "inventory": topic(settings.inventory_topic),
        "reservations": topic(settings.reservations_topic),
        "dead_letters": topic(settings.dead_letter_topic),
        "product_commands": topic(settings.product_commands_topic),
        "order_replies": topic(settings.order_replies_topic),
    }
    product_table = create_state_table(
        app,
        f"{prefix}-products",
        partitions=settings.partitions,
        help="stock, reservation ledger and timers, by product",
        options=settings.table_options(),
    )
    order_table = create_state_table(
        app,
        f"{prefix}-orders",
        partitions=settings.partitions,
        help="order sagas and their timers",
        options=settings.table_options(),
    )
    tables = app.tables
    if isinstance(tables, SelfHealingTableManager):
        tables.fast_restore = settings.fast_restore
    elif not settings.fast_restore:
        log.warning(
            "stockflow.install: fast_restore=False has no effect without "
            "TableManager=SelfHealingTableManager"
        )
    app.sensors.add(
        UncleanShutdownGuard(
            app, [product_table.name, order_table.name], name=f"{prefix}-stockflow"
        )
    )
    sender = BatchSender(app)
    changelog = ChangelogWriter(app, sender)  # one for both tables: writes keep their order
    product_store = TableStore(product_table, changelog)
    order_store = TableStore(order_table, changelog)
    writer = ProductWriter(product_store, policy)
    desk = OrderDesk(order_store, policy)
    roles: dict[Role, Any] = {
        "reservations": topics["reservations"],
        "dead_letters": topics["dead_letters"],
        "product_commands": topics["product_commands"],
        "order_replies": topics["order_replies"],
    }
    # stockflow's table writes bypass Faust's producer buffer (ChangelogWriter); whatever Faust
    # itself still buffers is flushed completely before each commit.
    complete_producer_flush(app, before=sender.flushed)
    publisher = Publisher(app, roles, partitions=settings.partitions, sender=sender)
    batching = Batching(
        max_records=settings.batch_max_records, within=settings.batch_within_ms / 1000
    )
    metrics = Metrics()
    progress = Progress()
    decision_log = DecisionLog() if settings.log_decisions else None

    def probe(agent: str) -> Any:
        return metrics.probe(agent, progress.applied, decision_log)

    products, orders, inventory = (f"{prefix}.products", f"{prefix}.orders", f"{prefix}.inventory")
    order_probe = probe("orders")
    processor = BatchProcessor(
        app,
        {
            settings.product_commands_topic: Route(
                products, writer.handle, product_store, probe("products")
            ),
            settings.orders_topic: Route(orders, desk.handle_order, order_store, order_probe),
            settings.order_replies_topic: Route(
                orders, desk.handle_reply, order_store, order_probe
            ),
            settings.inventory_topic: Route(
                inventory, InventoryRouter().handle, product_store, probe("inventory")
            ),
        },
        changelog=changelog,
        outputs=publisher,
    )
    # The orders agent reads the public topic and the internal replies as one stream, so one
    # writer sees all of an order's events in order.
    order_stream = app.topic(
        settings.orders_topic,
        settings.order_replies_topic,
        key_serializer="raw",
        value_serializer="raw",
    )
    register_agents(
        app,
        [
            (products, topics["product_commands"]),
            (orders, order_stream),
            (inventory, topics["inventory"]),
        ],
        processor=processor,
        batching=batching,
    )
    transport = app.transport if settings.consumer == "batch" else None
    if isinstance(transport, TunedTransport):
        transport.batch_processor = processor  # the consumer bypasses the agents' streams
    elif settings.consumer == "batch":
        log.warning("stockflow.install: Faust's transport; records go through Faust's streams")
    register_scheduler(
        app,
        name=f"{prefix}.timers",
        interval=settings.timer_interval,
        targets={
            settings.product_commands_topic: (topics["product_commands"], product_store),
            settings.order_replies_topic: (topics["order_replies"], order_store),
        },
    )
    handle = Stockflow(
        app=app,
        settings=settings,
        topics=topics,
        product_table=product_table,
        order_table=order_table,
        product_store=product_store,
        order_store=order_store,
        products=writer,
        orders=desk,
        metrics=metrics,
        progress=progress,
        processor=processor,
    )
    consumed = (
        settings.orders_topic,
        settings.inventory_topic,
        settings.product_commands_topic,
        settings.order_replies_topic,
    )
    metrics.lag_source = lambda: consumer_lags(app, progress, consumed)
    read = register_views(
        app, handle, progress=progress, metrics=metrics, route_timeout=settings.web_route_timeout
    )
    metrics.pending_source = read.reserved_units
    register_health(app, progress, consumed, max_lag=settings.ready_max_lag, prefix=prefix)
    register_broker_watch(
        app, name=f"{prefix}.broker-watch", allowance=settings.broker_lost_timeout
    )
    attach(app, settings, required_topics(settings, faust_id=app.conf.id))
    return handle
