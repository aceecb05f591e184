"""The interface every system under test implements, and what they share: the topic names,
the warm-up (every product's ``StockSet`` applied, then a few warm-up orders answered, so that
the timed run starts on a hot path) and :meth:`System.watched`, which ends any wait at once if
the system's process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from bench.load import Tally, Workload, consume_outcomes, produce, run_load
from stockflow.errors import BrokerError
from stockflow.testing.broker import EmbeddedBroker

__all__ = ["INVENTORY", "ORDERS", "RESERVATIONS", "WARM_ORDERS", "WATCH_INTERVAL", "System"]

ORDERS, INVENTORY, RESERVATIONS = "orders", "inventory", "reservations"
WARM_ORDERS = 200
WATCH_INTERVAL = 0.25
"""How often a wait checks that the system's process is still alive (s)."""
T = TypeVar("T")


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

    @property
    def pids(self) -> list[int]:
        """Every process of the system (CPU is summed over them, peak RSS is the largest)."""
        return [] if self.pid is None else [self.pid]

    def changelog_topics(self) -> list[str]:
        """The changelog topics whose records the harness counts per order (none by default)."""
        return []

    def alive(self) -> bool:
        """Whether every process of the system still runs."""
        return True

    async def watched(self, work: Coroutine[Any, Any, T], what: str = "the run") -> T:
        """``await work``, or :class:`BrokerError` at once if the system's process exits first
        (a peer that died on start-up must not leave the harness waiting out its timeout)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=WATCH_INTERVAL)
                if done:
                    return task.result()
                if not self.alive():
                    raise BrokerError(
                        f"{self.name} exited during {what}; its log ends with:\n{self.log_tail()}"
                    )
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def parts(self, load: Workload) -> int:
        """Output records that make one order's outcome."""
        return load.lines

    def start(self, timeout: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        return ""

    async def _stock_applied(
        self, load: Workload, timeout: float, partition_of: Mapping[bytes, int]
    ) -> None:
        """Block until every StockSet was applied (the pipe and peer acknowledge each one)."""
        tally = Tally(want=load.products + 1, parts=1)
        await consume_outcomes(
            self.broker.bootstrap, RESERVATIONS, b"sku-", lambda k, v: "ack", tally, timeout=timeout
        )
        if not tally.done:
            raise BrokerError(f"{self.name}: {len(tally.arrived)} of {tally.want} stock acks")

    async def warm(self, load: Workload, timeout: float) -> None:
        partition_of: dict[bytes, int] = {}
        records = load.stock_records()
        await produce(self.broker.bootstrap, self.stock_topic, records, partitions=partition_of)
        await self.watched(self._stock_applied(load, timeout, partition_of), "the warm-up")
        _sent, tally = await self.watched(
            run_load(
                self.broker.bootstrap,
                ORDERS,
                RESERVATIONS,
                load.warm_records(WARM_ORDERS),
                f"warm-{load.prefix}",
                self.matcher,
                parts=1,
                timeout=timeout,
            ),
            "the warm-up",
        )
        if not tally.done:
            raise BrokerError(f"{self.name}: warm-up answered {len(tally.arrived)} orders")
