"""Issue 12 on a real broker: the worker creates the topics it needs with STOCKFLOW_PARTITIONS
(the default 8) before anything can auto-create them with the broker's default (4 on tansu),
whether nothing or only the input topics (the README's set-up) exist; and it refuses to consume,
with one clear message and exit status 2, when existing topics disagree."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from stockflow.lifecycle import EXIT_TOPICS
from stockflow.provisioning import inspect_topics
from stockflow.testing.harness import Harness
from stockflow.testing.topics import consumed_to_end
from stockflow.topics import required_topics

from expectations import assert_one_outcome_each, order_placed

PRODUCTS = {"p1": 5, "p2": 3}


def broker_partitions(harness: Harness) -> dict[str, int | None]:
    specs = required_topics(harness.settings)
    checks = asyncio.run(inspect_topics([harness.bootstrap], specs, create=False, timeout=10))
    return {c.spec.name: None if c.observed is None else c.observed.partitions for c in checks}


def flash_sale(harness: Harness) -> None:
    harness.stock_many(PRODUCTS)
    orders = [order_placed(f"o{n}", (f"p{1 + n % 2}", 1)) for n in range(12)]
    harness.send(orders)
    decisions = harness.wait_outcomes([o[1] for o in orders], timeout=60)
    assert_one_outcome_each(decisions, [o[1] for o in orders])
    reserved = [d for d in decisions if d["type"] == "OrderReserved"]
    assert len({d["order_id"] for d in reserved}) == sum(PRODUCTS.values())
    harness.wait_settled()
    state = harness.stock_state()
    for product, units in PRODUCTS.items():
        assert state[product] == {"on_hand": units, "reserved": units, "pending_sum": units}


def test_nothing_pre_created_every_topic_gets_the_default_8(tmp_path: Path) -> None:
    env = {"STOCKFLOW_PARTITIONS": "8"}
    with Harness(partitions=8, precreate="none", env=env, workdir=tmp_path) as harness:
        assert set(broker_partitions(harness).values()) == {None}
        harness.start_worker()
        # Every topic exists before the first record is sent, none with the broker's default.
        wanted = {s.name: s.partitions for s in required_topics(harness.settings)}
        assert broker_partitions(harness) == wanted
        assert set(wanted.values()) == {8, 1}  # the Faust assignor's topic has one
        flash_sale(harness)
        assert broker_partitions(harness) == wanted


def test_readme_setup_only_inputs_pre_created(tmp_path: Path) -> None:
    env = {"STOCKFLOW_PARTITIONS": "8"}
    with Harness(partitions=8, precreate="inputs", env=env, workdir=tmp_path) as harness:
        before = broker_partitions(harness)
        assert before[harness.settings.orders_topic] == 8
        assert before[harness.settings.order_replies_topic] is None
        harness.start_worker()
        flash_sale(harness)  # the issue: crashed on the first order ("Unrecognized partition")
        wanted = {s.name: s.partitions for s in required_topics(harness.settings)}
        assert broker_partitions(harness) == wanted


def test_disagreeing_partitions_stop_the_worker_before_it_consumes(tmp_path: Path) -> None:
    # The inputs exist with 4 partitions; the worker is configured for 8.
    with Harness(partitions=4, precreate="inputs", workdir=tmp_path) as harness:
        harness.send([order_placed("early", ("p1", 1))])
        worker = harness.worker(STOCKFLOW_PARTITIONS="8").start()
        started = time.monotonic()
        assert worker.process is not None
        code = worker.process.wait(timeout=60)
        took = time.monotonic() - started
        log = worker.log_text()
        assert code == EXIT_TOPICS, log[-3000:]
        assert took < 30, took
        settings = harness.settings
        for topic in (settings.orders_topic, settings.inventory_topic):
            assert f"{topic}: 4 partitions" in log, log[-3000:]
        assert "STOCKFLOW_PARTITIONS=8" in log
        assert "Traceback" not in log, log[-3000:]
        # Nothing consumed, nothing committed, no other topic created.
        caught_up, _ends = asyncio.run(
            consumed_to_end(harness.bootstrap, settings.app_id, [settings.orders_topic])
        )
        assert not caught_up
        after = broker_partitions(harness)
        assert after[settings.reservations_topic] is None
        assert after[settings.product_commands_topic] is None
