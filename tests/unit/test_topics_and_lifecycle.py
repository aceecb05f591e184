"""Issue 12, pure parts: the topics a worker needs and how a broker's differ, readiness
reasons, and the exit watchdog's bounds (with a fake app and a fake exit)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from stockflow import BrokerError, ConfigurationError, Settings
from stockflow.brokerwatch import BrokerWatch
from stockflow.lifecycle import EXIT_CRASHED, ExitWatchdog
from stockflow.provisioning import provision
from stockflow.topics import (
    ObservedTopic,
    check_topics,
    copartition_problems,
    describe_problems,
    required_topics,
)
from stockflow.web.health import ReadyState, readiness


def test_required_topics_roles_partitions_and_configs() -> None:
    settings = Settings(app_id="shop", partitions=6, replication_factor=3, topic_retention=60)
    specs = {s.name: s for s in required_topics(settings, faust_id="embedding")}
    assert set(specs) == {
        "orders",
        "inventory",
        "reservations",
        "stockflow-dead-letters",
        "shop-product-commands",
        "shop-order-replies",
        "embedding-shop-products-changelog",
        "embedding-shop-orders-changelog",
        "embedding-__assignor-__leader",
    }
    assert specs["orders"].config == {"cleanup.policy": "delete", "retention.ms": "60000"}
    assert specs["embedding-shop-orders-changelog"].config == {"cleanup.policy": "compact"}
    assert {s.partitions for n, s in specs.items() if "__assignor" not in n} == {6}
    assert specs["embedding-__assignor-__leader"].partitions == 1
    assert not specs["embedding-__assignor-__leader"].copartitioned
    assert {s.replication for s in specs.values()} == {3}


def test_checks_name_missing_topics_and_every_difference() -> None:
    settings = Settings(partitions=8)
    specs = required_topics(settings)
    observed = {
        "orders": ObservedTopic("orders", 8, {"retention.ms": "1000"}),
        "inventory": ObservedTopic("inventory", 4),
        "stockflow-__assignor-__leader": ObservedTopic("stockflow-__assignor-__leader", 1),
    }
    checks = {c.spec.name: c for c in check_topics(specs, observed)}
    assert checks["reservations"].differences == ("missing",)
    assert checks["orders"].differences == ("retention.ms=1000, want 604800000",)
    assert checks["inventory"].differences == ("partitions 4, want 8",)
    assert checks["stockflow-__assignor-__leader"].ok
    problems = copartition_problems(checks.values())
    assert [c.spec.name for c in problems] == ["inventory"]  # missing is not a disagreement
    message = describe_problems(problems, settings)
    assert "inventory: 4 partitions" in message
    assert "STOCKFLOW_PARTITIONS=8" in message
    assert "stockflow topics check" in message


def test_readiness_reasons() -> None:
    ready = ReadyState(False, False, 4, False, True, 10)
    assert readiness(ready, max_lag=10) == []
    assert readiness(ReadyState(False, False, 0, True, False, 11), max_lag=10) == [
        "no partitions assigned",
        "rebalancing",
        "recovering tables",
        "lag 11 > 10 (STOCKFLOW_READY_MAX_LAG)",
    ]
    assert readiness(ReadyState(True, True, 4, False, True, 0), max_lag=10) == [
        "crashed",
        "stopping",
    ]
    assert readiness(ReadyState(False, False, 4, False, True, 0, lag_unknown=2), max_lag=10) == [
        "lag not yet known for 2 partitions"
    ]


@dataclass
class FakeApp:
    crash_reason: Any = None
    should_stop: bool = False


def test_watchdog_exits_after_the_crash_bound_only() -> None:
    app = FakeApp()
    exits: list[int] = []
    watchdog = ExitWatchdog(app, crash_timeout=0.2, stop_timeout=5, exit=exits.append)
    assert not watchdog.check() and not watchdog.armed
    app.crash_reason = RuntimeError("bug")
    assert not watchdog.check() and watchdog.armed
    time.sleep(0.25)
    assert watchdog.check()
    assert exits == [EXIT_CRASHED]


def test_watchdog_stop_bound_and_the_thread() -> None:
    app = FakeApp(should_stop=True)
    exits: list[int] = []
    watchdog = ExitWatchdog(app, crash_timeout=5, stop_timeout=0.1, poll=0.02, exit=exits.append)
    watchdog.start()
    deadline = time.monotonic() + 5
    while not exits and time.monotonic() < deadline:
        time.sleep(0.02)
    watchdog.close()
    assert exits == [EXIT_CRASHED]


class FakeAdmin:
    """Enough of aiokafka's admin client for :func:`inspect_topics`: no topics, and every
    CreateTopics answered with ``code``."""

    code = 29  # TOPIC_AUTHORIZATION_FAILED

    def __init__(self, **kwargs: Any) -> None:
        self.created: list[Any] = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def describe_topics(self, topics: Any) -> list[Any]:
        return []

    async def create_topics(self, new_topics: list[Any]) -> Any:
        return SimpleNamespace(topic_errors=[(t.name, self.code, None) for t in new_topics])


@pytest.mark.parametrize("code", [29, 31])
def test_a_refused_creation_is_one_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    import aiokafka.admin

    monkeypatch.setattr(FakeAdmin, "code", code)
    monkeypatch.setattr(aiokafka.admin, "AIOKafkaAdminClient", FakeAdmin)
    settings = Settings()
    with pytest.raises(ConfigurationError, match="not authorized") as refused:
        asyncio.run(provision(settings, required_topics(settings), servers=["h:1"]))
    assert "stockflow topics check" in str(refused.value)


def test_broker_watch_tolerates_outages_up_to_the_allowance() -> None:
    now = [0.0]
    answering = [True]

    async def probe() -> None:
        if not answering[0]:
            raise OSError("connection refused")

    watch = BrokerWatch(probe, allowance=10, timeout=1, clock=lambda: now[0])
    assert asyncio.run(watch.check()) is None
    answering[0] = False
    now[0] = 9.0
    assert asyncio.run(watch.check()) is None  # 9 s lost: within the allowance
    answering[0] = True
    assert asyncio.run(watch.check()) is None  # back: the count starts again
    answering[0] = False
    now[0] = 19.5
    error = asyncio.run(watch.check())
    assert isinstance(error, BrokerError)
    assert "STOCKFLOW_BROKER_LOST_TIMEOUT=10" in str(error)
