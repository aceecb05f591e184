"""A worker processes its partitions only while its group membership is confirmed.

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

What this does not cover: records handed to the producer before a freeze are sent when the
worker wakes up (the same holds for Apache Kafka without transactions).
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["MembershipLease"]

log = logging.getLogger(__name__)


class MembershipLease:
    """The last moment (``time.monotonic()``) the group coordinator confirmed this member in
    its current generation. Written from the consumer's thread, read from the main loop."""

    def __init__(self, window: float) -> None:
        self.window = window
        """Seconds a confirmation is trusted for."""
        self.confirmed_at: float | None = None
        self.generation: int | None = None
        self._coordinator: Any = None

    def confirm(self, sent_at: float, generation: int) -> None:
        if self.generation != generation or self.confirmed_at is None:
            self.generation, self.confirmed_at = generation, sent_at
        elif sent_at > self.confirmed_at:
            self.confirmed_at = sent_at

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
            return ok

        async def confirmed_join(
            generation: int, member_id: str, protocol: str, assignment: bytes
        ) -> Any:
            joined_at = time.monotonic()  # the SyncGroup answer: the session starts again
            self.confirm(joined_at, generation)
            return await join_complete(generation, member_id, protocol, assignment)

        coordinator._do_heartbeat = confirmed_heartbeat
        coordinator._on_join_complete = confirmed_join
