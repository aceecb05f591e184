"""Issue 7, embedding: ``examples/embedded/app.py`` runs as a real worker process on a real
broker. stockflow's agents decide on the shop's topic names, and the shop's own agent, topic and
table work beside them in the same app."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stockflow.testing import Record, WorkerProcess, wait_for
from stockflow.testing.harness import Harness, fold_changelog

from expectations import assert_one_outcome_each, order_placed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = "examples.embedded.app:app"

# The names the example documents (examples/embedded/README.md).
SHOP = {
    "STOCKFLOW_APP_ID": "shop",
    "STOCKFLOW_ORDERS_TOPIC": "shop.orders",
    "STOCKFLOW_INVENTORY_TOPIC": "shop.inventory",
    "STOCKFLOW_RESERVATIONS_TOPIC": "shop.reservations",
    "STOCKFLOW_DEAD_LETTER_TOPIC": "shop.stock-dead-letters",
}
SHIPPING = "shop.shipping"


@pytest.mark.timeout(90)
def test_embedded_example_decides_on_the_shops_topics(tmp_path: Path) -> None:
    # The harness only reads these names to create topics and to read results; the example
    # sets its own (the worker gets them too, and the example's explicit values win).
    with Harness(partitions=4, env=SHOP, workdir=tmp_path) as harness:
        harness.broker.create_topics([SHIPPING], partitions=4)
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        worker = WorkerProcess(
            {**harness.env, "PYTHONPATH": pythonpath},
            app=EXAMPLE,
            datadir=tmp_path / "shop",
            log_path=tmp_path / "shop.log",
        )
        harness.workers.append(worker)  # stopped by PID in harness.close()
        worker.start().wait_ready(30)

        harness.stock("sku-1", 2)
        orders = [order_placed(f"o-{n}", ("sku-1", 1)) for n in range(3)]
        harness.send([*orders, ("orders", "junk", b"not json")])
        order_ids = [order[1] for order in orders]
        decisions = harness.wait_outcomes(order_ids, timeout=20)

        # stockflow's decisions, on the shop's reservations topic.
        assert_one_outcome_each(decisions, order_ids)
        reserved = {d["order_id"] for d in decisions if d["type"] == "OrderReserved"}
        rejected = [d for d in decisions if d["type"] == "OrderRejected"]
        assert len(reserved) == 2
        assert [d["reason"] for d in rejected] == ["insufficient_stock"]
        assert [letter["key_b64"] for letter in harness.dead_letters()] == ["anVuaw=="]  # "junk"
        # ... and the stock state behind them, folded from the shop-prefixed changelog.
        assert harness.stock_state()["sku-1"] == {"on_hand": 2, "reserved": 2, "pending_sum": 2}

        # The shop's own agent: one shipment per reserved order, in the shop's own serializer
        # (a Faust record: JSON with Faust's "__faust" metadata) ...
        def shipped_all(seen: dict[str, list[Record]]) -> bool:
            return {r.key for r in seen[SHIPPING]} >= {o.encode() for o in reserved}

        shipments = wait_for(harness.bootstrap, [SHIPPING], shipped_all, timeout=15)[SHIPPING]
        values = [record.json() for record in shipments]
        assert sorted(v["order_id"] for v in values) == sorted(reserved)
        assert {v["__faust"]["ns"] for v in values} == {"examples.embedded.app.ShipmentRequested"}
        assert all(v["lines"] == [{"product_id": "sku-1", "quantity": 1}] for v in values)
        # ... remembered in the shop's own table (Faust names its changelog {app id}-{table};
        # keys and values in Faust's JSON, the shop's choice).
        table = "shop-shop-shipments-changelog"
        state = fold_changelog(harness.read(table)[table])
        remembered = {json.loads(key): json.loads(value) for key, value in state.items()}
        assert remembered == dict.fromkeys(reserved, 1)

        log = worker.log_text()
        assert "transport exists already" not in log  # install() applied stockflow's transport
        # ... its fetch lanes among them; the shop's own topics fetched beside them.
        assert "fetch lanes (a connection each): shop.inventory, shop.orders, shop.products" in log
        assert log.count("shipment requested for order") == 2
