"""Metrics, logs and the read model's freshness, without Faust or a broker (issue 7)."""

from __future__ import annotations

import io
import json
import logging
import sys
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from stockflow._faust.answers import LocalAnswers
from stockflow._faust.commands_here import CommandsHere
from stockflow.core.policy import Policy
from stockflow.keys import partition_for, stock_key
from stockflow.models import (
    INPUT_EVENT_TYPES,
    OUTPUT_EVENT_TYPES,
    Release,
    Reserve,
    SetStock,
)
from stockflow.observability import DecisionLog, JsonFormatter, Metrics, event_type
from stockflow.observability.labels import EVENT_TYPES, LATENCY_BUCKETS
from stockflow.observability.logs import redact_sasl_tokens
from stockflow.processing import MemoryStore, OrderDesk, ProductWriter
from stockflow.processing.codec import StockRecord, decode_stock, encode, encode_stock
from stockflow.processing.records import Out, Step
from stockflow.settings import Settings
from stockflow.web.freshness import Progress, consumer_lags, partition_position

from fixtures import meta, order_placed, raw

T0 = 1_764_064_800_000
COMMANDS = "app-product-commands"


@dataclass
class Message:
    """What a probe reads of a record (and its topic partition)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


class Writer:
    """A product writer whose steps go through a probe, as in the product agent."""

    def __init__(self, metrics: Metrics, *, log: DecisionLog | None = None) -> None:
        self.store = MemoryStore()
        self.writer = ProductWriter(self.store, Policy())
        self.progress = Progress()
        self.probe = metrics.probe("products", self.progress.applied, log)
        self.offset = 0

    def send(self, command: Any, *, at: int = T0) -> Step:
        value = encode(command) if not isinstance(command, bytes) else command
        message = Message(COMMANDS, 1, self.offset, value)
        step = self.writer.handle(
            value, meta(COMMANDS, partition=1, offset=self.offset, timestamp_ms=at)
        )
        self.probe(message.tp, message, step, 0.0)
        self.offset += 1
        return step


def reserve(order_id: str, quantity: int = 1, product_id: str = "p") -> Reserve:
    return Reserve(
        order_id=order_id,
        product_id=product_id,
        quantity=quantity,
        expires_at_ms=T0 + 60_000,
        reply_partition=0,
    )


# --- event types -------------------------------------------------------------------------------


def test_every_known_type_is_a_model_stockflow_reads_or_writes() -> None:
    models = {model.__name__ for model in (*INPUT_EVENT_TYPES, *OUTPUT_EVENT_TYPES)}
    assert models <= set(EVENT_TYPES)
    internal = set(EVENT_TYPES) - models
    assert internal == {
        "Reserve",
        "Confirm",
        "Release",
        "SetStock",
        "AdjustStock",
        "FireTimers",
        "LineAnswer",
    }


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (encode(reserve("o")), "Reserve"),
        (order_placed("o", ("p", 1)), "OrderPlaced"),
        (b'{ "order_id": "o", "type" : "OrderPaid" }', "OrderPaid"),
        (b'{"type":"Bogus"}', "other"),
        (b'{"type": 3}', "other"),
        (b"not json", "other"),
        (b'{"type":"Reserv', "other"),
        (b"", "other"),
        (None, "other"),
    ],
)
def test_event_type_reads_the_type_without_parsing(record: bytes | None, expected: str) -> None:
    assert event_type(record) == expected


def test_the_product_partition_is_kafkas_default_partitioner() -> None:
    # Routing relies on it: stockflow's producer sends product commands keyed by product id.
    partitioner = DefaultPartitioner()
    for n in (1, 4, 8, 12):
        for key in (b"sku-1", b"last-item", "ünï".encode(), b"a/b c", b"x" * 300):
            assert partition_for(key, n) == partitioner(key, list(range(n)), list(range(n)))


# --- counters ----------------------------------------------------------------------------------


def test_the_probe_counts_events_decisions_and_freshness() -> None:
    metrics = Metrics()
    shop = Writer(metrics)
    shop.send(SetStock(product_id="p", on_hand=2, source="inv/0/0"))
    shop.send(reserve("o-1", 2))
    shop.send(reserve("o-2", 1))  # refused: nothing left
    shop.send(reserve("o-1", 2))  # duplicate: the same events again
    shop.send(Release(order_id="o-1", product_id="p", reason="expired"))
    shop.send(b"garbage")

    assert value(metrics, "stockflow_events_in_total", topic=COMMANDS, type="Reserve") == 3
    assert value(metrics, "stockflow_events_in_total", topic=COMMANDS, type="SetStock") == 1
    assert value(metrics, "stockflow_events_in_total", topic=COMMANDS, type="invalid") == 1
    assert value(metrics, "stockflow_events_out_total", type="ProductReserved") == 2
    assert value(metrics, "stockflow_events_out_total", type="LineAnswer") == 3
    assert value(metrics, "stockflow_events_out_total", type="DeadLetter") == 1
    assert value(metrics, "stockflow_decisions_total", outcome="line_reserved", reason="none") == 2
    assert (
        value(
            metrics,
            "stockflow_decisions_total",
            outcome="line_refused",
            reason="insufficient_stock",
        )
        == 1
    )
    assert value(metrics, "stockflow_decisions_total", outcome="released", reason="expired") == 1
    assert value(metrics, "stockflow_expiries_total") == 1
    assert value(metrics, "stockflow_dead_letters_total", topic=COMMANDS) == 1
    assert value(metrics, "stockflow_processing_seconds_count", agent="products") == 6
    assert shop.progress.applied == {(COMMANDS, 1): 5}


def test_order_outcomes_are_counted_by_reason() -> None:
    metrics = Metrics()
    desk = OrderDesk(MemoryStore(), Policy(max_lines=1))
    probe = metrics.probe("orders", {})
    for offset, record in enumerate(
        [order_placed("big", ("a", 1), ("b", 1)), raw({"type": "OrderPaid", "order_id": "x"})]
    ):
        at = meta("orders", offset=offset, timestamp_ms=T0, key=None)
        message = Message("orders", 0, offset, record)
        probe(message.tp, message, desk.handle_order(record, at), 0.0)
    assert (
        value(metrics, "stockflow_decisions_total", outcome="rejected", reason="invalid_order") == 1
    )
    assert (
        value(
            metrics, "stockflow_decisions_total", outcome="confirm_failed", reason="unknown_order"
        )
        == 1
    )
    assert value(metrics, "stockflow_events_in_total", topic="orders", type="OrderPlaced") == 1


def test_partial_reservations_and_unknown_reasons_are_bounded_labels() -> None:
    metrics = Metrics()
    probe = metrics.probe("orders", {})
    partial = b'{"type":"OrderReserved","order_id":"o","lines":[],"expires_at":"x","partial":true,'
    partial += b'"refused":[{"product_id":"p","quantity":1,"reason":"insufficient_stock"}]}'
    odd = b'{"type":"OrderRejected","order_id":"o","reason":"made-up","lines":[]}'
    step = Step(outputs=[Out("reservations", b"o", partial), Out("reservations", b"o", odd)])
    probe(("orders", 0), Message("orders", 0, 0, b"{}"), step, 0.0)
    assert value(metrics, "stockflow_decisions_total", outcome="reserved", reason="partial") == 1
    assert value(metrics, "stockflow_decisions_total", outcome="rejected", reason="other") == 1


def test_latency_histogram_buckets_are_cumulative() -> None:
    metrics = Metrics()
    probe = metrics.probe("products", {})
    step = Step()
    for started in (0.0, 1e12):  # perf_counter() - 0.0 is huge; - 1e12 is negative: first bucket
        probe(("t", 0), Message("t", 0, 0, None), step, started)
    first = repr(LATENCY_BUCKETS[0])
    assert value(metrics, "stockflow_processing_seconds_bucket", agent="products", le=first) == 1
    assert value(metrics, "stockflow_processing_seconds_bucket", agent="products", le="+Inf") == 2


def test_each_app_has_its_own_registry_and_gauges_come_from_callbacks() -> None:
    one, two = Metrics(), Metrics()
    one.pending_source = lambda: 7
    one.lag_source = lambda: [("orders", 3, 12)]
    two.pending_source = lambda: 1 // 0  # a broken gauge must not break the scrape

    assert value(one, "stockflow_reservations_pending") == 7
    assert value(one, "stockflow_consumer_lag", topic="orders", partition="3") == 12
    assert value(two, "stockflow_reservations_pending") is None
    assert value(two, "stockflow_expiries_total") == 0
    assert one.registry is not two.registry
    assert REGISTRY.get_sample_value("stockflow_expiries_total") is None  # not the global one


# --- freshness -----------------------------------------------------------------------------------


def test_the_writer_records_the_input_that_last_changed_a_product() -> None:
    metrics = Metrics()
    shop = Writer(metrics)
    shop.send(SetStock(product_id="p", on_hand=1, source="inv/0/0"), at=T0)
    shop.send(reserve("o-1"), at=T0 + 5)
    shop.send(reserve("o-2"), at=T0 + 9)  # refused: the counters do not change

    record = decode_stock(shop.store.get(stock_key("p")) or b"")
    assert (record.offset, record.event_ms) == (1, T0 + 5)


def test_state_written_before_freshness_existed_still_decodes() -> None:
    old = b'{"stock":{"on_hand":3,"reserved":1,"next_seq":1},"wal_key":null,"wal_value":null}'
    record = decode_stock(old)
    assert (record.stock.on_hand, record.offset, record.event_ms) == (3, None, None)
    assert decode_stock(encode_stock(record)) == record
    assert isinstance(record, StockRecord)


class FakeConsumer:
    def __init__(self, highwaters: dict[tuple[str, int], int], committed: dict[Any, int]) -> None:
        self.highwaters = highwaters
        self._committed_offset = committed

    def highwater(self, tp: tuple[str, int]) -> int | None:
        if tp not in self.highwaters:
            raise AssertionError("Partition is not assigned")
        return self.highwaters[tp]


class FakeAssignor:
    def __init__(self, actives: set[Any]) -> None:
        self.actives = actives

    def assigned_actives(self) -> set[Any]:
        return self.actives


class FakeApp:
    def __init__(self, consumer: FakeConsumer, actives: set[Any]) -> None:
        self.consumer = consumer
        self.assignor = FakeAssignor(actives)


def test_lag_is_highwater_minus_the_next_offset_to_apply() -> None:
    from faust.types import TP

    progress = Progress()
    consumer = FakeConsumer({TP("c", 0): 10, TP("c", 1): 4, TP("o", 0): 0}, {TP("c", 1): 3})
    app = FakeApp(consumer, {TP("c", 0), TP("c", 1), TP("o", 0), TP("x", 0)})

    # Nothing applied yet: from the committed offset (or the start).
    assert partition_position(app, progress, "c", 0)["lag"] == 10
    assert partition_position(app, progress, "c", 1) == {
        "topic": "c",
        "partition": 1,
        "position": 3,
        "highwater": 4,
        "lag": 1,
    }
    progress.applied[TP("c", 0)] = 6  # what the agent's probe writes
    assert partition_position(app, progress, "c", 0)["lag"] == 3
    progress.applied[TP("c", 1)] = 1  # stale: another worker went further since
    assert partition_position(app, progress, "c", 1)["position"] == 3
    assert partition_position(app, progress, "c", 9)["lag"] is None  # not ours: unknown
    assert consumer_lags(app, progress, ["c", "o"]) == [("c", 0, 3), ("c", 1, 1), ("o", 0, 0)]


# --- logs --------------------------------------------------------------------------------------


def _capture(logger_name: str, formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(logger_name)
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_json_formatter_writes_one_object_per_line_with_extras() -> None:
    logger, stream = _capture("test.json", JsonFormatter())
    logger.info("hello %s", "world", extra={"order_id": "o-1", "product_id": "p"})
    try:
        raise ValueError("boom\nwith a newline")
    except ValueError:
        logger.exception("failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "hello world"
    assert (first["order_id"], first["product_id"], first["level"]) == ("o-1", "p", "INFO")
    assert first["ts"].endswith("Z") and first["logger"] == "test.json"
    assert "ValueError: boom" in second["exc"]


def test_every_decision_line_names_its_order_and_product() -> None:
    logger, stream = _capture("test.decisions", JsonFormatter())
    metrics = Metrics()
    shop = Writer(metrics, log=DecisionLog(logger))
    shop.send(SetStock(product_id="p", on_hand=1, source="inv/0/0"))
    shop.send(reserve("o-1"))
    shop.send(reserve("o-2"))  # refused
    desk = OrderDesk(MemoryStore(), Policy(max_lines=1))
    big = order_placed("big", ("a", 1), ("b", 2))
    DecisionLog(logger).step(desk.handle_order(big, meta("orders", timestamp_ms=T0)))

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["decision"], line["order_id"], line["product_id"]) for line in lines] == [
        ("ProductReserved", "o-1", "p"),
        ("LineRefused", "o-2", "p"),
        ("OrderRejected", "big", "a"),
        ("OrderRejected", "big", "b"),
    ]
    assert lines[1]["reason"] == "insufficient_stock" and lines[1]["available"] == 0
    assert lines[2]["reason"] == "invalid_order"


def test_decision_logging_is_off_by_default_and_json_logs_are_a_faust_logging_config() -> None:
    assert Settings().log_decisions is False
    assert "logging_config" not in Settings().faust_kwargs()
    config = Settings(log_json=True).faust_kwargs()["logging_config"]
    assert config["merge"] is True
    factory = config["formatters"]["json"]["()"]
    module, _, name = factory.rpartition(".")
    assert getattr(sys.modules[module], name) is JsonFormatter
    assert config["handlers"]["default"]["formatter"] == "json"


class SaslAuthenticateRequest_v1:  # aiokafka's class name: what the filter recognises
    def __repr__(self) -> str:
        return "SaslAuthenticateRequest_v1(auth_bytes=b'alice\\x00alice\\x00secret')"


def logged(logger: logging.Logger, *args: object) -> str:
    """The message aiokafka's ``conn.send`` DEBUG line would show, after the logger's filters."""
    record = logger.makeRecord(
        logger.name, logging.DEBUG, __file__, 1, "%s Request %d: %s", args, None
    )
    assert all(f.filter(record) for f in logger.filters if isinstance(f, logging.Filter))
    return record.getMessage()


def test_sasl_tokens_are_redacted_from_aiokafkas_debug_lines() -> None:
    logger = logging.getLogger("aiokafka.conn")
    redact_sasl_tokens()
    redact_sasl_tokens()  # idempotent: one filter, whatever the number of SASL apps
    assert [type(f).__name__ for f in logger.filters].count("_RedactSaslTokens") == 1
    token = SaslAuthenticateRequest_v1()
    assert (
        logged(logger, "<conn>", 3, token)
        == "<conn> Request 3: SaslAuthenticateRequest(<redacted>)"
    )
    assert logged(logger, "<conn>", 4, "Metadata") == "<conn> Request 4: Metadata"


def test_sasl_settings_install_the_redaction() -> None:
    logger = logging.getLogger("aiokafka.conn")
    for existing in [f for f in logger.filters if type(f).__name__ == "_RedactSaslTokens"]:
        logger.removeFilter(existing)
    Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u").faust_kwargs()
    assert [type(f).__name__ for f in logger.filters].count("_RedactSaslTokens") == 1


def test_answers_applied_where_they_were_decided_are_counted() -> None:
    metrics = Metrics()
    assert value(metrics, "stockflow_local_answers_total", stage="applied") is None  # not wired
    answers = LocalAnswers()
    metrics.answers = answers
    answers.note(0, b"one", Step())
    answers.note(1, b"two", Step())
    answers.take(0, b"one")
    assert value(metrics, "stockflow_local_answers_total", stage="applied") == 2
    assert value(metrics, "stockflow_local_answers_total", stage="skipped") == 1


def test_commands_applied_where_they_were_published_are_counted() -> None:
    metrics = Metrics()
    assert value(metrics, "stockflow_local_commands_total", stage="applied") is None  # not wired
    here = CommandsHere()
    metrics.commands = here
    for offset in (4, 5, 7):
        here.add("tp", SimpleNamespace(offset=offset), "round")
    here.take({"tp": 4}.get, "round")  # 4 and 5 follow on; 7 is left to the fetch
    assert value(metrics, "stockflow_local_commands_total", stage="applied") == 2
    assert value(metrics, "stockflow_local_commands_total", stage="dropped") == 1
