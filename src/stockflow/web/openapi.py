"""The OpenAPI 3.1 document of the worker's HTTP API, served at ``GET /openapi.json``.

Event schemas come from the pydantic models of the event contract (:mod:`stockflow.models`), so
the document cannot drift from what the worker emits; the read model's answers are described
by hand, after :mod:`stockflow.web.views` (both in :mod:`stockflow.web.openapi_schemas`). A test
runs schemathesis against a live worker with this document
(``tests/integration/test_http_schema.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stockflow._version import __version__
from stockflow.web.openapi_schemas import TEXT, component_schemas, schema_ref
from stockflow.web.orders_api import DEFAULT_WAIT, MAX_WAIT

if TYPE_CHECKING:
    from aiohttp.web import Request
    from faust.types import AppT
    from faust.web import Response

__all__ = ["openapi_document", "register_openapi"]


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(schema_ref("Error"), description)


def _wait() -> dict[str, Any]:
    return {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": f"Seconds to wait for the answer (default {DEFAULT_WAIT:g}, "
        f"values above {MAX_WAIT:g} count as {MAX_WAIT:g}).",
        "schema": {"type": "number", "minimum": 0, "default": DEFAULT_WAIT},
    }


def _path_id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": TEXT},
    }


def _pending() -> dict[str, Any]:
    response = _json(schema_ref("Pending"), "Not answered within `wait`; see `Location`.")
    response["headers"] = {"Location": {"schema": {"type": "string"}}}
    return response


def _write_errors() -> dict[str, Any]:
    return {
        "400": _json(schema_ref("FieldErrors"), "Invalid request; nothing was sent."),
        "401": _error("STOCKFLOW_HTTP_TOKEN is set and the bearer token is missing or wrong."),
        "503": _error("The broker cannot be reached."),
    }


def _write_answers(
    answer: dict[str, Any], *, conflict: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A write's responses: ``answer`` (200), pending (202), ``conflict`` (409) and errors."""
    responses = {"200": answer, "202": _pending()}
    if conflict is not None:
        responses["409"] = conflict
    return {**responses, **_write_errors()}


def _operation(
    method: str,
    operation_id: str,
    summary: str,
    parameters: list[dict[str, Any]],
    responses: dict[str, Any],
    *,
    body: tuple[str, bool] | None = None,
) -> dict[str, Any]:
    """``{method: operation}``; ``body`` is the request body's schema name and whether it is
    required."""
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        schema, required = body
        operation["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": schema_ref(schema)}},
        }
    operation["responses"] = responses
    return {method: operation}


def openapi_document(*, token: bool = False, reads_closed: bool = False) -> dict[str, Any]:
    """The document; ``token``/``reads_closed`` add the bearer scheme where it is required."""
    read_errors = {
        "503": _error("No worker owns the partition, or its owner did not answer."),
    }
    if reads_closed:
        read_errors["401"] = _error("The bearer token is missing or wrong.")
    local_errors = {k: v for k, v in read_errors.items() if k == "401"}
    paths: dict[str, Any] = {
        "/orders": _operation(
            "post",
            "placeOrder",
            "Place an order and wait for its outcome",
            [_wait()],
            _write_answers(
                _json(schema_ref("Outcome"), "The order's outcome."),
                conflict=_json(schema_ref("Conflict"), "The order id was placed with other lines."),
            ),
            body=("OrderRequest", True),
        ),
        "/orders/{order_id}/pay": _operation(
            "post",
            "payOrder",
            "Confirm every reserved line of an order",
            [_path_id("order_id"), _wait()],
            _write_answers(_json(schema_ref("PayAnswer"), "The payment's answer.")),
        ),
        "/orders/{order_id}/cancel": _operation(
            "post",
            "cancelOrder",
            "Release every reserved line of an order",
            [_path_id("order_id"), _wait()],
            _write_answers(_json(schema_ref("CancelAnswer"), "The cancellation's answer.")),
            body=("CancelRequest", False),
        ),
        "/orders/{order_id}": _operation(
            "get",
            "getOrder",
            "An order's reservation state (the saga)",
            [_path_id("order_id")],
            {
                "200": _json(schema_ref("OrderState"), "The order's state."),
                "404": _error("Never placed, or forgotten after STOCKFLOW_RETENTION."),
                **read_errors,
            },
        ),
        "/stock/{product_id}": _operation(
            "get",
            "getStock",
            "A product's stock and how fresh the answer is",
            [
                _path_id("product_id"),
                {
                    "name": "order",
                    "in": "query",
                    "required": False,
                    "description": "Also show this order's hold on the product (`reservation`, "
                    "null when it has none).",
                    "schema": {"type": "string", "maxLength": 256, "pattern": TEXT},
                },
            ],
            {
                "200": _json(schema_ref("Stock"), "The product's stock."),
                "404": _error("Never stocked."),
                **read_errors,
            },
        ),
        # Served by this worker alone: never forwarded, so no 503.
        "/metrics": _operation(
            "get",
            "getMetrics",
            "Prometheus metrics of this worker",
            [],
            {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **local_errors,
            },
        ),
        "/openapi.json": _operation(
            "get",
            "getOpenApi",
            "This document",
            [],
            {"200": _json({"type": "object"}, "The OpenAPI document."), **local_errors},
        ),
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "stockflow worker",
            "version": __version__,
            "description": "Place, pay and cancel orders; read stock and order state. Any "
            "worker answers any id.",
        },
        "paths": paths,
        "components": {"schemas": component_schemas()},
    }
    if token:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        for path in paths.values():
            for method, operation in path.items():
                if method != "get" or reads_closed:
                    operation["security"] = [{"bearer": []}]
    return document


def register_openapi(app: AppT, *, token: bool, reads_closed: bool, name: str) -> None:
    """Serve :func:`openapi_document` at ``GET /openapi.json``."""
    from faust import web

    document = openapi_document(token=token, reads_closed=reads_closed)

    class OpenApiView(web.View):
        """The OpenAPI document of this worker's HTTP API."""

        async def get(self, request: Request) -> Response:
            return self.json(document)

    app.page("/openapi.json", name=name)(OpenApiView)
