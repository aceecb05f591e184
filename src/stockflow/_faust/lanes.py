"""Fetch lanes: each stockflow agent's partitions fetched on a connection of their own.

aiokafka's fetcher sends one Fetch request per broker and waits for its answer before it sends
the next one to that broker: every topic the worker reads shares one request, so the product
commands wait for whatever makes the ``orders`` partitions slow to answer. On tansu that is
the fetch listing, which grows with the log (docs/benchmarks.md, "The broker's log length"):
the p50 of a hop climbed through a latency run by as much as the ``orders`` log grew. Sending
the requests of two topics apart on one connection does not help either: tansu answers a
connection's requests one at a time (measured: a fetch behind a 1,000 ms long poll on the same
connection was answered after 991 ms, alone in 0.4 ms).

:func:`split_fetches` gives every stockflow agent (its topics, from the processor's routes) a
*lane*: its partitions are fetched by a request of their own, on a connection of their own to
the same broker, in flight at the same time as the others. The records still arrive through
the one fetcher, its positions and its buffer, so everything the batch consumer checks
(refetches, gaps, generations, the membership lease) holds unchanged. An embedding app's
topics and Faust's changelogs (standbys) stay on aiokafka's default connection.

A lane is a node id the fetcher groups requests by (:class:`LaneNode`); the client's ``send``
turns it back into the broker's id and a connection group of its own. The cost: one more
connection per agent and broker, and one more long poll in flight while a lane is idle
(``fetch_max_wait_ms`` apart). ``STOCKFLOW_FETCH_LANES=false`` turns it off.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from aiokafka.client import ConnectionGroup

__all__ = ["LaneNode", "lanes_of", "split_fetches"]

log = logging.getLogger(__name__)


class LaneNode(NamedTuple):
    """A broker's node id and a lane's name: the fetcher's key for one lane's requests."""

    node: int
    lane: str


def lanes_of(routes: Mapping[str, Any]) -> dict[str, str]:
    """Topic name -> lane: the name of the route's agent (``Route.name``), so that the topics
    one agent reads as one stream (the orders and the internal replies) share a lane."""
    return {topic: route.name for topic, route in routes.items()}


def split_fetches(consumer: Any, lanes: Mapping[str, str]) -> None:
    """Make a started aiokafka ``consumer`` fetch each lane's topics apart (module docstring).
    Partitions of topics not in ``lanes`` are fetched as before."""
    fetcher = consumer._fetcher
    client = consumer._client
    if getattr(fetcher, "_stockflow_lanes", None) is not None:
        return
    lanes = dict(lanes)
    select = fetcher._select_read_replica
    send = client.send

    def select_lane(tp: Any) -> Any:
        node = select(tp)
        lane = lanes.get(tp.topic)
        if lane is None or node is None or node < 0:
            return node
        return LaneNode(node, lane)

    async def send_on_lane(
        node_id: Any, request: Any, *, group: Any = ConnectionGroup.DEFAULT
    ) -> Any:
        if isinstance(node_id, LaneNode):
            # The client keys its connections by (node id, group): any other group value
            # opens a connection of its own to the same broker.
            return await send(node_id.node, request, group=(group, node_id.lane))
        return await send(node_id, request, group=group)

    invalidate = fetcher._invalidate_preferred_read_replica_for_node

    def invalidate_on_lane(node_id: Any, request: Any) -> Any:
        # A failed fetch from a follower (KIP-392, rack-aware reading) drops the cached
        # replicas that name that broker: the cache holds its plain id, not the lane's key.
        node = node_id.node if isinstance(node_id, LaneNode) else node_id
        return invalidate(node, request)

    fetcher._invalidate_preferred_read_replica_for_node = invalidate_on_lane
    fetcher._select_read_replica = select_lane
    client.send = send_on_lane
    fetcher._stockflow_lanes = lanes
    log.info("fetch lanes (a connection each): %s", ", ".join(sorted(set(lanes.values()))))
