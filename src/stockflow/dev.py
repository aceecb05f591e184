"""``stockflow dev``: an embedded broker and one worker on this machine, up until Ctrl-C.

The first hour with stockflow: something running to send a first order to. :func:`run_dev`
starts the embedded broker (tansu, in memory: nothing survives a stop), creates stockflow's
topics, starts a worker (``faust -A stockflow worker``) with a web server, stocks a few products,
prints where everything is and three commands to try, then waits. Ctrl-C or SIGTERM stops the
worker, then the broker, each by PID within a bound (SIGKILL after it).

Ports: the broker takes 9092 and the web server 6066 when they are free (the defaults of
``STOCKFLOW_BROKER`` and ``stockflow stock``/``order --url``), else free ports; the printed
commands always name them. Other ``STOCKFLOW_*`` variables (topic names, policy) apply to the
worker as usual; those of the broker connection (``STOCKFLOW_BROKER``, security, TLS, SASL),
``STOCKFLOW_WEB_PORT``, ``STOCKFLOW_PARTITIONS`` and ``STOCKFLOW_DATADIR`` are ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stockflow.errors import StockflowError, WorkerError
from stockflow.stop_signals import SignalStops
from stockflow.testing.broker import EmbeddedBroker, free_port
from stockflow.testing.harness import Harness
from stockflow.testing.worker import WorkerProcess

__all__ = [
    "DEFAULT_BROKER_PORT",
    "DEFAULT_STOCK",
    "DEFAULT_WEB_PORT",
    "DevStack",
    "banner",
    "example_order",
    "pick_port",
    "run_dev",
]

DEFAULT_BROKER_PORT = 9092
DEFAULT_WEB_PORT = 6066
DEFAULT_STOCK: Mapping[str, int] = {"sku-1": 10, "sku-2": 3}
READY_TIMEOUT = 90.0
"""Seconds allowed for the worker to become ready (about 3 s on an idle machine)."""
WORKER_STOP_TIMEOUT = 15.0
"""Seconds a worker gets to stop after SIGTERM before it is killed."""
APP_ID = "stockflow-dev"

# Settings the dev stack owns (the embedded broker is plaintext on loopback, the topics are
# created with --partitions, the worker's data lives in the workdir); the user's other STOCKFLOW_*
# variables (topic names, policy, timeouts) are passed to the worker.
_OWNED = frozenset(
    {
        "STOCKFLOW_BROKER",
        "STOCKFLOW_URL",
        "STOCKFLOW_WEB_PORT",
        "STOCKFLOW_PARTITIONS",
        "STOCKFLOW_DATADIR",
        "STOCKFLOW_SECURITY_PROTOCOL",
    }
)
_OWNED_PREFIXES = ("STOCKFLOW_SASL_", "STOCKFLOW_SSL_")


class _Stop(Exception):  # a signal, not an error: outside the StockflowError tree
    """Raised by the signal handler: Ctrl-C or SIGTERM."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def pick_port(preferred: int | None, default: int) -> int:
    """``preferred`` if given (a :class:`StockflowError` if it is taken); else ``default`` when
    it is free on 127.0.0.1, else any free port."""
    if preferred:
        if not _free(preferred):
            raise StockflowError(f"port {preferred} on 127.0.0.1 is in use")
        return preferred
    return default if _free(default) else free_port()


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def example_order(product_id: str, order_id: str = "o-1") -> dict[str, Any]:
    """The ``OrderPlaced`` the banner's ``curl`` line sends."""
    return {
        "type": "OrderPlaced",
        "order_id": order_id,
        "lines": [{"product_id": product_id, "quantity": 1}],
    }


def banner(
    *,
    broker_url: str,
    http_url: str,
    broker_pid: int | None,
    worker_pid: int | None,
    stock: Mapping[str, int],
    workdir: Path,
) -> list[str]:
    """The lines ``stockflow dev`` prints once everything is up."""
    product = next(iter(stock), "sku-1")
    body = json.dumps(example_order(product))
    stocked = ", ".join(f"{p} = {n}" for p, n in stock.items()) or "nothing"
    return [
        "stockflow dev: an embedded broker and one worker are running. Ctrl-C stops both.",
        "",
        f"  broker    {broker_url}    (pid {broker_pid}, in memory: gone after Ctrl-C)",
        f"  HTTP      {http_url}    (worker pid {worker_pid})",
        f"  stock     {stocked}",
        f"  logs      {workdir}",
        "",
        "Try:",
        f"  curl -s -X POST {http_url}/orders -H 'Content-Type: application/json' "
        f"-d {shlex.quote(body)}",
        f"  stockflow order o-1 --url {http_url}",
        f"  stockflow audit --broker {broker_url}",
        "",
        "Point your own producer or checkout at it with:",
        f"  export STOCKFLOW_BROKER={broker_url} STOCKFLOW_URL={http_url}",
    ]


def _owned(name: str) -> bool:
    return name in _OWNED or name.startswith(_OWNED_PREFIXES)


@contextlib.contextmanager
def _without_owned_env() -> Iterator[None]:
    """``os.environ`` without the variables the dev stack owns, while a child is spawned."""
    saved = {k: v for k, v in os.environ.items() if _owned(k)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


@dataclass
class DevStack:
    """The broker, the topics and one worker; :meth:`stop` stops what :meth:`start` started."""

    workdir: Path
    broker_port: int
    web_port: int
    partitions: int = 4
    stock: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_STOCK))

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if k.startswith("STOCKFLOW_")}
        env = {k: v for k, v in env.items() if not _owned(k)}
        env.setdefault("STOCKFLOW_APP_ID", APP_ID)
        self.harness = Harness(partitions=self.partitions, env=env, workdir=self.workdir)
        self.harness.broker = EmbeddedBroker(self.broker_port, log_path=self.workdir / "broker.log")
        self.worker: WorkerProcess | None = None

    @property
    def broker_url(self) -> str:
        return self.harness.broker.url

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, on_step: Callable[[str], None] = lambda _: None) -> None:
        on_step(f"starting the embedded broker on 127.0.0.1:{self.broker_port}")
        self.harness.start()
        datadir = self.workdir / "worker"
        if datadir.exists():
            shutil.rmtree(datadir)  # state of an earlier (in-memory) broker means nothing now
        self.worker = WorkerProcess(
            self.harness.env,
            datadir=datadir,
            web_port=self.web_port,
            log_path=self.workdir / "worker.log",
        )
        self.harness.workers.append(self.worker)
        on_step("starting a worker (faust -A stockflow worker)")
        with _without_owned_env():  # the worker inherits os.environ, ours override only some
            self.worker.start()
        on_step(f"worker pid {self.worker.pid}: waiting until it is ready (about 3 s)")
        self.worker.wait_ready(READY_TIMEOUT)
        if self.stock:
            on_step("stocking " + ", ".join(self.stock))
            self.harness.stock_many(self.stock)

    def problem(self) -> str | None:
        """Why the stack is no longer whole, or ``None``."""
        process = self.harness.broker.process
        if process is None or process.poll() is not None:
            return f"the broker exited; its log: {self.workdir / 'broker.log'}"
        if self.worker is None or not self.worker.running:
            return f"the worker exited; its log: {self.workdir / 'worker.log'}"
        return None

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL after ``WORKER_STOP_TIMEOUT``), then the
        broker (SIGTERM, then SIGKILL after 5 s), each by PID."""
        try:
            if self.worker is not None:
                self.worker.stop(timeout=WORKER_STOP_TIMEOUT)
        finally:
            self.harness.close()  # the broker too, whatever the worker's stop raised


def run_dev(
    *,
    broker_port: int | None = None,
    web_port: int | None = None,
    partitions: int = 4,
    stock: Mapping[str, int] = DEFAULT_STOCK,
    workdir: Path | None = None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run the dev stack until SIGINT or SIGTERM; returns the exit status (0 after a stop by
    signal, 1 if a process died, 3 if the stack could not start). A temporary ``workdir``
    (the default) is deleted after a clean stop and kept, with its logs, after a failure."""

    def say(line: str, stream: TextIO = out) -> None:
        print(line, file=stream, flush=True)

    try:
        ports = pick_port(broker_port, DEFAULT_BROKER_PORT), pick_port(web_port, DEFAULT_WEB_PORT)
    except StockflowError as exc:
        say(f"stockflow dev: {exc}; pick another port or leave the option out for a free one", err)
        return 3
    keep = workdir is not None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="stockflow-dev-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stack = DevStack(
        workdir=workdir,
        broker_port=ports[0],
        web_port=ports[1],
        partitions=partitions,
        stock=stock,
    )

    # A raise that a finaliser swallowed is delivered again (SignalStops): else the loop
    # below would never see it.
    stops = SignalStops((signal.SIGINT, signal.SIGTERM), _Stop).install()
    requested = stops.received
    status = 0
    try:
        try:
            stack.start(on_step=lambda step: say(f"stockflow dev: {step}..."))
        except (StockflowError, OSError) as exc:
            if requested:  # the signal, seen through what it interrupted: a stop (below)
                raise
            # The first line: a WorkerError goes on with the worker's log, kept in workdir.
            text = str(exc).strip()
            first = text.splitlines()[0].rstrip(": ") if text else type(exc).__name__
            say(f"stockflow dev: could not start: {first}. Logs: {workdir}", err)
            status, keep = 3, True
            return status
        for line in banner(
            broker_url=stack.broker_url,
            http_url=stack.http_url,
            broker_pid=stack.harness.broker.process.pid if stack.harness.broker.process else None,
            worker_pid=stack.worker.pid if stack.worker else None,
            stock=stack.stock,
            workdir=workdir,
        ):
            say(line)
        while (problem := stack.problem()) is None:
            time.sleep(0.5)
        say(f"stockflow dev: {problem}; stopping", err)
        status, keep = 1, True
        return status
    except Exception:
        # The handler's _Stop, or what a library that wraps what it catches (a broker client
        # while stocking) made of it: a stop, not a crash.
        if not requested:
            raise
        name = signal.Signals(requested[0]).name
        say(f"stockflow dev: {name} received; stopping the worker and the broker")
        return status
    finally:
        # A second Ctrl-C must not cut the stop short: every wait in it is bounded.
        stops.ignore()
        try:
            stack.stop()
        except WorkerError as exc:  # pragma: no cover - stop() kills what does not stop
            say(f"stockflow dev: {exc}", err)
        stops.restore()
        if keep:
            say(f"stockflow dev: stopped; logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            say("stockflow dev: stopped")
