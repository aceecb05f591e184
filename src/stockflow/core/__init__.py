"""The pure decision core: plain functions over plain, immutable state. No Faust, no I/O.

``stock``  decides for one product (check-and-reserve, confirm, release, stock changes).
``saga``   decides for one order (fan-out, payment, cancellation, timeouts); its state is in
           ``saga_state``, its line answers in ``saga_answers`` and what a state implies
           downstream (commands, outcome, finishing steps) in ``saga_effects``.
``single_line`` decides a single-line order's payment, cancellation and expiry on its ledger
           entry (the product writer's side of docs/design-single-line-at-product-writer.md;
           not wired into the processors yet).
``policy`` carries the business settings the decisions depend on.
"""

from stockflow.core.policy import Policy
from stockflow.core.saga import LineState, Saga, SagaDecision
from stockflow.core.stock import Reservation, Stock, StockDecision

__all__ = [
    "LineState",
    "Policy",
    "Reservation",
    "Saga",
    "SagaDecision",
    "Stock",
    "StockDecision",
]
