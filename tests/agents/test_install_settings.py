"""Issue 12: ``stockflow.install()`` honours every setting the README documents for it, on an app
it did not create (no ``app.stockflow`` back-channel: each part gets its setting from install).
The app is never started; what each setting configures is read from the objects install made."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import faust
import pytest

import stockflow
from stockflow import application
from stockflow._faust.inline import InlineConsumerThread
from stockflow._faust.transport import TunedConsumerThread
from stockflow._version import build as installed_build
from stockflow.lifecycle import ExitWatchdog
from stockflow.observability import LoopWatch
from stockflow.tables import SelfHealingRecovery, SelfHealingTableManager
from stockflow.topics import required_topics

NAMES = {
    "orders_topic": "shop.orders",
    "inventory_topic": "shop.inventory",
    "reservations_topic": "shop.reservations",
    "dead_letter_topic": "shop.dead",
}


def build(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> tuple[Any, stockflow.Stockflow]:
    app_id = f"shop{uuid.uuid4().hex[:6]}"
    settings = stockflow.Settings(app_id=app_id, store="memory://", **changes)
    app = faust.App(
        f"embedding-{app_id}",
        broker="kafka://127.0.0.1:1",
        store="memory://",
        TableManager=SelfHealingTableManager,
        web_enabled=False,
    )
    return app, stockflow.install(app, settings)


def test_topic_names_partitions_and_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    app, handle = build(monkeypatch, partitions=3, replication_factor=2, **NAMES)
    assert not hasattr(app, "stockflow")  # install() alone: nothing to read back
    wanted = {
        "orders": "shop.orders",
        "inventory": "shop.inventory",
        "reservations": "shop.reservations",
        "dead_letters": "shop.dead",
        "product_commands": f"{handle.settings.app_id}-product-commands",
        "order_replies": f"{handle.settings.app_id}-order-replies",
    }
    for role, name in wanted.items():
        topic = handle.topics[role]
        assert topic.get_topic_name() == name
        assert (topic.partitions, topic.replicas) == (3, 2)
    for table in (handle.product_table, handle.order_table):
        assert table.partitions == 3


def test_app_id_prefixes_agents_tables_and_changelogs(monkeypatch: pytest.MonkeyPatch) -> None:
    app, handle = build(monkeypatch)
    prefix = handle.settings.app_id
    agents = set(app.agents)
    assert {f"{prefix}.products", f"{prefix}.orders", f"{prefix}.inventory"} <= agents
    assert handle.product_table.name == f"{prefix}-products"
    assert handle.order_table.name == f"{prefix}-orders"
    changelogs = {
        s.name for s in required_topics(handle.settings, app.conf.id) if s.role == "changelog"
    }
    assert handle.product_table.changelog_topic.get_topic_name() in changelogs
    assert handle.order_table.changelog_topic.get_topic_name() in changelogs


def test_business_rules_reach_both_processors(monkeypatch: pytest.MonkeyPatch) -> None:
    _app, handle = build(
        monkeypatch, reservation_ttl=60, saga_timeout=7, retention=3600, max_lines=5
    )
    for policy in (handle.products.policy, handle.orders.policy):
        assert policy.reservation_ttl_ms == 60_000
        assert policy.saga_timeout_ms == 7_000
        assert policy.retention_ms == 3_600_000
        assert policy.max_lines == 5


def test_timer_interval_and_broker_lost_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    intervals: dict[str, float] = {}
    original = faust.App.timer

    def timer(self: Any, interval: float, *, name: str, **kwargs: Any) -> Any:
        intervals[name] = interval
        return original(self, interval, name=name, **kwargs)

    monkeypatch.setattr(faust.App, "timer", timer)
    _app, handle = build(monkeypatch, timer_interval=1.25, broker_lost_timeout=6)
    prefix = handle.settings.app_id
    assert intervals == {f"{prefix}.timers": 1.25, f"{prefix}.broker-watch": 2.0}


def test_heartbeat_interval_and_session_timeout_reach_the_loop_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watches: list[LoopWatch] = []
    original = application.register_loop_watch

    def register(app: Any, watch: LoopWatch) -> None:
        watches.append(watch)
        original(app, watch)

    monkeypatch.setattr(application, "register_loop_watch", register)
    app, handle = build(monkeypatch, heartbeat_interval=2.0, session_timeout=9.0)
    (watch,) = watches
    assert (watch.warn_after, watch.session_timeout) == (2.0, 9.0)
    watch.woke(0.3)
    stalls = handle.metrics.loop_stalls  # the worker's /metrics histogram
    assert (sum(stalls.counts), stalls.total) == (1, 0.3)
    assert "watch_event_loop" in {task.__name__ for task in app._app_tasks}


@pytest.mark.parametrize(("heartbeat", "slice_seconds"), [(1.0, 0.25), (0.3, 0.15)])
def test_a_fetch_is_applied_in_slices_of_at_most_half_a_heartbeat(
    monkeypatch: pytest.MonkeyPatch, heartbeat: float, slice_seconds: float
) -> None:
    _app, handle = build(monkeypatch, heartbeat_interval=heartbeat, session_timeout=6.0)
    assert handle.processor.slice_seconds == slice_seconds


def test_fetch_max_wait_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    app, _handle = build(monkeypatch, fetch_max_wait_ms=321)
    assert app.transport.Consumer.fetch_max_wait_ms == 321


@pytest.mark.parametrize("lanes", [True, False])
def test_fetch_lanes(monkeypatch: pytest.MonkeyPatch, lanes: bool) -> None:
    app, _handle = build(monkeypatch, fetch_lanes=lanes)
    assert app.transport.Consumer.fetch_lanes is lanes
    consumer: Any = app.transport.Consumer.__new__(app.transport.Consumer)
    consumer.loop, consumer.beacon = asyncio.new_event_loop(), app.beacon
    consumer.transport, consumer.app = app.transport, app
    try:
        assert consumer._new_consumer_thread().fetch_lanes is lanes  # where the worker reads it
    finally:
        consumer.loop.close()


@pytest.mark.parametrize("own_thread", [True, False])
def test_consumer_thread(monkeypatch: pytest.MonkeyPatch, own_thread: bool) -> None:
    """STOCKFLOW_CONSUMER_THREAD picks what runs aiokafka's consumer: Faust's thread, or the
    main loop (the default)."""
    app, _handle = build(monkeypatch, consumer_thread=own_thread)
    consumer: Any = app.transport.Consumer.__new__(app.transport.Consumer)
    consumer.loop, consumer.beacon = asyncio.new_event_loop(), app.beacon
    consumer.transport, consumer.app = app.transport, app
    try:
        thread = consumer._new_consumer_thread()
        assert isinstance(thread, TunedConsumerThread)
        assert isinstance(thread, InlineConsumerThread) is not own_thread
    finally:
        consumer.loop.close()


def test_rocksdb_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    mib = 1024 * 1024
    _app, handle = build(
        monkeypatch,
        rocksdb_write_buffer_size=3 * mib,
        rocksdb_max_write_buffers=4,
        rocksdb_block_cache_size=5 * mib,
        rocksdb_bloom_bits=12,
    )
    for table in (handle.product_table, handle.order_table):
        assert table.options == {
            "write_buffer_size": 3 * mib,
            "max_write_buffer_number": 4,
            "block_cache_size": 5 * mib,
            "bloom_filter_size": 12,
        }


@pytest.mark.parametrize("fast", [True, False])
def test_fast_restore(monkeypatch: pytest.MonkeyPatch, fast: bool) -> None:
    app, _handle = build(monkeypatch, fast_restore=fast)
    assert app.tables.fast_restore is fast
    recovery = app.tables.recovery
    assert isinstance(recovery, SelfHealingRecovery)
    assert recovery.fast_restore is fast


def test_provisioning_and_exit_bounds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The first start names the version and build, provisions topics from the settings
    (partitions, retention), starts the exit watchdog with the crash and stop bounds and
    tunes the garbage collector."""
    seen: dict[str, Any] = {}

    async def fake_provision(settings: Any, specs: Any, **kwargs: Any) -> list[Any]:
        seen["specs"] = specs
        return []

    def fake_start(self: ExitWatchdog) -> ExitWatchdog:
        seen["bounds"] = (self.crash_timeout, self.stop_timeout)
        return self

    monkeypatch.setattr("stockflow.provisioning.provision", fake_provision)
    monkeypatch.setattr(ExitWatchdog, "start", fake_start)
    monkeypatch.setattr(
        "stockflow.lifecycle.tune_garbage_collector", lambda threshold: seen.update(gc=threshold)
    )
    app, handle = build(
        monkeypatch,
        partitions=6,
        topic_retention=120,
        crash_exit_timeout=3,
        stop_timeout=4,
        gc_threshold=1234,
    )
    monkeypatch.setattr(app, "_create_directories", lambda: None)
    with caplog.at_level(logging.INFO, logger="stockflow.lifecycle"):
        asyncio.run(app.on_first_start())
    starting = f"stockflow {stockflow.__version__} ({installed_build()} build) starting"
    assert starting in caplog.messages
    assert seen["bounds"] == (3, 4)
    assert seen["gc"] == 1234  # the collector tuned with the setting, once the app has started
    assert list(seen["specs"]) == list(required_topics(handle.settings, app.conf.id))
    orders = next(s for s in seen["specs"] if s.name == handle.settings.orders_topic)
    assert (orders.partitions, orders.config["retention.ms"]) == (6, "120000")


def test_batching_decision_log_route_timeout_and_ready_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    from stockflow import application

    seen: dict[str, Any] = {}

    def spy(name: str, real: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[name] = kwargs
            return real(*args, **kwargs)

        monkeypatch.setattr(application, name, call)
        return call

    for name in ("Batching", "DecisionLog", "register_views", "register_health"):
        spy(name, getattr(application, name))
    build(
        monkeypatch,
        batch_max_records=17,
        batch_within_ms=40,
        log_decisions=True,
        web_route_timeout=2.5,
        ready_max_lag=99,
    )
    assert seen["Batching"] == {"max_records": 17, "within": 0.04, "streams": False}
    assert "DecisionLog" in seen
    assert seen["register_views"]["route_timeout"] == 2.5
    assert seen["register_health"]["max_lag"] == 99
    seen.clear()  # the spies stay: with log_decisions off, no DecisionLog is built
    build(monkeypatch, log_decisions=False)
    assert "DecisionLog" not in seen
    # Only Faust's stream path batches in the agents (with the batch consumer they wait idle).
    build(monkeypatch, consumer="stream")
    assert seen["Batching"]["streams"] is True


@pytest.mark.parametrize("consumer", ["batch", "stream"])
def test_the_consumer_waits_for_the_changelog_on_either_path(
    monkeypatch: pytest.MonkeyPatch, consumer: str
) -> None:
    # A revocation waits for the changelog's acknowledgements (BatchConsumer.wait_empty): the
    # transport must know the changelog whether or not the batch path takes the records.
    app, _handle = build(monkeypatch, consumer=consumer)
    transport = app.transport
    assert transport.changelog is not None
    assert (transport.batch_processor is not None) is (consumer == "batch")
