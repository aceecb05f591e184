"""Where a failed run's state and outputs parted, from its dumped topics.

``stockflow audit`` says *that* a product was oversold; a CI run's topics are gone by the time
anyone reads its message. Two checks name the place, small enough to print in that message:

* :func:`writer_replay`: the product commands replayed, partition by partition, through a fresh
  :class:`~stockflow.processing.products.ProductWriter` (the pure core, the memory store). A
  writer decides only on its commands and its state, so after every command record the
  counters in the changelog must equal the replay's, however often the worker was killed,
  restored and fed the same records again. The first records that differ show a restore, a
  redelivery or a second writer that changed a decision.
* :func:`late_emissions`: ledger changes (a reservation held, confirmed, released) whose first
  public event was stamped well after the changelog write that made them, or never published:
  an event lost in a crash and derived again later, after decisions it preceded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from stockflow.audit.events import load
from stockflow.core.policy import Policy
from stockflow.core.stock import Stock
from stockflow.fencing import Fence
from stockflow.kafka import Record
from stockflow.keys import ENTRY_KEYS, STOCK_KEYS
from stockflow.processing.codec import decode_entry, decode_stock
from stockflow.processing.products import ProductWriter
from stockflow.processing.records import Meta
from stockflow.processing.store import MemoryStore

__all__ = ["late_emissions", "writer_replay"]

_EVENT_KINDS = {
    "ProductReserved": "reserve",
    "ReservationConfirmed": "confirm",
    "ReservationReleased": "release",
}
_STATUS_KINDS = {"pending": "reserve", "confirmed": "confirm", "released": "release"}


def writer_replay(
    commands: Iterable[Record],
    changelog: Iterable[Record],
    *,
    policy: Policy | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """``{"checked": n, "count": m, "first": [...]}``: counters written to the changelog after a
    command record (the last write of a product for that record) against the replay's."""
    replayed = _replay(commands, policy or Policy())
    checked = 0
    found: list[dict[str, Any]] = []
    count = 0
    for (partition, key), writes in _counter_writes(changelog).items():
        for at, (offset, counters, stamped) in enumerate(writes):
            if at + 1 < len(writes) and writes[at + 1][0] == offset:
                continue  # not the record's last write of these counters
            checked += 1
            expected = None if offset is None else replayed.get((partition, offset), {}).get(key)
            if expected != counters:
                count += 1
                if len(found) < limit:
                    found.append(
                        {
                            "partition": partition,
                            "key": key,
                            "command_offset": offset,
                            "stamped_ms": stamped,
                            "changelog": counters,
                            "replay": expected,
                        }
                    )
    found.sort(key=lambda row: (row["stamped_ms"], row["partition"]))
    return {"checked": checked, "count": count, "first": found}


def late_emissions(
    changelog: Iterable[Record],
    reservations: Iterable[Record],
    *,
    slack_ms: int = 1_000,
    limit: int = 10,
) -> dict[str, Any]:
    """``{"count": n, "first": [...]}``: ledger changes whose first event on ``reservations``
    was stamped more than ``slack_ms`` after their first changelog write, or is missing."""
    published: dict[tuple[str, str, str], int] = {}
    for record in reservations:
        event = load(record.value)
        kind = None if event is None else _EVENT_KINDS.get(event.get("type", ""))
        if event is None or kind is None:
            continue
        slot = (event["order_id"], event["product_id"], kind)
        published[slot] = min(record.timestamp_ms, published.get(slot, record.timestamp_ms))
    found: list[dict[str, Any]] = []
    count = 0
    seen: set[tuple[str, str, str]] = set()
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        if record.value is None or not (record.key or b"").startswith(ENTRY_KEYS.encode()):
            continue
        entry = decode_entry(record.value)
        kind = _STATUS_KINDS.get(entry.status)
        slot = (entry.order_id, entry.product_id, kind or "")
        if kind is None or slot in seen:
            continue
        seen.add(slot)
        stamped = published.get(slot)
        if stamped is not None and stamped - record.timestamp_ms <= slack_ms:
            continue
        count += 1
        if len(found) < limit:
            found.append(
                {
                    "order_id": entry.order_id,
                    "product_id": entry.product_id,
                    "kind": kind,
                    "changelog": [record.partition, record.offset, record.timestamp_ms],
                    "published_ms": stamped,
                }
            )
    return {"count": count, "first": found}


def _replay(
    commands: Iterable[Record], policy: Policy
) -> dict[tuple[int, int], dict[str, list[int]]]:
    """Per (partition, command offset), every product's counters after that record."""
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in commands:
        by_partition[record.partition].append(record)
    after: dict[tuple[int, int], dict[str, list[int]]] = {}
    for partition, records in by_partition.items():
        store = MemoryStore()
        writer = ProductWriter(store, policy)
        for record in sorted(records, key=lambda r: r.offset):
            meta = Meta(record.topic, partition, record.offset, record.timestamp_ms, record.key)
            step = writer.handle(record.value, meta)
            for key in step.after_flush:
                store.delete(key)
            after[(partition, record.offset)] = {
                key: _counters(decode_stock(raw).stock)
                for key, raw in store.scan(STOCK_KEYS, partition=partition)
            }
    return after


def _counter_writes(
    changelog: Iterable[Record],
) -> dict[tuple[int, str], list[tuple[int | None, list[int], int]]]:
    """Per (partition, counters key), in changelog order: (the command offset the write
    records, [on_hand, reserved], stamp)."""
    writes: dict[tuple[int, str], list[tuple[int | None, list[int], int]]] = defaultdict(list)
    fence = Fence()  # late records of a worker that had lost the partition: never restored
    for record in sorted(changelog, key=lambda r: (r.partition, r.offset)):
        key = (record.key or b"").decode(errors="replace")
        if not fence.admit(record.partition, record.epoch):
            continue
        if record.value is None or not key.startswith(STOCK_KEYS):
            continue
        counters = decode_stock(record.value)
        writes[(record.partition, key)].append(
            (counters.offset, _counters(counters.stock), record.timestamp_ms)
        )
    return writes


def _counters(stock: Stock) -> list[int]:
    return [stock.on_hand, stock.reserved]
