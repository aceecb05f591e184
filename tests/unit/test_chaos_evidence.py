"""stockflow.chaos.evidence: a failed run's topics as JSON lines, and the records written behind a
partition's newer ones."""

from __future__ import annotations

import json
from pathlib import Path

from stockflow.chaos.evidence import late_records, order_traces, write_topics
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


def test_topics_are_written_one_json_line_per_record_bytes_kept(tmp_path: Path) -> None:
    rows = [record(3, 7, 1_000, b"\xff\xfe"), Record("orders", 0, 0, None, "заказ".encode(), 5)]

    write_topics({"products-changelog": rows[:1], "orders": rows[1:]}, tmp_path / "topics")

    changelog = (tmp_path / "topics" / "products-changelog.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in changelog] == [
        {"partition": 3, "offset": 7, "timestamp_ms": 1_000, "key": "b64://4=", "value": "v"}
    ]
    orders = json.loads((tmp_path / "topics" / "orders.jsonl").read_text())
    assert orders["key"] is None and orders["value"] == "заказ"


def test_an_undecided_orders_trace_lists_every_record_naming_it_in_stamp_order() -> None:
    placed = json.dumps({"type": "OrderPlaced", "order_id": "o1-7"}).encode()
    reserve = json.dumps({"type": "Reserve", "order_id": "o1-7", "product_id": "p"}).encode()
    outcome = json.dumps({"type": "OrderReserved", "order_id": "o1-7"}).encode()
    other = json.dumps({"type": "OrderPlaced", "order_id": "o1-8"}).encode()
    records = {
        "orders": [
            Record("orders", 2, 5, b"o1-7", placed, 10_000),
            Record("orders", 2, 6, b"o1-8", other, 10_001),
        ],
        "product-commands": [Record("product-commands", 0, 9, b"p", reserve, 10_020)],
        "reservations": [Record("reservations", 2, 3, b"o1-7", outcome, 75_000)],
        "products-changelog": [Record("products-changelog", 0, 1, b"e:p:o1-7", b"\xff", 74_990)],
    }

    traces = order_traces(records, ["o1-7", "o1-9"], {"o1-7": 76_000})

    assert traces["o1-7"] == {
        "first_stamp_ms": 10_000,
        "watcher_saw_ms": 66_000,
        "records": [
            "+0ms orders[2]@5 OrderPlaced",
            "+20ms product-commands[0]@9 Reserve",
            "+64990ms products-changelog[0]@1 ?",
            "+65000ms reservations[2]@3 OrderReserved",
        ],
        "more": 0,
    }
    assert traces["o1-9"] == {
        "first_stamp_ms": 0,
        "watcher_saw_ms": None,
        "records": [],
        "more": 0,
    }
