"""One embedded broker, stockflow's topics, and worker processes: what an integration test,
the demo or a chaos run needs, with helpers to send events and read decisions and state."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from stockflow.errors import BrokerError
from stockflow.fencing import Fence
from stockflow.kafka import bootstrap_servers
from stockflow.keys import ENTRY_KEYS, STOCK_KEYS, product_of
from stockflow.models import OrderPlaced, StockSet
from stockflow.settings import Settings
from stockflow.testing.broker import EmbeddedBroker, create_topics
from stockflow.testing.topics import Record, consumed_to_end, produce, read_topics, wait_for
from stockflow.testing.worker import LOOPBACK_ENV, WorkerProcess, fast_test_env
from stockflow.topics import required_topics

__all__ = ["OUTCOME_TYPES", "Harness", "compact_changelog", "fold_changelog", "outcome_counts"]

OUTCOME_TYPES = frozenset({"OrderReserved", "OrderRejected"})


def fold_changelog(records: Iterable[Record]) -> dict[str, bytes]:
    """A table's current contents from its changelog: the last value per key, deletes applied,
    records written by a worker that had lost their partition skipped (:mod:`stockflow.fencing`),
    as a restore does."""
    state: dict[str, bytes] = {}
    fence = Fence()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key is None or not fence.admit(record.partition, record.epoch):
            continue
        key = record.key.decode()
        if record.value is None:
            state.pop(key, None)
        else:
            state[key] = record.value
    return state


def compact_changelog(records: Iterable[Record]) -> list[Record]:
    """What a compacting broker (``cleanup.policy=compact``) keeps of a changelog at the most:
    each key's last record per partition, in offset order. Its fold must say what the whole
    log's says (a worker writes a lost writer's keys again, :mod:`stockflow._faust.repairs`)."""
    last: dict[tuple[int, bytes | None], Record] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        last[(record.partition, record.key)] = record
    return sorted(last.values(), key=lambda r: (r.partition, r.offset))


class Harness:
    """A broker on a free port, every stockflow topic created, workers started on demand.

    ``env`` overrides ``STOCKFLOW_*`` settings for every worker. Everything is stopped by PID in
    :meth:`close`.
    """

    def __init__(
        self,
        *,
        partitions: int = 4,
        env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        broker_url: str | None = None,
        precreate: Literal["all", "inputs", "none"] = "all",
        test_timeouts: bool = True,
    ) -> None:
        """``broker_url`` (``kafka://host:port``) uses a running broker instead of starting an
        embedded one. ``precreate``: which topics :meth:`start` creates with ``partitions``
        partitions: ``all`` of :func:`stockflow.topics.required_topics`, the ``inputs`` only
        (the README's set-up), or ``none`` (the worker provisions everything).
        ``test_timeouts``: the short group timeouts and intervals of :func:`fast_test_env`;
        off, the workers run at the settings' defaults (as a production worker does)."""
        self.precreate = precreate
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="stockflow-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.external_url = broker_url
        self.broker = EmbeddedBroker(log_path=self.workdir / "broker.log")
        self.partitions = partitions
        app_id = f"sf{uuid.uuid4().hex[:8]}"
        timing = fast_test_env() if test_timeouts else LOOPBACK_ENV
        self.env: dict[str, str] = {
            **timing,
            "STOCKFLOW_APP_ID": app_id,
            "STOCKFLOW_PARTITIONS": str(partitions),
            **dict(env or {}),
        }
        self.workers: list[WorkerProcess] = []

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Harness:
        if self.external_url is None:
            self.broker.start()
        self.env["STOCKFLOW_BROKER"] = self.external_url or self.broker.url
        specs = [
            spec
            for spec in required_topics(self.settings)
            if self.precreate == "all" or (self.precreate == "inputs" and spec.role == "input")
        ]
        groups: dict[tuple[int, tuple[tuple[str, str], ...]], list[str]] = {}
        for spec in specs:
            groups.setdefault((spec.partitions, tuple(spec.config.items())), []).append(spec.name)
        for (partitions, config), names in groups.items():
            asyncio.run(
                create_topics(self.bootstrap, names, partitions=partitions, config=dict(config))
            )
        return self

    def close(self) -> None:
        """Stop every worker, then the broker, each by PID: all of them even when one stop
        fails (its error is raised afterwards), so that nothing is left running."""
        errors: list[Exception] = []
        for worker in self.workers:
            try:
                worker.stop()
            except Exception as exc:  # re-raised below, after the others are stopped
                errors.append(exc)
        self.broker.stop()
        if errors:
            raise errors[0]

    def __enter__(self) -> Harness:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def settings(self) -> Settings:
        env = {k.removeprefix("STOCKFLOW_").lower(): v for k, v in self.env.items()}
        return Settings.model_validate(env)

    @property
    def bootstrap(self) -> str:
        """``host:port[,host:port]`` of the broker in use."""
        if self.external_url is None:
            return self.broker.bootstrap
        return bootstrap_servers(self.external_url)

    def worker(self, name: str | None = None, **env: str) -> WorkerProcess:
        """A new (not yet started) worker with its own data directory."""
        name = name or f"worker{len(self.workers) + 1}"
        worker = WorkerProcess(
            {**self.env, **env},
            datadir=self.workdir / name,
            log_path=self.workdir / f"{name}.log",
        )
        self.workers.append(worker)
        return worker

    def start_worker(self, name: str | None = None, *, timeout: float = 60.0) -> WorkerProcess:
        worker = self.worker(name).start()
        worker.wait_ready(timeout)
        return worker

    @staticmethod
    def wipe_state(worker: WorkerProcess) -> None:
        """Delete a stopped worker's local RocksDB state (it must restore from changelogs)."""
        for child in worker.datadir.iterdir():
            if child.is_dir():
                shutil.rmtree(child)

    # --- events --------------------------------------------------------------------------------

    def send(self, records: Iterable[tuple[str, Any, Any]]) -> int:
        """Send ``(logical topic, key, value)``: ``orders``/``inventory`` map to the settings."""
        names = {"orders": self.settings.orders_topic, "inventory": self.settings.inventory_topic}
        return asyncio.run(
            produce(self.bootstrap, [(names.get(t, t), k, v) for t, k, v in records])
        )

    def stock(self, product_id: str, on_hand: int, *, timeout: float = 30.0) -> None:
        """Send a recount and wait until the product's state shows it.

        Stock and orders reach a product through different topics, so an order sent right after
        a recount may be decided before it (and refused as ``unknown_product``): waiting here
        makes a test's intended order of events the real one."""
        self.stock_many({product_id: on_hand}, timeout=timeout)

    def stock_many(self, counts: Mapping[str, int], *, timeout: float = 30.0) -> None:
        self.send(
            [
                ("inventory", p, {"type": "StockSet", "product_id": p, "on_hand": n})
                for p, n in counts.items()
            ]
        )
        deadline = time.monotonic() + timeout
        while True:
            state = self.stock_state()
            if all(state.get(p, {}).get("on_hand") == n for p, n in counts.items()):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"stock {dict(counts)} not applied in {timeout}s: {state}")
            time.sleep(0.2)

    def read(self, *topics: str) -> dict[str, list[Record]]:
        return asyncio.run(read_topics(self.bootstrap, topics))

    def decisions(self) -> list[dict[str, Any]]:
        """Every record on the reservations topic, parsed."""
        name = self.settings.reservations_topic
        return [record.json() for record in self.read(name)[name]]

    def dead_letters(self) -> list[dict[str, Any]]:
        name = self.settings.dead_letter_topic
        return [record.json() for record in self.read(name)[name]]

    def wait_outcomes(
        self, order_ids: Iterable[str], *, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Wait until every order has an outcome; returns all decisions."""
        wanted = set(order_ids)
        name = self.settings.reservations_topic

        def done(seen: dict[str, list[Record]]) -> bool:
            decided = {
                r.json()["order_id"] for r in seen[name] if r.json()["type"] in OUTCOME_TYPES
            }
            return wanted <= decided

        seen = wait_for(self.bootstrap, [name], done, timeout=timeout)
        return [record.json() for record in seen[name]]

    def wait_decisions(self, predicate: Any, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until ``predicate(decisions)`` holds; returns all decisions."""
        name = self.settings.reservations_topic

        def done(seen: dict[str, list[Record]]) -> bool:
            return bool(predicate([record.json() for record in seen[name]]))

        seen = wait_for(self.bootstrap, [name], done, timeout=timeout)
        return [record.json() for record in seen[name]]

    def feed_recording(
        self, lines: Iterable[str], *, timeout: float = 60.0, keep_timestamps: bool = False
    ) -> None:
        """Send a recording (``stockflow replay``'s line format) to the running workers one
        record at a time, waiting for an order's outcome or a recount's effect before the next
        record, so that the workers see the records in the order the offline replay does.

        Records are stamped now unless ``keep_timestamps``: a live worker's timers follow the
        wall clock, so reservations of an old recording would all expire at once."""
        from stockflow.replay import parse_lines

        names = {"orders": self.settings.orders_topic, "inventory": self.settings.inventory_topic}
        for _number, record in parse_lines(lines):
            topic = names.get(record.topic, record.topic)
            asyncio.run(
                produce(
                    self.bootstrap,
                    [(topic, record.key, record.value)],
                    timestamps=[record.timestamp_ms if keep_timestamps else None],
                )
            )
            event = _valid_input(record.topic, names, record.key, record.value)
            if isinstance(event, OrderPlaced):
                self.wait_outcomes([event.order_id], timeout=timeout)
                time.sleep(0.2)  # compensations are one hop behind the outcome
            elif isinstance(event, StockSet):
                self._wait_stock(event.product_id, event.on_hand, timeout)
            else:
                time.sleep(0.3)  # dead letters and lifecycle answers: one hop

    def _wait_stock(self, product_id: str, on_hand: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stock_state().get(product_id, {}).get("on_hand") == on_hand:
                return
            time.sleep(0.2)

    # --- state ---------------------------------------------------------------------------------

    def wait_settled(self, *, timeout: float = 60.0, interval: float = 0.2) -> None:
        """Wait until the workers have processed and committed every record of the topics they
        consume, twice in a row with the same ends (a record processed may cause another, one
        hop later). Decisions can be on the broker before the table changes they come with are
        acknowledged on the changelog; a worker commits its input only after they are, so the
        changelog then holds every change behind every decision on the topics."""
        settings = self.settings
        consumed = [
            settings.orders_topic,
            settings.inventory_topic,
            settings.product_commands_topic,
            settings.order_replies_topic,
        ]
        deadline = time.monotonic() + timeout
        previous: dict[str, int] | None = None
        while True:
            caught_up, ends = asyncio.run(
                consumed_to_end(self.bootstrap, settings.app_id, consumed)
            )
            if caught_up and ends == previous:
                return
            previous = ends if caught_up else None
            if time.monotonic() > deadline:
                raise BrokerError(f"workers did not catch up with {ends} in {timeout}s")
            time.sleep(interval)

    def changelog_topic(self, table: str) -> str:
        """Faust's name of the ``products`` or ``orders`` changelog (the app id is Faust's)."""
        app_id = self.settings.app_id
        return f"{app_id}-{app_id}-{table}-changelog"

    def changelog(self, table: str, *, compacted: bool = False) -> dict[str, bytes]:
        """Current contents of ``products`` or ``orders`` state, folded from the changelog
        (``compacted``: from what a compacting broker would keep of it)."""
        records = self.changelog_records(table)
        return fold_changelog(compact_changelog(records) if compacted else records)

    def changelog_records(self, table: str) -> list[Record]:
        """Every record of the ``products`` or ``orders`` changelog."""
        topic = self.changelog_topic(table)
        return self.read(topic)[topic]

    def stock_state(self) -> dict[str, dict[str, int]]:
        """``{product_id: {"on_hand", "reserved", "pending_sum"}}`` from the changelog."""
        from stockflow.processing.codec import decode_entry, decode_stock

        result: dict[str, dict[str, int]] = {}
        state = self.changelog("products")
        for key, value in state.items():
            if key.startswith(STOCK_KEYS):
                product = product_of(key)
                stock = decode_stock(value).stock
                result.setdefault(product, {"pending_sum": 0}).update(
                    on_hand=stock.on_hand, reserved=stock.reserved
                )
        for key, value in state.items():
            if key.startswith(ENTRY_KEYS):
                entry = decode_entry(value)
                if entry.status == "pending":
                    result.setdefault(entry.product_id, {"pending_sum": 0})
                    result[entry.product_id]["pending_sum"] += entry.quantity
        return result


def _valid_input(
    topic: str, names: Mapping[str, str], key: bytes | None, value: bytes | None
) -> object:
    """The parsed input event, or ``None`` if the worker will dead-letter it."""
    from pydantic import ValidationError

    from stockflow.models import INVENTORY_EVENT_ADAPTER, ORDER_EVENT_ADAPTER

    adapter: Any = ORDER_EVENT_ADAPTER if topic in ("orders", names["orders"]) else None
    if topic in ("inventory", names["inventory"]):
        adapter = INVENTORY_EVENT_ADAPTER
    if adapter is None or value is None:
        return None
    try:
        event = adapter.validate_json(value)
    except ValidationError:
        return None
    order_id = getattr(event, "order_id", None)
    if order_id is not None and key is not None and key != order_id.encode():
        return None  # keyed by something else: dead-lettered
    return event


def outcome_counts(decisions: Iterable[Mapping[str, Any]]) -> Counter[str]:
    return Counter(d["type"] for d in decisions)
