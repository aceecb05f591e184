"""The read views' HTTP handlers (the API is described in :mod:`stockflow.web.views`).

This module imports Faust (its views subclass ``faust.web.View``), so only
:func:`stockflow.web.views.register_views` imports it, when the app is wired. What a view
reads comes in class attributes set on a subclass per app (:func:`bound`).
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

from faust import web
from yarl import URL

from stockflow.core.single_line import seen_at_writer
from stockflow.web.reservations import reservation_of
from stockflow.web.routing import MAX_HOPS, hops_of
from stockflow.web.source import TableLike

if TYPE_CHECKING:
    from aiohttp.web import Request
    from faust.web import Response

    from stockflow.core.saga import Saga
    from stockflow.observability.metrics import Metrics
    from stockflow.web.read_model import ReadModel

__all__ = ["METRICS_CONTENT_TYPE", "MetricsView", "OrderView", "StockView", "bound"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

V = TypeVar("V", bound=web.View)


def bound(view: type[V], **attributes: object) -> type[V]:
    """A subclass of ``view`` with ``attributes`` (one per app: Faust also sets the route on
    the class, so two apps in one process must not share one)."""
    return type(view.__name__, (view,), {"__doc__": view.__doc__, **attributes})


class RoutedView(web.View):
    """A view answered by the worker owning the partition (forwarded there if need be)."""

    read: ReadModel

    async def from_owner(
        self, request: Request, table: TableLike, partition: int, hops: int
    ) -> Response | None:
        """The answer from the owner of ``partition`` of ``table`` (or 503 while it has none);
        ``None`` when this worker answers itself: it owns the partition, or the hop limit says
        answer here."""
        router = self.read.router
        if router.is_active(table, partition) or hops >= MAX_HOPS:
            return None
        owner = router.owner(table, partition)
        if owner is None:
            return self.no_owner(partition)
        if router.is_me(owner):
            return None
        return await self.relay(owner, request, hops)

    async def relay(
        self, owner: str, request: Request, hops: int, *, local: bool = False
    ) -> Response:
        try:
            answer = await self.read.router.forward(owner, request, hops=hops, local=local)
        except OSError as exc:
            return self.error(503, "owner did not answer", owner=owner, detail=str(exc))
        return self.bytes(
            answer.body, status=answer.status, headers={"Content-Type": answer.content_type}
        )

    def no_owner(self, partition: int) -> Response:
        return self.error(503, "no worker owns the partition (rebalancing?)", partition=partition)


class StockView(RoutedView):
    """The stock of one product, from the worker owning its partition."""

    async def get(self, request: Request, product_id: str) -> Response:
        read = self.read
        partition = read.product_partition(product_id)
        routed = await self.from_owner(
            request, read.handle.product_table, partition, hops_of(request)
        )
        if routed is not None:
            return routed
        answer = read.stock(product_id)
        if answer is None:
            return self.error(404, "unknown product", product_id=product_id)
        order_id = request.query.get("order")
        if order_id is not None:
            answer["reservation"] = read.reservation(product_id, order_id)
        return self.json(answer)


class OrderView(RoutedView):
    """An order's reservation state, from the worker owning the partition it arrived in."""

    async def get(self, request: Request, order_id: str) -> Response:
        read, router = self.read, self.read.router
        hops = hops_of(request)
        table = read.handle.order_table
        if request.query.get("local") == "1":  # a peer asking for its active state only
            saga = read.saga(order_id)
            if saga is None or not router.is_active(table, saga.reply_partition):
                return self.error(404, "unknown order", order_id=order_id)
            return await self.answer(request, saga)
        partition = read.order_partition(order_id)
        routed = await self.from_owner(request, table, partition, hops)
        if routed is not None:
            return routed
        saga = read.saga(order_id)
        if saga is not None:
            arrived = saga.reply_partition
            if router.is_active(table, arrived) or hops >= MAX_HOPS:
                return await self.answer(request, saga)
            # Found in a standby copy here. The peers are asked for their active state (a
            # plain relay to the arrival partition's owner would be routed back here by the
            # order id's own partition); this copy answers only if none has it.
            return await self.ask_peers(request, order_id, hops, standby=saga)
        return await self.ask_peers(request, order_id, hops)

    async def answer(self, request: Request, saga: Saga) -> Response:
        return self.json(self.read.order_answer(await self.seen_at_writer(request, saga)))

    async def seen_at_writer(self, request: Request, saga: Saga) -> Saga:
        """A single-line order its product's writer decides, not ended as far as the saga
        knows: as the writer's ledger entry shows it. Read here already when the product's
        partition is in this worker (:meth:`stockflow.processing.OrderDesk.saga`); otherwise
        asked of its owner (``GET /stock/{product_id}?order={order_id}``). No answer, or none
        this version reads: the saga as it is (``reserving``)."""
        if not saga.forwards or saga.status != "reserving":
            return saga
        read, router = self.read, self.read.router
        product_id = saga.lines[0].product_id
        owner = router.owner(read.handle.product_table, read.product_partition(product_id))
        if owner is None or router.is_me(owner):
            return saga
        path = "/stock/" + quote(product_id, safe="")
        target = URL(owner.rstrip("/") + path, encoded=True).with_query(order=saga.order_id)
        try:
            # At the hop limit: the owner answers from its own state, never forwards.
            answer = await router.get(target, request, hops=MAX_HOPS - 1)
            body = json.loads(answer.body) if answer.status == 200 else None
        except (OSError, ValueError):
            return saga
        value = body.get("reservation") if isinstance(body, dict) else None
        entry = reservation_of(value, order_id=saga.order_id, product_id=product_id)
        return seen_at_writer(saga, entry)

    async def ask_peers(
        self, request: Request, order_id: str, hops: int, *, standby: Saga | None = None
    ) -> Response:
        """An order sent without a key lives in whatever partition it landed in: ask every
        other worker for its active state before answering from a standby copy (``standby``)
        or saying it is unknown."""
        read, router = self.read, self.read.router
        peers = [url for url in router.workers(read.handle.order_table) if not router.is_me(url)]
        if hops >= MAX_HOPS or not peers:
            if standby is not None:
                return await self.answer(request, standby)
            return self.error(404, "unknown order", order_id=order_id)
        answers = await asyncio.gather(
            *(router.forward(url, request, hops=hops, local=True) for url in peers),
            return_exceptions=True,
        )
        for answer in answers:
            if not isinstance(answer, BaseException) and answer.status == 200:
                headers = {"Content-Type": answer.content_type}
                return self.bytes(answer.body, headers=headers)
        if standby is not None:
            return await self.answer(request, standby)
        failed = [
            url for url, a in zip(peers, answers, strict=True) if isinstance(a, BaseException)
        ]
        if failed:
            return self.error(503, "some workers did not answer", order_id=order_id, workers=failed)
        return self.error(404, "unknown order", order_id=order_id)


class MetricsView(web.View):
    """Prometheus metrics of this worker."""

    metrics: Metrics

    async def get(self, request: Request) -> Response:
        return self.bytes(self.metrics.exposition(), headers={"Content-Type": METRICS_CONTENT_TYPE})
