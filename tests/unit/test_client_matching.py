"""Matching answers to checkout calls (stockflow.client.matching) and the HTTP helpers that
need no broker: wait parsing, the bearer token, the OpenAPI document."""

from __future__ import annotations

import math

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stockflow.client.matching import (
    Answers,
    differences,
    fulfilment_of,
    merged,
    outcome_lines,
)
from stockflow.errors import OrderConflict, OrderTimeout, StockflowError
from stockflow.models import (
    LineRefusal,
    OrderCancelIgnored,
    OrderLine,
    OrderRejected,
    OrderReserved,
    ReservationConfirmed,
    ReservationConfirmFailed,
    ReservationReleased,
    ReservedLine,
)
from stockflow.settings import Settings
from stockflow.web.auth import authorized, install_auth, needs_token
from stockflow.web.openapi import openapi_document
from stockflow.web.orders_api import MAX_WAIT, BadRequest, parse_wait

RESERVED = OrderReserved(
    order_id="o",
    lines=[ReservedLine(product_id="a", quantity=2)],
    expires_at="2026-01-01T00:00:00.000Z",
    partial=True,
    refused=[LineRefusal(product_id="b", quantity=1, reason="insufficient_stock", available=0)],
)
REJECTED = OrderRejected(
    order_id="o",
    reason="insufficient_stock",
    lines=[
        LineRefusal(product_id="a", quantity=2, reason="compensated"),
        LineRefusal(product_id="b", quantity=1, reason="insufficient_stock", available=0),
    ],
)


def test_lines_are_merged_per_product_as_the_saga_does() -> None:
    lines = [OrderLine(product_id="a", quantity=1), OrderLine(product_id="a", quantity=1)]
    assert merged(lines) == {"a": 2}


def test_an_outcome_names_every_line_it_was_decided_on() -> None:
    assert outcome_lines(RESERVED) == {"a": 2, "b": 1}
    assert outcome_lines(REJECTED) == {"a": 2, "b": 1}


def test_fulfilment_is_known_only_where_the_outcome_proves_it() -> None:
    assert fulfilment_of(RESERVED) == "partial"
    assert fulfilment_of(REJECTED) == "all_or_nothing"
    plain = RESERVED.model_copy(update={"refused": [], "partial": False})
    assert fulfilment_of(plain) is None


def test_differences_name_each_product_and_the_fulfilment() -> None:
    assert differences({"a": 2}, {"a": 2}) == []
    assert differences({"a": 3, "c": 1}, {"a": 2, "b": 1}) == [
        "a: quantity 2 placed, 3 asked now",
        "b: quantity 1 placed, not asked now",
        "c: not placed, quantity 1 asked now",
    ]
    assert differences(
        {"a": 2}, {"a": 2}, asked_fulfilment="all_or_nothing", placed_fulfilment="partial"
    ) == ["fulfilment partial placed, all_or_nothing asked now"]
    assert differences({"a": 2}, {"a": 2}, asked_fulfilment="partial") == []


def test_errors_carry_the_order_id() -> None:
    timeout = OrderTimeout("o-9", "place", 2.5)
    assert isinstance(timeout, StockflowError)
    assert (timeout.order_id, timeout.action, str(timeout)) == (
        "o-9",
        "place",
        "no answer for order 'o-9' (place) within 2.5s",
    )
    conflict = OrderConflict("o-9", ["a: quantity 2 placed, 3 asked now"], REJECTED)
    assert conflict.outcome is REJECTED and "a: quantity 2 placed" in str(conflict)


def confirmed(product: str) -> ReservationConfirmed:
    return ReservationConfirmed(order_id="o", product_id=product, quantity=1)


def test_a_payment_is_answered_by_every_reserved_line_or_one_failure() -> None:
    answers = Answers("pay", frozenset({"a", "b"}))
    assert not answers.feed(confirmed("a"))
    assert not answers.feed(confirmed("a"))  # a re-emission counts once
    assert not answers.feed(
        ReservationReleased(order_id="o", product_id="a", quantity=1, reason="cancelled")
    )
    assert answers.feed(confirmed("b"))
    assert [e.product_id for e in answers.events] == ["a", "b"]  # type: ignore[union-attr]
    failed = Answers("pay", None)
    assert failed.feed(ReservationConfirmFailed(order_id="o", reason="unknown_order"))


def test_a_deferred_request_learns_the_lines_from_the_outcome() -> None:
    answers = Answers("cancel", None)
    answers.feed(RESERVED)
    assert answers.expected == frozenset({"a"})
    expired = ReservationReleased(order_id="o", product_id="a", quantity=2, reason="expired")
    assert not answers.feed(expired)  # an expiry does not answer a cancellation
    released = ReservationReleased(order_id="o", product_id="a", quantity=2, reason="cancelled")
    assert answers.feed(released)
    ignored = Answers("cancel", frozenset())
    assert ignored.feed(OrderCancelIgnored(order_id="o", reason="already_released"))


def test_unknown_outcome_settles_on_the_first_line_then_waits_a_quiet_period() -> None:
    answers = Answers("pay", None)
    answers.feed(confirmed("a"))
    assert answers.settled and not answers.complete


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, 5.0), ("", 5.0), ("0", 0.0), ("2.5", 2.5), ("1e9", MAX_WAIT)]
)
def test_wait_defaults_to_5_and_is_capped_at_30(raw: str | None, expected: float) -> None:
    assert parse_wait(raw) == expected


@pytest.mark.parametrize("raw", ["soon", "-1", "nan", "inf"])
def test_wait_must_be_a_finite_number_of_seconds(raw: str) -> None:
    with pytest.raises(BadRequest):
        parse_wait(raw)
    assert not math.isnan(parse_wait("0"))


def test_writes_need_the_token_and_reads_only_when_closed() -> None:
    assert needs_token("POST", "/orders", reads_closed=False)
    assert not needs_token("GET", "/stock/a", reads_closed=False)
    assert needs_token("GET", "/stock/a", reads_closed=True)
    assert not needs_token("GET", "/health", reads_closed=True)
    assert authorized("Bearer s3cret", "s3cret")
    assert authorized("bearer s3cret", "s3cret")
    assert not authorized("Bearer s3cre", "s3cret")
    assert not authorized("s3cret", "s3cret")
    assert not authorized(None, "s3cret")


@pytest.mark.parametrize("reads_closed", [False, True])
async def test_the_middleware_stops_a_request_before_its_handler(reads_closed: bool) -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.method)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/orders", handler)
    app.router.add_get("/stock/a", handler)
    settings = Settings(http_token="s3cret", http_token_reads=reads_closed)  # type: ignore[arg-type]
    install_auth(app, settings)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/orders")).status == 401
        assert calls == []
        ok = await client.post("/orders", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200
        read = await client.get("/stock/a")
        assert read.status == (401 if reads_closed else 200)
    assert "s3cret" not in repr(settings)


def test_no_token_no_middleware() -> None:
    app = web.Application()
    install_auth(app, Settings())
    assert list(app.middlewares) == []


def test_the_document_covers_every_endpoint_and_marks_the_token() -> None:
    document = openapi_document()
    assert set(document["paths"]) == {
        "/orders",
        "/orders/{order_id}/pay",
        "/orders/{order_id}/cancel",
        "/orders/{order_id}",
        "/stock/{product_id}",
        "/metrics",
        "/openapi.json",
    }
    assert "securitySchemes" not in document["components"]
    locked = openapi_document(token=True)
    assert locked["paths"]["/orders"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in locked["paths"]["/stock/{product_id}"]["get"]
    closed = openapi_document(token=True, reads_closed=True)
    assert "401" in closed["paths"]["/stock/{product_id}"]["get"]["responses"]
    refs = str(document)
    for name in document["components"]["schemas"]:
        assert name in refs
    for ref in {part.split("'")[0] for part in refs.split("#/components/schemas/")[1:]}:
        assert ref in document["components"]["schemas"], ref
