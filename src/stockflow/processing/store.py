"""The key-value interface processors read and write, and an in-memory implementation.

In the worker it is backed by one Faust table per stream, so that every write of one step goes
to a single changelog partition, in order: after a crash at most a *suffix* of a step's writes is
missing, which the processors are written to tolerate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from sortedcontainers import SortedList

__all__ = ["MemoryStore", "StateStore"]


class StateStore(Protocol):
    """String keys, byte values; ``scan`` yields keys in byte order."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def put_shared(self, key: str, value: bytes) -> None:
        """As :meth:`put`, for a key that many records of a batch write in turn (a timer the
        orders of a batch share): its changelog may keep only the last value, in the place
        of the first write."""
        ...

    def delete(self, key: str) -> None: ...

    def scan(
        self, prefix: str, *, partition: int, start: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Items of ``partition`` whose key starts with ``prefix`` (from ``start`` on), in
        ascending order. ``partition`` selects the local store shard; every key a scan looks
        for lives in the partition of the step that wrote it."""
        ...

    def first_key(self, prefix: str, *, partition: int) -> str | None:
        """The key of the first item :meth:`scan` would yield, or ``None``. The scheduler asks
        for every partition's earliest timer twice a second; stores answer it cheaper."""
        ...


class MemoryStore:
    """A sorted in-memory store for the offline replayer and tests."""

    get: Callable[[str], bytes | None]
    """The value of a key, or ``None``: the dictionary's own ``get``, bound per instance
    (processors read about five keys an order; a method around it was a Python call each)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        if not hasattr(type(self), "get"):  # a subclass's own get (a test's) stays its own
            self.get = self._data.get
        # A plain list with bisect.insort is O(n) per new key: it bounded the replayer and the
        # pipeline benchmark once the state held tens of thousands of keys.
        self._keys: SortedList = SortedList()
        self._unsorted: set[str] = set()
        """New keys not in :attr:`_keys` yet: sorted in only when something reads the order
        (:meth:`scan`, :meth:`first_key`). Most keys (sagas, ledger entries) are written many
        times before the order is read, if it ever is (a sorted insert was 5% of an order)."""
        self._first: dict[str, str | None] = {}
        """first_key answers per prefix, kept current by put and delete."""
        self._heads: set[str] = set()
        self.first_changes = 0
        """Counts changes of any cached :meth:`first_key` answer: while it stays the same, so
        do they all (the pipeline skips looking for due timers then)."""

    def put(self, key: str, value: bytes) -> None:
        if key not in self._data:
            self._unsorted.add(key)
            if key[:2] in self._heads:
                for prefix, first in self._first.items():
                    if key.startswith(prefix) and (first is None or key < first):
                        self._first[prefix] = key
                        self.first_changes += 1
        self._data[key] = value

    put_shared = put
    """:meth:`put` itself (one call, not two: a batch's orders share their expiry timer)."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # put_shared is an alias of put, not a call to it: a subclass that wraps put (the tests'
        # journals, which lose a suffix of a step's writes) would miss every shared write. So
        # while the parent's put_shared is its put, the subclass's is its own put too.
        parent = super(cls, cls)
        own_put = "put" in vars(cls) and "put_shared" not in vars(cls)
        if own_put and parent.put_shared is parent.put:  # type: ignore[attr-defined]
            cls.put_shared = cls.put

    def delete(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            if key in self._unsorted:
                self._unsorted.discard(key)
            else:
                self._keys.remove(key)
            if key[:2] in self._heads:
                for prefix in [p for p, first in self._first.items() if first == key]:
                    del self._first[prefix]  # recomputed on the next first_key
                    self.first_changes += 1

    def scan(
        self, prefix: str, *, partition: int = 0, start: str | None = None
    ) -> Iterator[tuple[str, bytes]]:
        for key in self._sorted().irange(minimum=max(prefix, start or prefix)):
            if not key.startswith(prefix):
                return
            yield key, self._data[key]

    def first_key(self, prefix: str, *, partition: int = 0) -> str | None:
        """The smallest key starting with ``prefix`` (in any partition: one dictionary).

        The pipeline asks for every partition's earliest timer on every input, so answers are
        cached per prefix and kept current by :meth:`put` and :meth:`delete`."""
        if prefix in self._first:
            return self._first[prefix]
        if len(prefix) < 2:  # not cached: put/delete look entries up by two characters
            return next((key for key, _value in self.scan(prefix)), None)
        first: str | None = None
        keys = self._sorted()
        index = keys.bisect_left(prefix)
        if index < len(keys):
            key: str = keys[index]
            if key.startswith(prefix):
                first = key
        self._first[prefix] = first
        self._heads.add(prefix[:2])
        return first

    def _sorted(self) -> SortedList:
        if self._unsorted:
            self._keys.update(self._unsorted)
            self._unsorted.clear()
        return self._keys

    def items(self) -> dict[str, bytes]:
        """A copy of everything, for assertions."""
        return dict(self._data)

    def __len__(self) -> int:
        return len(self._data)
