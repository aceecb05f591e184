"""Hand-made topics for the auditor's unit tests: records with chosen timestamps and offsets.

Imported as a plain module (pytest puts this directory on ``sys.path``).
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from typing import Any

from stockflow.audit import AuditResult, audit_records
from stockflow.audit.findings import Finding
from stockflow.testing.topics import Record

__all__ = [
    "DEAD",
    "INVENTORY",
    "ORDERS",
    "RESERVATIONS",
    "Topics",
    "clean_run",
    "only",
    "stock_case",
    "stock_kinds",
]

ORDERS, INVENTORY, RESERVATIONS, DEAD = "orders", "inventory", "reservations", "dead"


class Topics:
    """Hand-made topics: offsets are assigned per partition in the order records are added."""

    def __init__(self) -> None:
        self.records: dict[str, list[Record]] = defaultdict(list)
        self.next_offset: dict[tuple[str, int], int] = defaultdict(int)

    def add(
        self, topic: str, value: Any, *, ts: int, partition: int = 0, key: bytes | None = None
    ) -> Record:
        raw = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
        offset = self.next_offset[(topic, partition)]
        self.next_offset[(topic, partition)] += 1
        record = Record(topic, partition, offset, key, raw, ts)
        self.records[topic].append(record)
        return record

    # inputs
    def place(self, order: str, *lines: tuple[str, int], ts: int, partition: int = 0) -> Record:
        lines_json = [{"product_id": p, "quantity": q} for p, q in lines]
        value = {"type": "OrderPlaced", "order_id": order, "lines": lines_json}
        return self.add(ORDERS, value, ts=ts, partition=partition, key=order.encode())

    def order_event(self, kind: str, order: str, *, ts: int, partition: int = 0) -> Record:
        value = {"type": kind, "order_id": order}
        return self.add(ORDERS, value, ts=ts, partition=partition, key=order.encode())

    def stock_set(self, product: str, on_hand: int, *, ts: int) -> Record:
        value = {"type": "StockSet", "product_id": product, "on_hand": on_hand}
        return self.add(INVENTORY, value, ts=ts, key=product.encode())

    def adjust(self, product: str, delta: int, adjustment: str, *, ts: int) -> Record:
        value = {
            "type": "StockAdjusted",
            "product_id": product,
            "delta": delta,
            "adjustment_id": adjustment,
        }
        return self.add(INVENTORY, value, ts=ts, key=product.encode())

    # outputs
    def out(self, value: dict[str, Any], *, ts: int, partition: int = 0) -> Record:
        return self.add(RESERVATIONS, value, ts=ts, partition=partition)

    def reserved(self, order: str, product: str, quantity: int, *, ts: int) -> Record:
        return self.out(
            {
                "type": "ProductReserved",
                "order_id": order,
                "product_id": product,
                "quantity": quantity,
                "expires_at": "2030-01-01T00:00:00.000Z",
            },
            ts=ts,
        )

    def order_reserved(self, order: str, *lines: tuple[str, int], ts: int) -> Record:
        return self.out(
            {
                "type": "OrderReserved",
                "order_id": order,
                "lines": [{"product_id": p, "quantity": q} for p, q in lines],
                "expires_at": "2030-01-01T00:00:00.000Z",
                "partial": False,
                "refused": [],
            },
            ts=ts,
        )

    def rejected(self, order: str, product: str, quantity: int, *, ts: int) -> Record:
        line = {"product_id": product, "quantity": quantity, "reason": "insufficient_stock"}
        value = {"type": "OrderRejected", "order_id": order, "reason": "insufficient_stock"}
        return self.out({**value, "lines": [line]}, ts=ts)

    def closing(self, kind: str, order: str, product: str, quantity: int, **extra: Any) -> Record:
        ts = extra.pop("ts")
        value = {"type": kind, "order_id": order, "product_id": product, "quantity": quantity}
        return self.out({**value, **extra}, ts=ts)

    def shortfall(self, product: str, *, ts: int) -> Record:
        value = {"type": "StockShortfall", "product_id": product, "on_hand": 0, "reserved": 1}
        return self.out({**value, "at_risk": []}, ts=ts)

    def dead_letter(self, original: Record, *, ts: int, value: bytes | None = None) -> Record:
        carried = original.value if value is None else value
        letter = {
            "type": "DeadLetter",
            "topic": original.topic,
            "partition": original.partition,
            "offset": original.offset,
            "timestamp_ms": original.timestamp_ms,
            "key_b64": base64.b64encode(original.key).decode() if original.key else None,
            "value_b64": base64.b64encode(carried).decode() if carried is not None else None,
            "error": "invalid",
        }
        return self.add(DEAD, letter, ts=ts)

    def audit(self, **options: Any) -> AuditResult:
        return audit_records(
            self.records[ORDERS],
            self.records[INVENTORY],
            self.records[RESERVATIONS],
            self.records[DEAD],
            **options,
        )


def clean_run() -> Topics:
    """A correct run with duplicates, a payment, a cancellation, a recount, a reported shortfall
    and dead letters."""
    t = Topics()
    t.stock_set("sku", 5, ts=1000)
    t.adjust("sku", 2, "adj-1", ts=1001)
    t.adjust("sku", 2, "adj-1", ts=1002)  # redelivered adjustment: applied once
    bad_stock = t.add(INVENTORY, {"type": "StockSet", "product_id": "sku", "on_hand": "x"}, ts=1003)
    t.place("o-1", ("sku", 3), ts=1100)
    t.place("o-2", ("sku", 4), ts=1101)
    t.place("o-3", ("sku", 1), ts=1102)
    t.place("o-1", ("sku", 3), ts=1103)  # duplicated input
    t.order_event("OrderPaid", "o-1", ts=1200)
    t.order_event("OrderCancelled", "o-2", ts=1201)
    bad_order = t.add(ORDERS, b"\xff not json", ts=1202, key=b"b-1")
    t.order_event("OrderCancelled", "o-3", ts=1203)
    t.stock_set("sku", 2, ts=1300)
    t.place("o-5", ("sku", 2), ts=1350)
    t.adjust("sku", -1, "damage-1", ts=1500)
    t.place("o-6", ("sku", 1), ts=1600)

    t.reserved("o-1", "sku", 3, ts=1150)
    t.order_reserved("o-1", ("sku", 3), ts=1151)
    t.reserved("o-2", "sku", 4, ts=1152)
    t.order_reserved("o-2", ("sku", 4), ts=1153)
    t.rejected("o-3", "sku", 1, ts=1154)
    t.reserved("o-1", "sku", 3, ts=1155)  # identical re-emissions after the duplicate
    t.order_reserved("o-1", ("sku", 3), ts=1156)
    t.closing("ReservationConfirmed", "o-1", "sku", 3, ts=1250)
    t.closing("ReservationReleased", "o-2", "sku", 4, reason="cancelled", ts=1251)
    t.out({"type": "OrderCancelIgnored", "order_id": "o-3", "reason": "already_released"}, ts=1252)
    t.reserved("o-5", "sku", 2, ts=1400)
    t.order_reserved("o-5", ("sku", 2), ts=1401)
    t.shortfall("sku", ts=1501)
    t.rejected("o-6", "sku", 1, ts=1650)

    t.dead_letter(bad_stock, ts=1010)
    t.dead_letter(bad_order, ts=1210)
    return t


def only(result: AuditResult, kind: str) -> Finding:
    found = [f for f in result.violations if f.kind == kind]
    assert len(found) == 1, result.violations
    assert len(result.violations) == 1, result.violations
    return found[0]


def stock_case(*steps: tuple[Any, ...]) -> Topics:
    """Steps: ("set", product, n, ts), ("adjust", product, delta, id, ts),
    ("reserve"/"confirm"/"release", order, product, quantity, ts), ("shortfall", product, ts)."""
    t = Topics()
    for step in steps:
        kind = step[0]
        if kind == "set":
            t.stock_set(step[1], step[2], ts=step[3])
        elif kind == "adjust":
            t.adjust(step[1], step[2], step[3], ts=step[4])
        elif kind == "reserve":
            t.place(step[1], (step[2], step[3]), ts=step[4] - 1)
            t.reserved(step[1], step[2], step[3], ts=step[4])
            t.order_reserved(step[1], (step[2], step[3]), ts=step[4])
        elif kind == "confirm":
            t.closing("ReservationConfirmed", step[1], step[2], step[3], ts=step[4])
        elif kind == "release":
            order, product, quantity, ts = step[1:]
            t.closing("ReservationReleased", order, product, quantity, reason="expired", ts=ts)
        elif kind == "shortfall":
            t.shortfall(step[1], ts=step[2])
    return t


def stock_kinds(t: Topics, **options: Any) -> list[str]:
    return [f.kind for f in t.audit(**options).violations]
