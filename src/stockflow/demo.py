"""The flash-sale demo: an embedded broker (or ``STOCKFLOW_BROKER``), one worker, a burst of
concurrent orders with duplicates and garbage, and a summary that checks nothing was oversold."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stockflow.demo_report import count, print_banner, print_summary, print_units
from stockflow.testing.harness import OUTCOME_TYPES, Harness
from stockflow.testing.topics import produce

__all__ = ["DemoResult", "run_demo"]

STOCK = {"gpu-rtx-5090": 12, "console-x": 40, "headphones": 75, "keyboard-mk2": 5, "vinyl-ltd": 25}
UNKNOWN_PRODUCT = "never-stocked"
MALFORMED: list[bytes] = [
    b"this is not json",
    b'{"type": "OrderPlaced", "order_id": "bad-1", "lines": [{"product_id": "gpu-rtx-5090"}]}',
    b'{"type": "OrderPlaced", "order_id": "bad-2", "lines": [{"product_id": "console-x", '
    b'"quantity": -3}]}',
    b'{"type": "OrderPlaced", "order_id": "bad-3", "lines": [{"product_id": "headphones", '
    b'"quantity": "two"}]}',
    b'{"type": "Refund", "order_id": "bad-4"}',
    b"\xff\xfe\x00binary",
]


@dataclass
class DemoResult:
    orders: int
    outcomes: dict[str, dict[str, Any]]
    decisions: list[dict[str, Any]]
    dead_letters: int
    stock_state: dict[str, dict[str, int]]
    seconds: float
    problems: list[str] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    """How many times each order id was sent (2 for the duplicates)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def _orders(count: int, seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    rng = random.Random(seed)
    products = [*STOCK, UNKNOWN_PRODUCT]
    weights = [5, 4, 3, 5, 2, 0.2]
    orders = []
    for n in range(count):
        lines = [{"product_id": rng.choices(products, weights)[0], "quantity": rng.randint(1, 2)}]
        if rng.random() < 0.1:  # some carts hold a second product
            lines.append({"product_id": rng.choice(list(STOCK)), "quantity": 1})
        order_id = f"order-{n:05d}"
        orders.append(
            ("orders", order_id, {"type": "OrderPlaced", "order_id": order_id, "lines": lines})
        )
    return orders


def run_demo(
    *, orders: int = 2000, broker_url: str | None = None, workdir: Path | None = None, seed: int = 7
) -> DemoResult:
    console = Console()
    harness = Harness(partitions=4, workdir=workdir, broker_url=broker_url)
    with harness:
        where = broker_url or f"embedded tansu broker on {harness.bootstrap}"
        console.print(f"[bold]stockflow demo[/]: {where}, app id {harness.settings.app_id}")
        with console.status("starting a worker (faust -A stockflow worker)..."):
            worker = harness.start_worker()
        console.print(f"worker ready (pid {worker.pid})")
        with console.status("stocking the shelves..."):
            harness.stock_many(STOCK)  # applied before the sale opens
        placed = _orders(orders, seed)
        rng = random.Random(seed + 1)
        duplicates = rng.sample(placed, k=orders // 20)  # 5% sent twice, as a retrying client would
        names = harness.settings
        burst = [(names.orders_topic, k, v) for _, k, v in placed + duplicates]
        rng.shuffle(burst)
        garbage = [(names.orders_topic, f"junk-{i}", raw) for i, raw in enumerate(MALFORMED)]
        print_banner(
            console,
            orders=orders,
            stock=STOCK,
            duplicates=len(duplicates),
            malformed=len(garbage),
            producers=4,
        )
        started = time.monotonic()

        async def fire() -> None:
            await asyncio.gather(*(produce(harness.bootstrap, burst[i::4]) for i in range(4)))
            await produce(harness.bootstrap, garbage)

        asyncio.run(fire())
        decisions = _follow(harness, {k for _, k, _ in placed}, console)
        seconds = time.monotonic() - started
        # Decisions can arrive before the state writes behind them are on the changelog, and
        # a rejected cart's releases (compensation) one hop after its outcome: read both again
        # once the worker has settled, or the summary misses units given back.
        harness.wait_settled()
        decisions = harness.decisions()
        result = DemoResult(
            orders=orders,
            outcomes=_outcomes(decisions),
            decisions=decisions,
            dead_letters=len(harness.dead_letters()),
            stock_state=harness.stock_state(),
            seconds=seconds,
            sent=dict(Counter(k for _, k, _ in placed + duplicates)),
        )
        result.problems = _check(result, expected_dead=len(garbage))
        _summarise(console, result)
        return result


def _follow(harness: Harness, order_ids: set[str], console: Console) -> list[dict[str, Any]]:
    progress = Progress(
        TextColumn("decisions"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    decisions: list[dict[str, Any]] = []
    with progress:
        task = progress.add_task("orders", total=len(order_ids))
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            decisions = harness.decisions()
            done = {d["order_id"] for d in decisions if d["type"] in OUTCOME_TYPES} & order_ids
            progress.update(task, completed=len(done))
            if len(done) == len(order_ids):
                break
            time.sleep(0.3)
    return decisions


def _outcomes(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    outcomes: dict[str, dict[str, Any]] = {}
    for decision in decisions:
        if decision["type"] in OUTCOME_TYPES:
            outcomes.setdefault(decision["order_id"], decision)
    return outcomes


def _check(result: DemoResult, *, expected_dead: int) -> list[str]:
    problems = []
    distinct: dict[str, set[str]] = defaultdict(set)
    for decision in result.decisions:
        if decision["type"] in OUTCOME_TYPES:
            distinct[decision["order_id"]].add(json.dumps(decision, sort_keys=True))
    if len(result.outcomes) != result.orders:
        problems.append(f"{result.orders - len(result.outcomes)} orders have no outcome")
    if any(len(seen) > 1 for seen in distinct.values()):
        problems.append("an order got two different outcomes")
    for product, units in STOCK.items():
        held = _units_held(result, product)
        state = result.stock_state.get(product, {})
        if held > units:
            problems.append(f"{product}: {held} units reserved but only {units} in stock")
        if state.get("reserved") != held:
            problems.append(
                f"{product}: table says {state.get('reserved')} reserved, decisions {held}"
            )
    if result.dead_letters != expected_dead:
        problems.append(f"{result.dead_letters} dead letters, expected {expected_dead}")
    return problems


def _units_held(result: DemoResult, product: str) -> int:
    return sum(
        line["quantity"]
        for outcome in result.outcomes.values()
        if outcome["type"] == "OrderReserved"
        for line in outcome["lines"]
        if line["product_id"] == product
    )


def _summarise(console: Console, result: DemoResult) -> None:
    counts = count(result.decisions, result.sent, STOCK)
    print_summary(console, counts, dead_letters=result.dead_letters, seconds=result.seconds)
    stock = Table(title="units per product", title_justify="left")
    for column in ("product", "stocked", "reserved (decisions)", "reserved (table)", "left"):
        stock.add_column(column, justify="right")
    for product, units in STOCK.items():
        state = result.stock_state.get(product, {})
        held = _units_held(result, product)
        stock.add_row(product, str(units), str(held), str(state.get("reserved")), str(units - held))
    console.print(stock)
    print_units(console, counts)
    if result.ok:
        console.print("[bold green]check passed[/]: every order answered once, nothing oversold")
    else:
        for problem in result.problems:
            console.print(f"[bold red]check failed[/]: {problem}")
