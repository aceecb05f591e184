"""``stockflow stock`` and ``stockflow order`` against a stand-in worker web server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from stockflow.cli import main
from stockflow.testing.broker import free_port

STOCK = {
    "product_id": "sku/1",
    "on_hand": 10,
    "reserved": 3,
    "available": 7,
    "freshness": {
        "partition": 2,
        "offset": 41,
        "event_time": "2026-11-25T09:00:00.000Z",
        "event_time_ms": 1795597200000,
        "topic": "stockflow-product-commands",
        "position": 45,
        "highwater": 47,
        "lag": 2,
        "served_by": "http://worker-2:6066",
        "active": True,
    },
}
ORDER = {
    "order_id": "o-1",
    "status": "rejected",
    "rejection": "insufficient_stock",
    "expires_at": "2026-11-25T09:15:00.000Z",
    "lines": [
        {
            "product_id": "sku/1",
            "quantity": 2,
            "answer": "refused",
            "reason": "insufficient_stock",
            "action": "none",
        }
    ],
    "freshness": {
        "partition": 1,
        "topics": [{"topic": "orders", "partition": 1, "position": 9, "highwater": 9, "lag": 0}],
        "lag": 0,
        "served_by": "http://worker-1:6066",
        "active": True,
    },
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        answers: dict[str, tuple[int, Any]] = {
            "/stock/sku%2F1": (200, STOCK),
            "/orders/o-1": (200, ORDER),
        }
        status, body = answers.get(self.path, (404, {"error": "unknown product"}))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def worker_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_stock_prints_the_answer_and_its_freshness(worker_url: str) -> None:
    result = CliRunner().invoke(main, ["stock", "sku/1", "--url", worker_url])
    assert result.exit_code == 0, result.output
    for text in ("on hand", "10", "reserved", "available", "7", "lag", "41", "worker-2"):
        assert text in result.output


def test_stock_json_is_the_raw_answer(worker_url: str) -> None:
    result = CliRunner().invoke(main, ["stock", "sku/1", "--url", worker_url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == STOCK


def test_order_prints_each_line(worker_url: str) -> None:
    result = CliRunner().invoke(main, ["order", "o-1", "--url", worker_url])
    assert result.exit_code == 0, result.output
    for text in ("rejected", "insufficient_stock", "line sku/1", "2 x refused"):
        assert text in result.output


def test_unknown_ids_exit_1_and_an_unreachable_worker_exits_3(worker_url: str) -> None:
    unknown = CliRunner().invoke(main, ["stock", "nope", "--url", worker_url])
    assert unknown.exit_code == 1
    assert "unknown product: nope" in unknown.output
    closed = f"http://127.0.0.1:{free_port()}"
    gone = CliRunner().invoke(main, ["order", "o-1", "--url", closed, "--timeout", "2"])
    assert gone.exit_code == 3
    assert "no stockflow worker answered" in gone.output
