"""The merge of one moment's product events across partitions: it keeps each partition's order
and needs no more units than the best of every possible interleaving."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.audit.findings import Position
from stockflow.audit.moment import merge_moment, units_needed
from stockflow.audit.movements import MoveKind, Movement

_KINDS: tuple[MoveKind, ...] = ("reserve", "release", "confirm")


def _chains(spec: Sequence[Sequence[tuple[MoveKind, int]]]) -> list[list[Movement]]:
    return [
        [
            Movement(
                Position("reservations", partition, offset),
                0,
                "p",
                f"o{partition}-{offset}",
                kind,
                quantity,
                0,
            )
            for offset, (kind, quantity) in enumerate(chain)
        ]
        for partition, chain in enumerate(spec)
    ]


def _interleavings(chains: list[list[Movement]]) -> Iterator[list[Movement]]:
    live = [index for index, chain in enumerate(chains) if chain]
    if not live:
        yield []
        return
    for index in live:
        rest = [chain[1:] if at == index else chain for at, chain in enumerate(chains)]
        for tail in _interleavings(rest):
            yield [chains[index][0], *tail]


_moments = st.lists(
    st.lists(st.tuples(st.sampled_from(_KINDS), st.integers(1, 4)), min_size=1, max_size=4),
    min_size=1,
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(_moments)
def test_the_merge_needs_no_more_units_than_any_interleaving(
    spec: list[list[tuple[MoveKind, int]]],
) -> None:
    chains = _chains(spec)
    merged = merge_moment([move for chain in reversed(chains) for move in chain])
    for chain in chains:  # each partition's offset order is kept, nothing lost or added
        assert [move for move in merged if move.at.partition == chain[0].at.partition] == chain
    assert len(merged) == sum(len(chain) for chain in chains)
    assert units_needed(merged) == min(units_needed(order) for order in _interleavings(chains))


def test_a_confirmation_frees_nothing() -> None:
    # The kill scenario's batch, in small: partition 0 reserves 2 and confirms it, partition 1
    # reserves 3 and releases 3. Taking partition 0's confirmation as the first closing (the
    # old heuristic) holds 2 + 3; partition 1 first holds only 3 at once.
    chains = _chains([[("reserve", 2), ("confirm", 2)], [("reserve", 3), ("release", 3)]])
    merged = merge_moment([*chains[0], *chains[1]])
    assert [m.at.partition for m in merged] == [1, 1, 0, 0]
    assert units_needed(merged) == 3
