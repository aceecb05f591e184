"""What the read views serve (:mod:`stockflow.web.views` describes the HTTP API): each answer
from this worker's local state, with its freshness. Faust-free at import; the views in
:mod:`stockflow.web.pages` read through it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stockflow.keys import STOCK_KEYS, entry_key, partition_for, product_of, stock_key
from stockflow.models import iso_from_ms
from stockflow.processing.codec import StockRecord, decode_entry, decode_stock
from stockflow.web.freshness import Progress, event_time, partition_position
from stockflow.web.reservations import reservation_answer
from stockflow.web.routing import Router
from stockflow.web.source import ReadSource

if TYPE_CHECKING:
    from faust.types import AppT

    from stockflow.core.saga import Saga

__all__ = ["ReadModel"]


class ReadModel:
    """Answers from this worker's local state (no routing): what the views serve."""

    def __init__(self, app: AppT, handle: ReadSource, progress: Progress, router: Router) -> None:
        self.app = app
        self.handle = handle
        self.progress = progress
        self.router = router
        self.settings = handle.settings

    def product_partition(self, product_id: str) -> int:
        return partition_for(product_id.encode(), self.settings.partitions)

    def order_partition(self, order_id: str) -> int:
        """Where an order keyed by its id arrived (a keyless one may be anywhere else)."""
        return partition_for(order_id.encode(), self.settings.partitions)

    def stock(self, product_id: str) -> dict[str, Any] | None:
        raw = self.handle.product_store.get(stock_key(product_id))
        if raw is None:
            return None
        return self.stock_answer(product_id, decode_stock(raw))

    def reservation(self, product_id: str, order_id: str) -> dict[str, Any] | None:
        """The order's ledger entry at the product (``None``: none in this worker's store)."""
        raw = self.handle.product_store.get(entry_key(product_id, order_id))
        return None if raw is None else reservation_answer(decode_entry(raw))

    def stock_answer(self, product_id: str, record: StockRecord) -> dict[str, Any]:
        partition = self.product_partition(product_id)
        topic = self.settings.product_commands_topic
        position = partition_position(self.app, self.progress, topic, partition)
        stock = record.stock
        return {
            "product_id": product_id,
            "on_hand": stock.on_hand,
            "reserved": stock.reserved,
            "available": stock.available,
            "freshness": {
                "partition": partition,
                "offset": record.offset,
                **event_time(record.event_ms),
                "topic": topic,
                "position": position["position"],
                "highwater": position["highwater"],
                "lag": position["lag"],
                "served_by": self.router.me,
                "active": self.router.is_active(self.handle.product_table, partition),
            },
        }

    def reserved_units(self) -> int:
        """Units held by pending reservations in this worker's active product partitions (the
        sum of ``reserved``): a scan of the products' counters, at scrape time only."""
        app = self.app
        topic = self.settings.product_commands_topic
        active = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}
        store = self.handle.product_store
        total = 0
        if hasattr(store.table.data, "_db_for_partition"):  # RocksDB: one store per partition
            for partition in sorted(active):
                for _key, raw in store.scan(STOCK_KEYS, partition=partition):
                    total += decode_stock(raw).stock.reserved
            return total
        for key, raw in store.scan(STOCK_KEYS, partition=0):  # memory: every partition
            if self.product_partition(product_of(key)) in active:
                total += decode_stock(raw).stock.reserved
        return total

    def saga(self, order_id: str) -> Saga | None:
        return self.handle.orders.saga(order_id)

    def order_answer(self, saga: Saga) -> dict[str, Any]:
        partition = saga.reply_partition  # where it arrived in `orders`, and its state lives
        app = self.app
        topics = [
            partition_position(app, self.progress, name, partition)
            for name in (self.settings.orders_topic, self.settings.order_replies_topic)
        ]
        lags = [t["lag"] for t in topics if t["lag"] is not None]
        return {
            "order_id": saga.order_id,
            "status": saga.status,
            "fulfilment": saga.fulfilment,
            "lines": [
                {
                    "product_id": line.product_id,
                    "quantity": line.quantity,
                    "answer": line.answer,
                    "reason": line.reason,
                    "available": line.available,
                    "action": line.action,
                    "release_reason": line.release_reason,
                }
                for line in saga.lines
            ],
            "placed_at": iso_from_ms(saga.placed_at_ms),
            "deadline": iso_from_ms(saga.deadline_ms),
            "expires_at": iso_from_ms(saga.expires_at_ms),
            "finished_at": None
            if saga.finished_at_ms is None
            else iso_from_ms(saga.finished_at_ms),
            "rejection": saga.rejection,
            "pay_requested": saga.pay_requested,
            "cancel_requested": saga.cancel_requested,
            "freshness": {
                "partition": partition,
                "topics": topics,
                "lag": sum(lags) if lags else None,
                "served_by": self.router.me,
                "active": self.router.is_active(self.handle.order_table, partition),
            },
        }
