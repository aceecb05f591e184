"""Building stockflow into a Faust app: standalone (:func:`create_app`) or embedded
(:func:`install` into an app you already run)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import faust
from faust.types import AppT, TableT, TopicT

from stockflow._faust.batches import SLICE_SECONDS, BatchProcessor
from stockflow._faust.epochs import fence_faust_restore
from stockflow._faust.internals import check_internals
from stockflow._faust.producing import BatchSender
from stockflow._faust.transport import TunedTransport, complete_producer_flush
from stockflow._faust.wiring import use_tuned_transport
from stockflow._faust.zstd import use_reused_contexts
from stockflow.agents import Batching, Handler, register_agents, register_scheduler, routes
from stockflow.agents.publish import Publisher
from stockflow.brokerwatch import register_broker_watch
from stockflow.lifecycle import attach
from stockflow.observability import (
    DecisionLog,
    LoopWatch,
    Metrics,
    StepProbe,
    register_loop_watch,
)
from stockflow.processing import InventoryRouter, OrderDesk, ProductWriter, Role
from stockflow.replay import policy_from_settings
from stockflow.settings import Settings
from stockflow.tables import (
    ChangelogWriter,
    SelfHealingTableManager,
    TableStore,
    UncleanShutdownGuard,
    create_state_table,
)
from stockflow.topics import required_topics, topic_names
from stockflow.web import Progress, register_views
from stockflow.web.freshness import consumer_lags
from stockflow.web.health import register_health

__all__ = ["Stockflow", "create_app", "install"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stockflow:
    """What :func:`install` added to an app: topics, tables, processors, agents and metrics."""

    app: AppT
    settings: Settings
    topics: dict[str, TopicT]
    product_table: TableT[bytes, bytes]
    order_table: TableT[bytes, bytes]
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
    # install() gives the app stockflow's transport, after checking the internals it patches.
    # app.stockflow is for code that holds only the app (tests, ``stockflow.app.stockflow``);
    # stockflow itself never reads it back: install() hands each part what it needs.
    app.stockflow = install(app, settings)  # type: ignore[attr-defined]
    return app


def install(app: AppT, settings: Settings | None = None) -> Stockflow:
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
    _prepare_transport(app, settings)
    topics = _declare_topics(app, settings)
    state = _declare_tables(app, settings)
    policy = policy_from_settings(settings)  # the one the offline replay uses
    writer, desk = (
        ProductWriter(state.products, policy),
        OrderDesk(state.orders, policy, state.products),
    )
    metrics, progress = Metrics(), Progress()
    handlers = _agent_table(topics, state, writer, desk)
    processor = _processor(app, settings, topics, state, handlers, metrics, progress)
    _register_agents(app, settings, handlers, processor)
    _register_timers(app, settings, handlers)
    handle = Stockflow(
        app=app,
        settings=settings,
        topics=topics,
        # The stores see the tables through stockflow.tables.protocols; these are the Faust
        # tables app.Table() made (create_state_table).
        product_table=cast("TableT[bytes, bytes]", state.products.table),
        order_table=cast("TableT[bytes, bytes]", state.orders.table),
        product_store=state.products,
        order_store=state.orders,
        products=writer,
        orders=desk,
        metrics=metrics,
        progress=progress,
        processor=processor,
    )
    _register_web(app, handle)
    register_broker_watch(
        app, name=f"{settings.app_id}.broker-watch", allowance=settings.broker_lost_timeout
    )
    register_loop_watch(
        app,
        LoopWatch(
            metrics.loop_stalls.observe,
            warn_after=settings.heartbeat_interval,
            session_timeout=settings.session_timeout,
        ),
    )
    attach(app, settings, required_topics(settings, faust_id=app.conf.id))
    return handle


# --- the steps of install(), in order ---------------------------------------------------------


def _prepare_transport(app: AppT, settings: Settings) -> None:
    """stockflow's transport (fetch wait, batch consumer) unless the app has one already."""
    check_internals()  # before anything is patched: a clear error, not a broken rebalance
    use_reused_contexts()  # zstd batches without a new context each (stockflow._faust.zstd)
    transport = getattr(app, "_transport", None)
    if transport is None:
        use_tuned_transport(
            app,
            settings.fetch_max_wait_ms,
            inline=not settings.consumer_thread,
            fetch_lanes=settings.fetch_lanes,
        )
    elif not isinstance(transport, TunedTransport):
        log.warning("stockflow.install: app transport exists already; fetch-wait fix not applied")


def _declare_topics(app: AppT, settings: Settings) -> dict[str, TopicT]:
    """stockflow's topics by role, declared with their partitions (created if missing)."""

    def topic(name: str) -> TopicT:
        return app.topic(
            name,
            partitions=settings.partitions,
            replicas=settings.replication_factor,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,  # created with the right partition count if missing
        )

    return {role: topic(name) for role, name in topic_names(settings).items()}


@dataclass(frozen=True, slots=True)
class _State:
    """The stores of the two state tables (``.table``: the Faust table), and what writes
    their changelogs."""

    products: TableStore
    orders: TableStore
    sender: BatchSender
    changelog: ChangelogWriter


_TABLES = (
    ("products", "stock, reservation ledger and timers, by product"),
    ("orders", "order sagas and their timers"),
)
"""(name after the app id prefix, help) of each state table."""


def _declare_tables(app: AppT, settings: Settings) -> _State:
    """The product and order tables (RocksDB options, fast restore, unclean-shutdown guard)."""
    product_table, order_table = (
        create_state_table(
            app,
            f"{settings.app_id}-{name}",
            partitions=settings.partitions,
            help=help,
            options=settings.table_options(),
        )
        for name, help in _TABLES
    )
    tables = app.tables
    if isinstance(tables, SelfHealingTableManager):
        tables.fast_restore = settings.fast_restore
    elif not settings.fast_restore:
        log.warning(
            "stockflow.install: fast_restore=False has no effect without "
            "TableManager=SelfHealingTableManager"
        )
    names = [product_table.name, order_table.name]
    from faust.stores import rocksdb  # the binding TableStore gathers and holds writes for

    guard = UncleanShutdownGuard(
        app, names, name=f"{settings.app_id}-stockflow", keep_local=rocksdb.USE_ROCKSDICT
    )
    app.sensors.add(guard)
    sender = BatchSender(
        app,
        compression=settings.internal_compression,
        public=(settings.reservations_topic, settings.dead_letter_topic),
        output_order=settings.output_order,
    )
    changelog = ChangelogWriter(app, sender)  # one for both tables: writes keep their order
    for table in (product_table, order_table):
        # The batched restore and the standbys fence on their own. A key whose late record a
        # reader skipped is written again once its partition is active here.
        fence_faust_restore(table, changelog.repairs.skipped)
    repairs = changelog.repairs

    async def _close_repairs(sender: object, **kwargs: object) -> None:
        await repairs.close()  # no read of a changelog range outlives the worker's consumer

    app.on_before_shutdown.connect(_close_repairs)  # type: ignore[arg-type]  # as in orders_api
    products, orders = TableStore(product_table, changelog), TableStore(order_table, changelog)
    for store in (products, orders):
        changelog.register(store)  # keys written again take their values from it
    return _State(products, orders, sender, changelog)


def _agent_table(
    topics: dict[str, TopicT],
    state: _State,
    writer: ProductWriter,
    desk: OrderDesk,
) -> list[Handler]:
    """(agent, topic, handler, store) for every topic stockflow consumes: the processor's
    routes, the agents and the timer scheduler's targets all come from it. The orders agent
    reads two topics; the internal ones carry the timer ticks."""
    products, orders = state.products, state.orders
    return [
        Handler("products", topics["product_commands"], writer.handle, products, timers=True),
        Handler("orders", topics["orders"], desk.handle_order, orders),
        Handler("orders", topics["order_replies"], desk.handle_reply, orders, timers=True),
        Handler("inventory", topics["inventory"], InventoryRouter().handle, products),
    ]


def _processor(
    app: AppT,
    settings: Settings,
    topics: dict[str, TopicT],
    state: _State,
    handlers: list[Handler],
    metrics: Metrics,
    progress: Progress,
) -> BatchProcessor:
    """The processor every record of stockflow's topics goes through, and what it publishes
    with; the batch consumer hands it records directly when stockflow's transport runs."""
    # stockflow's table writes bypass Faust's producer buffer (ChangelogWriter); whatever Faust
    # itself still buffers is flushed completely before each commit.
    complete_producer_flush(app, before=state.sender.flushed)
    outputs = {role: topics[role] for role in _OUTPUT_ROLES}
    publisher = Publisher(app, outputs, partitions=settings.partitions, sender=state.sender)
    decision_log = DecisionLog() if settings.log_decisions else None

    def probe(agent: str) -> StepProbe:
        return metrics.probe(agent, progress.applied, decision_log)

    processor = BatchProcessor(
        app,
        routes(handlers, prefix=settings.app_id, probe=probe),
        changelog=state.changelog,
        outputs=publisher,
        # A heartbeat is due every heartbeat_interval: a slice must leave room for it.
        slice_seconds=min(SLICE_SECONDS, settings.heartbeat_interval / 2),
        replies=topics["order_replies"].get_topic_name() if settings.local_answers else None,
        commands=(topics["product_commands"].get_topic_name() if settings.local_commands else None),
    )
    if processor.replies is not None:
        metrics.answers = processor.answers
    if processor.commands is not None:
        metrics.commands = processor.here
    transport = app.transport
    if isinstance(transport, TunedTransport):
        transport.changelog = state.changelog  # waited for at every revocation
        if settings.consumer == "batch":
            transport.batch_processor = processor  # the consumer bypasses the agents' streams
    elif settings.consumer == "batch":
        log.warning("stockflow.install: Faust's transport; records go through Faust's streams")
    return processor


_OUTPUT_ROLES: tuple[Role, ...] = (
    "reservations",
    "dead_letters",
    "product_commands",
    "order_replies",
)


def _register_agents(
    app: AppT, settings: Settings, handlers: list[Handler], processor: BatchProcessor
) -> None:
    batching = Batching(
        max_records=settings.batch_max_records,
        within=settings.batch_within_ms / 1000,
        streams=settings.consumer == "stream",
    )
    register_agents(app, handlers, prefix=settings.app_id, processor=processor, batching=batching)


def _register_timers(app: AppT, settings: Settings, handlers: list[Handler]) -> None:
    targets = {h.topic.get_topic_name(): (h.topic, h.store) for h in handlers if h.timers}
    register_scheduler(
        app, name=f"{settings.app_id}.timers", interval=settings.timer_interval, targets=targets
    )


def _register_web(app: AppT, handle: Stockflow) -> None:
    """The read model, writes, metrics and probes; the metrics' lag and pending sources."""
    settings, metrics, progress = handle.settings, handle.metrics, handle.progress
    consumed = tuple(handle.processor.routes)  # every topic the agents read (their lag)
    metrics.lag_source = lambda: consumer_lags(app, progress, consumed)
    read = register_views(
        app, handle, progress=progress, metrics=metrics, route_timeout=settings.web_route_timeout
    )
    metrics.pending_source = read.reserved_units
    register_health(app, progress, consumed, max_lag=settings.ready_max_lag, prefix=settings.app_id)
