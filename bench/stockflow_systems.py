"""stockflow's worker as a system under test.

``stockflow``         a real worker process (``python -m faust -A stockflow worker``).
``stockflow-stream``  the same worker on Faust's per-record stream path
                      (``STOCKFLOW_CONSUMER=stream``): the A/B of the batch consumer.
``stockflow-2w``      two workers in one group on the same broker (the scale-out section).

stockflow's ``StockSet`` has no output: its warm-up reads the stock back through the worker's
``GET /stock/{id}`` for the last product of every partition it was produced to (a partition
applies in order) and the warm-up product. It does not depend on how many changelog writes a
``StockSet`` makes, and it is bounded by the run's timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from bench.load import WARM_PRODUCT, Workload
from bench.system import INVENTORY, System
from stockflow.errors import BrokerError
from stockflow.testing.broker import EmbeddedBroker
from stockflow.testing.worker import WorkerProcess

__all__ = [
    "GROUP_SETTLE",
    "StockflowPairSystem",
    "StockflowStreamSystem",
    "StockflowSystem",
    "stockflow_env",
    "stockflow_matcher",
]

GROUP_SETTLE = 3.0
"""Several workers: the group is settled when no worker logged a new recovery for this long."""


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


class StockflowSystem(System):
    name = "stockflow"
    stock_topic = INVENTORY
    matcher = staticmethod(stockflow_matcher)
    count = 1
    """Workers in the group."""

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions)
        self.env = stockflow_env(broker, partitions, **dict(env or {}))
        app_id = self.env["STOCKFLOW_APP_ID"]
        self.changelogs = [f"{app_id}-{app_id}-{t}-changelog" for t in ("products", "orders")]
        self.workers: list[WorkerProcess] = []
        self.ready_s: float | None = None

    @property
    def worker(self) -> WorkerProcess | None:
        return self.workers[0] if self.workers else None

    @property
    def pid(self) -> int | None:
        return None if self.worker is None else self.worker.pid

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def alive(self) -> bool:
        return all(w.running for w in self.workers)

    def changelog_topics(self) -> list[str]:
        return list(self.changelogs)

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
        started = time.monotonic()
        for _ in range(self.count):
            self.workers.append(WorkerProcess(self.env, app=app).start())
        for worker in self.workers:
            worker.wait_ready(max(timeout - (time.monotonic() - started), 1.0))
        if self.count > 1:
            self._settle(started + timeout)
        self.ready_s = time.monotonic() - started

    def _settle(self, deadline: float) -> None:
        """Wait until no worker logged a new recovery for :data:`GROUP_SETTLE` s: the group's
        rebalances are over before the timed run starts."""
        counts = [w.ready_count() for w in self.workers]
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < GROUP_SETTLE:
            if not self.alive():
                raise BrokerError(f"{self.name}: a worker exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise BrokerError(f"{self.name}: the group did not settle ({counts} recoveries)")
            time.sleep(0.1)
            now = [w.ready_count() for w in self.workers]
            if now != counts:
                counts, quiet_since = now, time.monotonic()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def log_tail(self) -> str:
        return "\n".join(w.log_text()[-3000:] for w in self.workers)

    def stock_url(self, product_id: str) -> str:
        assert self.worker is not None
        quoted = urllib.parse.quote(product_id, safe="")
        return f"http://127.0.0.1:{self.worker.web_port}/stock/{quoted}"

    async def _stock_applied(
        self, load: Workload, timeout: float, partition_of: Mapping[bytes, int]
    ) -> None:
        """StockSet has no output: read the stock back through the worker's HTTP view, for the
        last product of each partition and the warm-up product (see the module docstring)."""
        expected = {key.decode(): _on_hand(value) for key, value in load.stock_records()}
        sample = _last_per_partition([key for key, _ in load.stock_records()], partition_of)
        pending = dict.fromkeys([*sample, WARM_PRODUCT])
        deadline = time.monotonic() + timeout
        while True:
            for product_id in list(pending):
                answer = await asyncio.to_thread(_get_json, self.stock_url(product_id))
                if answer is not None and answer.get("on_hand") == expected[product_id]:
                    del pending[product_id]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"{self.name}: stock not applied in {timeout:.0f} s for {list(pending)[:5]}"
                )
            await asyncio.sleep(0.3)


def _on_hand(value: bytes) -> int:
    return int(json.loads(value)["on_hand"])


def _last_per_partition(keys: Sequence[bytes], partition_of: Mapping[bytes, int]) -> list[str]:
    """The last key (in produce order) of every partition it was produced to."""
    last: dict[int, bytes] = {}
    for key in keys:
        if key in partition_of:
            last[partition_of[key]] = key
    return [key.decode() for _, key in sorted(last.items())]


def _get_json(url: str) -> dict[str, Any] | None:
    """The JSON answer of ``GET url``, or ``None`` (not found yet, not listening yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError):  # URLError and HTTPError are OSErrors
        return None
    return answer if isinstance(answer, dict) else None


class StockflowStreamSystem(StockflowSystem):
    """The same worker on Faust's per-record stream path (``STOCKFLOW_CONSUMER=stream``): the
    A/B of the batch consumer, in the same run."""

    name = "stockflow-stream"

    def __init__(
        self, broker: EmbeddedBroker, partitions: int, env: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(broker, partitions, {**dict(env or {}), "STOCKFLOW_CONSUMER": "stream"})


class StockflowPairSystem(StockflowSystem):
    """Two workers of the same build in one group, on the same broker: the scale-out run."""

    name = "stockflow-2w"
    count = 2
