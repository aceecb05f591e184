"""Running unattended: topics provisioned and checked before anything is consumed, and a
process that ends within a bound once it has crashed or been asked to stop.

:func:`attach` (called by :func:`stockflow.install`) hooks the app's first start, which Faust
runs before it starts its producer, consumer and agents:

0. One log line names the version and the build (compiled or pure, setup.py): what an
   operator reading a slow worker's log asks first.
1. An :class:`ExitWatchdog` thread starts. Once the app has crashed (an agent's exception, a
   failed changelog write, a lost broker (:mod:`stockflow.brokerwatch`), any crash Faust passes
   on to the app), the process gets ``STOCKFLOW_CRASH_EXIT_TIMEOUT`` (default 30 s) to stop,
   then exits with status 1 anyway;
   once a stop was asked for (SIGTERM), it gets ``STOCKFLOW_STOP_TIMEOUT`` (default 25 s).
   Faust's own stop can hang after a crash (seen: more than 3 minutes in "Wait for
   streams..." at 60% CPU) and a hung worker keeps its partitions while no supervisor restarts
   it. A thread, not a task: the event loop may be what hangs.
2. Every topic of :func:`stockflow.topics.required_topics` that is missing is created
   (:mod:`stockflow.provisioning`), so neither Faust's consumer nor its producer can make the
   broker auto-create one with its default partition count. If existing topics disagree on
   their partition count, or the broker refuses or cannot be reached within
   ``STOCKFLOW_PROVISION_TIMEOUT``, the worker logs one message saying what and how to fix it
   and exits with status 2 (:data:`EXIT_TOPICS`) before it consumes anything.
3. The garbage collector is tuned for a worker (:mod:`stockflow.garbage`,
   ``STOCKFLOW_GC_THRESHOLD``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from stockflow._version import __version__, build
from stockflow.errors import StockflowError
from stockflow.garbage import tune_garbage_collector
from stockflow.settings import Settings
from stockflow.topics import TopicSpec

__all__ = ["EXIT_CRASHED", "EXIT_TOPICS", "ExitWatchdog", "attach"]

log = logging.getLogger(__name__)

EXIT_CRASHED = 1
"""Exit status of a worker that crashed, or whose stop outlived its bound."""

EXIT_TOPICS = 2
"""Exit status of a worker that refused to start: topics wrong, broker refused or unreachable."""


class ExitWatchdog:
    """Ends the process with ``exit_code`` once ``app`` has crashed and has not exited within
    ``crash_timeout`` seconds, or was asked to stop and has not exited within ``stop_timeout``.

    It reads two attributes of the app (a mode ``Service``): ``crash_reason`` (set on every
    node of a crashed service tree) and ``should_stop``. ``exit`` is injectable for tests.
    """

    def __init__(
        self,
        app: Any,
        *,
        crash_timeout: float,
        stop_timeout: float,
        poll: float = 0.2,
        exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.app = app
        self.crash_timeout = crash_timeout
        self.stop_timeout = stop_timeout
        self.poll = poll
        self._exit = exit
        self._deadline: float | None = None
        self._reason = ""
        self._code = EXIT_CRASHED
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> ExitWatchdog:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="stockflow-exit-watchdog", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop watching (the process is exiting on its own, or a test is done)."""
        self._closed.set()

    @property
    def armed(self) -> bool:
        return self._deadline is not None

    def arm(self, reason: str, timeout: float, code: int = EXIT_CRASHED) -> None:
        """Exit with ``code`` in ``timeout`` seconds unless the process exits first (an
        earlier deadline is kept)."""
        with self._lock:
            deadline = time.monotonic() + timeout
            if self._deadline is not None and self._deadline <= deadline:
                return
            self._deadline, self._reason, self._code = deadline, reason, code
        log.warning("%s: the process exits within %.0f s", reason, timeout)

    def check(self) -> bool:
        """One look at the app; True once the deadline has passed (the process exits)."""
        crash = getattr(self.app, "crash_reason", None)
        if crash is not None:
            self.arm(f"crashed ({crash!r})", self.crash_timeout)
        elif getattr(self.app, "should_stop", False):
            self.arm("stopping", self.stop_timeout)
        deadline = self._deadline
        if deadline is None or time.monotonic() < deadline:
            return False
        log.critical(
            "%s and still running after its bound; exiting with status %d",
            self._reason,
            self._code,
        )
        _flush_logs()
        self._exit(self._code)
        return True

    def _run(self) -> None:
        while not self._closed.wait(self.poll):
            if self.check():
                return


def _flush_logs() -> None:
    # A closed stream cannot be flushed: nothing is left to lose then.
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def attach(
    app: Any,
    settings: Settings,
    specs: Sequence[TopicSpec],
    *,
    provision: Callable[[], Any] | None = None,
) -> ExitWatchdog:
    """Hook provisioning and the exit watchdog into ``app``'s first start (see the module
    docstring). ``provision`` is a coroutine function creating and checking ``specs``;
    default :func:`stockflow.provisioning.provision` with the app's broker and credentials.
    Returns the (not yet started) watchdog."""
    watchdog = ExitWatchdog(
        app, crash_timeout=settings.crash_exit_timeout, stop_timeout=settings.stop_timeout
    )
    first_start = app.on_first_start

    async def default_provision() -> Any:
        from stockflow._faust.transport import client_settings
        from stockflow.provisioning import provision as create_and_check

        servers, auth = client_settings(app, app.transport)
        return await create_and_check(settings, specs, servers=servers, client_kwargs=auth)

    async def on_first_start() -> None:
        log.info("stockflow %s (%s build) starting", __version__, build())
        watchdog.start()
        try:
            await (provision or default_provision)()
        except StockflowError as exc:
            log.critical("stockflow cannot start: %s", exc)
            # Faust's stop after a failed start may hang like after any crash: bounded too.
            watchdog.arm("refused to start", settings.stop_timeout, EXIT_TOPICS)
            raise SystemExit(EXIT_TOPICS) from None
        await first_start()
        tune_garbage_collector(settings.gc_threshold)

    # An attribute of this app only (mode calls ``self.on_first_start()``): an embedding app's
    # own method, overridden in its class or not, still runs after provisioning.
    app.on_first_start = on_first_start
    return watchdog
