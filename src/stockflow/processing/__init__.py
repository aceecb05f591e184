"""Faust-free processors: read state from a :class:`StateStore`, call the decision core, write
the new state and return the records to publish.

The worker's agents, the offline replayer and the tests all drive these same classes, so they
cannot disagree. Nothing here imports Faust or touches a clock: time comes from the records.
"""

from stockflow.processing.inventory import InventoryRouter
from stockflow.processing.orders import OrderDesk
from stockflow.processing.products import ProductWriter
from stockflow.processing.records import Meta, Out, Role, Step
from stockflow.processing.store import MemoryStore, StateStore

__all__ = [
    "InventoryRouter",
    "MemoryStore",
    "Meta",
    "OrderDesk",
    "Out",
    "ProductWriter",
    "Role",
    "StateStore",
    "Step",
]
