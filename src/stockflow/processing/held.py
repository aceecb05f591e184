"""A single-line order's plain reservation, kept in its expiry timer.

The order desk writes a single-line order's saga once, at placement. Its product writer's usual
answer (reserved, nothing else waiting) is stored as the value of the order's expiry timer
(:data:`HELD`) instead of a second copy of the saga: the saga it implies is a function of the
first (:func:`stockflow.core.saga.held_by_product`), applied whenever the saga is read
(:func:`load_saga`). Any later change writes the whole saga again, which then supersedes it.
"""

from __future__ import annotations

from stockflow.core import saga as decide
from stockflow.core.saga import Saga
from stockflow.keys import saga_key, timer_key
from stockflow.processing.codec import decode_saga
from stockflow.processing.store import StateStore

__all__ = ["HELD", "expiry_key", "load_saga", "with_held"]

HELD = b"held"
"""The value of a single-line order's expiry timer once its product writer reserved it (other
timers hold ``b""``)."""


def load_saga(store: StateStore, order_id: str) -> Saga | None:
    """The order's saga as the order desk decides on it: the stored record, with a product
    writer's plain reservation applied when its expiry timer holds :data:`HELD`."""
    raw = store.get(saga_key(order_id))
    return None if raw is None else with_held(store, order_id, decode_saga(raw))


def with_held(store: StateStore, order_id: str, saga: Saga) -> Saga:
    """``saga`` as stored, with a plain reservation held by its expiry timer applied."""
    if saga.product_decides and saga.status == "reserving":
        held = decide.held_by_product(saga)
        if held is not None and store.get(expiry_key(saga, order_id)) == HELD:
            return held
    return saga


def expiry_key(saga: Saga, order_id: str) -> str:
    """The key of the order's expiry timer."""
    # The reply partition is the saga's own partition: its timers live there.
    return timer_key(saga.reply_partition, saga.expires_at_ms, "expiry", order_id)
