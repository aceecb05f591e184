"""``stockflow dev``'s pure parts: the banner, the example order, ports and ``--stock``."""

from __future__ import annotations

import json
import shlex
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from stockflow.cli import main
from stockflow.dev import banner, example_order, pick_port
from stockflow.errors import StockflowError
from stockflow.models import ORDER_EVENT_ADAPTER, OrderPlaced
from stockflow.testing.broker import free_port


def lines() -> list[str]:
    return banner(
        broker_url="kafka://127.0.0.1:9092",
        http_url="http://127.0.0.1:6066",
        broker_pid=11,
        worker_pid=12,
        stock={"tshirt": 5, "mug": 2},
        workdir=Path("/tmp/x"),
    )


def test_banner_names_the_broker_the_http_url_and_three_commands() -> None:
    text = "\n".join(lines())
    assert "kafka://127.0.0.1:9092" in text and "(pid 11" in text
    assert "http://127.0.0.1:6066" in text and "worker pid 12" in text
    assert "tshirt = 5, mug = 2" in text
    commands = [line.strip() for line in lines() if line.startswith("  ")]
    assert any(c.startswith("curl -s -X POST http://127.0.0.1:6066/orders ") for c in commands)
    assert "stockflow order o-1 --url http://127.0.0.1:6066" in commands
    assert "stockflow audit --broker kafka://127.0.0.1:9092" in commands
    assert "export STOCKFLOW_BROKER=kafka://127.0.0.1:9092 STOCKFLOW_URL=http://127.0.0.1:6066" in (
        commands
    )


def test_the_curl_body_is_a_valid_order_for_the_first_stocked_product() -> None:
    curl = next(line.strip() for line in lines() if line.strip().startswith("curl "))
    words = shlex.split(curl)
    assert words[words.index("-H") + 1] == "Content-Type: application/json"
    body = json.loads(words[words.index("-d") + 1])
    assert body == example_order("tshirt")
    event = ORDER_EVENT_ADAPTER.validate_python(body)
    assert isinstance(event, OrderPlaced)
    assert event.order_id == "o-1" and event.lines[0].product_id == "tshirt"


def test_pick_port_prefers_the_default_when_free_else_any_free_port() -> None:
    port = free_port()
    assert pick_port(None, port) == port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        other = pick_port(None, busy)
        assert other != busy
        with pytest.raises(StockflowError, match=f"port {busy} on 127.0.0.1 is in use"):
            pick_port(busy, 9092)


def test_a_taken_port_is_one_line_and_exit_3() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["dev", "--broker-port", str(busy)])
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        f"stockflow dev: port {busy} on 127.0.0.1 is in use; "
        "pick another port or leave the option out for a free one"
    ]


@pytest.mark.parametrize("value", ["sku", "=3", "sku=-1", "sku=x"])
def test_bad_stock_option_is_a_usage_error(value: str) -> None:
    result = CliRunner().invoke(main, ["dev", "--stock", value])
    assert result.exit_code == 2
    assert "PRODUCT=UNITS" in result.output


class _Stoppable:
    def __init__(self, stopped: list[str], name: str, error: Exception | None = None) -> None:
        self.stopped, self.name, self.error = stopped, name, error

    def stop(self, *_args: object, **_kwargs: object) -> None:
        self.stopped.append(self.name)
        if self.error is not None:
            raise self.error


def test_a_failing_worker_stop_still_stops_the_other_workers_and_the_broker(
    tmp_path: Path,
) -> None:
    # A dev stack once exited leaving its broker running: whatever one stop raises, every
    # process started is still stopped (by PID), and the error is raised afterwards.
    from stockflow.dev import DevStack
    from stockflow.errors import WorkerError

    stack = DevStack(workdir=tmp_path, broker_port=free_port(), web_port=free_port())
    stopped: list[str] = []
    failing = _Stoppable(stopped, "worker", WorkerError("would not stop"))
    stack.worker = failing  # type: ignore[assignment]
    stack.harness.workers = [failing, _Stoppable(stopped, "other")]  # type: ignore[list-item]
    stack.harness.broker = _Stoppable(stopped, "broker")  # type: ignore[assignment]

    with pytest.raises(WorkerError, match="would not stop"):
        stack.stop()

    assert stopped == ["worker", "worker", "other", "broker"]


@pytest.mark.parametrize("wrapped_as", [RuntimeError, StockflowError])
def test_ctrl_c_seen_through_a_wrapping_library_is_still_a_clean_stop(
    wrapped_as: type[Exception], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler raises where the signal lands: inside a broker client that wraps what it
    # catches, the stop came out as another exception (once in CI: exit 1 after a Ctrl-C).
    import io
    import os
    import signal
    import time

    from stockflow import dev

    def start(self: dev.DevStack, on_step: object = None) -> None:
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except Exception as exc:
            raise wrapped_as("interrupted") from exc

    stopped: list[bool] = []
    monkeypatch.setattr(dev.DevStack, "start", start)
    monkeypatch.setattr(dev.DevStack, "stop", lambda self: stopped.append(True))
    out, err = io.StringIO(), io.StringIO()

    status = dev.run_dev(workdir=tmp_path / "dev", out=out, err=err)

    assert status == 0, err.getvalue()
    assert "SIGINT received; stopping the worker and the broker" in out.getvalue()
    assert stopped == [True]
