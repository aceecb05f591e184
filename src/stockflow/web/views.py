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

from typing import TYPE_CHECKING, cast

from stockflow.web.read_model import ReadModel
from stockflow.web.routing import Router

if TYPE_CHECKING:
    from faust.types import AppT
    from faust.web.drivers.aiohttp import Web as AiohttpWeb

    from stockflow.observability.metrics import Metrics
    from stockflow.web.freshness import Progress
    from stockflow.web.source import ReadSource

__all__ = ["register_views", "register_writes"]


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
