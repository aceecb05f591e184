"""The three systems under test, behind one small interface.

``stockflow``  a real worker process (``python -m faust -A stockflow worker``).
``pipe``       the baseline pipe (:mod:`bench.baseline_pipe`): the ceiling.
``quix``       the Quix Streams peer (:mod:`bench.quix_peer`).
``faust``      the pipe's path as plain Faust agents with stockflow's settings
               (:mod:`bench.faust_floor`); ``faust+6w`` adds 6 table writes per record.

Each is set up on its own fresh broker: topics created first (BROKER.md), then the process, then
a warm-up: every product's ``StockSet`` applied and a few warm-up orders answered, so that the
timed run starts on a hot path.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from bench import baseline_pipe, quix_peer
from bench.load import Tally, Workload, consume_outcomes, highwaters, produce, run_load
from bench.procs import ChildProcess
from stockflow.errors import BrokerError
from stockflow.testing.broker import EmbeddedBroker
from stockflow.testing.worker import WorkerProcess

__all__ = [
    "SYSTEMS",
    "FaustFloorSystem",
    "FaustWritesSystem",
    "PipeSystem",
    "QuixSystem",
    "StockflowStreamSystem",
    "StockflowSystem",
    "System",
    "stockflow_env",
    "stockflow_matcher",
]

ORDERS, INVENTORY, RESERVATIONS = "orders", "inventory", "reservations"
WARM_ORDERS = 200
SETSTOCK_WRITES = 3
"""Changelog writes of one applied StockSet: gc timer, counters, applied marker."""


def stockflow_matcher(key: bytes, value: bytes) -> str | None:
    """The order-level outcome (``OrderReserved``/``OrderRejected``), not ``ProductReserved``:
    ``reserved`` or ``rejected: REASON``."""
    if value.startswith(b'{"type":"OrderReserved"'):
        return "reserved"
    if value.startswith(b'{"type":"OrderRejected"'):
        return f"rejected: {json.loads(value).get('reason')}"
    return None


def stockflow_env(broker: EmbeddedBroker, partitions: int, **overrides: str) -> dict[str, str]:
    """Worker settings: stockflow's defaults, with the group timeouts the embedded broker needs
    (BROKER.md: ready in ~3 s instead of 30-110 s), plus ``overrides``."""
    env = {
        "STOCKFLOW_BROKER": broker.url,
        "STOCKFLOW_PARTITIONS": str(partitions),
        "STOCKFLOW_APP_ID": "stockflow",
        "STOCKFLOW_SESSION_TIMEOUT": "3.0",
        "STOCKFLOW_HEARTBEAT_INTERVAL": "0.5",
        "STOCKFLOW_REBALANCE_TIMEOUT": "3.0",
        "STOCKFLOW_WEB_BIND": "127.0.0.1",
    }
    env.update(overrides)
    return env


class System:
    """Base: subclasses set up topics, start a process and say how outcomes look."""

    name = "?"
    stock_topic = ORDERS
    matcher: Any = None

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        self.broker = broker
        self.partitions = partitions

    @property
    def pid(self) -> int | None:
        raise NotImplementedError

    def parts(self, load: Workload) -> int:
        """Output records that make one order's outcome."""
        return load.lines

    def start(self, timeout: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        return ""

    async def _stock_applied(self, load: Workload, timeout: float) -> None:
        """Block until every StockSet was applied (the pipe and peer acknowledge each one)."""
        tally = Tally(want=load.products + 1, parts=1)
        await consume_outcomes(
            self.broker.bootstrap, RESERVATIONS, b"sku-", lambda k, v: "ack", tally, timeout=timeout
        )
        if not tally.done:
            raise BrokerError(f"{self.name}: {len(tally.arrived)} of {tally.want} stock acks")

    async def warm(self, load: Workload, timeout: float) -> None:
        await produce(self.broker.bootstrap, self.stock_topic, load.stock_records())
        await self._stock_applied(load, timeout)
        _sent, tally = await run_load(
            self.broker.bootstrap,
            ORDERS,
            RESERVATIONS,
            load.warm_records(WARM_ORDERS),
            f"warm-{load.prefix}",
            self.matcher,
            parts=1,
            timeout=timeout,
        )
        if not tally.done:
            raise BrokerError(f"{self.name}: warm-up answered {len(tally.arrived)} orders")


class StockflowSystem(System):
    name = "stockflow"
    stock_topic = INVENTORY
    matcher = staticmethod(stockflow_matcher)

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions)
        self.env = stockflow_env(broker, partitions, **dict(env or {}))
        app_id = self.env["STOCKFLOW_APP_ID"]
        self.changelogs = [f"{app_id}-{app_id}-{t}-changelog" for t in ("products", "orders")]
        self.worker: WorkerProcess | None = None
        self.ready_s: float | None = None

    @property
    def pid(self) -> int | None:
        return None if self.worker is None else self.worker.pid

    def parts(self, load: Workload) -> int:
        return 1  # the saga emits one order-level outcome

    def create_topics(self) -> None:
        from stockflow.settings import Settings

        settings = Settings(broker=self.broker.url, app_id=self.env["STOCKFLOW_APP_ID"])
        names = [*settings.all_topics(), *self.changelogs]
        self.broker.create_topics(names, partitions=self.partitions)

    def start(self, timeout: float) -> None:
        self.create_topics()
        # BENCH_* settings select an experimental build of the same worker (bench.variants).
        variant = any(key.startswith("BENCH_") for key in self.env)
        app = "bench.variants" if variant else "stockflow"
        self.worker = WorkerProcess(self.env, app=app).start()
        self.ready_s = self.worker.wait_ready(timeout)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def log_tail(self) -> str:
        return "" if self.worker is None else self.worker.log_text()[-3000:]

    async def _stock_applied(self, load: Workload, timeout: float) -> None:
        """StockSet has no output: wait until the product changelog holds its writes."""
        want = SETSTOCK_WRITES * (load.products + 1)
        deadline = time.monotonic() + timeout
        while True:
            ends = await highwaters(self.broker.bootstrap, self.changelogs[0])
            if sum(ends.values()) >= want:
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"stock not applied: {sum(ends.values())} of {want} writes")
            await asyncio.sleep(0.3)


class StockflowStreamSystem(StockflowSystem):
    """The same worker on Faust's per-record stream path (``STOCKFLOW_CONSUMER=stream``): the
    A/B of the batch consumer, in the same run."""

    name = "stockflow-stream"

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions, {**dict(env or {}), "STOCKFLOW_CONSUMER": "stream"})


def _fetch_wait(env: Mapping[str, str] | None) -> str:
    """The pipe and the peer take stockflow's fetch-wait setting, so all three wait alike."""
    return (env or {}).get("STOCKFLOW_FETCH_MAX_WAIT_MS", "50")


class PipeSystem(System):
    name = "pipe"
    matcher = staticmethod(baseline_pipe.matcher)

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions)
        self.child = ChildProcess(
            "bench.baseline_pipe",
            ["--bootstrap", broker.bootstrap, "--fetch-wait-ms", _fetch_wait(env)],
        )

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def start(self, timeout: float) -> None:
        names = [ORDERS, baseline_pipe.MIDDLE_TOPIC, RESERVATIONS]
        self.broker.create_topics(names, partitions=self.partitions)
        self.child.start()

    def stop(self) -> None:
        self.child.stop()

    def log_tail(self) -> str:
        return self.child.log_tail()


class QuixSystem(System):
    name = "quix"
    matcher = staticmethod(quix_peer.matcher)

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions)
        state_dir = tempfile.mkdtemp(prefix="stockflow-bench-quix-")
        self.child = ChildProcess(
            "bench.quix_peer",
            [
                "--bootstrap",
                broker.bootstrap,
                "--state-dir",
                state_dir,
                "--fetch-wait-ms",
                _fetch_wait(env),
            ],
        )

    @property
    def pid(self) -> int | None:
        return self.child.pid

    def start(self, timeout: float) -> None:
        self.broker.create_topics(
            [ORDERS, RESERVATIONS], partitions=self.partitions, config=quix_peer.RETENTION
        )
        self.child.start()

    def stop(self) -> None:
        self.child.stop()

    def log_tail(self) -> str:
        return self.child.log_tail()


class FaustFloorSystem(System):
    """:mod:`bench.faust_floor` in a worker process, with stockflow's settings and ``writes``
    table writes per record."""

    name = "faust"
    writes = 0
    matcher = staticmethod(baseline_pipe.matcher)

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions)
        self.env = stockflow_env(broker, partitions, **dict(env or {}))
        self.env.update(STOCKFLOW_APP_ID="floor", BENCH_FLOOR_WRITES=str(self.writes))
        self.worker: WorkerProcess | None = None

    @property
    def pid(self) -> int | None:
        return None if self.worker is None else self.worker.pid

    def start(self, timeout: float) -> None:
        from bench.faust_floor import BY_PRODUCT, TABLE

        names = [ORDERS, BY_PRODUCT, RESERVATIONS, f"floor-{TABLE}-changelog"]
        self.broker.create_topics(names, partitions=self.partitions)
        self.worker = WorkerProcess(self.env, app="bench.faust_floor").start()
        self.worker.wait_ready(timeout)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def log_tail(self) -> str:
        return "" if self.worker is None else self.worker.log_text()[-3000:]


class FaustWritesSystem(FaustFloorSystem):
    """The Faust floor with as many changelogged table writes per order as stockflow makes."""

    name = "faust+6w"
    writes = 6


SYSTEMS: dict[str, type[System]] = {
    "stockflow": StockflowSystem,
    "stockflow-stream": StockflowStreamSystem,
    "pipe": PipeSystem,
    "quix": QuixSystem,
    "faust": FaustFloorSystem,
    "faust+6w": FaustWritesSystem,
}
