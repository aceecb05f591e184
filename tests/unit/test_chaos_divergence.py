"""stockflow.chaos.divergence: a changelog checked against a replay of its product commands, and
ledger changes whose public event came late or never."""

from __future__ import annotations

import json
from typing import Any

from stockflow.chaos.divergence import late_emissions, writer_replay
from stockflow.core.policy import Policy
from stockflow.kafka import Record
from stockflow.processing.products import ProductWriter
from stockflow.processing.records import Meta
from stockflow.processing.store import MemoryStore

T0 = 1_796_000_000_000


class _Recording(MemoryStore):
    """The memory store that also keeps every write as a changelog record would."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[bytes, bytes | None]] = []

    def put(self, key: str, value: bytes) -> None:
        super().put(key, value)
        self.writes.append((key.encode(), value))

    def put_shared(self, key: str, value: bytes) -> None:
        self.put(key, value)

    def delete(self, key: str) -> None:
        super().delete(key)
        self.writes.append((key.encode(), None))


def _command(kind: str, **fields: Any) -> bytes:
    return json.dumps({"type": kind, "product_id": "sku-1", **fields}).encode()


COMMANDS = [
    _command("SetStock", on_hand=5, source="inventory/0/0"),
    _command(
        "Reserve",
        order_id="o-1",
        quantity=3,
        expires_at_ms=T0 + 900_000,
        reply_partition=0,
        outcome=True,
        decides=True,
    ),
    _command("Release", order_id="o-1", reason="cancelled"),
    _command("AdjustStock", delta=2, adjustment_id="adj-1"),
]


def _run(commands: list[bytes]) -> tuple[list[Record], list[Record], list[Record]]:
    """The command records, the changelog and the ``reservations`` records a worker writes."""
    store = _Recording()
    writer = ProductWriter(store, Policy())
    inputs, changelog, published = [], [], []
    for offset, value in enumerate(commands):
        stamp = T0 + offset * 10
        inputs.append(Record("product-commands", 0, offset, None, value, stamp))
        step = writer.handle(value, Meta("product-commands", 0, offset, stamp))
        for key, written in store.writes:
            changelog.append(Record("changelog", 0, len(changelog), key, written, stamp))
        store.writes.clear()
        for out in step.outputs:
            if out.role == "reservations":
                published.append(
                    Record("reservations", 0, len(published), out.key, out.value, stamp + 1)
                )
    return inputs, changelog, published


def test_a_changelog_written_by_its_commands_matches_their_replay() -> None:
    inputs, changelog, _ = _run(COMMANDS)

    found = writer_replay(inputs, changelog)

    assert found == {"checked": 4, "count": 0, "first": []}


def test_counters_no_replay_gives_are_named_with_their_command() -> None:
    inputs, changelog, _ = _run(COMMANDS)
    # As if a restore had lost the release: the adjustment's counters still hold o-1's units.
    last = max(r.offset for r in changelog if r.key == b"s:5:sku-1")
    tampered = [_with_reserved(r, 3) if r.offset == last else r for r in changelog]

    found = writer_replay(inputs, tampered)

    assert found["checked"] == 4
    assert found["count"] == 1
    assert found["first"][0]["command_offset"] == 3
    assert found["first"][0]["changelog"] == [7, 3]
    assert found["first"][0]["replay"] == [7, 0]


def test_a_ledger_change_published_late_or_never_is_named() -> None:
    _, changelog, published = _run(COMMANDS)
    assert late_emissions(changelog, published) == {"count": 0, "first": []}

    released = [
        r for r in published if json.loads(r.value or b"{}")["type"] == "ReservationReleased"
    ]
    assert len(released) == 1
    late = Record("reservations", 0, 99, released[0].key, released[0].value, T0 + 9_000)
    others = [r for r in published if r is not released[0]]

    assert late_emissions(changelog, [*others, late])["first"] == [
        {
            "order_id": "o-1",
            "product_id": "sku-1",
            "kind": "release",
            "changelog": [0, changelog_offset(changelog, b"released"), T0 + 20],
            "published_ms": T0 + 9_000,
        }
    ]
    assert late_emissions(changelog, others)["count"] == 1  # never published


def changelog_offset(changelog: list[Record], status: bytes) -> int:
    return next(
        r.offset
        for r in changelog
        if r.key and r.key.startswith(b"r:") and status in (r.value or b"")
    )


def _with_reserved(record: Record, reserved: int) -> Record:
    values = json.loads(record.value or b"null")
    values[1] = reserved
    value = json.dumps(values).encode()
    return Record(
        record.topic, record.partition, record.offset, record.key, value, record.timestamp_ms
    )
