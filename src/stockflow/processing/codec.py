"""Bytes in, bytes out: parsing inputs (or explaining why not), encoding outputs and state.

State values are compact JSON arrays encoded and decoded with ``pydantic_core``'s
``to_json``/``from_json`` straight from and into the core's dataclasses: no model validation
per read (a ``TypeAdapter`` round trip was the largest cost of a step). They are decoded without
``from_json``'s string cache (:data:`KEYS_ONLY`): an array has no keys, and its strings (order
ids, a write-ahead copy) rarely repeat, so caching them only cost time (a counters record in
0.40 us instead of 0.53). Hot outputs (what a ledger entry publishes) are encoded from plain
values too, in :mod:`stockflow.processing.entry_events`; rarer ones from their models here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Final, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from stockflow.core.saga_state import LineState, Saga, saga_fields
from stockflow.core.stock import Reservation, Stock
from stockflow.models import DeadLetter
from stockflow.processing.legacy_state import decode_legacy
from stockflow.processing.records import Meta, Out

__all__ = [
    "ERROR_LIMIT",
    "KEYS_ONLY",
    "StockRecord",
    "dead_letter",
    "decode_entry",
    "decode_saga",
    "decode_stock",
    "decode_stock_values",
    "encode",
    "encode_entry",
    "encode_new_single",
    "encode_saga",
    "encode_stock",
    "encode_stock_values",
    "parse",
]

ERROR_LIMIT: Final = 2000
"""Longest error text kept in a dead letter (pydantic lists every failing field)."""

T = TypeVar("T")

KEYS_ONLY: Final = "keys"
"""``from_json``'s ``cache_strings`` for stockflow's own JSON: cache the str objects of object
keys (they repeat in every internal command), not of values (order ids rarely repeat; state
arrays have no keys at all), where pydantic_core caches all."""


@dataclass(frozen=True, slots=True)
class StockRecord:
    """A product's counters plus a write-ahead copy of the other key written in the same step.

    A step that changes both the counters and a ledger entry (or a marker) writes the counters
    first. If a crash loses the second write, the next step for the product finds the copy here
    and repairs it; without it a redelivered reserve could not tell "applied" from "new".

    ``offset`` and ``event_ms`` say which input last changed the counters (its offset in the
    product-command partition and its timestamp) for the read model's freshness; ``None`` in
    state written before they existed.
    """

    stock: Stock
    wal_key: str | None = None
    wal_value: str | None = None
    offset: int | None = None
    event_ms: int | None = None


def encode(model: BaseModel) -> bytes:
    """A public event or internal command as compact JSON."""
    return model.model_dump_json().encode()


def parse(adapter: TypeAdapter[T], raw: bytes | None) -> T | str:
    """The parsed model, or the reason it could not be parsed (for the dead-letter topic)."""
    if raw is None:
        return "record has no value (tombstone)"
    try:
        # The adapter's own SchemaValidator: TypeAdapter.validate_json is a Python wrapper
        # around it that cost 0.3 of an order's 1.5 us parse (timeit).
        value: T = adapter.validator.validate_json(raw)
        return value
    except ValidationError as exc:
        return _explain(exc)


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(item) for item in error["loc"]) or "value"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)[:ERROR_LIMIT]


def dead_letter(meta: Meta, raw: bytes | None, error: str) -> Out:
    letter = DeadLetter(
        topic=meta.topic,
        partition=meta.partition,
        offset=meta.offset,
        timestamp_ms=meta.timestamp_ms,
        key_b64=_b64(meta.key),
        value_b64=_b64(raw),
        error=error[:ERROR_LIMIT],
    )
    return Out(role="dead_letters", key=meta.key, value=encode(letter))


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def encode_stock(record: StockRecord) -> bytes:
    """``[on_hand, reserved, next_seq, wal_key, wal_value, offset, event_ms]``."""
    return encode_stock_values(
        record.stock, record.wal_key, record.wal_value, record.offset, record.event_ms
    )


def encode_stock_values(
    stock: Stock,
    wal_key: str | None,
    wal_value: str | None,
    offset: int | None,
    event_ms: int | None,
) -> bytes:
    """:func:`encode_stock` of the :class:`StockRecord` these fields make, without building it."""
    return to_json(
        [stock.on_hand, stock.reserved, stock.next_seq, wal_key, wal_value, offset, event_ms]
    )


def decode_stock(raw: bytes) -> StockRecord:
    if raw[:1] == b"{":
        return decode_legacy(StockRecord, raw)
    on_hand, reserved, next_seq, wal_key, wal_value, offset, event_ms = from_json(
        raw, cache_strings=KEYS_ONLY
    )
    return StockRecord(Stock(on_hand, reserved, next_seq), wal_key, wal_value, offset, event_ms)


def decode_stock_values(raw: bytes) -> tuple[Stock, str | None, str | None]:
    """The counters and the write-ahead copy of a :func:`decode_stock` record, without
    building the record (what the product writer reads on every command)."""
    if raw[:1] == b"{":
        record = decode_stock(raw)
        return record.stock, record.wal_key, record.wal_value
    on_hand, reserved, next_seq, wal_key, wal_value, _offset, _event_ms = from_json(
        raw, cache_strings=KEYS_ONLY
    )
    return Stock(on_hand, reserved, next_seq), wal_key, wal_value


def encode_entry(entry: Reservation) -> bytes:
    """The :class:`Reservation` fields in order, as a JSON array."""
    return to_json(
        [
            entry.order_id,
            entry.product_id,
            entry.quantity,
            entry.seq,
            entry.expires_at_ms,
            entry.status,
            entry.release_reason,
            entry.finished_at_ms,
            entry.refusal,
            entry.available,
            entry.held_at,
        ]
    )


def decode_entry(raw: bytes) -> Reservation:
    if raw[:1] == b"{":
        return decode_legacy(Reservation, raw)
    return Reservation(*from_json(raw, cache_strings=KEYS_ONLY))


def encode_saga(saga: Saga) -> bytes:
    """The :class:`Saga` fields in order (:func:`saga_fields`) as a JSON array, each line as an
    array too."""
    values = saga_fields(saga)
    values[1] = [
        [
            line.product_id,
            line.quantity,
            line.answer,
            line.reason,
            line.available,
            line.action,
            line.release_reason,
        ]
        for line in saga.lines
    ]
    return to_json(values)


def encode_new_single(
    order_id: str,
    product_id: str,
    quantity: int,
    fulfilment: str,
    placed_at_ms: int,
    deadline_ms: int,
    expires_at_ms: int,
    reply_partition: int,
    placed_at: tuple[int, int],
) -> tuple[bytes, bytes]:
    """:func:`encode_saga` of the saga :func:`stockflow.core.saga.place` starts for a new
    single-line order its product writer decides (``forwards``; status ``reserving``, its line
    pending, nothing requested yet, ``placed_at`` set), and the ``Reserve`` command ``place``
    sends for it as ``to_json`` writes that command, from their values: the order desk's
    usual new order (``OrderDesk._place_single``) builds neither the saga nor its line. Both
    come from bytes templates sharing the encoded ids (1.0 us instead of 1.6). Property tests
    hold them equal to what ``encode_saga`` and ``to_json`` write, for any placed order."""
    order = to_json(order_id)
    product = to_json(product_id)
    return (
        b'[%b,[[%b,%d,"pending",null,null,"reserve",null]],%b,"reserving",%d,%d,%d,%d,'
        b"null,false,false,null,[%d,%d],null,true,true]"
        % (
            order,
            product,
            quantity,
            b'"all_or_nothing"' if fulfilment == "all_or_nothing" else to_json(fulfilment),
            placed_at_ms,
            deadline_ms,
            expires_at_ms,
            reply_partition,
            placed_at[0],
            placed_at[1],
        ),
        b'{"type":"Reserve","order_id":%b,"product_id":%b,"quantity":%d,"expires_at_ms":%d,'
        b'"reply_partition":%d,"outcome":true,"decides":true}'
        % (order, product, quantity, expires_at_ms, reply_partition),
    )


def decode_saga(raw: bytes) -> Saga:
    if raw[:1] == b"{":
        return decode_legacy(Saga, raw)
    values = from_json(raw, cache_strings=KEYS_ONLY)
    values[1] = tuple(LineState(*line) for line in values[1])
    placed_at = values[12]
    if placed_at is not None:
        values[12] = (placed_at[0], placed_at[1])
    return Saga(*values)


# --- outputs encoded from plain values (no model construction per decision) ------------------
#
# Each is a bytes template with the strings encoded by ``to_json`` (so they are escaped exactly
# as the models' dump escapes them): a dict handed to ``to_json`` cost 1.3-2.5x as much, most
# for the nested outcome (0.92 against 0.37 us). Ints are formatted by ``%d``: the fields they
# fill are StrictInt in every model, never a bool. A property test holds every template equal
# to its model's ``model_dump_json`` for any ids.
