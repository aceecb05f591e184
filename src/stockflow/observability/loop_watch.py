"""How long the worker's event loop was held: the stalls that delay its heartbeats.

A worker's consumer, heartbeats, producer and web server share one event loop (the default,
``STOCKFLOW_CONSUMER_THREAD=false``). Whatever holds it (a long step, a large RocksDB write,
a machine too busy to run the process) delays the heartbeats: a worker whose last answered
heartbeat is older than half of ``STOCKFLOW_SESSION_TIMEOUT`` pauses processing, and one
silent for the whole session timeout is dropped from the group. A backlog once held the loop
for 13.9 s at a time (docs/reliability.md); this makes such stalls visible before they cost a
rebalance.

:class:`LoopWatch` sleeps :data:`INTERVAL` seconds at a time and records how late it woke up
(``stockflow_event_loop_stall_seconds``); a stall of at least ``warn_after`` seconds (the
heartbeat interval: at least one heartbeat was late) is logged as a warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["INTERVAL", "STALL_BUCKETS", "LoopWatch", "register_loop_watch"]

log = logging.getLogger(__name__)

INTERVAL = 0.25
"""Seconds between two wake-ups (four a second: a few microseconds of CPU each)."""

STALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds of the stall histogram, in seconds."""


class LoopWatch:
    """Records how late each wake-up comes in ``observe`` (``observe(seconds)``, the
    histogram's)."""

    def __init__(
        self,
        observe: Callable[[float], None],
        *,
        warn_after: float,
        session_timeout: float,
        interval: float = INTERVAL,
    ) -> None:
        self.observe = observe
        self.warn_after = warn_after
        self.session_timeout = session_timeout
        self.interval = interval

    def woke(self, late: float) -> None:
        """One wake-up, ``late`` seconds after it was due."""
        late = max(late, 0.0)
        self.observe(late)
        if late >= self.warn_after:
            log.warning(
                "the event loop was held for %.2f s: heartbeats waited as long (a worker "
                "pauses processing past %.1f s without one, and is dropped from the group "
                "past %.1f s)",
                late,
                self.session_timeout / 2,
                self.session_timeout,
            )

    async def run(
        self,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        """Watch until cancelled."""
        now = clock or asyncio.get_running_loop().time
        while True:
            started = now()
            await sleep(self.interval)
            self.woke(now() - started - self.interval)


def register_loop_watch(app: Any, watch: LoopWatch) -> None:
    """Run ``watch`` as one of ``app``'s tasks (it starts with the worker)."""

    async def watch_event_loop() -> None:
        await watch.run()

    app.task(watch_event_loop)
