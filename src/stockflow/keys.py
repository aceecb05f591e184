"""Keys: the state keys stockflow writes, how to read them back, and which partition a record
key lands in. Everything that builds, parses or partitions a key uses this module.

State keys. Product ids and order ids are arbitrary strings, so variable parts are
length-prefixed: no separator can make two different ids collide, and all of one product's
ledger entries share a prefix that a range scan can find.

- :func:`stock_key` ``s:{len}:{product}``, a product's counters;
- :func:`entry_key` ``r:{len}:{product}:{order}``, a ledger entry (:func:`ledger_prefix`: one
  product's entries);
- :func:`marker_key` ``m:{len}:{product}:{source}``, an applied stock command;
- :func:`saga_key` ``o:{order}``, an order's saga;
- :func:`timer_key` ``t:{partition:05d}:{due:013d}:{kind}:{ref}`` (:func:`timer_prefix`: one
  partition's timers, earliest first);
- :func:`sweep_state_key` ``w:{partition:05d}``, where a partition's retention sweep is.

:data:`STOCK_KEYS`, :data:`ENTRY_KEYS`, :data:`MARKER_KEYS`, :data:`SAGA_KEYS` and
:data:`TIMER_KEYS` are the prefixes of each kind; :func:`product_of`, :func:`timer_due` and
:class:`TimerKey` read keys back.

Record keys are partitioned by :func:`partition_for`, Kafka's default partitioner: the worker's
publisher, the offline pipeline, the web router, the client and the chaos and bench tools must
agree with the broker's producers on it.

This module imports nothing from stockflow, so every layer can use it.
"""

from __future__ import annotations

from functools import lru_cache
from struct import Struct
from typing import Final

__all__ = [
    "ENTRY_KEYS",
    "HASH_CACHE",
    "MARKER_KEYS",
    "SAGA_KEYS",
    "STOCK_KEYS",
    "TIMER_KEYS",
    "TimerKey",
    "entry_key",
    "ledger_prefix",
    "marker_key",
    "murmur2",
    "partition_for",
    "product_of",
    "saga_key",
    "stock_key",
    "sweep_state_key",
    "timer_due",
    "timer_key",
    "timer_prefix",
]

# The builders below spell these prefixes out rather than look them up: they run per record.
STOCK_KEYS: Final = "s:"
"""What every :func:`stock_key` starts with (a scan over all products' counters)."""
ENTRY_KEYS: Final = "r:"
"""What every :func:`entry_key` starts with (all ledger entries)."""
MARKER_KEYS: Final = "m:"
"""What every :func:`marker_key` starts with."""
SAGA_KEYS: Final = "o:"
"""What every :func:`saga_key` starts with (all sagas)."""
TIMER_KEYS: Final = "t:"
"""What every :func:`timer_key` starts with, whatever its partition."""


# --- building ---------------------------------------------------------------------------------


def _part(value: str) -> str:
    return f"{len(value)}:{value}"


# stock_key, ledger_prefix and entry_key spell _part out: built for every command.


def stock_key(product_id: str) -> str:
    return f"s:{len(product_id)}:{product_id}"


def ledger_prefix(product_id: str) -> str:
    return f"r:{len(product_id)}:{product_id}:"


def entry_key(product_id: str, order_id: str) -> str:
    return f"r:{len(product_id)}:{product_id}:{order_id}"


def marker_key(product_id: str, source: str) -> str:
    """Marks a stock command (adjustment id or recount record) as applied."""
    return f"m:{_part(product_id)}:{source}"


def saga_key(order_id: str) -> str:
    return f"o:{order_id}"


@lru_cache(maxsize=4096)
def timer_prefix(partition: int) -> str:
    return f"t:{partition:05d}:"


def timer_key(partition: int, due_ms: int, kind: str, ref: str) -> str:
    """Timers sort by due time within their partition (13 digits last until the year 2286)."""
    return f"{timer_prefix(partition)}{max(due_ms, 0):013d}:{kind}:{ref}"


def sweep_state_key(partition: int) -> str:
    """The retention sweep's progress in ``partition`` (:mod:`stockflow.processing.sweep`)."""
    return f"w:{partition:05d}"


# --- parsing ----------------------------------------------------------------------------------


def product_of(key: str) -> str:
    """The product id in a :func:`stock_key`, :func:`entry_key` or :func:`marker_key`."""
    length, _, rest = key[2:].partition(":")
    return rest[: int(length)]


def timer_due(key: str) -> int:
    """The due time (epoch ms) in a :func:`timer_key`."""
    start = key.index(":", 2) + 1  # after the partition
    return int(key[start : key.index(":", start)])


class TimerKey:
    """A :func:`timer_key` read back: ``key``, ``due_ms``, ``kind`` and ``ref`` (which may
    itself contain ``:``, e.g. an entry key)."""

    __slots__ = ("due_ms", "key", "kind", "ref")

    def __init__(self, key: str) -> None:
        _t, _partition, due, kind, ref = key.split(":", 4)
        self.key = key
        self.due_ms = int(due)
        self.kind = kind
        self.ref = ref


# --- partitioning -----------------------------------------------------------------------------


HASH_CACHE: Final = 65_536
"""Keys whose hash :func:`partition_for` remembers (a few MiB at most)."""

_hashes: Final[dict[bytes, int]] = {}
"""Product keys repeat on every order; an order's key is hashed about twice (its two events).
A dict emptied when full, not ``functools.lru_cache``: nearly every order key is new, and
lru_cache's miss with an eviction (its linked list kept in order) cost 1.1 us more than the
hash itself (2.1 against 1.0 us a new key, timeit); the dict's miss costs an insert."""


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as aiokafka and the Java client use it."""
    hashed = _hashes.get(key)
    if hashed is None:
        if len(_hashes) >= HASH_CACHE:
            _hashes.clear()
        hashed = _hashes[key] = murmur2(key) & 0x7FFFFFFF
    return hashed % partitions


# Final, here and for the other constants the hot path reads: the compiled build (setup.py)
# then holds them as C constants instead of looking each up in the module's dict per use.
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF
_WORD_READERS: Final = tuple(Struct(f"<{words}I").unpack_from for words in range(65))
"""Readers of 0-64 little-endian 4-byte words (keys up to 259 bytes): ``struct``'s own cache
of formats costs a lookup and the format string a formatting, per key."""


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as an unsigned 32-bit
    int, equal to ``aiokafka.partitioner.murmur2`` for every input (a property test holds them
    together). Written over 4-byte words read at once: a 21-byte order key hashes in 1.7 us
    instead of aiokafka's 4.0 us, and every order's events are keyed by a new order id."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    if words:
        read = _WORD_READERS[words] if words < 65 else Struct(f"<{words}I").unpack_from
        for k in read(data):
            k = (k * _M) & _MASK
            k = ((k ^ (k >> 24)) * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        tail = length - extra
        if extra == 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * _M) & _MASK
    h = ((h ^ (h >> 13)) * _M) & _MASK
    return h ^ (h >> 15)
