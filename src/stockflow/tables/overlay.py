"""A partition's held writes laid over what its database holds.

:class:`~stockflow.tables.store.TableStore` holds a partition's writes in memory until the
broker has acknowledged their changelog records, in layers (oldest first: the sealed batches
waiting for acknowledgement, then the batch being applied). Every read and scan sees the
database through those layers; the functions here answer "what does a key hold now" and
"what does an ordered range hold now" from plain dicts and iterators, apart from the
adapter's Faust and RocksDB bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["ABSENT", "newest_held", "overlaid"]


ABSENT = object()


def newest_held(layers: list[dict[bytes, bytes | None]], key: bytes) -> object:
    """The newest held value of ``key`` (``None``: deleted), or ``ABSENT``."""
    for layer in reversed(layers):
        value = layer.get(key, ABSENT)
        if value is not ABSENT:
            return value
    return ABSENT


def overlaid(
    stored: Iterator[tuple[bytes, bytes]], changed: dict[bytes, bytes | None]
) -> Iterator[tuple[bytes, bytes]]:
    """``stored`` (ascending) with ``changed`` laid over it: a change wins, ``None`` hides."""
    keys = sorted(changed)
    index, count = 0, len(keys)
    for key, value in stored:
        while index < count and keys[index] < key:
            new = changed[keys[index]]
            if new is not None:
                yield keys[index], new
            index += 1
        if index < count and keys[index] == key:
            new = changed[key]
            index += 1
            if new is not None:
                yield key, new
            continue
        yield key, value
    for key in keys[index:]:
        new = changed[key]
        if new is not None:
            yield key, new
