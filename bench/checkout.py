"""The checkout round trip (issue 13): ``stockflow.Client.place()`` and ``POST /orders``.

One stockflow worker on a fresh broker, warmed up like every other run, then, on single-line
orders over the spread products (stock for every order):

- ``topic``: orders produced straight to ``orders`` at the offered rate, each timed from its
  send to its outcome's arrival at the harness consumer (what the latency section measures);
- ``place()``: one :class:`stockflow.Client`, one call per order at the same rate, each timed
  from the call to its return;
- ``POST /orders``: one HTTP request per order (``?wait=30``) at the same rate, to the worker's
  web server, timed from the request to the response;
- the same two calls with ``in_flight`` (default 1,000) started at once: the spread of their
  round trips when that many wait together.

Beside them, the raw pipe (:mod:`bench.baseline_pipe`) at the same offered rate on its own
broker, measured in the same run: the ceiling of a produce -> consume round trip here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.harness import RunResult, _measure, _percentile, latency_run, running
from bench.load import workload
from bench.stockflow_systems import StockflowSystem

__all__ = ["checkout_runs"]

log = logging.getLogger("bench")

Call = Callable[[str, list[dict[str, Any]]], Awaitable[bool]]
"""``call(order_id, lines)`` -> True when the order got its outcome."""


def checkout_runs(
    *,
    rate: float,
    count: int,
    in_flight: int,
    products: int,
    partitions: int,
    env: dict[str, str],
    timeout: float,
) -> list[RunResult]:
    """The rows of the checkout table: pipe, topic, place(), POST, and the two bursts."""
    rows = [_pipe(rate, count, products, partitions, timeout)]
    total = 3 * count + 2 * in_flight
    load = workload("spread", total, products, prefix="co-")
    orders = [(key.decode(), json.loads(value)["lines"]) for key, value in load.order_records()]
    paced_place, paced_post = orders[:count], orders[count : 2 * count]
    burst_place = orders[2 * count : 2 * count + in_flight]
    burst_post = orders[2 * count + in_flight : 2 * count + 2 * in_flight]
    with running("stockflow", partitions, env, timeout) as (_broker, system):
        asyncio.run(system.warm(load, timeout))
        topic = workload("spread", count, products, prefix="raw-")
        result, sent, arrived = _measure(system, topic, timeout + count / rate, rate, 1)
        waits = [(arrived[k.decode()] - sent[k]) * 1000 for k in sent if k.decode() in arrived]
        _latencies(result, waits)
        result.offered, result.note = rate, "topic: produce -> outcome"
        rows.append(result)
        assert isinstance(system, StockflowSystem) and system.worker is not None
        settings = _settings(system.env)
        url = f"http://127.0.0.1:{system.worker.web_port}/orders?wait=30"
        rows.extend(
            asyncio.run(
                _calls(settings, url, rate, paced_place, paced_post, burst_place, burst_post)
            )
        )
    for row in rows:
        log.info("checkout %s: p50 %s ms p99 %s ms", row.note, row.p50_ms, row.p99_ms)
    return rows


def _pipe(rate: float, count: int, products: int, partitions: int, timeout: float) -> RunResult:
    load = workload("spread", count, products, prefix="lat-")
    result = latency_run("pipe", load, rate, partitions=partitions, timeout=timeout)
    result.note = "raw pipe: produce -> result"
    return result


def _settings(env: dict[str, str]) -> Any:
    from stockflow.settings import Settings

    values = {
        key.removeprefix("STOCKFLOW_").lower(): value
        for key, value in env.items()
        if key.startswith("STOCKFLOW_")
    }
    return Settings.model_validate(values)


async def _calls(
    settings: Any,
    url: str,
    rate: float,
    paced_place: Sequence[tuple[str, list[dict[str, Any]]]],
    paced_post: Sequence[tuple[str, list[dict[str, Any]]]],
    burst_place: Sequence[tuple[str, list[dict[str, Any]]]],
    burst_post: Sequence[tuple[str, list[dict[str, Any]]]],
) -> list[RunResult]:
    import aiohttp

    import stockflow

    limit = max(len(burst_post), 100)
    async with (
        stockflow.Client(settings) as client,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit)) as session,
    ):

        async def place(order_id: str, lines: list[dict[str, Any]]) -> bool:
            try:
                await client.place(order_id, lines, timeout=30)
            except stockflow.OrderTimeout:
                return False
            return True

        async def post(order_id: str, lines: list[dict[str, Any]]) -> bool:
            body = {"order_id": order_id, "lines": lines}
            async with session.post(url, json=body) as response:
                await response.read()
                return response.status == 200

        return [
            await _timed(place, paced_place, rate, "place()"),
            await _timed(post, paced_post, rate, "POST /orders"),
            await _timed(place, burst_place, None, f"place(), {len(burst_place):,} in flight"),
            await _timed(post, burst_post, None, f"POST /orders, {len(burst_post):,} in flight"),
        ]


async def _timed(
    call: Call,
    orders: Sequence[tuple[str, list[dict[str, Any]]]],
    rate: float | None,
    note: str,
) -> RunResult:
    """Each call timed from its start to its return; at ``rate`` calls/s, or all at once."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def one(order_id: str, lines: list[dict[str, Any]]) -> None:
        started = time.perf_counter()
        if await call(order_id, lines):
            latencies.append((time.perf_counter() - started) * 1000)

    begin = loop.time()
    tasks = []
    for index, (order_id, lines) in enumerate(orders):
        if rate is not None:
            await asyncio.sleep(max(0.0, begin + index / rate - loop.time()))
        tasks.append(asyncio.create_task(one(order_id, lines)))
    await asyncio.gather(*tasks)
    seconds = loop.time() - begin
    result = RunResult("stockflow", "checkout", len(orders), seconds=seconds, note=note)
    result.offered = rate if rate is not None else None
    result.answered = len(latencies)
    result.complete = len(latencies) == len(orders)
    _latencies(result, latencies)
    return result


def _latencies(result: RunResult, latencies: list[float]) -> None:
    if latencies:
        result.p50_ms = statistics.median(latencies)
        result.p99_ms = _percentile(latencies, 0.99)
        result.max_ms = max(latencies)
