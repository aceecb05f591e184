"""The key-value interface processors read and write, and an in-memory implementation.

In the worker it is backed by one Faust table per stream, so that every write of one step goes
to a single changelog partition, in order: after a crash at most a *suffix* of a step's writes is
missing, which the processors are written to tolerate.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Protocol

__all__ = ["MemoryStore", "StateStore"]


class StateStore(Protocol):
    """String keys, byte values; ``scan`` yields keys in byte order."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...

    def scan(
        self, prefix: str, *, partition: int, start: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Items of ``partition`` whose key starts with ``prefix`` (from ``start`` on), in
        ascending order. ``partition`` selects the local store shard; every key a scan looks
        for lives in the partition of the step that wrote it."""
        ...


class MemoryStore:
    """A sorted in-memory store for the offline replayer and tests."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._keys: list[str] = []

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def put(self, key: str, value: bytes) -> None:
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = value

    def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            index = bisect.bisect_left(self._keys, key)
            del self._keys[index]

    def scan(
        self, prefix: str, *, partition: int = 0, start: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        index = bisect.bisect_left(self._keys, max(prefix, start or prefix))
        while index < len(self._keys):
            key = self._keys[index]
            if not key.startswith(prefix):
                return
            yield key, self._data[key]
            index += 1

    def items(self) -> dict[str, bytes]:
        """A copy of everything, for assertions."""
        return dict(self._data)

    def __len__(self) -> int:
        return len(self._data)
