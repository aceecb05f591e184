"""Issue 7 on a real broker with two workers: the read model, routing, metrics, the CLI.

One shop is set up for the whole module (two workers, a small load with a rejection, an order
sent without a key, an expiry and a garbage record); the tests then only read.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote as _quote

import pytest
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from stockflow.cli import main
from stockflow.keys import partition_for
from stockflow.testing.harness import Harness
from stockflow.testing.worker import WorkerProcess
from stockflow.web.routing import HOPS_HEADER, MAX_HOPS

from expectations import order_placed

PARTITIONS = 4
ON_HAND = 5


def spread(prefix: str, per_partition: int = 2) -> list[str]:
    """Ids whose partitions cover every partition ``per_partition`` times (routing both ways)."""
    chosen: dict[int, list[str]] = defaultdict(list)
    n = 0
    while min((len(chosen[p]) for p in range(PARTITIONS)), default=0) < per_partition:
        name = f"{prefix}-{n}"
        if len(chosen[partition_for(name.encode(), PARTITIONS)]) < per_partition:
            chosen[partition_for(name.encode(), PARTITIONS)].append(name)
        n += 1
    return sorted(name for names in chosen.values() for name in names)


PRODUCTS = spread("sku")
RESERVED = [f"o-{n}" for n in range(len(PRODUCTS))]  # one unit of each product
BIG = "big-1"  # more than there is: rejected
NO_KEY = "nokey-1"  # sent without a record key: lives in whatever partition it landed in
EXPIRING = "exp-1"  # a one-second reservation: expires
TTL_PRODUCT = "ttl/sku 1"  # a slash and a space: quoted in paths, forwarded as such


@dataclass
class Shop:
    harness: Harness
    workers: list[WorkerProcess]
    started_ms: int
    no_key_partition: int = -1

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{w.web_port}" for w in self.workers]


def quote(ident: str) -> str:
    return _quote(ident, safe="")


def get(url: str, path: str, *, hops: int = 0) -> tuple[int, str, Any]:
    """(status, content type, body: parsed JSON, or text for /metrics)."""
    headers = {HOPS_HEADER: str(hops)} if hops else {}
    request = urllib.request.Request(url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, ctype, data = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        status, ctype, data = exc.code, exc.headers["Content-Type"], exc.read()
    return status, ctype, data.decode() if path == "/metrics" else json.loads(data)


async def send_to(bootstrap: str, topic: str, partition: int, event: dict[str, Any]) -> None:
    """One record without a key into an explicit partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(event).encode(), partition=partition)
    finally:
        await producer.stop()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, _ctype, text = get(url, "/metrics")
    assert status == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(scrapes: list[dict[Any, float]], name: str, **labels: str) -> float:
    """A sample summed over workers; labels not given are summed over."""
    return sum(
        v
        for scraped in scrapes
        for (n, have), v in scraped.items()
        if n == name and set(labels.items()) <= set(have)
    )


def lags(url: str) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["topic"], dict(labels)["partition"]): v
        for (name, labels), v in scrape(url).items()
        if name == "stockflow_consumer_lag"
    }


def wait_until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not {what} in {timeout}s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    workdir: Path = tmp_path_factory.mktemp("read-model")
    with Harness(workdir=workdir, partitions=PARTITIONS) as harness:
        # No standby copies: each worker holds only its active partitions, as with three or
        # more workers, so a held order's ledger entry is often on the other worker.
        workers = [
            harness.worker(name, STOCKFLOW_STANDBY_REPLICAS="0").start() for name in ("w1", "w2")
        ]
        for worker in workers:
            worker.wait_ready(60)
        shop = Shop(harness, workers, int(time.time() * 1000))
        topics = (harness.settings.orders_topic, harness.settings.product_commands_topic)

        def split_between_both() -> bool:  # a settled assignment: each partition on one worker
            owned = [set(lags(url)) for url in shop.urls]
            wanted = {(t, str(p)) for t in topics for p in range(PARTITIONS)}
            return all(owned) and not owned[0] & owned[1] and wanted <= owned[0] | owned[1]

        wait_until(split_between_both, "split between the workers")
        harness.stock_many({**dict.fromkeys(PRODUCTS, ON_HAND), TTL_PRODUCT: 3})
        harness.send(
            [
                *(order_placed(o, (p, 1)) for o, p in zip(RESERVED, PRODUCTS, strict=True)),
                order_placed(BIG, (PRODUCTS[0], ON_HAND * 2)),
                order_placed(EXPIRING, (TTL_PRODUCT, 2), reservation_ttl=1),
                ("orders", "junk", "not json"),
            ]
        )
        # Without a key, into a partition owned by the worker its id does not hash to: only
        # asking the other worker finds it.
        owner_of = {p: url for url in shop.urls for (t, p) in lags(url) if t == topics[0]}
        hashed = owner_of[str(partition_for(NO_KEY.encode(), PARTITIONS))]
        shop.no_key_partition = min(int(p) for p, url in owner_of.items() if url != hashed)
        _, _, keyless = order_placed(NO_KEY, (PRODUCTS[1], 1))
        asyncio.run(send_to(harness.bootstrap, topics[0], shop.no_key_partition, keyless))
        harness.wait_outcomes([*RESERVED, BIG, NO_KEY, EXPIRING])
        harness.wait_decisions(
            lambda ds: any(
                d["type"] == "ReservationReleased" and d.get("reason") == "expired" for d in ds
            )
        )
        wait_until(
            lambda: all(v == 0 for url in shop.urls for v in lags(url).values()), "caught up"
        )
        yield shop


def test_stock_answers_match_the_table_from_either_worker(shop: Shop) -> None:
    state = shop.harness.stock_state()
    changelog_topic = shop.harness.settings.product_commands_topic
    for product in [*PRODUCTS, TTL_PRODUCT]:
        answers = [get(url, f"/stock/{quote(product)}") for url in shop.urls]
        assert [status for status, _, _ in answers] == [200, 200], answers
        first, second = (body for _, _, body in answers)
        assert first == second  # the owner answered both
        assert (first["on_hand"], first["reserved"]) == (
            state[product]["on_hand"],
            state[product]["reserved"],
        )
        assert first["available"] == first["on_hand"] - first["reserved"]
        fresh = first["freshness"]
        assert fresh["partition"] == partition_for(product.encode(), PARTITIONS)
        assert fresh["topic"] == changelog_topic
        assert 0 <= fresh["offset"] < fresh["position"] <= fresh["highwater"]
        assert fresh["lag"] == 0 and fresh["active"] is True
        assert shop.started_ms <= fresh["event_time_ms"] <= time.time() * 1000
        assert fresh["event_time"].endswith("Z") and fresh["served_by"] in shop.urls
    assert state[TTL_PRODUCT]["reserved"] == 0  # the expired reservation was released


def test_a_request_to_the_non_owner_returns_the_owners_answer(shop: Shop) -> None:
    owners = {}
    for product in PRODUCTS:
        _, _, routed = get(shop.urls[0], f"/stock/{quote(product)}")
        owner = routed["freshness"]["served_by"]
        (other,) = (url for url in shop.urls if url != owner)
        owners[product] = owner
        # Asked not to forward, the owner answers from its active state ...
        _, _, direct = get(owner, f"/stock/{quote(product)}", hops=MAX_HOPS)
        assert direct == routed
        # ... and the non-owner has no active copy (nothing, or a standby one): so the routed
        # answer came from the owner.
        status, _, local = get(other, f"/stock/{quote(product)}", hops=MAX_HOPS)
        if status == 200:
            assert local["freshness"]["served_by"] == other
            assert local["freshness"]["active"] is False
        else:
            assert status == 404
        # Asked normally, the non-owner forwards.
        _, _, forwarded = get(other, f"/stock/{quote(product)}")
        assert forwarded == direct
    assert set(owners.values()) == set(shop.urls)  # both directions were exercised


def test_unknown_ids_are_404_with_a_json_error(shop: Shop) -> None:
    for url in shop.urls:
        status, ctype, body = get(url, "/stock/never-stocked")
        assert (status, body) == (404, {"error": "unknown product", "product_id": "never-stocked"})
        assert ctype.startswith("application/json")
        status, ctype, body = get(url, "/orders/never-placed")
        assert (status, body) == (404, {"error": "unknown order", "order_id": "never-placed"})
        assert ctype.startswith("application/json")


def test_orders_show_their_saga_state(shop: Shop) -> None:
    expected = {
        **dict.fromkeys(RESERVED, "reserved"),
        BIG: "rejected",
        NO_KEY: "reserved",
        EXPIRING: "expired",
    }
    for order_id, status in expected.items():
        answers = [get(url, f"/orders/{quote(order_id)}") for url in shop.urls]
        assert [code for code, _, _ in answers] == [200, 200], (order_id, answers)
        first, second = (body for _, _, body in answers)
        assert first == second
        assert first["order_id"] == order_id and first["status"] == status
        fresh = first["freshness"]
        assert fresh["active"] is True and fresh["served_by"] in shop.urls
        assert fresh["lag"] == 0 and len(fresh["topics"]) == 2
        hashed = partition_for(order_id.encode(), PARTITIONS)
        assert fresh["partition"] == (shop.no_key_partition if order_id == NO_KEY else hashed)
    _, _, big = get(shop.urls[1], f"/orders/{quote(BIG)}")
    assert big["rejection"] == "insufficient_stock"
    assert big["lines"][0]["answer"] == "refused"
    _, _, expired = get(shop.urls[0], f"/orders/{quote(EXPIRING)}")
    assert expired["lines"][0]["action"] == "release"
    assert expired["lines"][0]["release_reason"] == "expired"


def test_a_held_order_is_read_from_its_product_writer_on_the_other_worker(shop: Shop) -> None:
    owners: dict[tuple[str, int], str] = {
        (topic, int(p)): url for url in shop.urls for (topic, p) in lags(url)
    }
    settings = shop.harness.settings
    remote = [
        order_id
        for order_id, product in zip(RESERVED, PRODUCTS, strict=True)
        if owners[(settings.orders_topic, partition_for(order_id.encode(), PARTITIONS))]
        != owners[(settings.product_commands_topic, partition_for(product.encode(), PARTITIONS))]
    ]
    assert remote  # test_orders_show_their_saga_state saw these reserved through the lookup
    for order_id, product in zip(RESERVED, PRODUCTS, strict=True):
        for url in shop.urls:
            status, _, body = get(url, f"/stock/{quote(product)}?order={quote(order_id)}")
            assert status == 200
            held = body["reservation"]
            assert held["order_id"] == order_id and held["quantity"] == 1
            assert held["status"] == "pending" and held["finished_at"] is None
    _, _, none = get(shop.urls[0], f"/stock/{quote(PRODUCTS[0])}?order=nobody")
    assert none["reservation"] is None
    _, _, plain = get(shop.urls[0], f"/stock/{quote(PRODUCTS[0])}")
    assert "reservation" not in plain


def test_metrics_expose_plausible_counts(shop: Shop) -> None:
    scrapes = [scrape(url) for url in shop.urls]
    orders = shop.harness.settings.orders_topic
    placed = len(RESERVED) + 3  # big, expiring and the keyless one
    assert total(scrapes, "stockflow_events_in_total", topic=orders, type="OrderPlaced") >= placed
    assert total(scrapes, "stockflow_events_in_total", topic=orders, type="invalid") >= 1
    assert total(scrapes, "stockflow_dead_letters_total", topic=orders) >= 1
    reserved = total(scrapes, "stockflow_decisions_total", outcome="reserved")
    assert reserved >= len(RESERVED) + 2
    assert reserved == total(scrapes, "stockflow_events_out_total", type="OrderReserved")
    rejected = {"outcome": "rejected", "reason": "insufficient_stock"}
    assert total(scrapes, "stockflow_decisions_total", **rejected) >= 1
    assert total(scrapes, "stockflow_decisions_total", outcome="line_refused") >= 1
    assert total(scrapes, "stockflow_expiries_total") >= 1
    for agent in ("orders", "products", "inventory"):
        assert total(scrapes, "stockflow_processing_seconds_count", agent=agent) > 0
        assert total(scrapes, "stockflow_processing_seconds_sum", agent=agent) > 0
    state = shop.harness.stock_state()
    held = sum(product["reserved"] for product in state.values())
    assert total(scrapes, "stockflow_reservations_pending") == held == len(RESERVED) + 1
    lag_labels = [
        {(dict(k[1])["topic"], dict(k[1])["partition"]) for k in s if k[0].endswith("_lag")}
        for s in scrapes
    ]
    assert not lag_labels[0] & lag_labels[1]  # each partition reported by its owner only
    assert {(orders, str(p)) for p in range(PARTITIONS)} <= lag_labels[0] | lag_labels[1]
    assert total(scrapes, "stockflow_consumer_lag") == 0
    for scraped in scrapes:  # each worker's loop watch runs (four wake-ups a second)
        assert total([scraped], "stockflow_event_loop_stall_seconds_count") > 0


def test_the_stock_and_order_commands_print_the_same(shop: Shop) -> None:
    runner = CliRunner()
    product = PRODUCTS[0]
    for url in shop.urls:
        result = runner.invoke(main, ["stock", product, "--url", url, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == get(url, f"/stock/{quote(product)}")[2]
    pretty = runner.invoke(main, ["stock", product, "--url", shop.urls[1]])
    assert pretty.exit_code == 0, pretty.output
    answer = get(shop.urls[1], f"/stock/{quote(product)}")[2]
    for text in (f"stock of {product}", str(answer["on_hand"]), str(answer["available"])):
        assert text in pretty.output
    order = runner.invoke(main, ["order", BIG, "--url", shop.urls[0]])
    assert order.exit_code == 0 and "rejected" in order.output
    odd = runner.invoke(main, ["stock", TTL_PRODUCT, "--url", shop.urls[0], "--json"])
    assert json.loads(odd.output)["product_id"] == TTL_PRODUCT
    unknown = runner.invoke(main, ["stock", "never-stocked", "--url", shop.urls[0]])
    assert unknown.exit_code == 1
