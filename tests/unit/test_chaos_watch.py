"""stockflow.chaos.watch: waiting for outcomes names the orders still without one."""

from __future__ import annotations

import pytest

from stockflow.chaos.watch import FlowWatcher, Undecided
from stockflow.errors import BrokerError


def test_wait_decided_gives_up_with_the_orders_still_undecided() -> None:
    watcher = FlowWatcher("127.0.0.1:9", reservations="r", replies="q", partitions=1)
    watcher.decided["o-1"] = 1_000

    watcher.wait_decided(["o-1"], timeout=0.0)
    with pytest.raises(Undecided) as caught:
        watcher.wait_decided(["o-1", "o-2", "o-3"], timeout=0.0)

    assert caught.value.missing == ["o-2", "o-3"]
    assert isinstance(caught.value, BrokerError)
    assert str(caught.value) == "2 orders undecided after 0.0s: ['o-2', 'o-3']"


def test_wait_decided_tells_a_watcher_that_stopped_reading_from_undecided_orders() -> None:
    watcher = FlowWatcher("127.0.0.1:9", reservations="r", replies="q", partitions=1)
    watcher.error = ConnectionError("broker gone")

    with pytest.raises(BrokerError, match="flow watcher failed") as caught:
        watcher.wait_decided(["o-1"], timeout=5.0)

    assert not isinstance(caught.value, Undecided)
