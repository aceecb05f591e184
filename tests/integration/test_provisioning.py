"""Issue 12 on a real broker: the worker creates the topics it needs with STOCKFLOW_PARTITIONS
(the default 8) before anything can auto-create them with the broker's default (4 on tansu),
whether nothing or only the input topics (the README's set-up) exist; and it refuses to consume,
with one clear message and exit status 2, when existing topics disagree."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

from stockflow.lifecycle import EXIT_TOPICS
from stockflow.provisioning import inspect_topics
from stockflow.testing import WorkerProcess, fast_test_env, free_port
from stockflow.testing.harness import Harness
from stockflow.testing.topics import consumed_to_end
from stockflow.topics import required_topics

from expectations import assert_one_outcome_each, order_placed

PRODUCTS = {"p1": 5, "p2": 3}
STOCKFLOW = Path(sys.executable).with_name("stockflow")


def broker_partitions(harness: Harness) -> dict[str, int | None]:
    specs = required_topics(harness.settings)
    checks = asyncio.run(inspect_topics([harness.bootstrap], specs, create=False, timeout=10))
    return {c.spec.name: None if c.observed is None else c.observed.partitions for c in checks}


def every_broker_topic(harness: Harness) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def describe() -> dict[str, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=harness.bootstrap)
        await admin.start()
        try:
            return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(None)}
        finally:
            await admin.close()

    return asyncio.run(describe())


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
        assert every_broker_topic(harness) == wanted  # and nothing else was auto-created


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


def stockflow_topics(harness: Harness, *args: str) -> tuple[int, str]:
    env = {**os.environ, **harness.env}
    done = subprocess.run(
        [str(STOCKFLOW), "topics", *args], env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


def test_topics_command_checks_and_creates(tmp_path: Path) -> None:
    with Harness(partitions=4, precreate="inputs", workdir=tmp_path) as harness:
        code, out = stockflow_topics(harness, "check", "--json")
        assert code == 1, out
        report = json.loads(out)
        by_name = {t["topic"]: t for t in report["topics"]}
        assert by_name[harness.settings.orders_topic]["ok"]
        assert by_name[harness.settings.reservations_topic]["differences"] == ["missing"]

        code, out = stockflow_topics(harness, "create")
        assert code == 0, out
        code, out = stockflow_topics(harness, "check", "--json")
        assert code == 0, out
        assert all(t["broker_partitions"] == t["partitions"] for t in json.loads(out)["topics"])

        # A mismatch (another partition count wanted) is named, and nothing is created.
        harness.env["STOCKFLOW_PARTITIONS"] = "8"
        code, out = stockflow_topics(harness, "check")
        assert code == 1
        assert f"{harness.settings.orders_topic}: 4 partitions" in out
        code, _out = stockflow_topics(harness, "check", "--broker", "kafka://127.0.0.1:1")
        assert code == 2


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urlopen(url, timeout=5) as answer:
            return answer.status, json.load(answer)
    except HTTPError as exc:
        return exc.code, json.load(exc)


def test_health_and_ready_answer_on_a_running_worker(tmp_path: Path) -> None:
    with Harness(partitions=4, workdir=tmp_path) as harness:
        worker = harness.start_worker()
        base = f"http://127.0.0.1:{worker.web_port}"
        assert get(f"{base}/health") == (200, {"status": "ok"})
        deadline = time.monotonic() + 20
        while (answer := get(f"{base}/ready"))[0] != 200:  # after the first fetches
            assert answer[0] == 503 and answer[1]["reasons"], answer
            assert time.monotonic() < deadline, answer
            time.sleep(0.1)
        assert answer[1] == {"ready": True, "partitions": answer[1]["partitions"], "lag": 0}
        assert answer[1]["partitions"] > 0

        # A backlog above STOCKFLOW_READY_MAX_LAG: not ready, with the reason, until processed.
        worker.stop()
        backlog = [order_placed(f"q{n}", ("none", 1)) for n in range(8_000)]
        harness.send(backlog)
        worker.env["STOCKFLOW_READY_MAX_LAG"] = "100"
        # The batch consumer works off 8,000 orders before the first poll here; Faust's
        # stream path one record at a time leaves the backlog long enough to be seen. /ready
        # reads the same lag either way (the progress of applied offsets and the high marks).
        worker.env["STOCKFLOW_CONSUMER"] = "stream"
        worker.env["STOCKFLOW_BATCH_MAX_RECORDS"] = "1"
        worker.start().wait_ready(30)
        seen: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + 240
        while (answer := get(f"{base}/ready"))[0] != 200 or not seen:
            seen.append(answer)
            assert time.monotonic() < deadline, seen[-3:]
            time.sleep(0.1)
        lagging = [body for code, body in seen if code == 503 and body["lag"] > 100]
        assert lagging, seen[:3]
        assert any("STOCKFLOW_READY_MAX_LAG" in r for r in lagging[0]["reasons"])
        assert answer[1]["lag"] <= 100


def test_two_workers_sigkilled_come_back_on_their_own_topics(tmp_path: Path) -> None:
    """The issue's run: nothing pre-created, default 8 partitions, two workers, SIGKILLs. With
    the worker's old provisioning a SIGKILLed worker could not come back (ConsistencyError on a
    changelog partition, exit 1) in 2 runs out of 2."""
    products = {f"k{n}": 40 for n in range(4)}
    env = {"STOCKFLOW_PARTITIONS": "8"}
    with Harness(partitions=8, precreate="none", env=env, workdir=tmp_path) as harness:
        first = harness.start_worker("w1")
        second = harness.worker("w2").start()
        second.wait_ready(60)
        harness.stock_many(products)
        names = list(products)
        orders = [order_placed(f"k-{n}", (names[n % 4], 1)) for n in range(600)]
        ids = [order[1] for order in orders]
        for part in range(3):  # a SIGKILL of each worker in turn, mid-stream
            harness.send(orders[part * 200 : (part + 1) * 200])
            victim = (first, second)[part % 2]
            harness.wait_decisions(lambda ds, n=part: len(ds) >= 150 * (n + 1), timeout=60)
            victim.kill()
            time.sleep(0.3)
            victim.start()
            victim.wait_ready(60)
        decisions = harness.wait_outcomes(ids, timeout=120)
        assert_one_outcome_each(decisions, ids)
        for worker in (first, second):
            assert worker.running, worker.log_text()[-3000:]
            assert "ConsistencyError" not in worker.log_text()
        harness.wait_settled()
        state = harness.stock_state()
        reserved = {d["order_id"]: d for d in decisions if d["type"] == "OrderReserved"}
        for product, units in products.items():
            held = sum(1 for d in reserved.values() if d["lines"][0]["product_id"] == product)
            assert held == units, (product, held)  # 150 orders each for 40 units: sold out
            assert state[product] == {"on_hand": units, "reserved": units, "pending_sum": units}
        wanted = {s.name: s.partitions for s in required_topics(harness.settings)}
        assert broker_partitions(harness) == wanted


def test_an_unreachable_broker_stops_the_worker_with_one_message(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    worker = WorkerProcess(
        {
            **fast_test_env(),
            "STOCKFLOW_BROKER": f"kafka://127.0.0.1:{port}",
            "STOCKFLOW_PROVISION_TIMEOUT": "3",
        },
        datadir=tmp_path / "w",
    )
    try:
        started = time.monotonic()
        worker.start()
        assert worker.process is not None
        code = worker.process.wait(timeout=60)
        log = worker.log_text()
        assert code == EXIT_TOPICS, log[-3000:]
        assert time.monotonic() - started < 30
        assert f"cannot reach the broker at 127.0.0.1:{port}" in log, log[-3000:]
        assert "check STOCKFLOW_BROKER" in log
        assert "Traceback" not in log, log[-3000:]
    finally:
        worker.stop()
