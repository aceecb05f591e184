"""Bad input for chaos runs: records that must all be dead-lettered, none lost.

Fuzzed bytes, truncated and byte-order-marked JSON, valid JSON with wrong types, huge values,
broken Unicode (lone surrogates, invalid UTF-8), deep nesting, a key that is not the order id,
tombstones; on both input topics. Every bad record is keyed ``bad-<n>``, and valid input never
is, so a check can demand one dead letter per bad record. (Valid Unicode ids are *not* bad
input: they are in the catalog of :mod:`stockflow.chaos.load` and decided normally.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["BAD_KEY_PREFIX", "KINDS", "bad_record"]

BAD_KEY_PREFIX = "bad-"
"""Every bad input is keyed with this prefix, and nothing else is."""

_Make = Callable[[random.Random, str, str], bytes | None]


def _placed(order: str, product: str, **line: Any) -> bytes:
    body = {"product_id": product, "quantity": 1, **line}
    return json.dumps({"type": "OrderPlaced", "order_id": order, "lines": [body]}).encode()


def _line(**line: Any) -> _Make:
    return lambda rng, order, product: _placed(order, product, **line)


def _fill(value: Any, order: str, product: str) -> Any:
    if value == "$ORDER":
        return order
    if value == "$PRODUCT":
        return product
    if isinstance(value, dict):
        return {k: _fill(v, order, product) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, order, product) for v in value]
    return value


def _event(**fields: Any) -> _Make:
    """A JSON object; ``"$ORDER"``/``"$PRODUCT"`` anywhere become the order and product ids."""
    return lambda rng, order, product: json.dumps(_fill(fields, order, product)).encode()


def _raw(template: bytes) -> _Make:
    return lambda rng, order, product: template.replace(b"ORDER", order.encode())


KINDS: dict[str, tuple[str, _Make]] = {
    "fuzz": ("orders", lambda rng, o, p: rng.randbytes(rng.randint(1, 300))),
    "truncated": ("orders", lambda rng, o, p: _placed(o, p)[: rng.randint(1, 40)]),
    "bom": ("orders", lambda rng, o, p: b"\xef\xbb\xbf" + _placed(o, p)),
    "quantity-string": ("orders", _line(quantity="2")),
    "quantity-float": ("orders", _line(quantity=1.5)),
    "quantity-bool": ("orders", _line(quantity=True)),
    "quantity-zero": ("orders", _line(quantity=0)),
    "quantity-negative": ("orders", _line(quantity=-3)),
    "quantity-huge": ("orders", _line(quantity=10**30)),
    "quantity-over-limit": ("orders", _line(quantity=1_000_000_001)),
    "product-id-huge": ("orders", _line(product_id="x" * 100_000)),
    "product-id-empty": ("orders", _line(product_id="")),
    "product-id-null": ("orders", _line(product_id=None)),
    "nan": (
        "orders",
        _raw(
            b'{"type": "OrderPlaced", "order_id": "ORDER", '
            b'"lines": [{"product_id": "p", "quantity": NaN}]}'
        ),
    ),
    "lone-surrogate": (
        "orders",
        _raw(
            b'{"type": "OrderPlaced", "order_id": "ORDER", '
            b'"lines": [{"product_id": "\\ud800", "quantity": 1}]}'
        ),
    ),
    "invalid-utf8": (
        "orders",
        _raw(
            b'{"type": "OrderPlaced", "order_id": "ORDER", '
            b'"lines": [{"product_id": "\xff\xfe", "quantity": 1}]}'
        ),
    ),
    # Deep enough for the worker's parser limit, not so deep that Python's json recurses out.
    "deep-nesting": ("orders", lambda rng, o, p: b"[" * 500 + b"]" * 500),
    "lines-object": (
        "orders",
        _event(type="OrderPlaced", order_id="$ORDER", lines={"product_id": "$PRODUCT"}),
    ),
    "lines-empty": ("orders", _event(type="OrderPlaced", order_id="$ORDER", lines=[])),
    "order-id-number": (
        "orders",
        _event(type="OrderPlaced", order_id=42, lines=[{"product_id": "p", "quantity": 1}]),
    ),
    "unknown-type": ("orders", _event(type="OrderShipped", order_id="$ORDER")),
    "no-type": ("orders", _event(order_id="$ORDER")),
    "paid-no-order-id": ("orders", _event(type="OrderPaid")),
    "reason-huge": ("orders", _event(type="OrderCancelled", order_id="$ORDER", reason="r" * 5000)),
    "key-mismatch": (
        "orders",
        _event(
            type="OrderPlaced", order_id="someone-else", lines=[{"product_id": "p", "quantity": 1}]
        ),
    ),
    "scalar": ("orders", lambda rng, o, p: rng.choice([b"null", b"42", b'"x"', b"[]", b"{}"])),
    "tombstone": ("orders", lambda rng, o, p: None),
    "inventory-fuzz": ("inventory", lambda rng, o, p: rng.randbytes(rng.randint(1, 100))),
    "stockset-negative": ("inventory", _event(type="StockSet", product_id="$PRODUCT", on_hand=-1)),
    "stockset-string": ("inventory", _event(type="StockSet", product_id="$PRODUCT", on_hand="5")),
    "adjust-no-id": ("inventory", _event(type="StockAdjusted", product_id="$PRODUCT", delta=3)),
    "adjust-huge": (
        "inventory",
        _event(type="StockAdjusted", product_id="$PRODUCT", delta=10**40, adjustment_id="$ORDER"),
    ),
}
"""What -> (logical input topic, maker(rng, order id, product id))."""


def bad_record(
    rng: random.Random, n: int, products: Sequence[str]
) -> tuple[str, bytes | None, str]:
    """``(logical topic, value, what)`` of the ``n``-th bad record, keyed ``bad-<n>``."""
    what = rng.choice(list(KINDS))
    topic, make = KINDS[what]
    return topic, make(rng, f"{BAD_KEY_PREFIX}{n}", rng.choice(list(products))), what
