"""The hop-by-hop split of an order's latency (bench.hops), on records made up here."""

from __future__ import annotations

import pytest
from bench.hops import hop_figures


def _by_hop(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(row["hop"]): row for row in rows}


def test_each_order_is_split_at_its_last_record_on_the_middle_topic() -> None:
    sent = {b"h-1": 10.000, b"h-2": 10.010, b"other-3": 10.020}
    arrived = {"h-1": 10.100, "h-2": 10.130, "other-3": 10.200}
    records = [
        ("orders", b"h-1", b'{"order_id":"h-1"}', 10_001),
        ("orders", b"h-2", b'{"order_id":"h-2"}', 10_011),
        ("orders", b"other-3", b"{}", 10_021),
        # One internal record names two orders: both get its time; an order's last record
        # counts (its last line moved on), and JSON with a space after the colon (the
        # pipe's) is read too.
        ("commands", b"p1", b'{"order_id": "h-1"}', 10_031),
        ("commands", b"p1", b'[{"order_id":"h-1"},{"order_id": "h-2"}]', 10_041),
        ("replies", b"h-1", b'{"order_id":"h-1"}', 10_005),  # not the middle topic
        ("reservations", b"h-1", b'{"type":"OrderReserved"}', 10_081),
        ("reservations", b"h-1", b'{"type":"OrderReserved"}', 10_090),  # a duplicate
        ("reservations", b"h-2", b'{"type":"OrderRejected"}', 10_101),
        ("reservations", b"p1", b'{"type":"StockChanged"}', 10_102),  # not an order's
    ]
    hops = _by_hop(hop_figures(sent, arrived, records, b"h-", ["commands"], b'{"type":"Order'))
    assert set(hops) == {
        "order -> commands",
        "commands -> outcome",
        "order -> outcome",
        "outcome -> harness",
        "total",
    }
    assert hops["order -> commands"]["orders"] == 2
    assert hops["order -> commands"]["p50_ms"] == pytest.approx(35.0)  # 40 and 30
    assert hops["commands -> outcome"]["mean_ms"] == pytest.approx(50.0)  # 40 and 60
    assert hops["order -> outcome"]["p90_ms"] == pytest.approx(90.0)  # 80 and 90
    assert hops["outcome -> harness"]["p50_ms"] == pytest.approx(24.0, abs=0.01)  # 19 and 29
    assert hops["total"]["p50_ms"] == pytest.approx(110.0, abs=0.01)  # 100 and 120


def test_orders_without_an_answer_or_a_record_are_left_out() -> None:
    sent = {b"h-1": 1.0, b"h-2": 1.0}
    arrived = {"h-1": 1.05}
    records = [
        ("orders", b"h-1", b"{}", 1_000),
        ("orders", b"h-2", b"{}", 1_000),
        ("reservations", b"h-2", b"{}", 1_020),
    ]
    # h-1 has no outcome record, h-2 never arrived: nothing to split.
    assert hop_figures(sent, arrived, records, b"h-", ["commands"]) == []


def test_a_multi_line_order_is_split_along_the_chain_at_its_last_line() -> None:
    sent = {b"m-1": 1.000}
    arrived = {"m-1": 1.200}
    records = [
        ("orders", b"m-1", b"{}", 1_000),
        ("commands", None, b'{"order_id":"m-1","product_id":"a"}', 1_020),
        ("commands", None, b'{"order_id":"m-1","product_id":"b"}', 1_030),
        ("replies", None, b'{"order_id":"m-1","product_id":"a"}', 1_050),
        ("replies", None, b'{"order_id":"m-1","product_id":"b"}', 1_070),
        ("reservations", b"m-1", b'{"type":"ProductReserved"}', 1_040),  # a line's event
        ("reservations", b"m-1", b'{"type":"OrderReserved"}', 1_100),
    ]
    chain = ["commands", "replies"]
    hops = _by_hop(hop_figures(sent, arrived, records, b"m-", chain, b'{"type":"Order'))
    figures = {hop: row["p50_ms"] for hop, row in hops.items()}
    assert figures == pytest.approx(
        {
            "order -> commands": 30.0,
            "commands -> replies": 40.0,
            "replies -> outcome": 30.0,
            "order -> outcome": 100.0,
            "outcome -> harness": 100.0,
            "total": 200.0,
        }
    )
    # Without an outcome prefix (the pipe) the order's last record on reservations counts.
    pipe = _by_hop(hop_figures(sent, arrived, records, b"m-", chain))
    assert pipe["order -> outcome"]["p50_ms"] == pytest.approx(100.0)
