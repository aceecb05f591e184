"""The pure decision core alone: no Faust, no broker, one Python thread.

Three layers, each timed over the same single-line reservations (quantity 1, products spread
evenly, stock for everyone), next to a hand-written baseline measured in the same process:

``baseline``   ``json.loads`` a command, read-check-write an int in a dict, ``json.dumps`` an
               answer: the least a Python reservation step can do (the ceiling).
``reserve``    the bare :func:`stockflow.core.stock.reserve` function on in-memory objects.
``writer``     :class:`stockflow.processing.ProductWriter` handling encoded ``Reserve`` commands
               against a :class:`~stockflow.processing.MemoryStore` (parse, load, decide,
               encode state and events) - what the product agent runs per record.
``pipeline``   :class:`stockflow.processing.pipeline.LocalPipeline`: a whole single-line order
               (placed, reserved, its ``OrderReserved`` outcome) through every processor step
               the worker runs for it, without Faust; its rate is orders/s (issue 11's goal:
               at least 50,000). Fed as ``stockflow replay`` feeds it
               (:meth:`~stockflow.processing.pipeline.LocalPipeline.process`: the outputs
               appended to its log, not also returned per record as ``feed`` does; figures
               before 2026-12-06's second session went through ``feed``, ~4-7% lower).

Each :class:`CoreResult` carries its layer's ``key`` (the names above), which the goals use.
Every layer runs :data:`ROUNDS` times, the rounds interleaved (each round runs every layer once,
from fresh state), and its figure is its best round: as ``timeit`` reports the fastest of its
repeats, since on a shared machine a slower round measures the other processes, not the code
(one round, as before 2026-12-06's twenty-ninth session, moved ``pipeline`` by up to 1.2x
between two runs a minute apart: 46,735 and 56,252 orders/s). Every round's rate is kept
(``rates``).

The layers run with the garbage collector as a started worker runs it
(:func:`stockflow.garbage.tune_garbage_collector`: the heap so far frozen, the youngest
generation collected every ``STOCKFLOW_GC_THRESHOLD`` allocations), restored afterwards; one
more row, ``pipeline-default-gc``, repeats ``pipeline`` under Python's default collector (the
basis of every figure before 2026-12-03's second session).
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stockflow.processing.pipeline import LocalPipeline

__all__ = [
    "ROUNDS",
    "WRITER_CAP",
    "CoreResult",
    "run_core",
    "single_line_orders",
    "stocked_pipeline",
]

ROUNDS = 3
"""How many times each layer runs; its best round is its figure."""

WRITER_CAP = 50_000
"""MemoryStore keeps a sorted key list (``bisect.insort``: O(n) per new key); past this many
ledger entries the writer figure would measure the list, not the writer."""


@dataclass(frozen=True)
class CoreResult:
    key: str
    name: str
    decisions: int
    seconds: float
    """The best round's."""
    rates: tuple[float, ...] = ()
    """Every round's decisions/s, in the order they ran."""

    @property
    def rate(self) -> float:
        return self.decisions / self.seconds if self.seconds > 0 else 0.0


def _best(rounds: list[CoreResult]) -> CoreResult:
    best = min(rounds, key=lambda r: r.seconds)
    return CoreResult(
        best.key, best.name, best.decisions, best.seconds, tuple(r.rate for r in rounds)
    )


def _timed(key: str, name: str, count: int, body: Callable[[], None]) -> CoreResult:
    gc.collect()
    started = time.perf_counter()
    body()
    return CoreResult(key, name, count, time.perf_counter() - started)


def _baseline(count: int, products: int) -> CoreResult:
    commands = [
        json.dumps({"order_id": f"o{i}", "product_id": f"p{i % products}", "quantity": 1}).encode()
        for i in range(count)
    ]
    stock = {f"p{i}": 10 * count for i in range(products)}

    def body() -> None:
        for raw in commands:
            command = json.loads(raw)
            pid = command["product_id"]
            available = stock.get(pid)
            if available is not None and available >= command["quantity"]:
                stock[pid] = available - command["quantity"]
                status = "reserved"
            else:
                status = "refused"
            json.dumps({"order_id": command["order_id"], "status": status}).encode()

    return _timed("baseline", "baseline: json + dict read-check-write", count, body)


def _bare_reserve(count: int, products: int) -> CoreResult:
    from stockflow.core.stock import Stock, reserve

    stocks = {f"p{i}": Stock(on_hand=10 * count) for i in range(products)}
    orders = [(f"o{i}", f"p{i % products}") for i in range(count)]

    def body() -> None:
        for order_id, pid in orders:
            decision = reserve(
                stocks[pid],
                None,
                order_id=order_id,
                product_id=pid,
                quantity=1,
                expires_at_ms=1_000_000,
                now_ms=100_000,
            )
            assert decision.stock is not None
            stocks[pid] = decision.stock

    return _timed("reserve", "stockflow.core.stock.reserve (bare)", count, body)


def _writer(count: int, products: int) -> CoreResult:
    from stockflow.core.policy import Policy
    from stockflow.models import Reserve, SetStock
    from stockflow.processing import MemoryStore, Meta, ProductWriter
    from stockflow.processing.codec import encode

    writer = ProductWriter(MemoryStore(), Policy())
    for i in range(products):
        command = SetStock(product_id=f"p{i}", on_hand=10 * count, source=f"s{i}")
        writer.handle(encode(command), Meta("c", 0, i, 1_000))
    commands = [
        encode(
            Reserve(
                order_id=f"o{i}",
                product_id=f"p{i % products}",
                quantity=1,
                expires_at_ms=2_000_000,
                reply_partition=0,
            )
        )
        for i in range(count)
    ]
    metas = [Meta("c", 0, i, 2_000) for i in range(count)]

    def body() -> None:
        for raw, meta in zip(commands, metas, strict=True):
            writer.handle(raw, meta)

    return _timed("writer", "ProductWriter.handle + MemoryStore (per Reserve)", count, body)


def single_line_orders(count: int, products: int) -> list[tuple[bytes, bytes]]:
    """``count`` encoded single-line ``OrderPlaced`` records (key, value), one unit each of
    products ``p0``..``p{products-1}`` in turn: the ``pipeline`` layer's orders (and
    ``bench.instructions``')."""
    return [
        (
            f"o{i}".encode(),
            json.dumps(
                {
                    "type": "OrderPlaced",
                    "order_id": f"o{i}",
                    "lines": [{"product_id": f"p{i % products}", "quantity": 1}],
                }
            ).encode(),
        )
        for i in range(count)
    ]


def stocked_pipeline(products: int, on_hand: int) -> LocalPipeline:
    """A 4-partition :class:`LocalPipeline` with ``on_hand`` units of each product set."""
    from stockflow.processing.pipeline import LocalPipeline

    pipe = LocalPipeline(partitions=4)
    for i in range(products):
        value = json.dumps({"type": "StockSet", "product_id": f"p{i}", "on_hand": on_hand})
        pipe.feed("inventory", f"p{i}".encode(), value.encode(), 1_000)
    return pipe


def _pipeline(
    count: int,
    products: int,
    key: str = "pipeline",
    name: str = "LocalPipeline (whole single-line order)",
) -> CoreResult:
    pipe = stocked_pipeline(products, 10 * count)
    orders = single_line_orders(count, products)

    def body() -> None:
        process = pipe.process
        for key, value in orders:
            process("orders", key, value, 2_000)

    result = _timed(key, name, count, body)
    outcomes = sum(1 for e in pipe.emitted if e.value.startswith(b'{"type":"OrderReserved"'))
    if outcomes != count:
        raise RuntimeError(f"LocalPipeline reserved {outcomes} of {count} orders")
    return result


@contextmanager
def worker_collector() -> Iterator[None]:
    """The garbage collector as a started worker runs it (its startup heap frozen, Python's
    own young collections only at the backstop; the layers here run no batches, between which
    a worker collects), Python's settings again after."""
    from stockflow.garbage import release_garbage_collector, tune_garbage_collector
    from stockflow.settings import Settings

    saved = gc.get_threshold()
    tune_garbage_collector(Settings().gc_threshold)
    try:
        yield
    finally:
        release_garbage_collector(saved)


def run_core(count: int, products: int = 10_000, rounds: int = ROUNDS) -> list[CoreResult]:
    """Each layer over ``count`` decisions (``pipeline`` over ``count // 4`` whole orders),
    with a worker's garbage collector; then ``pipeline`` again with Python's. ``rounds``
    rounds of all of them; each layer's best."""
    orders = max(count // 4, 100)
    runs: list[list[CoreResult]] = []
    for _ in range(max(rounds, 1)):
        with worker_collector():
            results = [
                _baseline(count, products),
                _bare_reserve(count, products),
                _writer(min(count, WRITER_CAP), products),
                _pipeline(orders, products),
            ]
        default_gc = _pipeline(
            orders, products, "pipeline-default-gc", "LocalPipeline, Python's default collector"
        )
        runs.append([*results, default_gc])
    return [_best(list(layer)) for layer in zip(*runs, strict=True)]
