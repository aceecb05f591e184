"""A TCP proxy on loopback that a chaos run can cut and restore: the broker made unreachable.

The broker advertises the proxy's port (``EmbeddedBroker(advertised_port=proxy.port)``), so
every client connection after bootstrap goes through the proxy, workers' included.
:func:`tcp_connections` reads ``/proc`` to show which process is connected to which port, so a
run can prove that workers really talk to the proxy and never to the broker directly::

    proxy = TcpProxy(upstream_port=broker_port).start()
    proxy.cut("blackhole")   # existing connections closed; new ones accepted, never answered
    proxy.restore()          # held connections closed, new ones forwarded again
    proxy.stop()

``cut("refuse")`` resets every new connection as soon as it is accepted (the client sees a
connection reset: the broker host is up, its port is not); ``cut("blackhole")`` accepts new
connections and never forwards a byte (the client waits for its own timeouts, as behind a
dropped route), and closes them on :meth:`TcpProxy.restore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

__all__ = ["CutMode", "TcpConnection", "TcpProxy", "tcp_connections"]

CutMode = Literal["refuse", "blackhole"]

_START_TIMEOUT = 10.0
_BUFFER = 64 * 1024

T = TypeVar("T")


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close at once with a TCP reset (SO_LINGER 0): the peer sees the connection die."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_host:upstream_port`` on a background thread.

    ``port=0`` binds a free port (read :attr:`port` after :meth:`start`). Counters in
    :attr:`stats`: ``accepted``, ``forwarded``, ``closed_by_cut``, ``refused``, ``blackholed``,
    ``upstream_failed``, ``bytes_up``, ``bytes_down``, ``cuts``.
    """

    def __init__(
        self, upstream_port: int, *, port: int = 0, upstream_host: str = "127.0.0.1"
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = port
        self.stats: Counter[str] = Counter()
        self._mode: CutMode | None = None
        self._links: set[_Link] = set()
        self._held: set[asyncio.StreamWriter] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None

    # --- control (any thread) ---------------------------------------------------------------

    @property
    def is_cut(self) -> bool:
        return self._mode is not None

    @property
    def active(self) -> int:
        """Connections currently forwarded."""
        return len(self._links)

    def start(self) -> TcpProxy:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="chaos-proxy", daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self, mode: CutMode = "refuse") -> int:
        """Make the broker unreachable; returns how many live connections were closed."""
        if mode not in ("refuse", "blackhole"):
            raise ValueError(f"unknown cut mode {mode!r}")
        return self._call(self._cut(mode))

    def restore(self) -> int:
        """Forward new connections again; returns how many blackholed ones were closed."""
        return self._call(self._restore())

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_START_TIMEOUT)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "proxy not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(_START_TIMEOUT)

    # --- the loop's side ------------------------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _cut(self, mode: CutMode) -> int:
        self._mode = mode
        self.stats["cuts"] += 1
        links = list(self._links)
        self._links.clear()
        for link in links:
            link.abort()
        self.stats["closed_by_cut"] += len(links)
        return len(links)

    async def _restore(self) -> int:
        self._mode = None
        held = list(self._held)
        self._held.clear()
        for writer in held:
            _reset(writer)
        return len(held)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        for writer in list(self._held):
            _reset(writer)
        self._links.clear()
        self._held.clear()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["accepted"] += 1
        if self._mode == "refuse":
            self.stats["refused"] += 1
            _reset(writer)
            return
        if self._mode == "blackhole":
            self.stats["blackholed"] += 1
            self._held.add(writer)
            return
        link = _Link(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            self.stats["upstream_failed"] += 1
            _reset(writer)
            return
        link.upstream = up_writer
        if self._mode is not None:  # cut while connecting
            link.abort()
            return
        self.stats["forwarded"] += 1
        self._links.add(link)
        await asyncio.gather(
            self._pump(reader, up_writer, link, "bytes_up"),
            self._pump(up_reader, writer, link, "bytes_down"),
        )

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        counter: str,
    ) -> None:
        try:
            while data := await reader.read(_BUFFER):
                writer.write(data)
                await writer.drain()
                self.stats[counter] += len(data)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if link in self._links:
                self._links.discard(link)
                link.abort()


# --- who is connected to what (Linux /proc) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpConnection:
    """An established IPv4 TCP connection of a process."""

    local_port: int
    remote_port: int
    remote_host: str


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _address(field: str) -> tuple[str, int]:
    host_hex, port_hex = field.split(":")
    host = socket.inet_ntoa(struct.pack("<I", int(host_hex, 16)))
    return host, int(port_hex, 16)


def tcp_connections(pid: int) -> list[TcpConnection]:
    """Established IPv4 TCP connections owned by process ``pid`` (empty when ``/proc`` is not
    readable: Linux only)."""
    inodes = _socket_inodes(pid)
    if not inodes:
        return []
    result: list[TcpConnection] = []
    try:
        with open(f"/proc/{pid}/net/tcp", encoding="ascii") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != "01" or fields[9] not in inodes:  # 01: ESTABLISHED
            continue
        _, local_port = _address(fields[1])
        remote_host, remote_port = _address(fields[2])
        result.append(TcpConnection(local_port, remote_port, remote_host))
    return result
