"""``stockflow.Client``: place an order and get its answer in one call.

Example::

    async with stockflow.Client(stockflow.Settings()) as client:
        outcome = await client.place("o-1", [{"product_id": "sku-1", "quantity": 2}])
        if isinstance(outcome, OrderReserved):
            await client.pay("o-1")

One producer (acks=all, keyed by order id: the partition the worker reads the order from) and
one consumer of ``reservations`` (:class:`~stockflow.client.reader.Reader`) serve every call;
1,000 calls in flight share them. Settings used: ``broker`` and the security settings,
``orders_topic``, ``reservations_topic``, ``fetch_max_wait_ms``.

Idempotence by order id: ``place()`` with an order id this client has already seen decided
returns that outcome without sending anything. Otherwise it sends the ``OrderPlaced`` (again):
the worker decides an order id once, and a repeated ``OrderPlaced`` only makes it emit the same
outcome again, so a retry after a timeout or a restart gets the first decision and never
reserves twice. The same id with other lines raises :class:`~stockflow.errors.OrderConflict`
naming the difference; the first order stands, unchanged. (A worker forgets an order
``STOCKFLOW_RETENTION`` after it finished, default 7 days: an id placed again after that is a new
order.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stockflow.client.matching import (
    Answers,
    CancelAnswer,
    Outcome,
    PayAnswer,
    differences,
    fulfilment_of,
    merged,
    outcome_lines,
    reserved_products,
)
from stockflow.client.reader import Reader
from stockflow.errors import BrokerError, OrderConflict, OrderTimeout, StockflowError
from stockflow.kafka import bootstrap_servers, client_kwargs, groupless_consumer
from stockflow.keys import partition_for
from stockflow.models import (
    Fulfilment,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderPlaced,
    OrderRejected,
    OrderReserved,
)
from stockflow.processing.codec import encode
from stockflow.settings import Settings

__all__ = ["Client", "LineInput"]

LineInput = OrderLine | Mapping[str, Any] | tuple[str, int]
"""A line: an :class:`~stockflow.models.OrderLine`, ``{"product_id", "quantity"}`` or
``(product_id, quantity)``."""

SEND_TIMEOUT = 1.0
"""Seconds a request may take to be sent even when the call's timeout is shorter."""

QUIET_PERIOD = 0.5
"""Seconds to wait for more confirmations or releases after the first one, when the order's
outcome (and so its reserved lines) is not known to this client."""


class Client:
    """An async context manager; see the module docstring. ``settings`` default: the
    ``STOCKFLOW_*`` environment. ``max_tracked`` bounds the order ids whose requests and outcomes
    it remembers (default 100,000)."""

    def __init__(self, settings: Settings | None = None, *, max_tracked: int = 100_000) -> None:
        self.settings = settings or Settings()
        self.max_tracked = max_tracked
        self._producer: AIOKafkaProducer | None = None
        self._reader: Reader | None = None
        self._placed: OrderedDict[str, OrderPlaced] = OrderedDict()

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        settings = self.settings
        servers, auth = bootstrap_servers(settings.broker), client_kwargs(settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=servers, acks="all", linger_ms=settings.producer_linger_ms, **auth
        )
        consumer = groupless_consumer(
            servers,
            client_kwargs=auth,
            auto_offset_reset="latest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
        )
        try:
            await producer.start()
            await consumer.start()
            partitions = await producer.partitions_for(settings.reservations_topic)
            reader = Reader(consumer, settings.reservations_topic, max_tracked=self.max_tracked)
            await reader.start(len(partitions))
        except KafkaError as exc:
            await _quietly(producer.stop(), consumer.stop())
            raise BrokerError(f"stockflow client could not connect: {exc}") from exc
        self._producer, self._reader = producer, reader

    async def stop(self) -> None:
        reader, producer = self._reader, self._producer
        self._reader = self._producer = None
        if reader is not None:
            await reader.stop()
            await _quietly(reader.consumer.stop())
        if producer is not None:
            await _quietly(producer.stop())

    # --- calls --------------------------------------------------------------------------------

    async def place(
        self,
        order_id: str,
        lines: Iterable[LineInput],
        *,
        fulfilment: Fulfilment = "all_or_nothing",
        reservation_ttl: float | None = None,
        timeout: float = 5.0,
    ) -> OrderReserved | OrderRejected:
        """Send ``OrderPlaced`` and return its outcome.

        Raises :class:`~stockflow.errors.OrderTimeout` after ``timeout`` seconds without one,
        :class:`~stockflow.errors.OrderConflict` when ``order_id`` was placed with other lines,
        and pydantic's ``ValidationError`` (a ``ValueError``) for an invalid order (nothing is
        sent then)."""
        request = OrderPlaced(
            type="OrderPlaced",
            order_id=order_id,
            lines=[_line(line) for line in lines],
            fulfilment=fulfilment,
            reservation_ttl=reservation_ttl,
        )
        reader = self._running()
        self._check_against_known(request)
        known = reader.outcome(order_id)
        if known is not None:
            return self._checked(request, known)
        self._remember(request)
        reader.track(order_id)
        outcome = await self._request(order_id, "place", encode(request), _FirstOutcome(), timeout)
        assert isinstance(outcome, OrderReserved | OrderRejected)
        return self._checked(request, outcome)

    async def outcome(
        self, order_id: str, *, timeout: float = 5.0
    ) -> OrderReserved | OrderRejected:
        """The outcome of an order this client placed, as soon as it is known: at once if it
        came already (while a ``place()`` waited, or after it timed out), else the next one to
        come within ``timeout``. For an order placed elsewhere only an outcome emitted after
        this call starts is seen: call ``place()`` again with its lines instead."""
        reader = self._running()
        known = reader.outcome(order_id)
        if known is not None:
            return known
        reader.track(order_id)
        outcome = await self._request(order_id, "outcome", None, _FirstOutcome(), timeout)
        assert isinstance(outcome, OrderReserved | OrderRejected)
        return outcome

    async def pay(
        self, order_id: str, *, timeout: float = 5.0, expect: Iterable[str] | None = None
    ) -> list[PayAnswer]:
        """Send ``OrderPaid``; returns one ``ReservationConfirmed`` per reserved line, or
        ``[ReservationConfirmFailed]`` (the payment must be refunded).

        The answer is complete when every reserved line is confirmed. The reserved lines come
        from the outcome if this client saw it, else from ``expect`` (the products of the
        order's reserved lines, if the caller knows them); without either, the answer is taken
        as complete :data:`QUIET_PERIOD` seconds after the last confirmation."""
        request = OrderPaid(type="OrderPaid", order_id=order_id)
        events = await self._lifecycle(order_id, "pay", encode(request), timeout, expect)
        return events

    async def cancel(
        self,
        order_id: str,
        *,
        reason: str | None = None,
        timeout: float = 5.0,
        expect: Iterable[str] | None = None,
    ) -> list[CancelAnswer]:
        """Send ``OrderCancelled``; returns one ``ReservationReleased`` per released line, or
        ``[OrderCancelIgnored]`` (nothing was held any more, or the order was paid).
        ``expect``: as for :meth:`pay`."""
        request = OrderCancelled(type="OrderCancelled", order_id=order_id, reason=reason)
        events = await self._lifecycle(order_id, "cancel", encode(request), timeout, expect)
        return events

    # --- internals ----------------------------------------------------------------------------

    def _running(self) -> Reader:
        if self._reader is None:
            raise StockflowError("stockflow.Client is not started: use 'async with Client()'")
        return self._reader

    def partition_of(self, order_id: str) -> int:
        """The partition of ``reservations`` where this order's answers are published."""
        return partition_for(order_id.encode(), self._running().partitions)

    def _check_against_known(self, request: OrderPlaced) -> None:
        placed = self._placed.get(request.order_id)
        if placed is None:
            return
        found = differences(
            merged(request.lines),
            merged(placed.lines),
            asked_fulfilment=request.fulfilment,
            placed_fulfilment=placed.fulfilment,
        )
        if request.reservation_ttl != placed.reservation_ttl:
            found.append(
                f"reservation_ttl {placed.reservation_ttl} placed, "
                f"{request.reservation_ttl} asked now"
            )
        if found:
            outcome = self._running().outcome(request.order_id)
            raise OrderConflict(request.order_id, found, outcome)

    def _checked(self, request: OrderPlaced, outcome: Outcome) -> Outcome:
        found = differences(
            merged(request.lines),
            outcome_lines(outcome),
            asked_fulfilment=request.fulfilment,
            placed_fulfilment=fulfilment_of(outcome),
        )
        if found:
            raise OrderConflict(request.order_id, found, outcome)
        return outcome

    def _remember(self, request: OrderPlaced) -> None:
        self._placed[request.order_id] = request
        self._placed.move_to_end(request.order_id)
        while len(self._placed) > self.max_tracked:
            self._placed.popitem(last=False)

    async def _lifecycle(
        self,
        order_id: str,
        action: Literal["pay", "cancel"],
        value: bytes,
        timeout: float,
        expect: Iterable[str] | None,
    ) -> list[Any]:
        reader = self._running()
        known = reader.outcome(order_id)
        if known is not None:
            expected: frozenset[str] | None = reserved_products(known)
        else:
            expected = None if expect is None else frozenset(expect)
        answers = Answers(action, expected)
        reader.track(order_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._request(order_id, action, value, _Collect(answers), timeout)
        except OrderTimeout:
            if not answers.settled:
                raise
        if not answers.complete:
            # Outcome unknown here: more lines may still answer; wait for a quiet period.
            seen = -1
            while len(answers.events) != seen and loop.time() < deadline:
                seen = len(answers.events)
                with contextlib.suppress(OrderTimeout):
                    pause = min(QUIET_PERIOD, max(deadline - loop.time(), 0.0))
                    await self._request(order_id, action, None, _Collect(answers), pause)
        return list(answers.events)

    async def _request(
        self,
        order_id: str,
        action: str,
        value: bytes | None,
        waiter: _Pending,
        timeout: float,
    ) -> object:
        """Register ``waiter``, make sure its partition is read, send ``value`` (if any) to
        ``orders`` keyed by the order id, and wait for the waiter's result.

        The request is always sent, even with a timeout of 0 (``POST /orders?wait=0``): the
        send may take up to :data:`SEND_TIMEOUT` seconds beyond a shorter ``timeout``."""
        reader = self._running()
        producer = self._producer
        assert producer is not None
        future = waiter.future
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        reader.add(order_id, waiter)
        try:
            async with asyncio.timeout(max(timeout, SEND_TIMEOUT)):
                await reader.watch(self.partition_of(order_id))
                if value is not None:
                    try:
                        await producer.send_and_wait(
                            self.settings.orders_topic, value, key=order_id.encode()
                        )
                    except KafkaError as exc:
                        raise BrokerError(f"sending {action} for {order_id!r}: {exc}") from exc
            async with asyncio.timeout_at(deadline):
                return await future
        except TimeoutError:
            raise OrderTimeout(order_id, action, timeout) from None
        finally:
            reader.remove(order_id, waiter)
            if not future.done():
                future.cancel()


class _Pending:
    """A waiter: feeds events to ``accept`` until it returns a result (not ``None``)."""

    def __init__(self) -> None:
        self.future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    def accept(self, event: object) -> object | None:
        raise NotImplementedError

    def __call__(self, event: object) -> bool:
        if self.future.done():
            return True
        if isinstance(event, BaseException):
            self.future.set_exception(event)
            return True
        result = self.accept(event)
        if result is None:
            return False
        self.future.set_result(result)
        return True


class _FirstOutcome(_Pending):
    def accept(self, event: object) -> object | None:
        return event if isinstance(event, OrderReserved | OrderRejected) else None


class _Collect(_Pending):
    def __init__(self, answers: Answers) -> None:
        super().__init__()
        self.answers = answers

    def accept(self, event: object) -> object | None:
        self.answers.feed(event)
        return self.answers if self.answers.settled else None


def _line(line: LineInput) -> OrderLine:
    if isinstance(line, OrderLine):
        return line
    if isinstance(line, tuple):
        product_id, quantity = line
        return OrderLine(product_id=product_id, quantity=quantity)
    return OrderLine.model_validate(dict(line))


async def _quietly(*stops: Any) -> None:
    for stop in stops:
        with contextlib.suppress(Exception):
            await stop
