"""Exceptions raised by stockflow.

Business outcomes (an order that does not fit, a confirm after expiry) are *events*, never
exceptions. Exceptions are for bugs and infrastructure only::

    StockflowError
     +-- ConfigurationError      invalid settings or an impossible topology
     +-- BrokerError             the embedded broker could not be started or reached
     +-- WorkerError             a worker process did not start or stop as asked
     +-- DependencyError         an installed Faust or aiokafka lacks an internal stockflow needs
     +-- InvariantViolation      the decision core found state it must never produce (a bug)
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "ConfigurationError",
    "DependencyError",
    "InvariantViolation",
    "StockflowError",
    "WorkerError",
]


class StockflowError(Exception):
    """Root of every exception stockflow raises on purpose."""


class ConfigurationError(StockflowError):
    """Settings are invalid, or the topics on the broker do not fit them."""


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
