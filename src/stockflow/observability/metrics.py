"""Prometheus metrics of one stockflow app, served at ``/metrics`` (see :mod:`stockflow.web`).

The hot path stays cheap: per processed record an agent calls one :class:`StepProbe`, which only
increments plain ``int`` entries of dictionaries (no prometheus-client objects, no locks; a worker
is one event loop). A custom collector turns those counts into metric families when the registry
is scraped; gauges (pending reservations, consumer lag) are computed then too, from callbacks.

Each app gets its own :class:`prometheus_client.CollectorRegistry`, never the global default, so
several apps (tests, an app embedding stockflow) cannot clash.

Metrics (label values are bounded, see :mod:`stockflow.observability.labels`)::

    stockflow_events_in_total{topic,type}       records consumed by the agents (type "invalid":
                                                dead-lettered; "other": no known type)
    stockflow_events_out_total{type}            records produced (events and internal commands)
    stockflow_decisions_total{outcome,reason}   decisions published (see OUTCOMES)
    stockflow_dead_letters_total{topic}         inputs dead-lettered, by the topic they came from
    stockflow_expiries_total                    reservations released because they expired
    stockflow_processing_seconds{agent}         histogram: one record's processing and sends
    stockflow_reservations_pending              gauge: units held by pending reservations on this
                                                worker's active partitions (scanned at scrape)
    stockflow_consumer_lag{topic,partition}     gauge: records not yet processed, per partition
    stockflow_event_loop_stall_seconds          histogram: how late the event loop ran a 0.25 s
                                                timer (its heartbeats wait as long; see
                                                :mod:`stockflow.observability.loop_watch`)

Counts are of records emitted: an identical outcome re-emitted for a duplicated input counts
again, as it does on the topic.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from stockflow.observability.labels import (
    EXPIRED,
    LATENCY_BUCKETS,
    NONE,
    NOT_REFUSED,
    OTHER,
    OUTCOME_BY_NAME,
    OUTCOMES,
    PARTIAL,
    PREFIX,
    START,
    TYPE_BY_NAME,
    event_type,
    reason_of,
)
from stockflow.observability.loop_watch import INTERVAL, STALL_BUCKETS

if TYPE_CHECKING:
    from stockflow.observability.logs import DecisionLog
    from stockflow.processing.records import Step

__all__ = ["AnswerCounts", "CommandCounts", "LagSource", "Metrics", "PendingSource", "StepProbe"]

log = logging.getLogger(__name__)

LagSource = Callable[[], Iterable[tuple[str, int, int]]]
"""Returns ``(topic, partition, lag)`` for each partition this worker processes."""
PendingSource = Callable[[], int | None]
"""Returns the units held by pending reservations on this worker (``None``: not known)."""


class AnswerCounts(Protocol):
    """:class:`stockflow._faust.answers.LocalAnswers`' counts, read at scrape time."""

    @property
    def applied(self) -> int: ...
    @property
    def skipped(self) -> int: ...


class CommandCounts(Protocol):
    """:class:`stockflow._faust.commands_here.CommandsHere`' counts, read at scrape time."""

    @property
    def applied(self) -> int: ...
    @property
    def dropped(self) -> int: ...


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = 0
        result: list[tuple[str, float]] = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            cumulative += count
            result.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        return result


def _counts() -> defaultdict[str, int]:
    return defaultdict(int)


class Metrics:
    """The counts of one app and the registry that exposes them.

    ``lag_source`` and ``pending_source`` are set by the wiring (:func:`stockflow.install`) and
    called at scrape time only.
    """

    def __init__(self, *, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.events_in: defaultdict[str, defaultdict[str, int]] = defaultdict(_counts)
        self.events_out: defaultdict[bytes, int] = defaultdict(int)
        self.decisions: defaultdict[str, defaultdict[str, int]] = defaultdict(_counts)
        self.dead_letters: defaultdict[str, int] = defaultdict(int)
        self.expiries = [0]
        self.latency: dict[str, _Histogram] = {}
        self.buckets = buckets
        self.loop_stalls = _Histogram(STALL_BUCKETS)
        self.lag_source: LagSource | None = None
        self.pending_source: PendingSource | None = None
        self.answers: AnswerCounts | None = None
        """Line answers the desk applied where they were decided (set by the wiring)."""
        self.commands: CommandCounts | None = None
        """Product commands applied where they were published (set by the wiring)."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def probe(
        self,
        agent: str,
        applied: MutableMapping[Any, int],
        decision_log: DecisionLog | None = None,
    ) -> StepProbe:
        """The per-record hook of one agent. ``applied`` receives each record's offset by
        topic partition (the read model's freshness)."""
        histogram = self.latency.setdefault(agent, _Histogram(self.buckets))
        return StepProbe(self, histogram, applied, decision_log)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class StepProbe:
    """Called after each record: ``probe(tp, record, step, started)`` where ``started`` is
    :func:`time.perf_counter` before the record was processed.

    Written for the hot path (about a microsecond per record): the output's ``type`` is read
    from stockflow's own encoding (``{"type":"...`` first), a line answer's refusal from how it
    ends (only a refusal has a reason), and nothing is parsed.
    """

    __slots__ = (
        "_applied",
        "_dead_letters",
        "_decision_log",
        "_decisions",
        "_events_in",
        "_events_out",
        "_expiries",
        "_histogram",
        "_plain",
        "_refused",
    )

    def __init__(
        self,
        metrics: Metrics,
        histogram: _Histogram,
        applied: MutableMapping[Any, int],
        decision_log: DecisionLog | None,
    ) -> None:
        self._applied = applied
        self._events_in = metrics.events_in
        self._events_out = metrics.events_out
        self._decisions = metrics.decisions
        self._dead_letters = metrics.dead_letters
        self._expiries = metrics.expiries
        self._histogram = histogram
        self._decision_log = decision_log
        # Decisions that never carry a reason: one counter each, found by type name.
        self._plain = {
            name.encode(): metrics.decisions[OUTCOMES[name]]
            for name in ("ProductReserved", "ReservationConfirmed", "StockShortfall")
        }
        self._refused = metrics.decisions["line_refused"]

    def __call__(self, tp: Any, record: Any, step: Step, started: float) -> None:
        self._applied[tp] = record.offset
        dead = False
        events_out = self._events_out
        for out in step.outputs:
            value = out.value
            name = value[START : value.find(b'"', START)]
            events_out[name] += 1
            role = out.role
            if role == "reservations":
                plain = self._plain.get(name)
                if plain is not None:
                    plain[NONE] += 1
                else:
                    self._decided(name, value)
            elif role == "order_replies":
                if not value.endswith(NOT_REFUSED):
                    self._refused[reason_of(value)] += 1
            elif role == "dead_letters":
                dead = True
        topic = record.topic
        by_type = self._events_in[topic]
        if dead:
            self._dead_letters[topic] += 1
            by_type["invalid"] += 1
        else:
            raw = record.value
            if raw is not None and raw.startswith(PREFIX):  # stockflow's own: no call
                by_type[TYPE_BY_NAME.get(raw[START : raw.find(b'"', START)], OTHER)] += 1
            else:
                by_type[event_type(raw)] += 1
        histogram = self._histogram
        seconds = perf_counter() - started
        histogram.counts[bisect_left(histogram.bounds, seconds)] += 1
        histogram.total += seconds
        if self._decision_log is not None:
            self._decision_log.step(step)

    def _decided(self, name: bytes, value: bytes) -> None:
        outcome = OUTCOME_BY_NAME.get(name, OTHER)
        if outcome == "reserved":  # "partial" comes after the lines, before the refused ones
            at = value.rfind(PARTIAL)
            partial = at >= 0 and value.startswith(b"true", at + len(PARTIAL))
            reason = "partial" if partial else NONE
        else:
            reason = reason_of(value)
            if reason == EXPIRED and outcome == "released":
                self._expiries[0] += 1
        self._decisions[outcome][reason] += 1


class _Collector:
    """Builds the metric families from :class:`Metrics` at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        events_in = CounterMetricFamily(
            "stockflow_events_in_total",
            "Records consumed by stockflow's agents, by topic and event type.",
            labels=["topic", "type"],
        )
        for topic, by_type in sorted(m.events_in.items()):
            for kind, count in sorted(by_type.items()):
                events_in.add_metric([topic, kind], count)
        yield events_in
        events_out = CounterMetricFamily(
            "stockflow_events_out_total",
            "Records produced by stockflow (public events and internal commands), by type.",
            labels=["type"],
        )
        by_label: defaultdict[str, int] = defaultdict(int)
        for name, count in m.events_out.items():
            by_label[TYPE_BY_NAME.get(name, OTHER)] += count
        for kind, count in sorted(by_label.items()):
            events_out.add_metric([kind], count)
        yield events_out
        decisions = CounterMetricFamily(
            "stockflow_decisions_total",
            "Decisions published, by outcome and reason.",
            labels=["outcome", "reason"],
        )
        for outcome, by_reason in sorted(m.decisions.items()):
            for reason, count in sorted(by_reason.items()):
                decisions.add_metric([outcome, reason], count)
        yield decisions
        dead = CounterMetricFamily(
            "stockflow_dead_letters_total",
            "Inputs sent to the dead-letter topic, by the topic they came from.",
            labels=["topic"],
        )
        for topic, count in sorted(m.dead_letters.items()):
            dead.add_metric([topic], count)
        yield dead
        yield CounterMetricFamily(
            "stockflow_expiries_total",
            "Reservations released because they expired.",
            value=m.expiries[0],
        )
        latency = HistogramMetricFamily(
            "stockflow_processing_seconds",
            "Time to process one record and hand its outputs to the producer, by agent.",
            labels=["agent"],
        )
        for agent, histogram in sorted(m.latency.items()):
            latency.add_metric([agent], histogram.buckets(), sum_value=histogram.total)
        yield latency
        stalls = HistogramMetricFamily(
            "stockflow_event_loop_stall_seconds",
            f"How late the worker's event loop ran a {INTERVAL:g} s timer (with the consumer on "
            "that loop, the default, its heartbeats waited as long).",
        )
        stalls.add_metric([], m.loop_stalls.buckets(), sum_value=m.loop_stalls.total)
        yield stalls
        if m.answers is not None:
            yield _stages(
                "stockflow_local_answers_total",
                "Line answer records the order desk applied in the worker that published them "
                "(applied), and those of them skipped when read back from the broker (skipped).",
                applied=m.answers.applied,
                skipped=m.answers.skipped,
            )
        if m.commands is not None:
            yield _stages(
                "stockflow_local_commands_total",
                "Product command records applied in the worker that published them once the "
                "broker acknowledged them (applied), and those left to the fetch: not next in "
                "their partition, or a rebalance came in between (dropped).",
                applied=m.commands.applied,
                dropped=m.commands.dropped,
            )
        yield from self._gauges()

    def _gauges(self) -> Iterator[Metric]:
        m = self.metrics
        if m.pending_source is not None:
            pending = _safely(m.pending_source, "reservations_pending")
            if pending is not None:
                yield GaugeMetricFamily(
                    "stockflow_reservations_pending",
                    "Units held by pending reservations on this worker's active partitions.",
                    value=pending,
                )
        if m.lag_source is not None:
            lag = GaugeMetricFamily(
                "stockflow_consumer_lag",
                "Records in a partition not yet processed by this worker.",
                labels=["topic", "partition"],
            )
            source = m.lag_source
            for topic, partition, behind in _safely(lambda: list(source()), "consumer_lag") or ():
                lag.add_metric([topic, str(partition)], behind)
            yield lag


def _safely(source: Callable[[], Any], what: str) -> Any:
    try:
        return source()
    except Exception:  # a gauge must never break the scrape (e.g. during a rebalance)
        log.warning("metrics: could not compute %s", what, exc_info=True)
        return None


def _stages(name: str, documentation: str, **counts: int) -> CounterMetricFamily:
    """A counter with one ``stage`` label value per keyword."""
    family = CounterMetricFamily(name, documentation, labels=["stage"])
    for stage, count in counts.items():
        family.add_metric([stage], count)
    return family
