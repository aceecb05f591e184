"""Issue 13: the HTTP writes of a real worker (place, pay, cancel, wait, 202, 409, 400, token)
and a flash sale through ``stockflow.Client`` and HTTP at once."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

import stockflow
from stockflow.models import OrderReserved
from stockflow.testing.harness import Harness

from expectations import assert_one_outcome_each

TOKEN = "tok-7f3c9a1e-never-logged"


def base_url(worker: Any) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


def orders_keys(harness: Harness) -> list[bytes | None]:
    name = harness.settings.orders_topic
    return [record.key for record in harness.read(name)[name]]


async def post(
    session: aiohttp.ClientSession, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, Any, Any]:
    async with session.post(url, json=body, **kwargs) as response:
        return response.status, await response.json(), response.headers


def test_place_pay_cancel_over_http(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    worker = harness.start_worker()
    harness.stock_many({"sku": 5, "other": 5})
    url = base_url(worker)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            order = {"order_id": "h-1", "lines": [{"product_id": "sku", "quantity": 2}]}
            status, first, _ = await post(session, f"{url}/orders?wait=30", order)
            assert status == 200, first
            assert first["type"] == "OrderReserved" and first["order_id"] == "h-1"
            # The same order again: the same outcome.
            status, again, _ = await post(
                session, f"{url}/orders", {**order, "type": "OrderPlaced"}
            )
            assert (status, again) == (200, first)
            # The same id, another body: 409 naming the difference; the first order stands.
            other = {"order_id": "h-1", "lines": [{"product_id": "sku", "quantity": 5}]}
            status, conflict, _ = await post(session, f"{url}/orders", other)
            assert status == 409
            assert conflict["differences"] == ["sku: quantity 2 placed, 5 asked now"]
            assert conflict["outcome"] == first
            # Invalid: 400 with the field errors.
            bad = {"order_id": "h-bad", "lines": [{"product_id": "sku", "quantity": 0}]}
            status, invalid, _ = await post(session, f"{url}/orders", bad)
            assert status == 400
            assert [f["field"] for f in invalid["fields"]] == ["lines.0.quantity"]
            status, invalid, _ = await post(session, f"{url}/orders", {"lines": []})
            assert status == 400
            assert {f["field"] for f in invalid["fields"]} == {"order_id", "lines"}
            async with session.post(f"{url}/orders", data=b"{not json") as response:
                assert response.status == 400
            status, invalid, _ = await post(session, f"{url}/orders?wait=soon", order)
            assert (status, invalid["fields"][0]["field"]) == (400, "wait")
            # wait=0: sent, not answered yet -> 202 and where to look.
            late = {"order_id": "h/2", "lines": [{"product_id": "other", "quantity": 1}]}
            status, pending, headers = await post(session, f"{url}/orders?wait=0", late)
            assert status == 202
            assert headers["Location"] == "/orders/h%2F2" == pending["location"]
            status, decided, _ = await post(session, f"{url}/orders?wait=30", late)
            assert status == 200 and decided["type"] == "OrderReserved"
            # A single-line order's outcome comes from its product's writer; the saga the read
            # model shows learns it one hop later ("reserving" until then).
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                async with session.get(url + headers["Location"]) as response:
                    assert response.status == 200
                    status_now = (await response.json())["status"]
                if status_now != "reserving":
                    break
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert status_now == "reserved"
            # Pay and cancel.
            status, paid, _ = await post(session, f"{url}/orders/h-1/pay?wait=30")
            assert status == 200
            assert [(e["type"], e["quantity"]) for e in paid["events"]] == [
                ("ReservationConfirmed", 2)
            ]
            cancel_url = f"{url}/orders/h%2F2/cancel?wait=30"
            status, released, _ = await post(session, cancel_url, {"reason": "no longer wanted"})
            assert status == 200
            assert [(e["type"], e["reason"]) for e in released["events"]] == [
                ("ReservationReleased", "cancelled")
            ]
            status, ignored, _ = await post(session, f"{url}/orders/h-1/cancel?wait=30")
            assert ignored["events"] == [
                {"type": "OrderCancelIgnored", "order_id": "h-1", "reason": "already_confirmed"}
            ]
            # Placed elsewhere (the worker never saw the outcome), paid over HTTP: every line
            # of the order is confirmed in the answer (the worker reads its reserved lines).
            async with stockflow.Client(harness.settings) as client:
                placed = await client.place("h-3", [("sku", 1), ("other", 2)], timeout=30)
                assert isinstance(placed, OrderReserved)
            status, paid, _ = await post(session, f"{url}/orders/h-3/pay?wait=30")
            assert status == 200
            assert sorted((e["product_id"], e["quantity"]) for e in paid["events"]) == [
                ("other", 2),
                ("sku", 1),
            ]
            # Paying again repeats the same answer.
            status, again, _ = await post(session, f"{url}/orders/h-3/pay?wait=30")
            assert sorted(e["product_id"] for e in again["events"]) == ["other", "sku"]

    asyncio.run(scenario())
    assert b"h-bad" not in orders_keys(harness)
    harness.wait_settled()
    assert_one_outcome_each(harness.decisions(), ["h-1", "h/2", "h-3"])
    state = harness.stock_state()
    assert state["sku"] == {"on_hand": 2, "reserved": 0, "pending_sum": 0}
    assert state["other"] == {"on_hand": 3, "reserved": 0, "pending_sum": 0}


def test_writes_need_the_token_when_one_is_set(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    worker = harness.worker(STOCKFLOW_HTTP_TOKEN=TOKEN).start()
    worker.wait_ready(60)
    harness.stock("sku", 5)
    url = base_url(worker)
    order = {"order_id": "t-1", "lines": [{"product_id": "sku", "quantity": 1}]}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                status, body, answer = await post(session, f"{url}/orders", order, headers=headers)
                assert status == 401, body
                assert answer["WWW-Authenticate"].startswith("Bearer")
                status, _, _ = await post(session, f"{url}/orders/t-1/pay", headers=headers)
                assert status == 401
                status, _, _ = await post(session, f"{url}/orders/t-1/cancel", headers=headers)
                assert status == 401
            # Reads stay open.
            async with session.get(f"{url}/stock/sku") as response:
                assert response.status == 200
            async with session.get(f"{url}/openapi.json") as response:
                document = await response.json()
                assert document["paths"]["/orders"]["post"]["security"] == [{"bearer": []}]
            auth = {"Authorization": f"Bearer {TOKEN}"}
            status, outcome, _ = await post(session, f"{url}/orders?wait=30", order, headers=auth)
            assert status == 200 and outcome["type"] == "OrderReserved"

    asyncio.run(scenario())
    assert orders_keys(harness) == [b"t-1"]  # nothing produced by the refused writes
    assert TOKEN not in worker.log_text()


def test_flash_sale_through_client_and_http_at_once(stockflow_harness: Harness) -> None:
    harness = stockflow_harness
    workers = [harness.worker("w1").start(), harness.worker("w2").start()]
    for worker in workers:
        worker.wait_ready(60)
    harness.stock("hot", 100)
    client_ids = [f"py-{n}" for n in range(500)]
    http_ids = [f"web-{n}" for n in range(500)]

    async def over_http(session: aiohttp.ClientSession, order_id: str, url: str) -> Any:
        order = {"order_id": order_id, "lines": [{"product_id": "hot", "quantity": 1}]}
        status, body, _ = await post(session, f"{url}/orders?wait=30", order)
        assert status == 200, (status, body)
        return body

    async def flash_sale() -> tuple[list[Any], list[Any]]:
        connector = aiohttp.TCPConnector(limit=200)
        async with (
            stockflow.Client(harness.settings) as client,
            aiohttp.ClientSession(connector=connector) as session,
        ):
            by_client = asyncio.gather(
                *(client.place(order_id, [("hot", 1)], timeout=60) for order_id in client_ids)
            )
            by_http = asyncio.gather(
                *(
                    over_http(session, order_id, base_url(workers[n % 2]))
                    for n, order_id in enumerate(http_ids)
                )
            )
            return await asyncio.gather(by_client, by_http)

    from_client, from_http = asyncio.run(flash_sale())
    answers = {o.order_id: o.model_dump(mode="json") for o in from_client}
    answers.update({o["order_id"]: o for o in from_http})
    assert len(answers) == 1000
    reserved = [k for k, v in answers.items() if v["type"] == "OrderReserved"]
    assert len(reserved) == 100
    assert (
        sum(isinstance(o, OrderReserved) for o in from_client)
        + sum(o["type"] == "OrderReserved" for o in from_http)
        == 100
    )
    harness.wait_settled()
    decisions = harness.decisions()
    ids = client_ids + http_ids
    assert_one_outcome_each(decisions, ids)
    on_topic = {
        d["order_id"]: d for d in decisions if d["type"] in ("OrderReserved", "OrderRejected")
    }
    assert answers == {k: on_topic[k] for k in ids}
    # Each order sent exactly once: nothing was retried behind the caller's back.
    keys = orders_keys(harness)
    assert sorted(keys) == sorted(k.encode() for k in ids)
    assert harness.stock_state()["hot"] == {"on_hand": 100, "reserved": 100, "pending_sum": 100}


def test_closed_reads_need_the_token_and_are_forwarded_with_it(
    stockflow_harness: Harness,
) -> None:
    harness = stockflow_harness
    env = {"STOCKFLOW_HTTP_TOKEN": TOKEN, "STOCKFLOW_HTTP_TOKEN_READS": "true"}
    workers = [harness.worker(name, **env).start() for name in ("r1", "r2")]
    for worker in workers:
        worker.wait_ready(60)
    products = {f"p-{n}": 3 for n in range(8)}
    harness.stock_many(products)
    url = base_url(workers[0])
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def scenario() -> set[str]:
        served_by = set()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/stock/p-0") as response:
                assert response.status == 401
            async with session.get(f"{url}/metrics") as response:
                assert response.status == 401
            for product in products:
                async with session.get(f"{url}/stock/{product}", headers=auth) as response:
                    assert response.status == 200, await response.text()
                    answer = await response.json()
                    assert answer["on_hand"] == 3
                    served_by.add(answer["freshness"]["served_by"])
        return served_by

    # Both workers answered through the first one: the forwarded reads carried the token.
    assert len(asyncio.run(scenario())) == 2
