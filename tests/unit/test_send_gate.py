"""stockflow._faust.membership.gate_sends: aiokafka's sender sends stockflow's record batches only
while the worker is known to be in its group, and drops them once the group has dropped it
(a worker woken from a freeze must not write behind its partitions' new owner)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from stockflow._faust.membership import MembershipLease, MembershipLost, gate_sends, mark_gated

OURS, THEIRS = ("products-changelog", 0), ("shop-events", 0)
_now = time.monotonic


class FakeBatch:
    def __init__(self, ours: bool) -> None:
        self._builder = mark_gated(SimpleNamespace()) if ours else SimpleNamespace()
        self.error: BaseException | None = None

    def failure(self, exception: BaseException) -> None:
        self.error = exception


class FakeSender:
    """aiokafka's ``Sender`` as far as the gate uses it."""

    def __init__(self) -> None:
        self._in_flight = {7}
        self._muted_partitions = {OURS, THEIRS}
        self.requests: list[list[Any]] = []

    async def _send_produce_req(self, node_id: int, batches: dict[Any, Any]) -> None:
        self.requests.append(sorted(batches))
        self._in_flight.discard(node_id)
        for tp in batches:
            self._muted_partitions.discard(tp)


def gated(generation: int = 3) -> tuple[FakeSender, MembershipLease, Any]:
    sender, lease = FakeSender(), MembershipLease(1.5)
    coordinator = SimpleNamespace(generation=generation)
    lease._coordinator = coordinator
    gate_sends(sender, lease)
    gate_sends(sender, lease)  # once only
    return sender, lease, coordinator


def request(sender: FakeSender, *batches: tuple[Any, FakeBatch]) -> None:
    asyncio.run(sender._send_produce_req(7, dict(batches)))


def test_a_request_goes_while_the_member_is_known_alive() -> None:
    sender, lease, _ = gated()
    lease.confirm(_now(), 3)
    ours, theirs = FakeBatch(True), FakeBatch(False)
    request(sender, (OURS, ours), (THEIRS, theirs))
    assert sender.requests == [[OURS, THEIRS]] and ours.error is None


def test_a_dropped_member_sends_the_others_batches_but_never_its_own() -> None:
    sender, lease, coordinator = gated()
    lease.confirm(_now() - 10, 3)  # confirmed once, long ago (a freeze)
    coordinator.generation = -1  # then an "unknown member" answer reset it
    ours, theirs = FakeBatch(True), FakeBatch(False)
    request(sender, (OURS, ours), (THEIRS, theirs))
    assert sender.requests == [[THEIRS]]
    assert isinstance(ours.error, MembershipLost) and theirs.error is None
    assert sender._muted_partitions == set() and sender._in_flight == set()


def test_a_request_of_only_its_own_batches_is_not_made_at_all() -> None:
    sender, lease, coordinator = gated()
    lease.confirm(_now() - 10, 3)
    coordinator.generation = -1
    ours = FakeBatch(True)
    request(sender, (OURS, ours))
    assert sender.requests == [] and isinstance(ours.error, MembershipLost)
    assert sender._muted_partitions == {THEIRS} and sender._in_flight == set()


def test_a_request_waits_while_the_membership_is_unknown_then_goes() -> None:
    sender, lease, _ = gated()
    lease.confirm(_now() - 10, 3)  # woke from a freeze: not known alive, not dropped yet

    async def run() -> None:
        ours = FakeBatch(True)
        task = asyncio.ensure_future(sender._send_produce_req(7, {OURS: ours}))
        await asyncio.sleep(0.2)
        assert not task.done() and sender.requests == []
        lease.confirm(_now(), 3)  # the next heartbeat was answered: still a member
        await asyncio.wait_for(task, 1.0)
        assert sender.requests == [[OURS]] and ours.error is None

    asyncio.run(run())


@pytest.mark.parametrize("answer", ["rebalancing", "ok"])
def test_a_rebalance_answer_lets_sends_go_but_not_decisions(answer: str) -> None:
    lease = MembershipLease(1.5)
    lease._coordinator = SimpleNamespace(generation=3)
    if answer == "rebalancing":
        lease.alive(_now())
        assert lease.may_send() and not lease.holds()
    else:
        lease.confirm(_now(), 3)
        assert lease.may_send() and lease.holds()
