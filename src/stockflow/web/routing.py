"""Which worker owns a key, and forwarding a request to it.

Faust's ``@app.table_route`` finds the owner through ``producer.key_partition(<changelog>, key)``:
murmur2 of the raw key over the changelog's partitions, the Kafka default partitioner. For
products that is the right partition (stockflow itself produces every product command keyed by
the UTF-8 product id with that partitioner, and the changelog has as many partitions as the
command topic), but not for everything stockflow serves:

- an order's saga lives in the partition of ``orders`` where the order *arrived*: the hash of the
  order id when the producer keyed it by order id, any partition when it sent it without a key
  (stockflow accepts those);
- it forwards with no timeout and no hop limit: two workers that disagree on ownership during a
  rebalance would bounce a request between them.

So stockflow computes the partition itself (:func:`stockflow.keys.partition_for`, the function the
offline pipeline partitions with), finds the worker whose *active* assignment holds that partition
of the table's changelog (the assignment metadata every worker gets, ``app.router.table_metadata``),
and forwards the GET there with a hop count (:data:`HOPS_HEADER`, at most :data:`MAX_HOPS`) and a
timeout (``STOCKFLOW_WEB_ROUTE_TIMEOUT``, default 5 s). An order not found where its id hashes to is
looked for on the other workers (see :mod:`stockflow.web.views`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yarl import URL

from stockflow.web.source import TableLike

if TYPE_CHECKING:
    from aiohttp.web import Request
    from faust.types import AppT

__all__ = ["HOPS_HEADER", "MAX_HOPS", "Forwarded", "Router", "hops_of"]

HOPS_HEADER = "X-Stockflow-Hops"
"""How many times a request was forwarded already."""

MAX_HOPS = 2
"""A request forwarded this often is answered where it is (from a standby copy if need be)."""


class Forwarded:
    """The owner's answer to a forwarded request."""

    __slots__ = ("body", "content_type", "status")

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type


class Router:
    """Ownership and forwarding for one app."""

    def __init__(self, app: AppT, *, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    @property
    def me(self) -> str:
        """This worker's canonical URL (what the other workers know it by)."""
        return str(self.app.conf.canonical_url)

    def is_me(self, url: str) -> bool:
        return _ident(url) == _ident(self.me)

    @staticmethod
    def changelog(table: TableLike) -> str:
        return str(table.changelog_topic.get_topic_name())

    def is_active(self, table: TableLike, partition: int) -> bool:
        """Whether this worker is the active owner of ``partition`` of ``table``."""
        from faust.types import TP

        return bool(self.app.assignor.is_active(TP(self.changelog(table), partition)))

    def owner(self, table: TableLike, partition: int) -> str | None:
        """The canonical URL of the worker owning ``partition`` of ``table``; ``None`` while
        nobody does (before the first assignment, during a rebalance)."""
        topic = self.changelog(table)
        for url, topics in self.app.router.table_metadata(table.name).items():
            if partition in topics.get(topic, ()):
                return str(url)
        return None

    def workers(self, table: TableLike) -> list[str]:
        """Every worker owning some partition of ``table`` (canonical URLs)."""
        return sorted(str(url) for url in self.app.router.table_metadata(table.name))

    async def forward(
        self, url: str, request: Request, *, hops: int, local: bool = False
    ) -> Forwarded:
        """The same GET (path and query) sent to ``url``; raises ``OSError`` or
        ``asyncio.TimeoutError`` (an ``OSError`` subclass) when the owner does not answer."""
        target = URL(url.rstrip("/") + request.raw_path, encoded=True)
        if local:
            target = target.update_query(local="1")
        return await self.get(target, request, hops=hops)

    async def get(self, target: URL, request: Request, *, hops: int) -> Forwarded:
        """A GET of ``target`` on behalf of ``request`` (its token, one hop more); raises as
        :meth:`forward`."""
        import aiohttp

        headers = {HOPS_HEADER: str(hops + 1), "Accept": "application/json"}
        authorization = request.headers.get("Authorization")
        if authorization:  # reads may need the token (STOCKFLOW_HTTP_TOKEN_READS)
            headers["Authorization"] = authorization
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self.app.http_client.get(target, headers=headers, timeout=timeout) as resp:
                body = await resp.read()
                content_type = resp.headers.get("Content-Type", "application/json")
                return Forwarded(resp.status, body, content_type)
        except aiohttp.ClientError as exc:
            raise OSError(f"{target}: {exc}") from exc


def hops_of(request: Request) -> int:
    """The hop count of an incoming request (0 when it comes from a client)."""
    try:
        return max(0, int(request.headers.get(HOPS_HEADER, "0")))
    except ValueError:
        return 0


def _ident(url: str) -> tuple[str, int]:
    parsed = URL(url)
    return (parsed.host or "", parsed.port or 80)
