"""Exceptions raised by stockflow.

Business outcomes (an order that does not fit, a confirm after expiry) are *events*, never
exceptions. Exceptions are for bugs and infrastructure only::

    StockflowError
     +-- ConfigurationError      invalid settings or an impossible topology (also a ValueError)
     +-- BrokerError             the embedded broker could not be started or reached
     +-- WorkerError             a worker process did not start or stop as asked
     +-- DependencyError         an installed Faust or aiokafka lacks an internal stockflow needs
     +-- InvariantViolation      the decision core found state it must never produce (a bug)
     +-- OrderTimeout            a checkout call got no answer in time (carries the order id)
     +-- OrderConflict           an order id placed again with other lines or settings
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigurationError",
    "DependencyError",
    "InvariantViolation",
    "OrderConflict",
    "OrderTimeout",
    "StockflowError",
    "WorkerError",
]


class StockflowError(Exception):
    """Root of every exception stockflow raises on purpose."""


class ConfigurationError(StockflowError, ValueError):
    """Settings are invalid, or the topics on the broker do not fit them.

    Invalid settings (``Settings()``, which reads the ``STOCKFLOW_*`` environment) give one
    line per bad variable, naming it: ``STOCKFLOW_PARTITIONS: Input should be greater than or
    equal to 1``. Also a :class:`ValueError`, as pydantic's ``ValidationError`` it replaces is,
    so ``except ValueError`` keeps catching it.
    """


class BrokerError(StockflowError):
    """The broker could not be started, reached or administered."""


class WorkerError(StockflowError):
    """A worker process did not start, become ready or stop within its timeout."""


class DependencyError(StockflowError):
    """The installed Faust or aiokafka lacks a private name stockflow patches or calls
    (:mod:`stockflow._faust.internals`): another version than the pinned one."""


class InvariantViolation(StockflowError):
    """State the decision core must never produce (for example ``reserved > on_hand``).

    Raising it means a bug in stockflow: the event is not acknowledged and the worker stops
    instead of publishing a wrong decision.
    """


class OrderTimeout(StockflowError):
    """A :class:`stockflow.Client` call got no answer within its timeout.

    The order may still be decided afterwards: ``await client.outcome(order_id)`` fetches that
    decision, and calling ``place()`` again with the same order id and lines is safe.
    ``action`` is ``"place"``, ``"outcome"``, ``"pay"`` or ``"cancel"``.
    """

    def __init__(self, order_id: str, action: str, timeout: float) -> None:
        super().__init__(f"no answer for order {order_id!r} ({action}) within {timeout:g}s")
        self.order_id = order_id
        self.action = action
        self.timeout = timeout


class OrderConflict(StockflowError):
    """An order id was placed again with other lines than the first time (or, where it can be
    told, another fulfilment or reservation TTL).

    The first order stands, unchanged: stockflow decides an order id once, and a second
    ``OrderPlaced`` with that id only repeats the first decision. ``differences`` names each
    difference (``"sku-1: quantity 2 placed, 3 asked"``); ``outcome`` is the first order's
    outcome when it is known (``None`` when the conflict was found before any answer).
    """

    def __init__(self, order_id: str, differences: list[str], outcome: object = None) -> None:
        super().__init__(
            f"order {order_id!r} was placed differently before: " + "; ".join(differences)
        )
        self.order_id = order_id
        self.differences = differences
        self.outcome = outcome
