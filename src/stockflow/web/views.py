"""The read model and metrics on Faust's web server (``STOCKFLOW_WEB_PORT``, default 6066).

``GET /stock/{product_id}``
    ``{"product_id", "on_hand", "reserved", "available", "freshness"}``. 404 with
    ``{"error": "unknown product", "product_id"}`` for a product never stocked. With
    ``?order={order_id}`` also ``"reservation"``: that order's hold on the product
    (:mod:`stockflow.web.reservations`), ``null`` when the product's writer has none.
``GET /orders/{order_id}``
    The order's saga: ``{"order_id", "status", "fulfilment", "lines": [{"product_id",
    "quantity", "answer", "reason", "available", "action", "release_reason"}], "placed_at",
    "deadline", "expires_at", "finished_at", "rejection", "pay_requested", "cancel_requested",
    "freshness"}``; ``status`` is ``reserving``, ``reserved``, ``rejected``, ``confirmed``,
    ``cancelled`` or ``expired``. 404 ``{"error": "unknown order", "order_id"}`` for an order never
    placed or forgotten after ``STOCKFLOW_RETENTION``.
``GET /metrics``
    Prometheus text format (:mod:`stockflow.observability.metrics`).

``freshness`` says how stale an answer is (:mod:`stockflow.web.freshness`): ``partition``; for a
product the ``offset`` and ``event_time``/``event_time_ms`` of the last record that changed it
(``null`` for state written before stockflow recorded them); the partition's ``position`` (next
offset to apply), ``highwater`` and ``lag`` (per topic in ``topics`` for an order, whose agent
reads ``orders`` and the reply topic; ``lag`` is their sum); ``served_by``, the worker that
answered, and ``active``, false only when the hop limit stopped forwarding (ownership moving
during a rebalance) and the answer comes from a standby copy.

Any worker answers any id: a request for a partition owned elsewhere is forwarded to the owner
(:mod:`stockflow.web.routing`). An order not found on the owner of the partition its id hashes
to (one sent without a key) is asked of the other workers with ``?local=1`` (answer from your
active partitions only, never forward). 503 ``{"error": ...}`` while no worker owns the
partition (rebalancing) or the owner does not answer within ``STOCKFLOW_WEB_ROUTE_TIMEOUT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from stockflow.keys import STOCK_KEYS, entry_key, partition_for, product_of, stock_key
from stockflow.models import iso_from_ms
from stockflow.processing.codec import StockRecord, decode_entry, decode_stock
from stockflow.web.freshness import Progress, event_time, partition_position
from stockflow.web.reservations import reservation_answer
from stockflow.web.routing import Router
from stockflow.web.source import ReadSource

if TYPE_CHECKING:
    from faust.types import AppT
    from faust.web.drivers.aiohttp import Web as AiohttpWeb

    from stockflow.core.saga import Saga
    from stockflow.observability.metrics import Metrics

__all__ = ["ReadModel", "register_views", "register_writes"]


class ReadModel:
    """Answers from this worker's local state (no routing): what the views serve."""

    def __init__(self, app: AppT, handle: ReadSource, progress: Progress, router: Router) -> None:
        self.app = app
        self.handle = handle
        self.progress = progress
        self.router = router
        self.settings = handle.settings

    def product_partition(self, product_id: str) -> int:
        return partition_for(product_id.encode(), self.settings.partitions)

    def order_partition(self, order_id: str) -> int:
        """Where an order keyed by its id arrived (a keyless one may be anywhere else)."""
        return partition_for(order_id.encode(), self.settings.partitions)

    def stock(self, product_id: str) -> dict[str, Any] | None:
        raw = self.handle.product_store.get(stock_key(product_id))
        if raw is None:
            return None
        return self.stock_answer(product_id, decode_stock(raw))

    def reservation(self, product_id: str, order_id: str) -> dict[str, Any] | None:
        """The order's ledger entry at the product (``None``: none in this worker's store)."""
        raw = self.handle.product_store.get(entry_key(product_id, order_id))
        return None if raw is None else reservation_answer(decode_entry(raw))

    def stock_answer(self, product_id: str, record: StockRecord) -> dict[str, Any]:
        partition = self.product_partition(product_id)
        topic = self.settings.product_commands_topic
        position = partition_position(self.app, self.progress, topic, partition)
        stock = record.stock
        return {
            "product_id": product_id,
            "on_hand": stock.on_hand,
            "reserved": stock.reserved,
            "available": stock.available,
            "freshness": {
                "partition": partition,
                "offset": record.offset,
                **event_time(record.event_ms),
                "topic": topic,
                "position": position["position"],
                "highwater": position["highwater"],
                "lag": position["lag"],
                "served_by": self.router.me,
                "active": self.router.is_active(self.handle.product_table, partition),
            },
        }

    def reserved_units(self) -> int:
        """Units held by pending reservations in this worker's active product partitions (the
        sum of ``reserved``): a scan of the products' counters, at scrape time only."""
        app = self.app
        topic = self.settings.product_commands_topic
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
        store = self.handle.product_store
        total = 0
        if hasattr(store.table.data, "_db_for_partition"):  # RocksDB: one store per partition
            for partition in sorted(active):
                for _key, raw in store.scan(STOCK_KEYS, partition=partition):
                    total += decode_stock(raw).stock.reserved
            return total
        for key, raw in store.scan(STOCK_KEYS, partition=0):  # memory: every partition
            if self.product_partition(product_of(key)) in active:
                total += decode_stock(raw).stock.reserved
        return total

    def saga(self, order_id: str) -> Saga | None:
        return self.handle.orders.saga(order_id)

    def order_answer(self, saga: Saga) -> dict[str, Any]:
        partition = saga.reply_partition  # where it arrived in `orders`, and its state lives
        app = self.app
        topics = [
            partition_position(app, self.progress, name, partition)
            for name in (self.settings.orders_topic, self.settings.order_replies_topic)
        ]
        lags = [t["lag"] for t in topics if t["lag"] is not None]
        return {
            "order_id": saga.order_id,
            "status": saga.status,
            "fulfilment": saga.fulfilment,
            "lines": [
                {
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "answer": line.answer,
                    "reason": line.reason,
                    "available": line.available,
                    "action": line.action,
                    "release_reason": line.release_reason,
                }
                for line in saga.lines
            ],
            "placed_at": iso_from_ms(saga.placed_at_ms),
            "deadline": iso_from_ms(saga.deadline_ms),
            "expires_at": iso_from_ms(saga.expires_at_ms),
            "finished_at": None
            if saga.finished_at_ms is None
            else iso_from_ms(saga.finished_at_ms),
            "rejection": saga.rejection,
            "pay_requested": saga.pay_requested,
            "cancel_requested": saga.cancel_requested,
            "freshness": {
                "partition": partition,
                "topics": topics,
                "lag": sum(lags) if lags else None,
                "served_by": self.router.me,
                "active": self.router.is_active(self.handle.order_table, partition),
            },
        }


def register_views(
    app: AppT,
    handle: ReadSource,
    *,
    progress: Progress,
    metrics: Metrics,
    route_timeout: float,
) -> ReadModel:
    """Add ``/stock/{product_id}``, ``/orders/{order_id}`` and ``/metrics`` to ``app``'s web
    server. Returns the :class:`ReadModel` behind them."""
    from stockflow.web.pages import MetricsView, OrderView, StockView, bound

    read = ReadModel(app, handle, progress, Router(app, timeout=route_timeout))
    prefix = handle.settings.app_id
    # One subclass per app (Faust sets the route on the class): two apps in one process
    # never share a view.
    app.page(r"/stock/{product_id:[\s\S]+}", name=f"{prefix}-stock")(bound(StockView, read=read))
    app.page(r"/orders/{order_id:[\s\S]+}", name=f"{prefix}-order")(bound(OrderView, read=read))
    app.page("/metrics", name=f"{prefix}-metrics")(bound(MetricsView, metrics=metrics))
    register_writes(app, handle)
    return read


def register_writes(app: AppT, handle: ReadSource) -> None:
    """The writes (:mod:`stockflow.web.orders_api`), ``/openapi.json`` and the bearer token."""
    from stockflow.web.auth import install_auth
    from stockflow.web.openapi import register_openapi
    from stockflow.web.orders_api import register_orders_api

    settings = handle.settings

    def reserved(order_id: str) -> frozenset[str] | None:
        saga = handle.orders.saga(order_id)  # local partitions only; None elsewhere
        if saga is None or saga.status == "reserving":
            return None
        if saga.status == "rejected":
            return frozenset()  # nothing to confirm or release: the refusal answers
        return frozenset(line.product_id for line in saga.lines if line.answer == "reserved")

    register_orders_api(app, settings, reserved=reserved)
    token = settings.http_token is not None
    reads_closed = token and settings.http_token_reads
    name = f"{settings.app_id}-openapi"
    register_openapi(app, token=token, reads_closed=reads_closed, name=name)
    # Faust's Web type does not declare web_app; its one driver, aiohttp's, has it.
    install_auth(cast("AiohttpWeb", app.web).web_app, settings)
