"""A worker decides and writes for its partitions only while its group membership is confirmed.

Without transactions (tansu has none), nothing on the broker stops a worker that has been
dropped from the group from writing: a worker frozen longer than the session timeout (a long
garbage collection, a stalled VM, ``SIGSTOP``) or cut off from the broker is dropped, another
worker takes its partitions over, restores their tables and decides on them; the first one then
wakes up and processes what it had fetched, with its own, older tables, before its next
heartbeat tells it that it lost them. Measured with a worker stopped for 7-11 s while orders
flowed: seven orders answered twice, reserved by one worker and timed out by the other.

Kafka's coordinator drops a member only once it has not heard from it for the session timeout
(or, in a rebalance, for the rebalance timeout: a rebalance under way is announced to every
heartbeat). So a heartbeat answered without error proves the member still held its assignment
when the heartbeat was *sent*. :class:`MembershipLease` keeps the send time of the last such
heartbeat (and the time a join completed, when the coordinator restarts the member's session)
for the current generation; the batch consumer processes a batch only while that time is less
than ``window`` seconds old (half the session timeout by default), and fetches the batch again
otherwise. A dropped worker thus stops within ``window`` of its last confirmed heartbeat, well
before the coordinator can hand its partitions to anyone else.

Records handed to the producer before a freeze would still be sent when the worker wakes up
(measured: a soak's frozen worker's changelog records, stamped 2 ms before its SIGSTOP, landed
8.4 s later behind its successor's, and a later restore oversold by up to 2 units). So
stockflow's own record batches pass :func:`gate_sends`: aiokafka's sender holds a produce request
that carries one while the worker's membership is not known to be alive, sends it once a
heartbeat is answered, and fails those batches with :class:`MembershipLost` once the coordinator
has dropped the worker (its generation reset). A failed batch loses nothing: its table writes
never reached the local stores (they wait for their acknowledgement), its offsets are never
committed (a dropped member's commit is refused; its partitions are revoked before it rejoins,
and the batch consumer records no offset of a batch that ends, nor commits any taken, before a
revocation: ``stockflow._faust.consumer``), and the new owner processes its records again.

A request already past the gate when the worker froze still goes out when it wakes, behind its
successor's records. Their acknowledgement must not move the local store's persisted offset
past the successor's records (``stockflow._faust.changelog``), and the records must not become
their keys' last word: the successor may have written later values of the same keys, and the
late record rolled them back at the next restore (seen with the compiled build at 16
partitions, docs/reliability.md: orders answered twice, stock a few units off). Each record
carries its writer's epoch, higher for a successor, and every reader skips a record whose
epoch is below one read before it (:mod:`stockflow.fencing`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from stockflow.errors import StockflowError

__all__ = ["MembershipLease", "MembershipLost", "gate_sends", "mark_gated"]

log = logging.getLogger(__name__)


class MembershipLease:
    """The last moment (``time.monotonic()``) the group coordinator confirmed this member in
    its current generation. Written from the consumer's thread, read from the main loop."""

    def __init__(self, window: float) -> None:
        self.window = window
        """Seconds a confirmation is trusted for."""
        self.confirmed_at: float | None = None
        self.alive_at: float | None = None
        """Also set by a heartbeat answered "rebalance in progress": the member is still in
        the group until it rejoins (what sending needs, not what deciding needs)."""
        self.generation: int | None = None
        self._coordinator: Any = None

    def confirm(self, sent_at: float, generation: int) -> None:
        if self.generation != generation or self.confirmed_at is None:
            self.generation, self.confirmed_at = generation, sent_at
        elif sent_at > self.confirmed_at:
            self.confirmed_at = sent_at
        self.alive(sent_at)

    def alive(self, sent_at: float) -> None:
        if self.alive_at is None or sent_at > self.alive_at:
            self.alive_at = sent_at

    def lost(self) -> bool:
        """Whether this member joined once and is out of the group now: aiokafka reset its
        generation after an "unknown member" or "illegal generation" answer, or when it left
        (until it joins again)."""
        coordinator = self._coordinator
        return (
            coordinator is not None and self.generation is not None and coordinator.generation < 0
        )

    def may_send(self, now: float | None = None) -> bool:
        """Whether the member was known to be in the group less than ``window`` ago."""
        if self._coordinator is None:
            return True
        if self.alive_at is None:
            return False
        return (time.monotonic() if now is None else now) - self.alive_at < self.window

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last confirmation of the coordinator's current generation, or
        ``None`` if there is none."""
        coordinator = self._coordinator
        if self.confirmed_at is None or coordinator is None:
            return None
        if coordinator.generation != self.generation:
            return None  # a rebalance or a reset since: not confirmed in this generation
        return (time.monotonic() if now is None else now) - self.confirmed_at

    def holds(self, now: float | None = None) -> bool:
        """Whether this member may still act on its assignment. Always true for a consumer
        without a group coordinator watched (no group: nothing to lose)."""
        if self._coordinator is None:
            return True
        age = self.age(now)
        return age is not None and age < self.window

    def watch(self, coordinator: Any) -> None:
        """Follow ``coordinator`` (aiokafka's ``GroupCoordinator``): its heartbeats answered
        without error and its completed joins confirm the membership."""
        if not hasattr(coordinator, "_do_heartbeat"):
            return  # no group (aiokafka's NoGroupCoordinator)
        self._coordinator = coordinator
        heartbeat = coordinator._do_heartbeat
        join_complete = coordinator._on_join_complete

        async def confirmed_heartbeat() -> bool:
            sent_at = time.monotonic()
            generation = coordinator.generation
            ok: bool = await heartbeat()
            # aiokafka returns True for "rebalance in progress" too, and then asks to rejoin.
            if ok and not coordinator._rejoin_needed_fut.done():
                self.confirm(sent_at, generation)
            elif ok:
                self.alive(sent_at)
            return ok

        async def confirmed_join(
            generation: int, member_id: str, protocol: str, assignment: bytes
        ) -> Any:
            joined_at = time.monotonic()  # the SyncGroup answer: the session starts again
            self.confirm(joined_at, generation)
            return await join_complete(generation, member_id, protocol, assignment)

        coordinator._do_heartbeat = confirmed_heartbeat
        coordinator._on_join_complete = confirmed_join


class MembershipLost(StockflowError):
    """A record batch not sent: the group dropped this worker before it could be."""


_GATED = "_stockflow_gated"
HOLD_POLL = 0.05
"""Seconds between two looks at the lease while a produce request is held."""


def mark_gated(builder: Any) -> Any:
    """Mark one of stockflow's record batch builders: its batch passes :func:`gate_sends`."""
    setattr(builder, _GATED, True)
    return builder


def gate_sends(sender: Any, lease: MembershipLease) -> None:
    """Wrap aiokafka's ``Sender._send_produce_req`` (once): a request that carries a marked
    batch waits while ``lease`` cannot tell the member alive, then either goes, or, once the
    member is dropped, goes without those batches, which fail with :class:`MembershipLost`."""
    if getattr(sender, _GATED, False):
        return
    send: Callable[[int, dict[Any, Any]], Awaitable[None]] = sender._send_produce_req

    async def gated(node_id: int, batches: dict[Any, Any]) -> None:
        ours = [tp for tp, batch in batches.items() if getattr(batch._builder, _GATED, False)]
        if ours:
            while not lease.may_send() and not lease.lost():
                await asyncio.sleep(HOLD_POLL)
            if lease.lost():
                error = MembershipLost("dropped from the consumer group before these were sent")
                log.warning(
                    "dropped from the consumer group: %d record batch(es) not sent; the "
                    "partitions' new owner processes their records again",
                    len(ours),
                )
                for tp in ours:
                    batches.pop(tp).failure(exception=error)
                    sender._muted_partitions.discard(tp)
                if not batches:
                    sender._in_flight.discard(node_id)
                    return
        await send(node_id, batches)

    sender._send_produce_req = gated
    setattr(sender, _GATED, True)
