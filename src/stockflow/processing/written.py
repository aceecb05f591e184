"""What a processor last wrote under a key, kept decoded for as long as it is still there.

The memory store, and the table store until a write's changelog record is acknowledged, hand
back the very bytes object they were given. While :meth:`Written.get` finds that object, nothing
wrote the key since (a restored value, a write behind the processor's back or a lost write is
another object, or none), and the processor can skip decoding what it encoded itself.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Written"]

T = TypeVar("T")


class Written(Generic[T]):
    """Per key, the last value written (its bytes) and its decoded form; at most ``limit``
    keys: only a cache, emptied when full and refilled by the next writes."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._entries: dict[str, tuple[bytes, T]] = {}
        self._limit = limit

    def get(self, key: str, raw: bytes) -> T | None:
        """The decoded form of ``raw`` if it is the very object last put for ``key``."""
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] is raw else None

    def put(self, key: str, raw: bytes, decoded: T) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (raw, decoded)
