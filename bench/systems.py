"""The systems under test, behind one small interface (:class:`bench.system.System`).

``stockflow``  a real worker process; ``stockflow-stream`` and ``stockflow-2w`` are variants of
               it (:mod:`bench.stockflow_systems`).
``pipe``       the baseline pipe (:mod:`bench.baseline_pipe`): the ceiling.
``quix``       the Quix Streams peer (:mod:`bench.quix_peer`).
``faust``      the pipe's path as plain Faust agents with stockflow's settings
               (:mod:`bench.faust_floor`); ``faust+6w`` adds 6 table writes per record.

Each is set up on its own fresh broker: topics created first (BROKER.md), then the process, then
the warm-up (:mod:`bench.system`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping

from bench import baseline_pipe, quix_peer
from bench.procs import ChildProcess
from bench.stockflow_systems import (
    StockflowPairSystem,
    StockflowStreamSystem,
    StockflowSystem,
    stockflow_env,
    stockflow_matcher,
)
from bench.system import ORDERS, RESERVATIONS, System
from stockflow.testing.broker import EmbeddedBroker
from stockflow.testing.worker import WorkerProcess

__all__ = [
    "ORDERS",
    "RESERVATIONS",
    "SYSTEMS",
    "FaustFloorSystem",
    "FaustWritesSystem",
    "PipeSystem",
    "QuixSystem",
    "StockflowPairSystem",
    "StockflowStreamSystem",
    "StockflowSystem",
    "System",
    "stockflow_env",
    "stockflow_matcher",
]


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

    def alive(self) -> bool:
        return self.child.alive()

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

    def alive(self) -> bool:
        return self.child.alive()

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

    def alive(self) -> bool:
        return self.worker is not None and self.worker.running

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
    "stockflow-2w": StockflowPairSystem,
    "pipe": PipeSystem,
    "quix": QuixSystem,
    "faust": FaustFloorSystem,
    "faust+6w": FaustWritesSystem,
}
