"""The audit's checks: whole topics in, findings out. Pure: no broker, no clock, no worker code.

Rules (``skew`` is ``clock_skew_ms``; "first" means first in the topic's order):

outcomes
    Every ``OrderPlaced`` that was not dead-lettered has an outcome (``OrderReserved`` or
    ``OrderRejected``) for its ``order_id``; all outcomes of one order have identical content
    (repeats are counted as ``duplicates``); a second, different one is ``conflicting_outcome``.
    An outcome whose order id has no (not dead-lettered) ``OrderPlaced`` is ``orphan_outcome``.
lifecycle
    Per ``(order_id, product_id)``, in the order of the reservations topic: ``ProductReserved``
    first, then at most one of ``ReservationConfirmed`` / ``ReservationReleased``, each with the
    reserved quantity. A release or confirmation with nothing pending is
    ``release_without_reservation`` / ``confirm_without_reservation``; a second, different release
    is ``double_release``; closing a reservation that the other event already closed is
    ``release_after_confirm`` / ``confirm_after_release``; a different repeat of any other
    product event is ``conflicting_duplicate``. Identical repeats are duplicates, not violations.
    Per order: a confirmed line and a released one is ``partly_confirmed``; a confirmed line and
    one still pending is listed as ``awaiting_confirmation``, a violation
    (``unconfirmed_line``) only when ``strict``.
stock
    See :mod:`stockflow.audit.stock`.
dead_letters
    Every dead letter names an input record ``(topic, partition, offset)`` that exists, and its
    ``value_b64``/``key_b64`` decode to that record's exact bytes.
accounting
    Every input record is decided, applied, dead-lettered or pending. ``OrderPlaced``: decided by
    an outcome. ``OrderPaid``: by a ``ReservationConfirmed`` or ``ReservationConfirmFailed`` of the
    order. ``OrderCancelled``: by a ``ReservationReleased`` (reason ``cancelled``) or
    ``OrderCancelIgnored`` of the order, or by an ``OrderRejected`` stamped at or after the
    cancellation (a cancellation that reaches a saga still reserving is absorbed by the
    rejection). A well-formed ``StockSet``/``StockAdjusted`` is applied (stock changes publish
    nothing). Anything else must be dead-lettered. Records without evidence are *pending*; they
    listed as ``awaiting_outcome`` / ``awaiting_accounting`` and are violations (``lost_order``,
    ``unaccounted_input``) only when ``strict``.
format
    Output records must be JSON objects of a contract type with the fields the checks read.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from stockflow.audit.events import (
    OUTCOMES,
    Output,
    canonical,
    load,
    output_problem,
    position,
    stock_fields,
    text,
    whole,
)
from stockflow.audit.findings import AuditResult, Finding, Position
from stockflow.audit.lifecycle import check_lifecycle
from stockflow.audit.stock import ShortfallMark, StockInput, check_stock
from stockflow.kafka import Record

__all__ = ["audit_records"]

_INPUT_TYPES = ("OrderPlaced", "OrderPaid", "OrderCancelled", "StockSet", "StockAdjusted")
_COUNT_GROUPS = ("inputs", "outputs", "dead_letters", "duplicates", "accounting", "violations")


def audit_records(
    orders: Iterable[Record],
    inventory: Iterable[Record],
    reservations: Iterable[Record],
    dead_letters: Iterable[Record],
    *,
    strict: bool = False,
    clock_skew_ms: int = 0,
    max_lag_ms: int | None = None,
) -> AuditResult:
    """Audit whole topics (every record from the beginning; any order). See the module docstring
    for the rules and :mod:`stockflow.audit.stock` for the stock check."""
    audit = _Audit(strict=strict, skew=clock_skew_ms, max_lag=max_lag_ms)
    return audit.run(list(orders), list(inventory), list(reservations), list(dead_letters))


def _by_time(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.timestamp_ms, r.partition, r.offset))


class _Audit:
    def __init__(self, *, strict: bool, skew: int, max_lag: int | None) -> None:
        self.strict = strict
        self.skew = skew
        self.max_lag = max_lag
        self.violations: list[Finding] = []
        self.pending: list[Finding] = []
        self.notes: list[str] = []
        self.counts: dict[str, Counter[str]] = {name: Counter() for name in _COUNT_GROUPS}

    def run(
        self,
        orders: list[Record],
        inventory: list[Record],
        reservations: list[Record],
        dead_letters: list[Record],
    ) -> AuditResult:
        inputs = {position(r): r for r in [*orders, *inventory]}
        lettered = self._dead_letters(_by_time(dead_letters), inputs)
        outputs = self._outputs(_by_time(reservations))
        by_order: dict[str, list[Output]] = defaultdict(list)
        for output in outputs:
            if "order_id" in output.value:
                by_order[output.value["order_id"]].append(output)
        placed = self._placed(orders, lettered)
        self._outcomes(by_order, placed)
        lifecycle = check_lifecycle(outputs)
        self.violations.extend(lifecycle.findings)
        self.pending.extend(lifecycle.unconfirmed)
        if self.strict:
            self.violations.extend(
                replace(finding, kind="unconfirmed_line") for finding in lifecycle.unconfirmed
            )
        self.counts["duplicates"].update(lifecycle.duplicates)
        stock = check_stock(
            self._stock_inputs(inventory, lettered),
            lifecycle.movements,
            [
                ShortfallMark(o.at, o.record.timestamp_ms, o.value["product_id"])
                for o in outputs
                if o.kind == "StockShortfall"
            ],
            clock_skew_ms=self.skew,
            max_lag_ms=self.max_lag,
        )
        self.violations.extend(stock.findings)
        self.notes.extend(stock.notes)
        if stock.repeated_adjustments:
            self.counts["duplicates"]["StockAdjusted (repeated adjustment_id)"] += (
                stock.repeated_adjustments
            )
        self._accounting(orders, inventory, lettered, by_order)
        for finding in self.violations:
            self.counts["violations"][finding.kind] += 1
        return AuditResult(
            violations=tuple(self.violations),
            pending=tuple(self.pending),
            counts={name: dict(counter) for name, counter in self.counts.items()},
            notes=tuple(self.notes),
            strict=self.strict,
        )

    def _violation(self, check: str, kind: str, message: str, at: Position, **extra: Any) -> None:
        self.violations.append(Finding(check, kind, message, at, **extra))

    # --- dead letters ----------------------------------------------------------------------

    def _dead_letters(
        self, letters: Sequence[Record], inputs: dict[Position, Record]
    ) -> set[Position]:
        """Check each dead letter against the input it names; returns the inputs dead-lettered."""
        lettered: set[Position] = set()
        for record in letters:
            self.counts["dead_letters"]["DeadLetter"] += 1
            at = position(record)
            letter = load(record.value)
            fields = (
                (
                    text(letter.get("topic")),
                    whole(letter.get("partition")),
                    whole(letter.get("offset")),
                )
                if letter is not None and letter.get("type") == "DeadLetter"
                else (None, None, None)
            )
            topic, partition, offset = fields
            if letter is None or topic is None or partition is None or offset is None:
                self._violation("format", "malformed_dead_letter", "not a DeadLetter record", at)
                continue
            target = Position(topic, partition, offset)
            original = inputs.get(target)
            if original is None:
                message = f"dead letter names {target}, which is not an input record"
                self._violation(
                    "dead_letters", "dead_letter_without_input", message, at, related=(target,)
                )
                continue
            if target in lettered:
                self.counts["duplicates"]["DeadLetter"] += 1
            lettered.add(target)
            for field_name, actual in (("value_b64", original.value), ("key_b64", original.key)):
                carried = _decode(letter.get(field_name))
                if carried is False or carried != actual:
                    self._violation(
                        "dead_letters",
                        "dead_letter_bytes",
                        f"{field_name} does not decode to the bytes of {target}",
                        at,
                        related=(target,),
                        details={"field": field_name},
                    )
        return lettered

    # --- outputs, outcomes, lifecycle ------------------------------------------------------

    def _outputs(self, records: Sequence[Record]) -> list[Output]:
        outputs: list[Output] = []
        for record in records:
            value = load(record.value)
            problem = output_problem(value)
            if value is None or problem is not None:
                self.counts["outputs"]["(malformed)"] += 1
                self._violation("format", "malformed_output", problem or "", position(record))
                continue
            self.counts["outputs"][str(value["type"])] += 1
            outputs.append(Output(record, value, canonical(value)))
        return outputs

    def _placed(self, orders: Sequence[Record], lettered: set[Position]) -> dict[str, list[Record]]:
        """Order id -> its OrderPlaced records that were not dead-lettered."""
        placed: dict[str, list[Record]] = defaultdict(list)
        for record in orders:
            value = load(record.value)
            if value is None or value.get("type") != "OrderPlaced":
                continue
            order = text(value.get("order_id"))
            if order is not None and position(record) not in lettered:
                placed[order].append(record)
        return placed

    def _outcomes(self, by_order: dict[str, list[Output]], placed: dict[str, list[Record]]) -> None:
        for order, emitted in by_order.items():
            outcomes = [o for o in emitted if o.kind in OUTCOMES]
            if not outcomes:
                continue
            first = outcomes[0]
            seen = {first.canon}
            for later in outcomes[1:]:
                if later.canon in seen:
                    self.counts["duplicates"][later.kind] += 1
                    continue
                seen.add(later.canon)
                self._violation(
                    "outcomes",
                    "conflicting_outcome",
                    f"{order}: {later.kind} differs from the first outcome ({first.kind})",
                    later.at,
                    order_id=order,
                    related=(first.at,),
                )
            if order not in placed:
                self._violation(
                    "outcomes",
                    "orphan_outcome",
                    f"{order}: {first.kind} without an OrderPlaced (that was not dead-lettered)",
                    first.at,
                    order_id=order,
                )

    # --- inputs -----------------------------------------------------------------------------

    def _stock_inputs(
        self, inventory: Sequence[Record], lettered: set[Position]
    ) -> list[StockInput]:
        result: list[StockInput] = []
        for record in inventory:
            fields = stock_fields(load(record.value))
            if fields is None or position(record) in lettered:
                continue
            kind, product, amount, adjustment = fields
            result.append(
                StockInput(position(record), record.timestamp_ms, product, kind, amount, adjustment)
            )
        return result

    def _accounting(
        self,
        orders: Sequence[Record],
        inventory: Sequence[Record],
        lettered: set[Position],
        by_order: dict[str, list[Output]],
    ) -> None:
        waiting: dict[tuple[str, str], list[Record]] = {}
        for is_stock, records in ((False, orders), (True, inventory)):
            for record in records:
                value = load(record.value)
                kind = value.get("type") if value is not None else None
                type_name = kind if isinstance(kind, str) and kind in _INPUT_TYPES else "(invalid)"
                self.counts["inputs"][type_name] += 1
                if position(record) in lettered:
                    status = "dead_lettered"
                elif is_stock:
                    status = "applied" if stock_fields(value) is not None else "pending"
                else:
                    order = text(value.get("order_id")) if value is not None else None
                    evidence = by_order.get(order, []) if order is not None else []
                    decided = _decided(type_name, record, evidence, self.skew)
                    status = "decided" if decided else "pending"
                self.counts["accounting"][status] += 1
                if status != "pending":
                    continue
                order_id = text(value.get("order_id")) if value is not None else None
                if type_name == "OrderPlaced" and order_id is not None:
                    key = (type_name, order_id)  # one finding per order, however often placed
                else:
                    key = (
                        "(invalid)" if type_name == "OrderPlaced" else type_name,
                        str(position(record)),
                    )
                waiting.setdefault(key, []).append(record)
        for (type_name, ident), pending in waiting.items():
            self._pending(type_name, ident, pending)

    def _pending(self, kind: str, ident: str, records: list[Record]) -> None:
        head = records[0]
        is_order = kind == "OrderPlaced"
        finding = Finding(
            check="outcomes" if is_order else "accounting",
            kind="awaiting_outcome" if is_order else "awaiting_accounting",
            message=(
                f"{ident}: OrderPlaced without an outcome"
                if is_order
                else f"{kind} record neither decided nor dead-lettered"
            ),
            at=position(head),
            order_id=ident if is_order else None,
            related=tuple(position(r) for r in records[1:]),
        )
        self.pending.append(finding)
        if self.strict:
            lost = "lost_order" if is_order else "unaccounted_input"
            self.violations.append(replace(finding, kind=lost))


def _decided(kind: str, record: Record, evidence: Sequence[Output], skew: int) -> bool:
    kinds = {e.kind for e in evidence}
    if kind == "OrderPlaced":
        return bool(kinds & set(OUTCOMES))
    if kind == "OrderPaid":
        return bool(kinds & {"ReservationConfirmed", "ReservationConfirmFailed"})
    if kind == "OrderCancelled":
        return any(
            e.kind == "OrderCancelIgnored"
            or (e.kind == "ReservationReleased" and e.value.get("reason") == "cancelled")
            or (e.kind == "OrderRejected" and e.record.timestamp_ms >= record.timestamp_ms - skew)
            for e in evidence
        )
    return False


def _decode(value: Any) -> bytes | bool | None:
    """Base64 text -> bytes; JSON null -> ``None``; anything else -> ``False``."""
    if value is None:
        return None
    if not isinstance(value, str):
        return False
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
