"""The held writes laid over a partition's database (:mod:`stockflow.tables.overlay`), against
a plain dict that applies the same writes in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.tables.overlay import ABSENT, newest_held, overlaid

KEYS = st.binary(min_size=1, max_size=3)
VALUES = st.none() | st.binary(max_size=3)  # None: a delete
LAYER = st.dictionaries(KEYS, VALUES, max_size=8)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(stored=st.dictionaries(KEYS, st.binary(max_size=3), max_size=12), changed=LAYER)
def test_a_scan_sees_every_change_in_key_order(
    stored: dict[bytes, bytes], changed: dict[bytes, bytes | None]
) -> None:
    expected = dict(stored)
    for key, value in changed.items():
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value

    scanned = list(overlaid(iter(sorted(stored.items())), changed))

    assert scanned == sorted(expected.items())


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(layers=st.lists(LAYER, max_size=4), key=KEYS)
def test_the_newest_layer_holding_a_key_answers_for_it(
    layers: list[dict[bytes, bytes | None]], key: bytes
) -> None:
    holding = [layer[key] for layer in layers if key in layer]

    found = newest_held(layers, key)

    assert found is (holding[-1] if holding else ABSENT)
