"""The dataclasses built for every order write their ``__init__`` out, for the compiled build
(see :class:`stockflow.processing.records.Meta`): each must take every field, in declaration
order, with the field's own default, and set it. Run on both builds (scripts/test.sh)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from stockflow.core.saga_state import LineState, Saga
from stockflow.core.stock import Reservation, Stock, StockDecision
from stockflow.processing.order_input import Placed
from stockflow.processing.records import Meta, Out

# One value per field, every field set away from its default, values of one type distinct, so
# that two fields swapped or one left at its default shows.
EXAMPLES: dict[type, list[Any]] = {
    Meta: ["orders", 1, 2, 3, b"k", 4],
    Out: ["reservations", b"k", b"v", 5],
    Stock: [10, 2, 3],
    Reservation: ["o", "p", 1, 2, 3, "released", "cancelled", 4, "insufficient_stock", 5, 6],
    StockDecision: [
        Stock(1),
        Reservation("o", "p", 1, 2, 3),
        Reservation("q", "r", 4, 5, 6),
        True,
        ("shortfall",),
        True,
    ],
    LineState: ["p", 2, "refused", "insufficient_stock", 1, "none", "compensation"],
    Saga: [
        "o",
        (LineState("p", 1),),
        "partial",
        "reserved",
        1,
        2,
        3,
        4,
        "timeout",
        True,
        True,
        5,
        (6, 7),
        "cancel",
        True,
        True,
    ],
    Placed: ["o", [LineState("p", 1)], "partial", None],
}


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda cls: cls.__name__)
def test_a_written_init_sets_every_field_in_order(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = EXAMPLES[cls]
    assert len(values) == len(fields)
    for built in (cls(*values), cls(**{f.name: v for f, v in zip(fields, values, strict=True)})):
        assert [getattr(built, f.name) for f in fields] == values


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda cls: cls.__name__)
def test_a_written_init_has_each_fields_default(cls: type) -> None:
    fields = dataclasses.fields(cls)
    required = [f for f in fields if f.default is dataclasses.MISSING]
    assert all(f.default_factory is dataclasses.MISSING for f in fields)
    built = cls(*EXAMPLES[cls][: len(required)])
    assert [getattr(built, f.name) for f in fields[len(required) :]] == [
        f.default for f in fields[len(required) :]
    ]


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda cls: cls.__name__)
def test_the_init_is_the_written_one_not_the_decorators(cls: type) -> None:
    code = getattr(cls.__init__, "__code__", None)  # compiled: a C function, no code object
    assert code is None or code.co_filename != "<string>"  # the decorator's is exec'd text
