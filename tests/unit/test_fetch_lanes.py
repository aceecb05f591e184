"""stockflow._faust.lanes without a broker: which node key the fetcher groups a partition's
fetch under, and which connection the client then sends it on.

- A lane's topics get a key of their own per broker; other topics keep the broker's id.
- A partition without a leader stays ``None`` / ``-1`` (aiokafka then updates its metadata).
- A request for a lane goes to the broker's id on a connection group of its own; every other
  request (the default fetches, the coordinator's) goes exactly as before.
- The two topics of one agent share a lane (``lanes_of`` reads the routes' agent names).
- A failed fetch on a lane still drops the follower replicas cached for its broker.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.client import ConnectionGroup
from aiokafka.consumer.fetcher import Fetcher

from stockflow._faust.lanes import LaneNode, lanes_of, split_fetches


class FakeFetcher:
    def __init__(self, leaders: dict[TopicPartition, int | None]) -> None:
        self.leaders = leaders

    def _select_read_replica(self, tp: TopicPartition) -> int | None:
        return self.leaders[tp]

    def _invalidate_preferred_read_replica_for_node(self, node_id: int, request: Any) -> None:
        pass  # no follower is cached here (see ReplicaFetcher)


class FakeClient:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, str, Any]] = []

    async def send(
        self, node_id: Any, request: str, *, group: Any = ConnectionGroup.DEFAULT
    ) -> str:
        self.sent.append((node_id, request, group))
        return f"answer to {request}"


def split(leaders: dict[TopicPartition, int | None], lanes: dict[str, str]) -> Any:
    consumer = SimpleNamespace(_fetcher=FakeFetcher(leaders), _client=FakeClient())
    split_fetches(consumer, lanes)
    return consumer


COMMANDS = TopicPartition("product-commands", 0)
ORDERS = TopicPartition("orders", 1)
OTHER = TopicPartition("app-topic", 0)


def test_a_lane_topic_is_fetched_under_a_key_of_its_own() -> None:
    consumer = split({COMMANDS: 3, ORDERS: 3, OTHER: 3}, {"product-commands": "products"})
    select = consumer._fetcher._select_read_replica

    assert select(COMMANDS) == LaneNode(3, "products")
    assert select(ORDERS) == 3
    assert select(OTHER) == 3
    # The fetcher keeps one request in flight per key: the two are apart.
    assert len({select(COMMANDS), select(ORDERS)}) == 2


def test_each_lane_is_apart_and_one_agents_topics_share_theirs() -> None:
    routes = {
        "product-commands": SimpleNamespace(name="stockflow.products"),
        "orders": SimpleNamespace(name="stockflow.orders"),
        "order-replies": SimpleNamespace(name="stockflow.orders"),
    }
    lanes = lanes_of(routes)
    replies = TopicPartition("order-replies", 0)
    consumer = split({COMMANDS: 1, ORDERS: 1, replies: 1}, lanes)
    select = consumer._fetcher._select_read_replica

    assert select(ORDERS) == select(replies) == LaneNode(1, "stockflow.orders")
    assert select(COMMANDS) == LaneNode(1, "stockflow.products")


def test_a_partition_without_a_leader_is_left_to_aiokafka() -> None:
    consumer = split({COMMANDS: None, ORDERS: -1}, {"product-commands": "p", "orders": "o"})
    select = consumer._fetcher._select_read_replica

    assert select(COMMANDS) is None
    assert select(ORDERS) == -1


def test_a_lanes_request_goes_to_its_broker_on_a_connection_of_its_own() -> None:
    consumer = split({}, {"product-commands": "products"})
    client = consumer._client
    inner = client.sent

    async def sends() -> list[str]:
        return [
            await client.send(LaneNode(3, "products"), "fetch-lane"),
            await client.send(3, "fetch-default"),
            await client.send(3, "heartbeat", group=ConnectionGroup.COORDINATION),
        ]

    answers = asyncio.run(sends())

    assert answers == ["answer to fetch-lane", "answer to fetch-default", "answer to heartbeat"]
    assert inner == [
        (3, "fetch-lane", (ConnectionGroup.DEFAULT, "products")),
        (3, "fetch-default", ConnectionGroup.DEFAULT),
        (3, "heartbeat", ConnectionGroup.COORDINATION),
    ]


def test_splitting_twice_changes_nothing_more() -> None:
    consumer = split({COMMANDS: 2}, {"product-commands": "products"})
    split_fetches(consumer, {"product-commands": "other"})

    assert consumer._fetcher._select_read_replica(COMMANDS) == LaneNode(2, "products")


class ReplicaFetcher(FakeFetcher):
    """A fetcher with aiokafka's own cache of preferred read replicas (KIP-392)."""

    _invalidate_preferred_read_replica_for_node = (
        Fetcher._invalidate_preferred_read_replica_for_node
    )

    def __init__(self, leaders: dict[TopicPartition, int | None]) -> None:
        super().__init__(leaders)
        self._preferred_read_replica: dict[TopicPartition, tuple[int, float]] = {}


def test_a_failed_lane_fetch_drops_the_followers_cached_for_its_broker() -> None:
    fetcher = ReplicaFetcher({COMMANDS: 1})
    consumer = SimpleNamespace(_fetcher=fetcher, _client=FakeClient())
    split_fetches(consumer, {"product-commands": "products"})
    fetcher._preferred_read_replica[COMMANDS] = (2, 1e12)  # read from follower 2
    fetcher._preferred_read_replica[ORDERS] = (2, 1e12)  # not in the failed request
    request = SimpleNamespace(topics=[("product-commands", [(0, 0, 1024)])])

    # The fetcher names the failed request's node as it sent it: the lane's key.
    fetcher._invalidate_preferred_read_replica_for_node(LaneNode(2, "products"), request)

    assert COMMANDS not in fetcher._preferred_read_replica  # back to the leader
    assert ORDERS in fetcher._preferred_read_replica
