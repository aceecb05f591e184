"""Every key stockflow builds reads back to what it was built from (stockflow.keys)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow import keys as keys_module
from stockflow.keys import (
    ENTRY_KEYS,
    HASH_CACHE,
    MARKER_KEYS,
    SAGA_KEYS,
    STOCK_KEYS,
    TIMER_KEYS,
    TimerKey,
    entry_key,
    ledger_prefix,
    marker_key,
    murmur2,
    partition_for,
    product_of,
    saga_key,
    stock_key,
    timer_due,
    timer_key,
    timer_prefix,
)
from stockflow.models import iso_from_ms

ids = st.text(min_size=0, max_size=20)  # ":" and digits included: ids are arbitrary strings


@given(product=ids, order=ids, source=ids)
def test_product_ids_read_back(product: str, order: str, source: str) -> None:
    assert product_of(stock_key(product)) == product
    assert product_of(entry_key(product, order)) == product
    assert product_of(marker_key(product, source)) == product
    assert entry_key(product, order).startswith(ledger_prefix(product))


@given(
    partition=st.integers(0, 99_999),
    due=st.integers(-5, 10**13 - 1),
    kind=st.sampled_from(["expire", "timeout", "gc", "sweep", "forget"]),
    ref=ids,
)
def test_timer_keys_read_back(partition: int, due: int, kind: str, ref: str) -> None:
    key = timer_key(partition, due, kind, ref)
    timer = TimerKey(key)
    assert (timer.key, timer.due_ms, timer.kind, timer.ref) == (key, max(due, 0), kind, ref)
    assert timer_due(key) == max(due, 0)
    assert key.startswith(timer_prefix(partition))


def test_each_kind_of_key_starts_with_its_prefix() -> None:
    assert stock_key("p").startswith(STOCK_KEYS)
    assert entry_key("p", "o").startswith(ENTRY_KEYS)
    assert marker_key("p", "a").startswith(MARKER_KEYS)
    assert saga_key("o").startswith(SAGA_KEYS)
    assert timer_key(3, 5, "gc", "r").startswith(TIMER_KEYS)
    prefixes = [STOCK_KEYS, ENTRY_KEYS, MARKER_KEYS, SAGA_KEYS, TIMER_KEYS]
    assert len(set(prefixes)) == len(prefixes)


def test_timer_keys_sort_by_due_time_within_a_partition() -> None:
    keys = [timer_key(1, due, "gc", "x") for due in (10, 9, 100, 0)]
    assert [timer_due(key) for key in sorted(keys)] == [0, 9, 10, 100]


def test_partitioning_matches_kafkas_default_partitioner() -> None:
    # murmur2 reference values from the Java client's test suite (positive-masked).
    assert partition_for(b"21", 2**31 - 1) == 0x7FFFFFFF & -973932308
    assert partition_for(b"foobar", 2**31 - 1) == 0x7FFFFFFF & -790332482
    assert 0 <= partition_for(b"o-1", 4) < 4


def test_partition_cache_stays_bounded_and_answers_the_same_when_emptied() -> None:
    keys = [f"o-{i}".encode() for i in range(HASH_CACHE + 10)]
    first = [partition_for(key, 7) for key in keys]
    assert len(keys_module._hashes) <= HASH_CACHE
    assert [partition_for(key, 7) for key in keys] == first
    assert first == [(murmur2(key) & 0x7FFFFFFF) % 7 for key in keys]


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=80))
def test_murmur2_is_kafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_keys_sits_below_every_layer() -> None:
    # Imported by core's neighbours, processing, web, client, chaos and bench: it must not pull
    # in any of them (or a cycle becomes possible).
    code = (
        "import sys, stockflow.keys; "
        "print(sorted(m for m in sys.modules if m.startswith('stockflow.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert eval(loaded) == [
        "stockflow._version",
        "stockflow.errors",
        "stockflow.keys",
        "stockflow.settings",
    ]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.integers(-(10**12), 4 * 10**12), min_size=1, max_size=6))
def test_iso_timestamps_match_datetime_whatever_was_converted_before(moments) -> None:
    # iso_from_ms remembers its last conversion (an order's hold and outcome share it).
    for ms in (*moments, *moments):
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        expected = moment.isoformat(timespec="milliseconds")
        assert iso_from_ms(ms) == expected.replace("+00:00", "Z")
