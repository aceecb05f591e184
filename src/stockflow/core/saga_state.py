"""An order's saga as state: its lines, its status, and the decision a step takes about it.

The decisions themselves are in :mod:`stockflow.core.saga`; this module holds only what they
and the codec share (:func:`saga_fields` is the one place that lists a saga's fields in order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from stockflow.commands import PRODUCT_COMMAND_ADAPTER, Confirm, Release, Reserve
from stockflow.models import (
    OUTPUT_EVENT_ADAPTER,
    Fulfilment,
    OrderCancelIgnored,
    OrderRejected,
    OrderReserved,
    ReservationConfirmFailed,
)
from stockflow.reasons import RefusalReason, RejectionReason, ReleaseReason

__all__ = [
    "FINISHED",
    "NOTHING",
    "Action",
    "LineState",
    "ListedLine",
    "Plain",
    "ProductCommand",
    "Saga",
    "SagaDecision",
    "SagaEvent",
    "SagaStatus",
    "TimerKind",
    "merge_lines",
    "saga_fields",
    "saga_with",
]

SagaStatus = Literal["reserving", "reserved", "rejected", "confirmed", "cancelled", "expired"]
TimerKind = Literal["deadline", "expiry", "forget"]
Action = Literal["reserve", "confirm", "release", "none"]
SagaEvent = OrderReserved | OrderRejected | ReservationConfirmFailed | OrderCancelIgnored
ProductCommand = Reserve | Confirm | Release

FINISHED: frozenset[str] = frozenset({"rejected", "confirmed", "cancelled", "expired"})


# Saga and LineState are not frozen: a frozen dataclass sets each field through
# object.__setattr__ when it is built, 2-3x the cost, and every answered order builds one. The
# core never changes a saga in place; each decision builds the new one (LocalPipeline, same
# session: 17,431 -> 20,253 single-line orders/s).
@dataclass(slots=True)
class LineState:
    product_id: str
    quantity: int
    answer: Literal["pending", "reserved", "refused"] = "pending"
    reason: RefusalReason | None = None
    available: int | None = None
    action: Action = "reserve"
    release_reason: ReleaseReason | None = None

    # Written out for the compiled build (see processing.records.Meta).
    def __init__(
        self,
        product_id: str,
        quantity: int,
        answer: Literal["pending", "reserved", "refused"] = "pending",
        reason: RefusalReason | None = None,
        available: int | None = None,
        action: Action = "reserve",
        release_reason: ReleaseReason | None = None,
    ) -> None:
        self.product_id = product_id
        self.quantity = quantity
        self.answer = answer
        self.reason = reason
        self.available = available
        self.action = action
        self.release_reason = release_reason


@dataclass(slots=True)
class Saga:
    order_id: str
    lines: tuple[LineState, ...]
    fulfilment: Fulfilment
    status: SagaStatus
    placed_at_ms: int
    deadline_ms: int
    expires_at_ms: int
    reply_partition: int
    rejection: RejectionReason | None = None
    pay_requested: bool = False
    cancel_requested: bool = False
    finished_at_ms: int | None = None
    placed_at: tuple[int, int] | None = None
    """(partition, offset) of the ``OrderPlaced`` record that started the saga."""
    first_request: Literal["pay", "cancel"] | None = None
    """Which of a payment and a cancellation deferred while reserving came first in the log."""
    product_decides: bool = False
    """A single-line order: its one product writer decides and publishes the outcome (one hop
    fewer); this saga learns it from the line answer, never publishes an outcome itself and has
    no answer deadline (see :func:`place`). ``False`` for multi-line orders and for sagas
    written by versions before it existed, which keep deciding their outcome here."""
    forwards: bool = False
    """A single-line order whose product writer also decides its payment, cancellation and
    expiry (``Reserve.decides``): this saga forwards them and learns how the order ended
    (:mod:`stockflow.core.single_line`). ``False`` for sagas written before it existed."""

    # Written out for the compiled build (see processing.records.Meta).
    def __init__(
        self,
        order_id: str,
        lines: tuple[LineState, ...],
        fulfilment: Fulfilment,
        status: SagaStatus,
        placed_at_ms: int,
        deadline_ms: int,
        expires_at_ms: int,
        reply_partition: int,
        rejection: RejectionReason | None = None,
        pay_requested: bool = False,
        cancel_requested: bool = False,
        finished_at_ms: int | None = None,
        placed_at: tuple[int, int] | None = None,
        first_request: Literal["pay", "cancel"] | None = None,
        product_decides: bool = False,
        forwards: bool = False,
    ) -> None:
        self.order_id = order_id
        self.lines = lines
        self.fulfilment = fulfilment
        self.status = status
        self.placed_at_ms = placed_at_ms
        self.deadline_ms = deadline_ms
        self.expires_at_ms = expires_at_ms
        self.reply_partition = reply_partition
        self.rejection = rejection
        self.pay_requested = pay_requested
        self.cancel_requested = cancel_requested
        self.finished_at_ms = finished_at_ms
        self.placed_at = placed_at
        self.first_request = first_request
        self.product_decides = product_decides
        self.forwards = forwards


Plain = dict[str, Any]
"""An event or command as its JSON object (field order as the model dumps it): what the hot
paths build instead of a model, encoded with ``to_json`` and validated only on demand."""


class SagaDecision:
    """``saga`` is the new state (``None``: unchanged), ``forget`` deletes it. ``timers`` are
    (due, kind) pairs to arm; a timer that fires for a saga that moved on is ignored.

    Events and commands are held as given: models, or :data:`Plain` objects built on the hot
    paths (an order's Reserve and its outcome). :attr:`events` and :attr:`commands` return
    models either way (tests, the public API); the order desk encodes :attr:`raw_events` and
    :attr:`raw_commands` directly."""

    # raw_events and raw_commands are plain attributes, not properties over private ones: the
    # order desk reads both for every decision.
    __slots__ = ("forget", "raw_commands", "raw_events", "saga", "timers")

    def __init__(
        self,
        saga: Saga | None = None,
        events: tuple[SagaEvent | Plain, ...] = (),
        commands: tuple[ProductCommand | Plain, ...] = (),
        timers: tuple[tuple[int, TimerKind], ...] = (),
        forget: bool = False,
    ) -> None:
        self.saga = saga
        self.raw_events = events
        """As given: models or :data:`Plain` objects."""
        self.raw_commands = commands
        """As given: models or :data:`Plain` objects."""
        self.timers = timers
        self.forget = forget

    @property
    def events(self) -> tuple[SagaEvent, ...]:
        return tuple(
            cast(SagaEvent, OUTPUT_EVENT_ADAPTER.validate_python(e)) if isinstance(e, dict) else e
            for e in self.raw_events
        )

    @property
    def commands(self) -> tuple[ProductCommand, ...]:
        return tuple(
            cast(ProductCommand, PRODUCT_COMMAND_ADAPTER.validate_python(c))
            if isinstance(c, dict)
            else c
            for c in self.raw_commands
        )

    def with_events(self, events: tuple[SagaEvent | Plain, ...]) -> SagaDecision:
        return SagaDecision(self.saga, events, self.raw_commands, self.timers, self.forget)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SagaDecision):
            return NotImplemented
        return (
            self.saga == other.saga
            and self.timers == other.timers
            and self.forget == other.forget
            and self.events == other.events
            and self.commands == other.commands
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SagaDecision(saga={self.saga!r}, events={self.events!r}, "
            f"commands={self.commands!r}, timers={self.timers!r}, forget={self.forget!r})"
        )


NOTHING = SagaDecision()


class ListedLine(Protocol):
    """A line as the order lists it: a :class:`~stockflow.models.OrderLine`, or a
    :class:`LineState` the order desk read from the record's plain values."""

    @property
    def product_id(self) -> str: ...

    @property
    def quantity(self) -> int: ...


def merge_lines(lines: Iterable[ListedLine]) -> tuple[LineState, ...]:
    """One line per product, quantities summed, in first-appearance order. Two lines for the
    same product are checked as one (checking them separately oversells: Medusa #16502)."""
    if (lines.__class__ is list or lines.__class__ is tuple) and len(lines) == 1:
        only = lines[0]
        return (LineState(only.product_id, only.quantity),)
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return tuple(LineState(product_id=pid, quantity=qty) for pid, qty in totals.items())


def saga_fields(saga: Saga) -> list[Any]:
    """The saga's fields in declaration order: ``Saga(*saga_fields(saga))`` is a copy. The
    codec stores a saga as this list; :func:`saga_with` copies through it."""
    return [
        saga.order_id,
        saga.lines,
        saga.fulfilment,
        saga.status,
        saga.placed_at_ms,
        saga.deadline_ms,
        saga.expires_at_ms,
        saga.reply_partition,
        saga.rejection,
        saga.pay_requested,
        saga.cancel_requested,
        saga.finished_at_ms,
        saga.placed_at,
        saga.first_request,
        saga.product_decides,
        saga.forwards,
    ]


def saga_with(saga: Saga, lines: tuple[LineState, ...], status: SagaStatus) -> Saga:
    """``replace(saga, lines=..., status=...)`` without its per-field introspection (the one
    change every answered order makes)."""
    values = saga_fields(saga)
    values[1] = lines
    values[3] = status
    return Saga(*values)
