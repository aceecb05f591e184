"""Decisions for one product's reservations: check-and-reserve, confirm, release.

Every function takes the product's current state and one command and returns a
:class:`StockDecision`: the new state, the public events and the answer to the order's saga.
Nothing here reads a clock or a table: the shell passes in what it read, and the same inputs
always give the same decision, which is what makes redelivery and replay safe.

Idempotence is by order id: a command for an order that already has a ledger entry re-derives
the same events from that entry instead of applying twice. Re-deriving (rather than staying
silent) matters after a crash, when the first emission may have been lost with the process.
Refusals are ledger entries too: after a crash the table may already hold changes of commands
that come *after* a redelivered one (the changelog is written ahead of the committed input
offset), and a refusal decided again against that later stock could turn into a reservation,
and so shift every decision after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from stockflow.commands import LineAnswer
from stockflow.core.stock_state import Reservation, ReservationStatus, Stock
from stockflow.errors import InvariantViolation
from stockflow.models import (
    ProductReserved,
    ReservationConfirmed,
    ReservationReleased,
    StockShortfall,
    iso_from_ms,
)
from stockflow.reasons import ReleaseReason

__all__ = [
    "Reservation",
    "ReservationStatus",
    "Stock",
    "StockDecision",
    "checked",
    "confirm",
    "entry_as_of",
    "entry_event",
    "forgettable",
    "hold",
    "release",
    "reserve",
    "shortfall",
]

PublicEvent = ProductReserved | ReservationConfirmed | ReservationReleased | StockShortfall


@dataclass(slots=True)
class StockDecision:
    """What one command did. ``stock``/``entry`` are ``None`` when unchanged.

    The decision is kept as plain values: ``source`` is the ledger entry the order-level answer
    (and, when ``emits``, the entry's public event) is derived from; ``extra`` holds rarer
    events (shortfalls). :attr:`events` and :attr:`answer` build the public models on demand
    (tests, the public API); the product writer encodes straight from ``source``
    (:mod:`stockflow.processing.codec`), so the hot path constructs no model."""

    stock: Stock | None = None
    entry: Reservation | None = None
    source: Reservation | None = None
    emits: bool = False
    extra: tuple[StockShortfall, ...] = ()
    repeat: bool = False
    """A redelivered Reserve of a held entry: the event it emits is the ``ProductReserved`` the
    first one published, whatever the entry's status is now."""

    # Written out for the compiled build (see processing.records.Meta).
    def __init__(
        self,
        stock: Stock | None = None,
        entry: Reservation | None = None,
        source: Reservation | None = None,
        emits: bool = False,
        extra: tuple[StockShortfall, ...] = (),
        repeat: bool = False,
    ) -> None:
        self.stock = stock
        self.entry = entry
        self.source = source
        self.emits = emits
        self.extra = extra
        self.repeat = repeat

    @property
    def changed(self) -> bool:
        return self.stock is not None or self.entry is not None

    @property
    def events(self) -> tuple[PublicEvent, ...]:
        head: tuple[PublicEvent, ...] = ()
        if self.emits and self.source is not None:
            head = (_reserved_event(self.source) if self.repeat else entry_event(self.source),)
        return head + self.extra

    @property
    def answer(self) -> LineAnswer | None:
        return None if self.source is None else _answer(self.source)


NOTHING = StockDecision()


def entry_event(entry: Reservation) -> ProductReserved | ReservationConfirmed | ReservationReleased:
    """The public event an entry in its current status stands for."""
    if entry.status == "confirmed":
        return _confirmed_event(entry)
    if entry.status == "released":
        return _released_event(entry)
    return _reserved_event(entry)


def _reserved_event(entry: Reservation) -> ProductReserved:
    return ProductReserved(
        order_id=entry.order_id,
        product_id=entry.product_id,
        quantity=entry.quantity,
        expires_at=iso_from_ms(entry.expires_at_ms),
    )


def _answer(entry: Reservation) -> LineAnswer:
    if entry.status == "refused":
        return LineAnswer(
            order_id=entry.order_id,
            product_id=entry.product_id,
            status="refused",
            quantity=entry.quantity,
            reason=entry.refusal,
            available=entry.available,
        )
    status: Literal["reserved", "confirmed", "released"] = (
        "reserved" if entry.status == "pending" else entry.status
    )
    return LineAnswer(
        order_id=entry.order_id,
        product_id=entry.product_id,
        status=status,
        quantity=entry.quantity,
    )


def checked(stock: Stock) -> Stock:
    """``stock``, once its counters are known to be valid."""
    # reserved may exceed on_hand after a recount (a reported shortfall), never go negative.
    if stock.on_hand < 0 or stock.reserved < 0:
        raise InvariantViolation(f"negative stock counters: {stock!r}")
    return stock


def reserve(
    stock: Stock | None,
    entry: Reservation | None,
    *,
    order_id: str,
    product_id: str,
    quantity: int,
    expires_at_ms: int,
    now_ms: int,
    held_at: int | None = None,
) -> StockDecision:
    """Check and reserve in one step: held only if ``available >= quantity``.

    ``now_ms`` is the command's own timestamp: a refusal is recorded as finished then.
    ``held_at``: the command's position, kept in the new entry (:attr:`Reservation.held_at`)."""
    if entry is not None:
        # Redelivered: answer as the first time and change nothing. A held entry publishes its
        # ProductReserved again even if it has been confirmed or released since: a crash may
        # have lost the first one with its batch's outputs while the entry's later changes
        # were kept, and the topic would then show a closing without its reservation.
        was_held = entry.status != "refused"
        return StockDecision(None, None, entry, was_held, repeat=was_held)
    held_stock = None if stock is None else hold(stock, quantity, order_id)
    if stock is None or held_stock is None:
        refused = Reservation(
            order_id,
            product_id,
            quantity,
            -1,  # never held: numbers only reservations
            expires_at_ms,
            "refused",
            None,
            now_ms,
            "unknown_product" if stock is None else "insufficient_stock",
            0 if stock is None else max(stock.on_hand - stock.reserved, 0),
            held_at,
        )
        return StockDecision(None, refused, refused)
    # Every field positional: a keyword argument costs a dataclass __init__ about half again.
    held = Reservation(
        order_id,
        product_id,
        quantity,
        stock.next_seq,
        expires_at_ms,
        "pending",
        None,
        None,
        None,
        None,
        held_at,
    )
    return StockDecision(held_stock, held, held, True)


def hold(stock: Stock, quantity: int, order_id: str) -> Stock | None:
    """The counters once ``quantity`` more units are held (the hold numbered
    ``stock.next_seq``), or ``None`` when fewer are available: the check and the reservation of
    :func:`reserve` for a new order, which the product writer's usual Reserve calls alone."""
    if stock.on_hand - stock.reserved < quantity:
        return None
    if quantity < 0:  # never from a parsed order (quantities are > 0): a bug upstream
        raise InvariantViolation(f"negative quantity {quantity} for {order_id!r}")
    return Stock(stock.on_hand, stock.reserved + quantity, stock.next_seq + 1)


def confirm(
    stock: Stock | None,
    entry: Reservation | None,
    *,
    now_ms: int,
    pending: Callable[[], Iterable[Reservation]],
) -> StockDecision:
    """Payment: the held units leave stock (``on_hand -= q``, ``reserved -= q``).

    The order's saga is the only one that confirms or releases, in its own log order, so a
    pending entry is always confirmable here. If a recount left fewer units on hand than are
    being confirmed, ``on_hand`` stops at 0 and a :class:`StockShortfall` says so.
    """
    if entry is None or stock is None or entry.status in ("released", "refused"):
        return NOTHING
    if entry.status == "confirmed":
        return StockDecision(None, None, entry, True)
    done = _finished(entry, "confirmed", None, now_ms)
    short = stock.on_hand < entry.quantity
    new_stock = checked(
        Stock(
            max(stock.on_hand - entry.quantity, 0),
            stock.reserved - entry.quantity,
            stock.next_seq,
        )
    )
    extra: tuple[StockShortfall, ...] = ()
    if short:
        # The ledger still holds this entry as pending (it is written after the decision), but
        # its units just left stock: only the *other* pending reservations can be at risk.
        def others() -> Iterable[Reservation]:
            return (other for other in pending() if other.order_id != entry.order_id)

        warning = shortfall(new_stock, product_id=entry.product_id, pending=others, force=True)
        if warning is not None:
            extra = (warning,)
    return StockDecision(new_stock, done, done, True, extra)


def _finished(
    entry: Reservation, status: ReservationStatus, reason: ReleaseReason | None, now_ms: int
) -> Reservation:
    return Reservation(
        entry.order_id,
        entry.product_id,
        entry.quantity,
        entry.seq,
        entry.expires_at_ms,
        status,
        reason,
        now_ms,
        entry.refusal,
        entry.available,
        entry.held_at,
    )


def _confirmed_event(entry: Reservation) -> ReservationConfirmed:
    return ReservationConfirmed(
        order_id=entry.order_id, product_id=entry.product_id, quantity=entry.quantity
    )


def entry_as_of(entry: Reservation | None, position: int) -> Reservation | None:
    """The entry as a command at ``position`` in the product's command log first found it:
    none, if the Reserve that made it stands later (:attr:`Reservation.held_at`). Deciding by
    log position, not by what the table holds when the command is redelivered, keeps its answer
    the same on replay, as the saga's ``placed_at`` does for commands before an order."""
    if entry is not None and entry.held_at is not None and entry.held_at > position:
        return None
    return entry


def forgettable(entry: Reservation, now_ms: int, retention_ms: int) -> bool:
    """Whether the ledger may forget ``entry``: finished at least ``retention_ms`` ago (a
    redelivered command for it finds no entry after that, like one for an unknown order)."""
    finished = entry.finished_at_ms
    return finished is not None and finished + retention_ms <= now_ms


def release(
    stock: Stock | None,
    entry: Reservation | None,
    *,
    reason: ReleaseReason,
    now_ms: int,
) -> StockDecision:
    """Cancel, expiry or compensation: the units are available again at once.

    Releasing a reservation that does not exist is a no-op (never a negative count); releasing a
    confirmed one changes nothing (the units have left).
    """
    if entry is None or stock is None or entry.status in ("confirmed", "refused"):
        return NOTHING
    if entry.status == "released":
        return StockDecision(None, None, entry, True)
    done = _finished(entry, "released", reason, now_ms)
    new_stock = checked(Stock(stock.on_hand, stock.reserved - entry.quantity, stock.next_seq))
    return StockDecision(new_stock, done, done, True)


def _released_event(entry: Reservation) -> ReservationReleased:
    assert entry.release_reason is not None
    return ReservationReleased(
        order_id=entry.order_id,
        product_id=entry.product_id,
        quantity=entry.quantity,
        reason=entry.release_reason,
    )


def shortfall(
    stock: Stock,
    *,
    product_id: str,
    pending: Callable[[], Iterable[Reservation]],
    force: bool = False,
) -> StockShortfall | None:
    """``None`` when stock covers every pending reservation; otherwise the newest pending
    reservations whose quantities together cover the deficit (they cannot all be honoured)."""
    deficit = stock.reserved - stock.on_hand
    if deficit <= 0 and not force:
        return None
    at_risk: list[str] = []
    covered = 0
    newest_first = sorted(
        (entry for entry in pending() if entry.status == "pending"),
        key=lambda entry: entry.seq,
        reverse=True,
    )
    for entry in newest_first:
        if covered >= deficit:
            break
        at_risk.append(entry.order_id)
        covered += entry.quantity
    return StockShortfall(
        product_id=product_id, on_hand=stock.on_hand, reserved=stock.reserved, at_risk=at_risk
    )
