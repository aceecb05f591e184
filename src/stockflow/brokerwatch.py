"""A broker lost for longer than its allowance crashes the worker, which then exits
(:mod:`stockflow.lifecycle`) so that a supervisor can restart it or page someone.

Faust and aiokafka retry a lost broker forever: the worker stays up, holds its partitions and
answers nothing. Every ``check_interval`` seconds a metadata request for all topics (it never
auto-creates one) goes to the app's brokers on a client of its own; once none succeeded for
``STOCKFLOW_BROKER_LOST_TIMEOUT`` seconds (default 60, above the 3-15 s outages the chaos suite
survives), the app crashes with :class:`stockflow.errors.BrokerError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from stockflow.errors import BrokerError

__all__ = ["BrokerWatch", "register_broker_watch"]

log = logging.getLogger(__name__)


class BrokerWatch:
    """Tracks the last time the broker answered; ``probe`` is a coroutine function that
    raises (or times out) when the broker does not answer."""

    def __init__(
        self,
        probe: Callable[[], Any],
        *,
        allowance: float,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.probe = probe
        self.allowance = allowance
        self.timeout = timeout
        self.clock = clock
        self.last_ok = clock()

    async def check(self) -> BrokerError | None:
        """One probe; the error to crash with once the allowance is exceeded, else None."""
        try:
            await asyncio.wait_for(self.probe(), self.timeout)
        except Exception as exc:
            lost = self.clock() - self.last_ok
            log.warning("the broker did not answer (%r); lost for %.0f s", exc, lost)
            if lost > self.allowance:
                return BrokerError(
                    f"the broker did not answer for {lost:.0f} s (more than "
                    f"STOCKFLOW_BROKER_LOST_TIMEOUT={self.allowance:g} s)"
                )
            return None
        self.last_ok = self.clock()
        return None


def register_broker_watch(app: Any, *, name: str, allowance: float) -> BrokerWatch:
    """Add the watch to ``app`` as a timer (it runs once the worker has started)."""
    interval = max(0.5, min(5.0, allowance / 3))
    client: dict[str, Any] = {}

    async def probe() -> None:
        if "client" not in client:
            from aiokafka.client import AIOKafkaClient

            from stockflow._faust.transport import client_settings

            servers, auth = client_settings(app, app.transport)
            client["client"] = AIOKafkaClient(
                bootstrap_servers=servers, request_timeout_ms=int(interval * 1000), **auth
            )
        kafka = client["client"]
        if not getattr(kafka, "_bootstrapped", False):
            await kafka.bootstrap()
            kafka._bootstrapped = True  # stockflow's own flag on its own client
        await kafka.fetch_all_metadata()

    watch = BrokerWatch(probe, allowance=allowance, timeout=interval)

    async def watch_broker() -> None:
        if getattr(app, "should_stop", False):
            return
        error = await watch.check()
        if error is not None:
            log.critical("%s; stopping the worker", error)
            await app.crash(error)

    app.timer(interval=interval, name=name)(watch_broker)
    return watch
