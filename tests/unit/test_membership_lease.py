"""stockflow._faust.membership.MembershipLease: what confirms a worker's group membership, and for
how long, with a stand-in for aiokafka's group coordinator."""

from __future__ import annotations

import asyncio
from typing import Any

from stockflow._faust.membership import MembershipLease


class FakeCoordinator:
    """aiokafka's ``GroupCoordinator`` as far as the lease uses it."""

    def __init__(self, generation: int = 1) -> None:
        self.generation = generation
        self.answer = "ok"
        self.joined: list[int] = []
        self._rejoin_needed_fut: asyncio.Future[None] | None = None

    async def _do_heartbeat(self) -> bool:
        self._rejoin_needed_fut = asyncio.get_running_loop().create_future()
        if self.answer == "rebalancing":  # aiokafka: True, and asks to rejoin
            self._rejoin_needed_fut.set_result(None)
            return True
        if self.answer == "unknown member":  # aiokafka: False, generation reset
            self.generation = -1
            return False
        return self.answer == "ok"

    async def _on_join_complete(
        self, generation: int, member_id: str, protocol: str, assignment: bytes
    ) -> None:
        self.generation = generation
        self.joined.append(generation)


def heartbeat(coordinator: Any) -> bool:
    async def run() -> bool:
        result: bool = await coordinator._do_heartbeat()
        return result

    return asyncio.run(run())


def test_without_a_group_coordinator_the_lease_always_holds() -> None:
    lease = MembershipLease(3.0)
    assert lease.holds()
    lease.watch(object())  # aiokafka's NoGroupCoordinator has no heartbeat
    assert lease.holds()


def test_a_watched_member_holds_only_after_a_confirmation_and_for_the_window() -> None:
    coordinator = FakeCoordinator()
    lease = MembershipLease(3.0)
    lease.watch(coordinator)
    assert not lease.holds()  # nothing confirmed yet

    assert heartbeat(coordinator)
    assert lease.holds()
    confirmed = lease.confirmed_at
    assert confirmed is not None
    assert lease.holds(now=confirmed + 2.9)
    assert not lease.holds(now=confirmed + 3.1)


def test_a_heartbeat_that_announces_a_rebalance_or_fails_confirms_nothing() -> None:
    coordinator = FakeCoordinator()
    lease = MembershipLease(3.0)
    lease.watch(coordinator)
    coordinator.answer = "rebalancing"
    assert heartbeat(coordinator)
    assert lease.confirmed_at is None
    coordinator.answer = "failed"
    assert not heartbeat(coordinator)
    assert lease.confirmed_at is None


def test_a_confirmation_counts_only_for_its_generation() -> None:
    coordinator = FakeCoordinator(generation=1)
    lease = MembershipLease(3.0)
    lease.watch(coordinator)
    heartbeat(coordinator)
    assert lease.holds()

    coordinator.answer = "unknown member"  # dropped: aiokafka resets the generation
    heartbeat(coordinator)
    assert not lease.holds()

    asyncio.run(coordinator._on_join_complete(2, "m", "faust", b""))  # joined again
    assert coordinator.joined == [2] and lease.generation == 2
    assert lease.holds()
