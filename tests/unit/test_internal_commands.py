"""The fast parse of stockflow's internal commands agrees with the models' full validation:
what it accepts it reads exactly as the models would, and what it does not accept goes to the
models, which parse it or give the dead-letter reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stockflow.commands import (
    PRODUCT_COMMAND_ADAPTER,
    REPLY_COMMAND_ADAPTER,
    AdjustStock,
    Confirm,
    FireTimers,
    LineAnswer,
    ProductBatch,
    Release,
    ReplyBatch,
    Reserve,
    SetStock,
)
from stockflow.processing.codec import encode, parse
from stockflow.processing.internal import parse_product_commands, parse_replies

IDS = st.text(min_size=1, max_size=8)
INTS = st.integers(-(2**40), 2**40)
RESERVES = st.builds(
    Reserve,
    order_id=IDS,
    product_id=IDS,
    quantity=INTS,
    expires_at_ms=INTS,
    reply_partition=INTS,
    outcome=st.booleans(),
)
CONFIRMS = st.builds(Confirm, order_id=IDS, product_id=IDS)
RELEASES = st.builds(
    Release,
    order_id=IDS,
    product_id=IDS,
    reason=st.sampled_from(["cancelled", "expired", "compensation"]),
)
STOCK = st.one_of(
    st.builds(SetStock, product_id=IDS, on_hand=INTS, source=IDS),
    st.builds(AdjustStock, product_id=IDS, delta=INTS, adjustment_id=IDS),
)
ANSWERS = st.builds(
    LineAnswer,
    order_id=IDS,
    product_id=IDS,
    status=st.sampled_from(["reserved", "refused", "confirmed", "released"]),
    quantity=INTS,
    reason=st.none() | st.sampled_from(["insufficient_stock", "unknown_product", "timeout"]),
    available=st.none() | INTS,
)
TICKS = st.builds(FireTimers, partition=INTS, now_ms=INTS)


def _dumped(parsed: Any) -> list[dict[str, Any]]:
    if isinstance(parsed, ProductBatch):
        return [command.model_dump() for command in parsed.commands]
    if isinstance(parsed, ReplyBatch):
        return [answer.model_dump() for answer in parsed.answers]
    return [parsed.model_dump()]


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    commands=st.lists(st.one_of(RESERVES, CONFIRMS, RELEASES, STOCK), min_size=1, max_size=5),
    batched=st.booleans(),
    tick=st.none() | TICKS,
)
def test_product_commands_read_as_the_models_would(commands, batched, tick) -> None:
    if tick is not None:
        raw = encode(tick)
    elif batched or len(commands) > 1:
        raw = encode(ProductBatch(commands=commands))
    else:
        raw = encode(commands[0])
    assert parse_product_commands(raw) == _dumped(parse(PRODUCT_COMMAND_ADAPTER, raw))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(answers=st.lists(ANSWERS, min_size=1, max_size=5), tick=st.none() | TICKS)
def test_replies_read_as_the_models_would(answers, tick) -> None:
    if tick is not None:
        raw = encode(tick)
    elif len(answers) > 1:
        raw = encode(ReplyBatch(answers=answers))
    else:
        raw = encode(answers[0])
    assert parse_replies(raw) == _dumped(parse(REPLY_COMMAND_ADAPTER, raw))


def _raw(value: object) -> bytes:
    return json.dumps(value).encode()


RESERVE = {
    "type": "Reserve",
    "order_id": "o",
    "product_id": "p",
    "quantity": 1,
    "expires_at_ms": 5,
    "reply_partition": 0,
}
ANSWER = {"type": "LineAnswer", "order_id": "o", "product_id": "p", "status": "reserved"}

PRODUCT_RECORDS = {
    "not json": b'{"type": "Reserve", ',
    "not utf-8": b"\xff\xfe",
    "tombstone": None,
    "a list": b"[]",
    "unknown type": _raw({**RESERVE, "type": "Steal"}),
    "missing field": _raw({k: v for k, v in RESERVE.items() if k != "quantity"}),
    "extra field": _raw({**RESERVE, "colour": "red"}),
    "a field renamed": _raw({**{k: v for k, v in RESERVE.items() if k != "quantity"}, "qty": 1}),
    "outcome renamed": _raw({**RESERVE, "result": True}),
    "decides renamed": _raw({**RESERVE, "outcome": True, "decider": True}),
    "quantity as text": _raw({**RESERVE, "quantity": "one"}),
    "outcome as text": _raw({**RESERVE, "outcome": "maybe"}),
    "decides as text": _raw({**RESERVE, "outcome": True, "decides": 1}),
    "forwarded without its partition": _raw(
        {"type": "Confirm", "order_id": "o", "product_id": "p", "at_ms": 1, "colour": 1}
    ),
    "forwarded half": _raw(
        {"type": "Confirm", "order_id": "o", "product_id": "p", "at_ms": 1, "reply_partition": None}
    ),
    "bad release reason": _raw({**RESERVE, "type": "Release", "reason": "whim"}),
    "batch of junk": _raw({"type": "ProductBatch", "commands": [RESERVE, 7]}),
    "batch not a list": _raw({"type": "ProductBatch", "commands": {}}),
    "lax quantity": _raw({**RESERVE, "quantity": "3"}),
    "lax float": _raw({**RESERVE, "expires_at_ms": 5.0}),
    "recount in a batch": _raw(
        {
            "type": "ProductBatch",
            "commands": [
                RESERVE,
                {"type": "SetStock", "product_id": "p", "on_hand": 1, "source": "s"},
            ],
        }
    ),
}
REPLY_RECORDS = {
    "not json": b"nope",
    "tombstone": None,
    "missing quantity": _raw(ANSWER),
    "bad status": _raw({**ANSWER, "quantity": 1, "status": "maybe"}),
    "bad reason": _raw({**ANSWER, "quantity": 1, "reason": "whim", "available": None}),
    "available as text": _raw({**ANSWER, "quantity": 1, "reason": None, "available": "x"}),
    "one optional field": _raw({**ANSWER, "quantity": 1, "available": 3}),
    "extra field": _raw({**ANSWER, "quantity": 1, "reason": None, "colour": 1}),
    "batch of junk": _raw({"type": "ReplyBatch", "answers": [{**ANSWER, "quantity": 1}, "x"]}),
    "lax quantity": _raw({**ANSWER, "quantity": "2"}),
    "an end report": _raw({**ANSWER, "quantity": 1, "status": "expired"}),
}


@pytest.mark.parametrize("case", PRODUCT_RECORDS)
def test_what_the_fast_path_does_not_accept_gets_the_models_verdict(case: str) -> None:
    raw = PRODUCT_RECORDS[case]
    expected = parse(PRODUCT_COMMAND_ADAPTER, raw)
    found = parse_product_commands(raw)
    assert found == (expected if isinstance(expected, str) else _dumped(expected))


@pytest.mark.parametrize("case", REPLY_RECORDS)
def test_what_the_fast_path_does_not_accept_in_replies_gets_the_models_verdict(case: str) -> None:
    raw = REPLY_RECORDS[case]
    expected = parse(REPLY_COMMAND_ADAPTER, raw)
    found = parse_replies(raw)
    assert found == (expected if isinstance(expected, str) else _dumped(expected))


def test_invalid_internal_records_yield_a_reason() -> None:
    # The cases above compare with the models; make sure they include real refusals.
    assert isinstance(parse_product_commands(PRODUCT_RECORDS["extra field"]), str)
    assert isinstance(parse_replies(REPLY_RECORDS["bad status"]), str)
    assert parse_product_commands(PRODUCT_RECORDS["lax quantity"]) == [
        {**RESERVE, "quantity": 3, "outcome": False, "decides": False}
    ]


def test_stockflows_own_commands_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("validated by the models")

    monkeypatch.setattr("stockflow.processing.internal.parse", refuse)
    reserve = Reserve(
        order_id="o", product_id="p", quantity=1, expires_at_ms=5, reply_partition=0, outcome=True
    )
    release = Release(order_id="o", product_id="p", reason="expired")
    batch = ProductBatch(commands=[reserve, Confirm(order_id="o", product_id="p"), release])
    assert parse_product_commands(encode(batch)) == _dumped(batch)
    # A single-line order's, forwarded: the writer decides it (stockflow.core.single_line).
    forwarded = ProductBatch(
        commands=[
            reserve.model_copy(update={"decides": True}),
            Confirm(order_id="o", product_id="p", at_ms=7, reply_partition=1),
            Release(order_id="o", product_id="p", reason="cancelled", at_ms=8, reply_partition=1),
        ]
    )
    assert parse_product_commands(encode(forwarded)) == _dumped(forwarded)
    plain = [
        {"type": "Confirm", "order_id": "o", "product_id": "p"},
        {**RESERVE, "outcome": True, "decides": True},
    ]
    assert parse_product_commands(_raw({"type": "ProductBatch", "commands": plain})) == [
        {**plain[0], "at_ms": None, "reply_partition": None},
        plain[1],
    ]
    assert parse_product_commands(encode(FireTimers(partition=1, now_ms=2))) == [
        {"type": "FireTimers", "partition": 1, "now_ms": 2}
    ]
    refused = LineAnswer(
        order_id="o", product_id="p", status="refused", quantity=2, reason="timeout", available=0
    )
    answered = LineAnswer(order_id="o", product_id="q", status="reserved", quantity=1)
    replies = ReplyBatch(answers=[refused, answered])
    assert parse_replies(encode(replies)) == _dumped(replies)
    assert parse_replies(encode(answered)) == [answered.model_dump()]
