"""The HTTP writes every worker serves: place, pay and cancel an order, and wait for the answer.

``POST /orders?wait=5``
    Body: the fields of ``OrderPlaced`` (``type`` may be left out): ``{"order_id", "lines":
    [{"product_id", "quantity"}], "fulfilment"?, "reservation_ttl"?}``. An invalid body gets 400
    ``{"error": "invalid order", "fields": [{"field", "message"}]}`` and nothing is sent. Else
    the order is sent and the worker waits up to ``wait`` seconds (default 5, at most 30; more
    counts as 30): 200 with the outcome (``OrderReserved`` or ``OrderRejected``), or 202
    ``{"order_id", "status": "pending", "location"}`` with ``Location: /orders/{id}`` (the
    read model) when it is not decided yet. Posting the same order again answers with the same
    outcome; the same id with other lines (or another fulfilment, where it can be told) gets 409
    ``{"error", "order_id", "differences", "outcome"}`` and the first order stands.
``POST /orders/{order_id}/pay?wait=5``, ``POST /orders/{order_id}/cancel?wait=5``
    Cancel takes an optional body ``{"reason"}``. 200 ``{"order_id", "events": [...]}``: one
    ``ReservationConfirmed`` per reserved line or ``[ReservationConfirmFailed]``; one
    ``ReservationReleased`` per released line or ``[OrderCancelIgnored]``. 202 as above when the
    answer did not come in time.

503 ``{"error"}`` when the broker cannot be reached. With ``STOCKFLOW_HTTP_TOKEN`` set every
write needs ``Authorization: Bearer <token>`` (:mod:`stockflow.web.auth`).

The writes go through one :class:`stockflow.Client` per worker, started on the first write and
stopped with the worker; it connects with the ``Settings``' broker and security settings.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from stockflow.client import Client
from stockflow.client.matching import Action
from stockflow.errors import BrokerError, OrderConflict, OrderTimeout
from stockflow.models import OrderCancelled, OrderPaid, OrderPlaced
from stockflow.settings import Settings

if TYPE_CHECKING:
    from aiohttp.web import Request
    from faust.types import AppT
    from faust.web import Response

__all__ = [
    "DEFAULT_WAIT",
    "MAX_BODY",
    "MAX_WAIT",
    "Checkout",
    "ReservedLookup",
    "field_errors",
    "parse_wait",
    "register_orders_api",
]

DEFAULT_WAIT = 5.0
MAX_WAIT = 30.0
MAX_BODY = 1024 * 1024
"""Bytes; a larger body gets 400 (an order has at most ``STOCKFLOW_MAX_LINES`` lines)."""


class BadRequest(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body.get("error"))
        self.body = body


class Checkout:
    """The worker's one :class:`Client`, started on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                client = Client(self.settings)
                await client.start()
                self._client = client
            return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.stop()


def parse_wait(raw: str | None) -> float:
    """``?wait=`` in seconds: default 5, capped at 30; not a finite number >= 0 is an error."""
    if raw is None or raw == "":
        return DEFAULT_WAIT
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait) or wait < 0:
        raise BadRequest(
            {
                "error": "invalid query",
                "fields": [{"field": "wait", "message": "a number of seconds >= 0"}],
            }
        )
    return min(wait, MAX_WAIT)


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(part) for part in error["loc"]) or "body",
            "message": error["msg"],
        }
        for error in exc.errors(include_url=False)
    ]


async def _json_body(request: Request, *, required: bool) -> Any:
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadRequest({"error": f"body larger than {MAX_BODY} bytes", "fields": []})
    if not raw.strip():
        if required:
            raise BadRequest({"error": "invalid order", "fields": [_field("body", "required")]})
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            {"error": "body is not JSON", "fields": [_field("body", "not JSON")]}
        ) from None


def _field(name: str, message: str) -> dict[str, str]:
    return {"field": name, "message": message}


def _integral(body: dict[str, Any]) -> dict[str, Any]:
    """``2.0`` is the integer 2 in JSON (and in JSON Schema): accept it as a quantity. The
    worker's own parser is strict, but it gets the order re-encoded by the client."""
    lines = body.get("lines")
    if not isinstance(lines, list):
        return body
    fixed = [
        {**line, "quantity": int(line["quantity"])}
        if isinstance(line, dict)
        and isinstance(line.get("quantity"), float)
        and line["quantity"].is_integer()
        else line
        for line in lines
    ]
    return {**body, "lines": fixed}


def _check_utf8(*ids: str) -> None:
    """JSON can carry lone surrogates (``"\\ud800"``), which no Kafka key can hold."""
    for value in ids:
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadRequest(
                {"error": "invalid order", "fields": [_field("body", "ids must be valid UTF-8")]}
            ) from None


def _not_object(error: str) -> dict[str, Any]:
    return {"error": error, "fields": [_field("body", "a JSON object")]}


def _location(order_id: str) -> str:
    return "/orders/" + quote(order_id, safe="")


@contextmanager
def _invalid(error: str) -> Iterator[None]:
    """A pydantic ``ValidationError`` inside is a 400 ``{error, fields}``."""
    try:
        yield
    except ValidationError as exc:
        raise BadRequest({"error": error, "fields": field_errors(exc)}) from None


async def _place_request(request: Request) -> tuple[OrderPlaced, float]:
    """The order and the wait of ``POST /orders``; :class:`BadRequest` when invalid."""
    wait = parse_wait(request.query.get("wait"))
    body = await _json_body(request, required=True)
    if not isinstance(body, dict):
        raise BadRequest({"error": "invalid order", "fields": [_field("body", "an object")]})
    with _invalid("invalid order"):
        order = OrderPlaced.model_validate({"type": "OrderPlaced", **_integral(body)})
    _check_utf8(order.order_id, *(line.product_id for line in order.lines))
    return order, wait


async def _lifecycle_request(
    request: Request, order_id: str, action: Action
) -> tuple[float, str | None]:
    """The wait and the cancellation reason of a pay or cancel; :class:`BadRequest` when
    invalid."""
    wait = parse_wait(request.query.get("wait"))
    body = await _json_body(request, required=False) if action == "cancel" else None
    if body is not None and not isinstance(body, dict):
        raise BadRequest({"error": "invalid body", "fields": [_field("body", "an object")]})
    reason = None if body is None else body.get("reason")
    # Validated as the worker would: an id it would dead-letter gets 400 here.
    with _invalid("invalid request"):
        if action == "pay":
            OrderPaid(type="OrderPaid", order_id=order_id)
        else:
            OrderCancelled(type="OrderCancelled", order_id=order_id, reason=reason)
    _check_utf8(order_id, reason or "")
    return wait, reason


ReservedLookup = Callable[[str], "frozenset[str] | None"]
"""``order_id`` -> the products of its reserved lines if this worker knows the decided order
(its saga is in a local partition), else ``None``: tells a payment or cancellation when its
answer is complete without waiting for a quiet period (:meth:`stockflow.Client.pay`)."""


def register_orders_api(
    app: AppT, settings: Settings, *, reserved: ReservedLookup | None = None
) -> Checkout:
    """Add the writes to ``app``'s web server; returns the :class:`Checkout` behind them."""
    from faust import web

    checkout = Checkout(settings)

    async def _close_checkout(sender: object, **kwargs: object) -> None:
        await checkout.close()

    # mode's SignalHandlerT matches no function under mypy (not even (*Any, **Any) -> None).
    app.on_before_shutdown.connect(_close_checkout)  # type: ignore[arg-type]

    class _Writes(web.View):
        def pending(self, order_id: str) -> Response:
            location = _location(order_id)
            body = {"order_id": order_id, "status": "pending", "location": location}
            return self.json(body, status=202, headers={"Location": location})

        async def answer(
            self, order_id: str, call: Callable[[Client], Awaitable[Response]]
        ) -> Response:
            """``call`` with the worker's client: 202 when the answer does not come in time,
            503 when the broker cannot be reached."""
            try:
                return await call(await checkout.client())
            except OrderTimeout:
                return self.pending(order_id)
            except BrokerError as exc:
                return self.error(503, "broker unavailable", detail=str(exc))

        async def lifecycle(self, request: Request, order_id: str, action: Action) -> Response:
            try:
                wait, reason = await _lifecycle_request(request, order_id, action)
            except BadRequest as exc:
                return self.json(exc.body, status=400)
            expect = None if reserved is None else reserved(order_id)

            async def send(client: Client) -> Response:
                events: Sequence[BaseModel]
                if action == "pay":
                    events = await client.pay(order_id, timeout=wait, expect=expect)
                else:
                    events = await client.cancel(
                        order_id, reason=reason, timeout=wait, expect=expect
                    )
                dumped = [event.model_dump(mode="json") for event in events]
                return self.json({"order_id": order_id, "events": dumped})

            return await self.answer(order_id, send)

    class PlaceView(_Writes):
        """Place an order and wait for its outcome."""

        async def post(self, request: Request) -> Response:
            try:
                order, wait = await _place_request(request)
            except BadRequest as exc:
                return self.json(exc.body, status=400)

            async def place(client: Client) -> Response:
                try:
                    outcome = await client.place(
                        order.order_id,
                        order.lines,
                        fulfilment=order.fulfilment,
                        reservation_ttl=order.reservation_ttl,
                        timeout=wait,
                    )
                except OrderConflict as exc:
                    known = exc.outcome
                    return self.json(
                        {
                            "error": "order id already placed with a different body",
                            "order_id": order.order_id,
                            "differences": exc.differences,
                            "outcome": None if known is None else known.model_dump(mode="json"),  # type: ignore[attr-defined]
                        },
                        status=409,
                    )
                return self.json(outcome.model_dump(mode="json"))

            return await self.answer(order.order_id, place)

    class PayView(_Writes):
        """Pay an order: confirm every reserved line."""

        async def post(self, request: Request, order_id: str) -> Response:
            return await self.lifecycle(request, order_id, "pay")

    class CancelView(_Writes):
        """Cancel an order: release every reserved line."""

        async def post(self, request: Request, order_id: str) -> Response:
            return await self.lifecycle(request, order_id, "cancel")

    prefix = settings.app_id
    app.page("/orders", name=f"{prefix}-place")(PlaceView)
    app.page(r"/orders/{order_id:[\s\S]+}/pay", name=f"{prefix}-pay")(PayView)
    app.page(r"/orders/{order_id:[\s\S]+}/cancel", name=f"{prefix}-cancel")(CancelView)
    return checkout
