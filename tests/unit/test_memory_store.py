"""MemoryStore against a plain dict: whatever order of writes, deletes and reads, a scan and a
first key are what sorting the dict's keys gives (new keys are sorted in lazily)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.processing.store import MemoryStore

KEYS = st.text(alphabet="abt:1", min_size=0, max_size=4)
PREFIXES = st.text(alphabet="abt:1", min_size=0, max_size=3)

OPERATION = st.one_of(
    st.tuples(st.just("put"), KEYS, st.binary(max_size=2)),
    st.tuples(st.just("delete"), KEYS, st.none()),
    st.tuples(st.just("scan"), PREFIXES, st.none()),
    st.tuples(st.just("first"), PREFIXES, st.none()),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(OPERATION, max_size=60))
def test_scans_and_first_keys_follow_the_sorted_keys(operations: list) -> None:  # type: ignore[type-arg]
    store = MemoryStore()
    model: dict[str, bytes] = {}
    for kind, key, value in operations:
        if kind == "put":
            store.put(key, value)
            model[key] = value
        elif kind == "delete":
            store.delete(key)
            model.pop(key, None)
        elif kind == "scan":
            expected = [(k, model[k]) for k in sorted(model) if k.startswith(key)]
            assert list(store.scan(key)) == expected
        else:
            expected_first = min((k for k in model if k.startswith(key)), default=None)
            assert store.first_key(key) == expected_first
        assert store.items() == model
    assert list(store.scan("")) == sorted(model.items())


class _Wrapping(MemoryStore):
    """A subclass as the tests' journals are: its own put and get."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[str] = []
        self.gets: list[str] = []

    def put(self, key: str, value: bytes) -> None:
        self.puts.append(key)
        super().put(key, value)

    def get(self, key: str) -> bytes | None:  # type: ignore[override]
        self.gets.append(key)
        return self._data.get(key)


def test_a_subclass_that_wraps_put_sees_the_shared_writes_and_keeps_its_get() -> None:
    # put_shared is MemoryStore.put itself and get the dict's own, bound per instance: a
    # subclass wrapping either lost the wrapper silently (the journals that let a test lose a
    # step's last writes never saw the shared expiry timer's).
    store = _Wrapping()
    store.put_shared("t/1", b"a")
    assert store.puts == ["t/1"]
    assert store.get("t/1") == b"a"
    assert store.gets == ["t/1"]
    assert MemoryStore.put_shared is MemoryStore.put

    class Again(_Wrapping):  # a wrapper of a wrapper
        def put(self, key: str, value: bytes) -> None:
            self.puts.append("again")
            super().put(key, value)

    again = Again()
    again.put_shared("t/2", b"b")
    assert again.puts == ["again", "t/2"]

    class Shared(MemoryStore):  # its own put_shared stays
        def put_shared(self, key: str, value: bytes) -> None:
            self.put(key, value + b"!")

    class Wrapped(Shared):
        def put(self, key: str, value: bytes) -> None:
            super().put(key, value)

    wrapped = Wrapped()
    wrapped.put_shared("t/3", b"c")
    assert wrapped.get("t/3") == b"c!"
