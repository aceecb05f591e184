"""Retention of a product writer's ledger: finished reservations and applied markers are
forgotten once the retention period has passed (see :mod:`stockflow.processing.sweep`)."""

from __future__ import annotations

from dataclasses import replace

from stockflow.core.stock import forgettable
from stockflow.keys import ENTRY_KEYS, product_of, stock_key
from stockflow.processing.codec import decode_entry, decode_stock, encode_stock
from stockflow.processing.store import StateStore
from stockflow.processing.sweep import due_after_sweeping

__all__ = ["forget_finished"]


def forget_finished(store: StateStore, partition: int, now_ms: int, retention_ms: int) -> None:
    """Forget what is due on ``partition`` at ``now_ms``. Deleting produces no output, so
    timers are removed at once."""

    def forget_entry(key: str, raw: bytes) -> None:
        entry = decode_entry(raw)
        if forgettable(entry, now_ms, retention_ms):
            _forget(store, entry.product_id, key)

    for timer in due_after_sweeping(
        store, partition, now_ms, prefix=ENTRY_KEYS, retention_ms=retention_ms, forget=forget_entry
    ):
        # A gc timer: markers, and ledger entries finished by an older version.
        target = timer.ref
        raw = store.get(target)
        if raw is not None and target.startswith(ENTRY_KEYS):
            forget_entry(target, raw)
        elif raw is not None:
            _forget(store, product_of(target), target)
        store.delete(timer.key)


def _forget(store: StateStore, product_id: str, key: str) -> None:
    # The product's StockRecord may still carry this key as its write-ahead copy (when it
    # was the last step that changed the counters); drop the copy first, or the next
    # load would "repair" the deleted key back to life, with no timer left to forget it.
    stock_raw = store.get(stock_key(product_id))
    if stock_raw is not None:
        record = decode_stock(stock_raw)
        if record.wal_key == key:
            unlinked = replace(record, wal_key=None, wal_value=None)  # freshness kept
            store.put(stock_key(product_id), encode_stock(unlinked))
    store.delete(key)
