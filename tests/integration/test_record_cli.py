"""``stockflow record`` against a real (embedded) broker, then ``stockflow replay`` of the file."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from stockflow.cli.replay import replay
from stockflow.testing.broker import EmbeddedBroker
from stockflow.testing.topics import produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

STOCKFLOW = Path(sys.executable).with_name("stockflow")


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        running.create_topics(["orders", "inventory", "reservations"], partitions=2)
        yield running


def order(order_id: str, quantity: int) -> dict[str, object]:
    return {
        "type": "OrderPlaced",
        "order_id": order_id,
        "lines": [{"product_id": "sku-1", "quantity": quantity}],
    }


def test_record_writes_replayable_lines(broker: EmbeddedBroker, tmp_path: Path) -> None:
    stock = {"type": "StockSet", "product_id": "sku-1", "on_hand": 3}
    sent = [
        ("inventory", "sku-1", stock),
        ("orders", "o-1", order("o-1", 2)),
        ("orders", "o-2", order("o-2", 2)),
        ("orders", "o-3", b"\xff\xfe\x00binary"),
        ("orders", "o-4", "not json"),
        ("reservations", "o-1", {"type": "OrderReserved", "order_id": "o-1"}),
    ]
    for item in sent:  # one by one: distinct timestamps, in this order
        asyncio.run(produce(broker.bootstrap, [item], linger_ms=0))
        time.sleep(0.005)

    out = tmp_path / "incident.jsonl"
    command = [
        str(STOCKFLOW),
        "record",
        "--broker",
        broker.url,
        "--topics",
        "orders,inventory,reservations",
        "--out",
        str(out),
        "--timeout",
        "10",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""

    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = [json.loads(item) for item in text.splitlines()]
    assert [(line["topic"], line["key"]) for line in lines] == [(t, k) for t, k, _ in sent]
    stamps = [line["timestamp"] for line in lines]
    assert stamps == sorted(stamps)
    assert lines[0]["value"] == stock
    assert lines[1]["value"] == order("o-1", 2)
    assert "value" not in lines[3]
    assert base64.b64decode(lines[3]["value_b64"]) == b"\xff\xfe\x00binary"
    assert lines[4]["value"] == "not json"
    for item in text.splitlines():
        assert json.dumps(json.loads(item), sort_keys=True, separators=(",", ":")) == item

    # The recording replays offline: outputs skipped, binary and text values dead-lettered.
    result = CliRunner().invoke(replay, [str(out), "--partitions", "2"])
    assert result.exit_code == 0, result.output
    decided = [json.loads(item) for item in result.output.splitlines()]
    kinds = [(d["topic"], d["value"]["type"], d["key"]) for d in decided]
    assert kinds == [
        ("reservations", "ProductReserved", "o-1"),
        ("reservations", "OrderReserved", "o-1"),
        ("reservations", "OrderRejected", "o-2"),
        ("stockflow-dead-letters", "DeadLetter", "o-3"),
        ("stockflow-dead-letters", "DeadLetter", "o-4"),
    ]
    assert base64.b64decode(decided[3]["value"]["value_b64"]) == b"\xff\xfe\x00binary"
