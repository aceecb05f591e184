"""The single writer for a partition of products: applies product commands to stock and the
reservation ledger, publishes the product-level events, answers the orders' sagas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from stockflow.core import recount, single_line
from stockflow.core import stock as decide
from stockflow.core.policy import Policy
from stockflow.core.single_line import LineDecision
from stockflow.core.stock import Reservation, Stock, StockDecision
from stockflow.keys import (
    entry_key,
    ledger_prefix,
    marker_key,
    stock_key,
    timer_key,
)
from stockflow.processing.codec import (
    dead_letter,
    decode_entry,
    decode_stock_values,
    encode,
    encode_entry,
    encode_stock_values,
)
from stockflow.processing.entry_events import (
    encode_answer,
    encode_end,
    encode_entry_event,
    encode_new_hold,
    encode_outcome,
    encode_reserved,
)
from stockflow.processing.internal import Command, parse_product_commands
from stockflow.processing.ledger_retention import forget_finished
from stockflow.processing.records import Meta, Out, Step
from stockflow.processing.store import StateStore
from stockflow.processing.sweep import ensure_sweep
from stockflow.processing.written import Written

__all__ = ["WRITTEN_CACHE", "ProductWriter", "log_position"]

WRITTEN_CACHE: Final = 16_384
"""Products whose last written counters :class:`ProductWriter` remembers: at most ~8 MiB
(about 460 bytes an entry with 20-character ids, measured). In the worker an entry serves only
while its value waits for the changelog's acknowledgement; the offline replay and the
benchmark's pipeline keep every product's (10,000 there) until it is full, then start over."""


def log_position(offset: int, index: int) -> int:
    """Where a command stands in its product-commands partition: its record's offset, then its
    place in that record's batch (a record holds far fewer than 2**20 commands)."""
    return offset << 20 | index


class ProductWriter:
    """Processes ``{app_id}-product-commands``. One instance per worker; every call is one
    step of the stream that owns ``meta.partition``."""

    def __init__(self, store: StateStore, policy: Policy) -> None:
        self.store = store
        self.policy = policy
        self._known: dict[str, Stock] | None = None
        """While a batch is applied: each product's counters as its last command left them
        (read from the store, or just written to it), so that a product with several
        commands in the batch is decoded and checked for a lost write once."""
        self._written: Written[tuple[Stock, str | None, bytes | None]] = Written(WRITTEN_CACHE)
        """Per product, the counters' value this writer last put, the counters it holds and
        its write-ahead key and value. While the store hands back those very objects for both
        keys, nothing wrote either since: the counters need no decode and the second write
        no check (the memory store, and the table store until the changelog is acknowledged and
        then while it keeps its recent writes, return the object they were given; anything
        else, a restored value or a lost second write, takes the full read)."""

    def handle(self, raw: bytes | None, meta: Meta) -> Step:
        commands = parse_product_commands(raw)
        if isinstance(commands, str):
            return Step(outputs=[dead_letter(meta, raw, commands)])
        if len(commands) == 1:
            command = commands[0]
            if command["type"] == "FireTimers":
                self._fire(meta.partition, command["now_ms"])
                return Step()
            # log_position(meta.offset, 0), spelled out: one call fewer per record.
            return Step(outputs=self._command(command, meta, meta.offset << 20))
        # A batch: each command is applied as if it had its own record, in order (their writes
        # are sequential, so a crash still loses only a suffix).
        outputs: list[Out] = []
        self._known = {}
        first = log_position(meta.offset, 0)
        try:
            for index, command in enumerate(commands):
                outputs.extend(self._command(command, meta, first + index))
        finally:
            self._known = None
        return Step(outputs=outputs)

    def _command(self, command: Command, meta: Meta, position: int) -> list[Out]:
        kind = command["type"]
        product_id: str = command["product_id"]
        partition = meta.partition
        skey = stock_key(product_id)
        stock = self._load(skey)
        now = meta.timestamp_ms
        if kind == "Reserve":
            order_id: str = command["order_id"]
            ekey = entry_key(product_id, order_id)
            raw_entry = self.store.get(ekey)  # _entry, spelled out for the usual new order
            quantity: int = command["quantity"]
            outcome: bool = command["outcome"]
            if raw_entry is None and outcome == command["decides"] and stock is not None:
                # A new hold, the usual Reserve: a single-line order's its writer decides from
                # now on (its event and outcome published together, nothing to answer), or a
                # saga's line (its event and the answer). What reserve() decides and _apply
                # writes, with no entry or decision built (a property test holds them equal).
                held = decide.hold(stock, quantity, order_id)
                if held is not None:
                    entry_raw, event, last = encode_new_hold(
                        order_id,
                        product_id,
                        quantity,
                        stock.next_seq,
                        command["expires_at_ms"],
                        position,
                        outcome=outcome,
                    )
                    self._write(skey, meta, held, ekey, entry_raw)
                    order_key = order_id.encode()
                    event_out = Out("reservations", order_key, event)
                    if outcome:
                        return [event_out, Out("reservations", order_key, last)]
                    reply = Out("order_replies", order_key, last, command["reply_partition"])
                    return [event_out, reply]
            entry = None if raw_entry is None else decode_entry(raw_entry)
            decision = decide.reserve(
                stock,
                entry,
                order_id=order_id,
                product_id=product_id,
                quantity=quantity,
                expires_at_ms=command["expires_at_ms"],
                now_ms=now,
                held_at=position,
            )
            outputs = self._apply(skey, meta, decision, ekey, emit=not outcome)
            source = decision.source
            if source is not None:
                order_key = order_id.encode()
                if outcome:
                    # A single-line order: this answer is its outcome (after ProductReserved,
                    # as the saga would have published it). Re-derived from the ledger entry on
                    # redelivery, so every copy is the same event.
                    if decision.emits:  # held (even if ended since): ProductReserved first
                        event, answer = encode_reserved(source)
                        outputs.append(Out("reservations", order_key, event))
                    else:
                        answer = encode_outcome(source)
                    outputs.append(Out("reservations", order_key, answer))
                if command["decides"] and source.status != "refused":
                    # Held: nothing to answer (this writer decides what comes next). Ended
                    # already (a Reserve sent again): the end, reported again.
                    if source.status != "pending":  # pending: not ended (no call per order)
                        outputs.extend(_end_report(source, order_key, command["reply_partition"]))
                    return outputs
                outputs.append(
                    Out(
                        "order_replies",
                        order_key,
                        encode_answer(source),
                        command["reply_partition"],
                    )
                )
            return outputs
        if kind == "Confirm":
            ekey = entry_key(product_id, command["order_id"])
            if command["at_ms"] is not None:
                return self._decide_line(command, skey, stock, ekey, meta, position)
            decision = decide.confirm(
                stock,
                self._entry_at(ekey, position),
                now_ms=now,
                pending=lambda: self._ledger(product_id, partition),
            )
            return self._apply(skey, meta, decision, ekey)
        if kind == "Release":
            ekey = entry_key(product_id, command["order_id"])
            if command["at_ms"] is not None:
                return self._decide_line(command, skey, stock, ekey, meta, position)
            decision = decide.release(
                stock, self._entry_at(ekey, position), reason=command["reason"], now_ms=now
            )
            return self._apply(skey, meta, decision, ekey)
        source_id: str = command["source"] if kind == "SetStock" else command["adjustment_id"]
        marker = marker_key(product_id, source_id)
        if self.store.get(marker) is not None:
            return []  # this recount or adjustment was applied already
        if kind == "SetStock":
            decision = recount.set_stock(
                stock,
                product_id=product_id,
                on_hand=command["on_hand"],
                pending=lambda: self._ledger(product_id, partition),
            )
        else:
            assert kind == "AdjustStock", kind
            decision = recount.adjust_stock(
                stock,
                product_id=product_id,
                delta=command["delta"],
                pending=lambda: self._ledger(product_id, partition),
            )
        return self._apply(skey, meta, decision, None, marker=(marker, now))

    def _decide_line(
        self,
        command: Command,
        skey: str,
        stock: Stock | None,
        ekey: str,
        meta: Meta,
        position: int,
    ) -> list[Out]:
        """A single-line order's payment, cancellation or expiry, forwarded by its saga
        (``at_ms`` set): decided on the ledger entry, its answers published before the
        entry's event, and its end (once it has one) reported to the saga, again on every
        forwarded input that finds it ended (a lost report is repaired by the next)."""
        order_id: str = command["order_id"]
        at: int = command["at_ms"]
        entry = self._entry_at(ekey, position)
        line: LineDecision
        if command["type"] == "Confirm":
            product_id: str = command["product_id"]
            partition = meta.partition
            line = single_line.pay_line(
                stock,
                entry,
                order_id=order_id,
                at_ms=at,
                pending=lambda: self._ledger(product_id, partition),
            )
        elif command["reason"] == "expired":
            line = single_line.expire_line(stock, entry, now_ms=at)
        else:
            line = single_line.cancel_line(stock, entry, order_id=order_id, at_ms=at)
        order_key = order_id.encode()
        outputs = [Out("reservations", order_key, encode(answer)) for answer in line.answers]
        outputs.extend(self._apply(skey, meta, line.stock, ekey))
        after = line.stock.entry if line.stock.entry is not None else entry
        if after is not None:
            outputs.extend(_end_report(after, order_key, command["reply_partition"]))
        return outputs

    # --- state ------------------------------------------------------------------------------

    def _load(self, skey: str) -> Stock | None:
        known = self._known
        if known is not None and skey in known:
            return known[skey]
        raw = self.store.get(skey)
        if raw is None:
            return None
        written = self._written.get(skey, raw)
        if written is not None and (written[1] is None or self.store.get(written[1]) is written[2]):
            stock = written[0]
            if known is not None:
                known[skey] = stock
            return stock
        stock, wal_key, wal_text = decode_stock_values(raw)
        if wal_key is not None and wal_text is not None:
            # Repair a second write lost in a crash (see StockRecord).
            wal_value = wal_text.encode()
            if self.store.get(wal_key) != wal_value:
                self.store.put(wal_key, wal_value)
        if known is not None:
            known[skey] = stock
        return stock

    def _entry(self, ekey: str) -> Reservation | None:
        raw = self.store.get(ekey)
        return None if raw is None else decode_entry(raw)

    def _entry_at(self, ekey: str, position: int) -> Reservation | None:
        """The entry as a payment, cancellation or release at ``position`` first found it
        (:func:`~stockflow.core.stock.entry_as_of`). After a crash the table can hold the
        writes of records that are delivered again, and the expiry tick of an order whose
        Reserve a crash lost is forwarded before the Reserve is sent again: its first run
        released nothing, and its redelivery must not release the hold made after it (found
        by a soak at 2,000 orders/s on 8 partitions: the release published before its
        ProductReserved)."""
        return decide.entry_as_of(self._entry(ekey), position)

    def _ledger(self, product_id: str, partition: int) -> Iterator[Reservation]:
        for _key, raw in self.store.scan(ledger_prefix(product_id), partition=partition):
            yield decode_entry(raw)

    def _apply(
        self,
        skey: str,
        meta: Meta,
        decision: StockDecision,
        ekey: str | None,
        *,
        marker: tuple[str, int] | None = None,
        emit: bool = True,
    ) -> list[Out]:
        """``skey`` is the product's stock key, ``ekey`` the order's ledger entry key (the key
        of ``decision.entry``, when there is one). ``emit=False``: the caller publishes the
        entry's event itself (a reserve's, with its outcome)."""
        # Write order matters: timers, then counters (with a copy of the second key), then the
        # second key. Any prefix of these writes is repaired or harmless on redelivery.
        partition = meta.partition
        second: tuple[str, bytes] | None = None
        if decision.entry is not None:
            entry = decision.entry
            assert ekey is not None
            second = (ekey, encode_entry(entry))
            if entry.finished_at_ms is not None:
                # Its finish time is its retention timer: the partition's sweep forgets it.
                ensure_sweep(self.store, partition, entry.finished_at_ms, self.policy.retention_ms)
        elif marker is not None:
            second = (marker[0], str(marker[1]).encode())
            due = marker[1] + self.policy.retention_ms
            self.store.put(timer_key(partition, due, "gc", marker[0]), b"")
        if second is None:
            self._write(skey, meta, decision.stock, None, None)
        else:
            self._write(skey, meta, decision.stock, *second)
        outputs: list[Out] = []
        if emit and decision.emits and decision.source is not None:
            source = decision.source
            event = encode_reserved(source)[0] if decision.repeat else encode_entry_event(source)
            outputs.append(Out("reservations", source.order_id.encode(), event))
        if decision.extra:  # shortfalls, keyed by product: rare, no generator for the rest
            outputs.extend(
                Out("reservations", event.product_id.encode(), encode(event))
                for event in decision.extra
            )
        return outputs

    def _write(
        self,
        skey: str,
        meta: Meta,
        stock: Stock | None,
        second_key: str | None,
        second: bytes | None,
    ) -> None:
        """The counters ``stock`` (if changed), with a copy of the second key's value, then the
        second key (a ledger entry or a marker), if any: the last of :meth:`_apply`'s writes."""
        if stock is not None:
            written: tuple[Stock, str | None, bytes | None]
            # offset and timestamp: freshness for the read model.
            if second is None:
                value = encode_stock_values(stock, None, None, meta.offset, meta.timestamp_ms)
                written = (stock, None, None)
            else:
                value = encode_stock_values(
                    stock, second_key, second.decode(), meta.offset, meta.timestamp_ms
                )
                written = (stock, second_key, second)
            self.store.put(skey, value)
            self._written.put(skey, value, written)
            if self._known is not None:
                self._known[skey] = stock
        if second_key is not None:
            assert second is not None
            self.store.put(second_key, second)

    def _fire(self, partition: int, now_ms: int) -> None:
        forget_finished(self.store, partition, now_ms, self.policy.retention_ms)


def _end_report(entry: Reservation, order_key: bytes, reply_partition: int | None) -> list[Out]:
    """How the single-line order of ``entry`` ended, for its saga (:func:`encode_end`); none
    while it has not ended. ``reply_partition`` is the command's (``None``: a Confirm or
    Release that names none, answered on the order id's partition, as the producer keys it)."""
    end = encode_end(entry)
    return [] if end is None else [Out("order_replies", order_key, end, reply_partition)]
