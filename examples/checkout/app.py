"""A checkout that tells the shopper "reserved" or "sold out" while they wait.

It uses ``stockflow.Client``: one call per order, the answer back from the worker, payment and
cancellation the same way. Run a worker first (``faust -A stockflow worker``), stock the products
(``StockSet`` on the inventory topic), then::

    STOCKFLOW_BROKER=kafka://127.0.0.1:9092 python examples/checkout/app.py

The broker and topic names come from the ``STOCKFLOW_*`` environment, as for the worker.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import stockflow
from stockflow.models import OrderReserved, ReservationConfirmed, ReservationConfirmFailed

CART = [("sku-tshirt", 2), ("sku-mug", 1)]


async def checkout(
    client: stockflow.Client, order_id: str, cart: list[tuple[str, int]], *, pays: bool
) -> str:
    """One shopper at the till: reserve the cart, then pay (or walk away)."""
    try:
        outcome = await client.place(order_id, cart, timeout=10)
    except stockflow.OrderTimeout:
        # Not decided yet: the order stands. Tell the shopper to wait, ask again later.
        return f"{order_id}: still deciding, try again in a moment"
    if not isinstance(outcome, OrderReserved):
        short = ", ".join(f"{line.product_id} ({line.reason})" for line in outcome.lines)
        return f"{order_id}: sold out: {short}"
    if not pays:
        released = await client.cancel(order_id, reason="shopper left", timeout=10)
        return f"{order_id}: reserved, then cancelled ({len(released)} line(s) released)"
    answers = await client.pay(order_id, timeout=10)
    failed = [a for a in answers if isinstance(a, ReservationConfirmFailed)]
    if failed:
        return f"{order_id}: payment failed ({failed[0].reason}), refund it"
    units = sum(a.quantity for a in answers if isinstance(a, ReservationConfirmed))
    return f"{order_id}: paid, {units} unit(s) leave stock"


async def run(shoppers: int = 3) -> list[str]:
    run_id = uuid.uuid4().hex[:6]
    async with stockflow.Client() as client:
        lines = await asyncio.gather(
            *(
                checkout(client, f"checkout-{run_id}-{n}", CART, pays=n != 1)
                for n in range(shoppers)
            )
        )
        # A retry of the first order (a double click, a retry after a timeout): the same answer,
        # nothing reserved twice.
        again = await client.place(f"checkout-{run_id}-0", CART, timeout=10)
        lines.append(f"checkout-{run_id}-0 again: {again.type}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    shoppers = int(args[0]) if args else 3
    for line in asyncio.run(run(shoppers)):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
