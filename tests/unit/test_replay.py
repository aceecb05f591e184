"""``stockflow replay`` / ``stockflow record``: recorded scenarios, the line format, determinism."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stockflow.cli.replay import record, replay
from stockflow.keys import partition_for
from stockflow.replay import ReplayError, format_line, parse_lines, record_lines, replay_lines
from stockflow.settings import Settings
from stockflow.testing.topics import Record

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "examples" / "scenarios"
NAMES = sorted(
    path.name.removesuffix(".jsonl")
    for path in SCENARIOS.glob("*.jsonl")
    if not path.name.endswith(".expected.jsonl")
)
T = 1764061200000


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Replay reads STOCKFLOW_* settings: the expected files assume the defaults."""
    import os

    for name in list(os.environ):
        if name.startswith("STOCKFLOW_"):
            monkeypatch.delenv(name)
    yield


def scenario(name: str) -> Path:
    return SCENARIOS / f"{name}.jsonl"


def expected(name: str) -> bytes:
    return (SCENARIOS / f"{name}.expected.jsonl").read_bytes()


def joined(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def line(topic: str, key: str | None, value: Any, timestamp: int | None = None) -> str:
    data: dict[str, Any] = {"topic": topic, "key": key, "value": value}
    if timestamp is not None:
        data["timestamp"] = timestamp
    return json.dumps(data)


def placed(order_id: str, product_id: str, quantity: int, **extra: Any) -> dict[str, Any]:
    return {
        "type": "OrderPlaced",
        "order_id": order_id,
        "lines": [{"product_id": product_id, "quantity": quantity}],
        **extra,
    }


def stock_set(product_id: str, on_hand: int) -> dict[str, Any]:
    return {"type": "StockSet", "product_id": product_id, "on_hand": on_hand}


def values(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(text)["value"] for text in lines]


# --- the recorded scenarios --------------------------------------------------------------------


def test_every_required_scenario_is_recorded() -> None:
    required = {"flash-sale", "duplicates", "bad-input", "lifecycle", "multi-line", "partial"}
    assert required <= set(NAMES)
    for name in NAMES:
        assert (SCENARIOS / f"{name}.expected.jsonl").is_file(), name


@pytest.mark.parametrize("name", NAMES)
def test_scenario_replays_to_expected_via_api(name: str) -> None:
    lines = scenario(name).read_text(encoding="utf-8").splitlines()
    assert joined(replay_lines(lines, Settings())) == expected(name)


@pytest.mark.parametrize("name", NAMES)
def test_scenario_replays_to_expected_via_cli(name: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(replay, [str(scenario(name))])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == expected(name)
    out = tmp_path / "out.jsonl"
    result = runner.invoke(replay, [str(scenario(name)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert out.read_bytes() == expected(name)


def test_replay_is_deterministic() -> None:
    lines = [text for name in NAMES for text in scenario(name).read_text().splitlines()]
    first = replay_lines(lines, Settings())
    second = replay_lines(lines, Settings())
    assert first == second
    assert len(first) > 100


def test_expected_files_are_canonical() -> None:
    for name in NAMES:
        for text in expected(name).decode().splitlines():
            record_ = json.loads(text)
            assert set(record_) == {"topic", "key", "value", "timestamp"}
            assert isinstance(record_["value"], dict)
            assert json.dumps(record_, sort_keys=True, separators=(",", ":")) == text


def test_flash_sale_never_oversells() -> None:
    outputs = values(replay_lines(scenario("flash-sale").read_text().splitlines(), Settings()))
    outcomes = [v for v in outputs if v["type"] in ("OrderReserved", "OrderRejected")]
    assert len(outcomes) == 20
    assert len({v["order_id"] for v in outcomes}) == 20
    assert sum(v["type"] == "OrderReserved" for v in outcomes) == 5


# --- replay behaviour ---------------------------------------------------------------------------


def test_until_fires_expiry_and_policy_options_apply() -> None:
    lines = [
        line("inventory", "sku", stock_set("sku", 1), T),
        line("orders", "o-1", placed("o-1", "sku", 1), T + 1000),
    ]
    runner = CliRunner()
    result = runner.invoke(replay, ["-", "--reservation-ttl", "60"], input="\n".join(lines))
    assert result.exit_code == 0, result.output
    reserved = [json.loads(text)["value"] for text in result.output.splitlines()]
    assert reserved[0]["expires_at"] == "2025-11-25T09:01:01.000Z"
    assert [v["type"] for v in reserved] == ["ProductReserved", "OrderReserved"]
    args = ["-", "--reservation-ttl", "60", "--until", str(T + 61_000)]
    result = runner.invoke(replay, args, input="\n".join(lines))
    last = json.loads(result.output.splitlines()[-1])
    assert last["timestamp"] == T + 61_000
    assert last["value"]["type"] == "ReservationReleased"
    assert last["value"]["reason"] == "expired"


def test_timestamp_defaults_to_previous_line_or_zero() -> None:
    lines = [
        line("inventory", "sku", stock_set("sku", 5)),
        line("orders", "o-1", placed("o-1", "sku", 1)),
        line("orders", "o-2", placed("o-2", "sku", 1), T),
        line("orders", "o-3", placed("o-3", "sku", 1)),
    ]
    out = [json.loads(text) for text in replay_lines(lines, Settings())]
    stamps = {
        o["value"]["order_id"]: o["timestamp"] for o in out if o["value"]["type"] == "OrderReserved"
    }
    assert stamps == {"o-1": 0, "o-2": T, "o-3": T}
    # o-1 was placed at 0 with a 900 s hold: the clock jumping to T expires it first.
    assert out[2]["value"]["type"] == "ReservationReleased"
    assert out[2]["timestamp"] == T


def test_custom_topic_names_map_both_ways() -> None:
    settings = Settings(
        orders_topic="shop.orders",
        inventory_topic="shop.stock",
        reservations_topic="shop.decisions",
        dead_letter_topic="shop.dlq",
    )
    lines = [
        line("shop.stock", "sku", stock_set("sku", 1), T),
        line("shop.orders", "o-1", placed("o-1", "sku", 1), T),
        line("orders", "o-2", placed("o-2", "sku", 1), T),  # the contract name still works
        line("shop.orders", "o-3", "garbage", T),
        line("shop.decisions", "o-1", {"type": "OrderReserved"}, T),  # recorded output: skipped
        line("stockflow-product-commands", "sku", "internal", T),  # internal topic: skipped
    ]
    out = [json.loads(text) for text in replay_lines(lines, settings)]
    assert [o["topic"] for o in out] == ["shop.decisions"] * 3 + ["shop.dlq"]
    assert out[-1]["value"]["topic"] == "shop.orders"
    assert out[2]["value"]["type"] == "OrderRejected"


def test_dead_letter_names_the_contract_topic_by_default() -> None:
    out = values(replay_lines([line("inventory", "sku", "{", T)], Settings()))
    assert out[0]["type"] == "DeadLetter"
    assert out[0]["topic"] == "inventory"
    assert base64.b64decode(out[0]["value_b64"]) == b"{"


def test_string_and_base64_values_are_replayed_as_their_bytes() -> None:
    paid = '{"type": "OrderPaid", "order_id": "o-9"}'
    raw = b"\x00\xff"
    lines = [
        line("orders", "o-9", paid, T),
        json.dumps({"topic": "orders", "key_b64": "b2stOQ==", "value_b64": "AP8=", "timestamp": T}),
        line("orders", "o-8", None, T),
    ]
    out = values(replay_lines(lines, Settings()))
    assert out[0] == {
        "type": "ReservationConfirmFailed",
        "order_id": "o-9",
        "reason": "unknown_order",
    }
    assert base64.b64decode(out[1]["value_b64"]) == raw
    assert base64.b64decode(out[1]["key_b64"]) == b"ok-9"
    assert out[2]["error"] == "record has no value (tombstone)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "line 2: "),
        ("[1]", "must be a JSON object"),
        ('{"topic": "orders", "key": null}', '"value" is missing'),
        ('{"topic": "orders", "value": 3}', '"value" must be an object, a string or null'),
        ('{"topic": "orders", "value": null, "value_b64": "AA=="}', "not both"),
        ('{"topic": "orders", "value_b64": "***"}', "line 2: "),
        ('{"topic": "orders", "key": 1, "value": null}', '"key" must be a string or null'),
        ('{"topic": "orders", "value": null, "timestamp": true}', '"timestamp" must be'),
        ('{"topic": "orders", "value": null, "timestmp": 1}', "unknown field(s) timestmp"),
        ('{"topic": "", "value": null}', '"topic" must be a non-empty string'),
        ('{"topic": "payments", "value": null}', "line 2: topic 'payments' is not an input"),
        ('{"topic": "orders", "value": {"a": NaN}}', "line 2: "),
    ],
)
def test_unreadable_lines_are_reported_with_their_number(text: str, message: str) -> None:
    lines = [line("inventory", "sku", stock_set("sku", 1), T), text]
    with pytest.raises(ReplayError, match=None) as caught:
        replay_lines(lines, Settings())
    assert str(caught.value).startswith("line 2: ")
    assert message in str(caught.value)


def test_cli_reports_unreadable_lines(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n" + line("orders", "o", None, 1) + "\n{\n")
    result = CliRunner().invoke(replay, [str(events)])
    assert result.exit_code == 1
    assert "events.jsonl: line 3: " in result.output


def test_blank_lines_are_ignored() -> None:
    lines = ["", line("orders", "o", None, 5), "   "]
    assert [number for number, _ in parse_lines(lines)] == [2]


# --- record's line format -----------------------------------------------------------------------


def rec(topic: str, partition: int, offset: int, key: Any, value: Any, ts: int) -> Record:
    def raw(data: Any) -> bytes | None:
        if data is None or isinstance(data, bytes):
            return data
        return data.encode() if isinstance(data, str) else json.dumps(data).encode()

    return Record(topic, partition, offset, raw(key), raw(value), ts)


def test_record_line_format() -> None:
    records = [
        rec("orders", 0, 0, "o-1", {"type": "OrderPaid", "order_id": "o-1"}, 10),
        rec("orders", 0, 1, "o-2", "not json", 11),
        rec("orders", 0, 2, "o-3", b"\xff\x00", 12),
        rec("orders", 0, 3, b"\xfe", None, 13),
        rec("orders", 0, 4, None, "[1, 2]", 14),
        rec("orders", 0, 5, "o-6", '"just a string"', 15),
        rec("orders", 0, 6, "o-7", '{"a": 1, "a": 2}', 16),  # duplicate keys: kept as text
        rec("orders", 0, 7, "o-8", '{"x": NaN}', 17),
        rec("orders", 0, 8, "o-9", '{"x": 1e999}', 18),
        rec("orders", 0, 9, "o-10", '{"caf\\u00e9": "\\ud800"}', 19),
        rec("orders", 0, 10, "o-11", "{}", 20),
    ]
    assert record_lines(records) == [
        '{"key":"o-1","timestamp":10,"topic":"orders",'
        '"value":{"order_id":"o-1","type":"OrderPaid"}}',
        '{"key":"o-2","timestamp":11,"topic":"orders","value":"not json"}',
        '{"key":"o-3","timestamp":12,"topic":"orders","value_b64":"/wA="}',
        '{"key_b64":"/g==","timestamp":13,"topic":"orders","value":null}',
        '{"key":null,"timestamp":14,"topic":"orders","value":"[1, 2]"}',
        '{"key":"o-6","timestamp":15,"topic":"orders","value":"\\"just a string\\""}',
        '{"key":"o-7","timestamp":16,"topic":"orders","value":"{\\"a\\": 1, \\"a\\": 2}"}',
        '{"key":"o-8","timestamp":17,"topic":"orders","value":"{\\"x\\": NaN}"}',
        '{"key":"o-9","timestamp":18,"topic":"orders","value":"{\\"x\\": 1e999}"}',
        '{"key":"o-10","timestamp":19,"topic":"orders",'
        '"value":"{\\"caf\\\\u00e9\\": \\"\\\\ud800\\"}"}',
        '{"key":"o-11","timestamp":20,"topic":"orders","value":{}}',
    ]


def test_record_lines_order_by_timestamp_then_partition_and_offset() -> None:
    records = [
        rec("inventory", 1, 0, "b", "x", 5),
        rec("orders", 1, 7, "c", "x", 3),
        rec("orders", 0, 4, "d", "x", 3),
        rec("orders", 0, 3, "e", "x", 3),
        rec("orders", 2, 0, "f", "x", 1),
    ]
    keys = [json.loads(text)["key"] for text in record_lines(records)]
    assert keys == ["f", "e", "d", "c", "b"]
    assert record_lines(reversed(records)) == record_lines(records)


def test_record_lines_keep_each_partition_in_offset_order() -> None:
    # A producer's clock went back: the worker consumed offset 0 then 1, and so must replay.
    records = [
        rec("orders", 0, 1, "o", {"type": "OrderPaid", "order_id": "o"}, 100),
        rec("orders", 0, 0, "o", placed("o", "sku", 1), 200),
        rec("inventory", 0, 0, "sku", stock_set("sku", 1), 50),
    ]
    types = [json.loads(text)["value"]["type"] for text in record_lines(records)]
    assert types == ["StockSet", "OrderPlaced", "OrderPaid"]


def test_recorded_lines_replay_to_the_same_bytes() -> None:
    raw_values: list[bytes | None] = [b"not json", b"\xff", None, b"[1]", b'{"type": "X"}']
    records = [rec("orders", 0, i, f"k{i}", v, T + i) for i, v in enumerate(raw_values)]
    parsed = [r for _, r in parse_lines(record_lines(records))]
    assert [r.value for r in parsed][:4] == raw_values[:4]
    assert parsed[4].value is not None and json.loads(parsed[4].value) == {"type": "X"}
    assert [(r.topic, r.key, r.timestamp_ms) for r in parsed] == [
        (r.topic, r.key, r.timestamp_ms) for r in records
    ]


@pytest.mark.parametrize("name", NAMES)
def test_a_recording_of_a_scenario_replays_like_the_scenario(name: str) -> None:
    """Scenario inputs as the broker would hold them (partitioned by key, offsets per
    partition) -> record_lines -> replay gives the expected output."""
    offsets: dict[tuple[str, int], int] = {}
    records = []
    for _, item in parse_lines(scenario(name).read_text().splitlines()):
        partition = partition_for(item.key, 8) if item.key is not None else 0
        offset = offsets.get((item.topic, partition), 0)
        offsets[(item.topic, partition)] = offset + 1
        records.append(
            Record(item.topic, partition, offset, item.key, item.value, item.timestamp_ms)
        )
    assert joined(replay_lines(record_lines(records), Settings())) == expected(name)


def test_format_line_round_trips_input_lines() -> None:
    for name in NAMES:
        for text in scenario(name).read_text().splitlines():
            ((_, item),) = parse_lines([text])
            assert format_line(item.topic, item.key, item.value, item.timestamp_ms) == text


# --- record command helpers ---------------------------------------------------------------------


def test_record_cli_reports_an_unreachable_broker() -> None:
    from stockflow.testing.broker import free_port

    url = f"kafka://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(record, ["--broker", url, "--timeout", "2"])
    assert result.exit_code == 3
    assert f"stockflow record: no Kafka broker answered at {url[8:]}" in result.output
