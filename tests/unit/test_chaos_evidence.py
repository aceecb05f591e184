"""stockflow.chaos.evidence.late_records: records written behind a partition's newer ones."""

from __future__ import annotations

from stockflow.chaos.evidence import late_records
from stockflow.kafka import Record


def record(partition: int, offset: int, stamped: int, key: bytes = b"k") -> Record:
    return Record("products-changelog", partition, offset, key, b"v", stamped)


def test_a_record_stamped_well_before_an_earlier_offset_of_its_partition_is_late() -> None:
    rows = [
        record(0, 0, 1_000),
        record(0, 1, 9_000),  # the new owner writes on
        record(0, 2, 1_002, b"s:7:sku-001"),  # the frozen one's batch, sent on waking
        record(0, 3, 1_200),  # still behind the newest stamp
        record(1, 0, 5_000),
        record(1, 1, 4_700),  # within the slack: a batch waiting its turn
    ]

    found = late_records({"products-changelog": reversed(rows)})

    assert found["count"] == 2
    assert found["first"][0] == {
        "topic": "products-changelog",
        "partition": 0,
        "offset": 2,
        "stamped_ms": 1_002,
        "behind_ms": 7_998,
        "key": "s:7:sku-001",
    }
    assert late_records({"t": []}) == {"count": 0, "first": []}
