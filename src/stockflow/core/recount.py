"""Decisions for one product's counted stock: a recount sets what is on hand, an adjustment
(a receipt or a loss) moves it. Reservations stay as they are; a count below them is reported
as a :class:`~stockflow.models.StockShortfall` (:func:`stockflow.core.stock.shortfall`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from stockflow.core.stock import Reservation, Stock, StockDecision, checked, shortfall

__all__ = ["adjust_stock", "set_stock"]


def set_stock(
    stock: Stock | None,
    *,
    product_id: str,
    on_hand: int,
    pending: Callable[[], Iterable[Reservation]],
) -> StockDecision:
    """A recount: ``on_hand`` becomes the counted number; reservations stay as they are."""
    base = stock if stock is not None else Stock(on_hand=0)
    return _new_on_hand(base, product_id=product_id, on_hand=on_hand, pending=pending)


def adjust_stock(
    stock: Stock | None,
    *,
    product_id: str,
    delta: int,
    pending: Callable[[], Iterable[Reservation]],
) -> StockDecision:
    """A receipt (positive) or a loss (negative). ``on_hand`` never goes below zero."""
    base = stock if stock is not None else Stock(on_hand=0)
    return _new_on_hand(
        base, product_id=product_id, on_hand=max(base.on_hand + delta, 0), pending=pending
    )


def _new_on_hand(
    stock: Stock, *, product_id: str, on_hand: int, pending: Callable[[], Iterable[Reservation]]
) -> StockDecision:
    new_stock = checked(Stock(on_hand, stock.reserved, stock.next_seq))
    warning = shortfall(new_stock, product_id=product_id, pending=pending)
    return StockDecision(new_stock, extra=(warning,) if warning else ())
