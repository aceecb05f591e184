"""The chaos tooling itself, fast and without a broker: the proxy's cut/restore semantics, the
checks' lifecycle rules, log parsing and the bad-input catalogue. (If the tools were wrong, a
green chaos run would mean nothing.)"""

from __future__ import annotations

import json
import os
import random
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockflow.audit import audit_records
from stockflow.chaos.checks import Topics, awaiting_expiry, check_run, compaction_problems
from stockflow.chaos.garbage import KINDS
from stockflow.chaos.lifecycle import lifecycle_problems
from stockflow.chaos.proxy import TcpProxy, tcp_connections
from stockflow.chaos.watch import assigned_partitions
from stockflow.processing.pipeline import LocalPipeline
from stockflow.testing.topics import Record

pytestmark = pytest.mark.chaos


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def _echo(conn: socket.socket) -> None:
    try:
        while data := conn.recv(1024):
            conn.sendall(data)
    except OSError:
        pass
    finally:
        conn.close()


def test_proxy_forwards_cuts_and_restores(echo_port: int) -> None:
    with TcpProxy(echo_port) as proxy:
        live = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        live.sendall(b"ping")
        assert live.recv(4) == b"ping"
        assert any(c.remote_port == proxy.port for c in tcp_connections(os.getpid()))
        assert proxy.cut("refuse") == 1
        with pytest.raises(OSError):
            live.sendall(b"x")
            live.recv(1) or _raise()
        with pytest.raises(OSError):  # reset while connecting, or on first use
            refused = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            refused.sendall(b"x")
            refused.recv(1) or _raise()
        proxy.restore()
        proxy.cut("blackhole")
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5)
        held.sendall(b"x")
        with pytest.raises(TimeoutError):
            held.recv(1)
        assert proxy.restore() == 1
        again = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        again.sendall(b"back")
        assert again.recv(4) == b"back"
        for sock in (live, held, again):
            sock.close()
    assert proxy.stats["closed_by_cut"] == 1
    assert proxy.stats["refused"] == 1 and proxy.stats["blackholed"] == 1


def _raise() -> None:
    raise OSError("closed")


def test_every_bad_input_kind_is_dead_lettered_and_readable_by_the_audit() -> None:
    rng = random.Random(3)
    for what, (topic, make) in KINDS.items():
        value = make(rng, "bad-1", "sku-1")
        emitted = LocalPipeline().feed(topic, b"bad-1", value, 1_000)
        assert [e.role for e in emitted] == ["dead_letters"], what


def _record(offset: int, value: dict[str, object], topic: str = "orders") -> Record:
    key = str(value.get("order_id", "")).encode()
    return Record(topic, 0, offset, key, json.dumps(value).encode(), 1_000 + offset)


def test_lifecycle_rules() -> None:
    placed = {"type": "OrderPlaced", "order_id": "o", "lines": [{"product_id": "p", "quantity": 1}]}
    paid = {"type": "OrderPaid", "order_id": "o"}
    reserved = {
        "type": "OrderReserved",
        "order_id": "o",
        "lines": [{"product_id": "p", "quantity": 1}],
    }
    unknown = {"type": "ReservationConfirmFailed", "order_id": "o", "reason": "unknown_order"}
    confirmed = {"type": "ReservationConfirmed", "order_id": "o", "product_id": "p", "quantity": 1}
    orders = [_record(0, paid), _record(1, placed)]
    outputs = [(_record(5, v, "reservations"), v) for v in (unknown, reserved)]
    assert lifecycle_problems(orders, outputs, {"o": reserved}) == []
    # The payment came before the order: confirming the order anyway is a violation.
    with_confirm = [*outputs, (_record(7, confirmed, "reservations"), confirmed)]
    assert lifecycle_problems(orders, with_confirm, {"o": reserved})
    # Paid after placement: must be confirmed, and must not be answered unknown_order.
    after = [_record(0, placed), _record(1, paid)]
    assert lifecycle_problems(after, outputs, {"o": reserved})
    good = [(_record(5, v, "reservations"), v) for v in (reserved, confirmed)]
    assert lifecycle_problems(after, good, {"o": reserved}) == []


def test_lifecycle_rules_for_an_order_that_expires() -> None:
    placed = {"type": "OrderPlaced", "order_id": "o", "lines": [{"product_id": "p", "quantity": 1}]}
    short = {**placed, "reservation_ttl": 2.0}
    paid = {"type": "OrderPaid", "order_id": "o"}
    cancelled = {"type": "OrderCancelled", "order_id": "o"}
    reserved = {
        "type": "OrderReserved",
        "order_id": "o",
        "lines": [{"product_id": "p", "quantity": 1}],
    }
    expired = {
        "type": "ReservationReleased",
        "order_id": "o",
        "product_id": "p",
        "quantity": 1,
        "reason": "expired",
    }
    too_late = {"type": "ReservationConfirmFailed", "order_id": "o", "reason": "expired"}
    ignored = {"type": "OrderCancelIgnored", "order_id": "o", "reason": "already_released"}
    confirmed = {"type": "ReservationConfirmed", "order_id": "o", "product_id": "p", "quantity": 1}

    def problems(inputs: list[dict[str, object]], outputs: list[dict[str, object]]) -> list[str]:
        records = [_record(offset, value) for offset, value in enumerate(inputs)]
        answers = [(_record(5 + n, v, "reservations"), v) for n, v in enumerate(outputs)]
        return lifecycle_problems(records, answers, {"o": reserved})

    # Expired, then paid and cancelled too late: each answered as such.
    assert problems([short], [reserved, expired]) == []
    assert problems([short, paid, cancelled], [reserved, expired, too_late, ignored]) == []
    # A payment after the expiry must be answered; confirming it is a violation.
    assert problems([short, paid], [reserved, expired])
    assert problems([short, paid], [reserved, expired, confirmed, too_late])
    # So must a cancellation after it.
    assert problems([short, cancelled], [reserved, expired])
    # An order without a TTL of its own does not expire within a run.
    assert problems([placed], [reserved, expired])
    # Paid before it expired: confirmed, as any order.
    assert problems([short, paid], [reserved, confirmed]) == []


def test_the_table_check_reads_expiries_decided_after_the_topics_were_read() -> None:
    placed = {
        "type": "OrderPlaced",
        "order_id": "o",
        "lines": [{"product_id": "p", "quantity": 2}],
        "reservation_ttl": 1.0,
    }
    held = {"type": "ProductReserved", "order_id": "o", "product_id": "p", "quantity": 2}
    reserved = {"type": "OrderReserved", "order_id": "o", "lines": [placed["lines"][0]]}
    expired = {**held, "type": "ReservationReleased", "reason": "expired"}
    first = [_record(n, v, "reservations") for n, v in enumerate((held, reserved))]
    later = [*first, _record(2, expired, "reservations")]
    topics = Topics([_record(0, placed)], [], first, [])
    # The table has expired the order since the topics were read.
    table = {"p": {"on_hand": 5, "reserved": 0, "pending_sum": 0}}
    stale = check_run(topics, {"p": 5}, lambda: table, settle=1.0)
    assert stale.problems[0] == (
        "table for 'p' is {'on_hand': 5, 'reserved': 0, 'pending_sum': 0}, events say "
        "{'on_hand': 5, 'reserved': 2, 'pending_sum': 2}"
    )
    # Read that way the order, never paid or cancelled, would never have expired either.
    assert stale.problems[1].startswith("order 'o' was reserved with a TTL of its own")
    assert len(stale.problems) == 2
    fresh = check_run(topics, {"p": 5}, lambda: table, settle=5.0, reservations=lambda: later)
    assert fresh.problems == []
    assert fresh.counts["orders_abandoned"] == 1


def test_an_abandoned_order_must_expire() -> None:
    line = {"product_id": "p", "quantity": 1}

    def placed(order: str, ttl: float | None) -> dict[str, object]:
        event: dict[str, object] = {"type": "OrderPlaced", "order_id": order, "lines": [line]}
        return event if ttl is None else {**event, "reservation_ttl": ttl}

    orders = [
        _record(0, placed("abandoned", 2.0)),
        _record(1, placed("abandoned", 2.0)),  # a redelivered copy: the first one counts
        _record(2, placed("paid", 2.0)),
        _record(3, {"type": "OrderPaid", "order_id": "paid"}),
        _record(4, placed("rejected", 2.0)),
        _record(5, placed("default-ttl", None)),
        _record(6, placed("expired", 1.5)),
    ]
    answers = [
        {"type": "OrderReserved", "order_id": o, "lines": [line]}
        for o in ("abandoned", "paid", "default-ttl", "expired")
    ]
    answers.append({"type": "OrderRejected", "order_id": "rejected", "reason": "insufficient"})
    answers.append(
        {**line, "type": "ReservationReleased", "order_id": "expired", "reason": "expired"}
    )
    reservations = [_record(10 + n, v, "reservations") for n, v in enumerate(answers)]

    # Placed at 1,000 ms (the records' timestamps) with a TTL of 2 s: due at 3,000 ms.
    assert awaiting_expiry(orders, reservations) == {"abandoned": 3_000}
    released = _record(20, {**answers[-1], "order_id": "abandoned"}, "reservations")
    assert awaiting_expiry(orders, [*reservations, released]) == {}


def test_assigned_partitions_reads_the_last_faust_assignment_table() -> None:
    log = """
[..] Setting newly assigned partitions
+Topic Partition Set-----+------------+
| topic                  | partitions |
| orders                 | {0-3}      |
+------------------------+------------+ for group g
[..] Setting newly assigned partitions
+Topic Partition Set-----+------------+
| orders                 | {0, 2-3}   |
| sf-orders-changelog    | {0-3}      |
+------------------------+------------+ for group g
"""
    assert assigned_partitions(log, "orders") == {0, 2, 3}
    assert assigned_partitions(log, "inventory") == set()
    assert assigned_partitions("no table", "orders") is None


def test_audit_survives_deeply_nested_input() -> None:
    # Found by the chaos work: the auditor crashed with RecursionError on this input.
    nested = b"[" * 100_000 + b"]" * 100_000
    order = Record("orders", 0, 0, b"bad-1", nested, 1_000)
    letter = {
        "type": "DeadLetter",
        "topic": "orders",
        "partition": 0,
        "offset": 0,
        "timestamp_ms": 1_000,
        "key_b64": "YmFkLTE=",
        "value_b64": __import__("base64").b64encode(nested).decode(),
        "error": "recursion limit exceeded",
    }
    dead = Record("stockflow-dead-letters", 0, 0, b"bad-1", json.dumps(letter).encode(), 1_001)
    assert audit_records([order], [], [], [dead], strict=True).ok


def test_replayed_early_payment_gets_the_same_answer() -> None:
    # Found by the kill scenario (defect B): a payment preceding its order in the partition was
    # answered unknown_order, then confirmed the order when redelivered after a crash.
    from stockflow.core.policy import Policy
    from stockflow.processing.orders import OrderDesk
    from stockflow.processing.records import Meta
    from stockflow.processing.store import MemoryStore

    desk = OrderDesk(MemoryStore(), Policy())
    paid = json.dumps({"type": "OrderPaid", "order_id": "o1"}).encode()
    placed = json.dumps(
        {"type": "OrderPlaced", "order_id": "o1", "lines": [{"product_id": "p", "quantity": 1}]}
    ).encode()

    def at(offset: int) -> Meta:
        return Meta(topic="orders", partition=0, offset=offset, timestamp_ms=1_000, key=b"o1")

    first = desk.handle_order(paid, at(10))
    desk.handle_order(placed, at(11))
    replay = desk.handle_order(paid, at(10))  # redelivered: offset 10 was not committed
    assert [o.value for o in replay.outputs] == [o.value for o in first.outputs]
    saga = desk.saga("o1")
    assert saga is not None and not saga.pay_requested


def test_the_partitions_option_reaches_every_scenario(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    import stockflow.chaos
    from stockflow.cli import main

    seen: dict[str, object] = {}

    def fake_run_chaos(names: list[str], **kwargs: object) -> list[object]:
        seen.update(kwargs, names=names)
        return []

    monkeypatch.setattr(stockflow.chaos, "run_chaos", fake_run_chaos)
    argv = ["chaos", "--scenario", "kill", "--partitions", "7", "--workdir", str(tmp_path)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert seen["names"] == ["kill"] and seen["partitions"] == 7
    assert seen["test_timeouts"] is True
    assert CliRunner().invoke(main, [*argv[:3], "--partitions", "0"]).exit_code == 2


def test_the_timeouts_option_runs_workers_at_the_settings_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    import stockflow.chaos
    from stockflow.cli import main
    from stockflow.settings import Settings
    from stockflow.testing.harness import Harness

    seen: dict[str, object] = {}

    def fake_run_chaos(names: list[str], **kwargs: object) -> list[object]:
        seen.update(kwargs)
        return []

    monkeypatch.setattr(stockflow.chaos, "run_chaos", fake_run_chaos)
    argv = ["chaos", "--scenario", "kill", "--timeouts", "defaults", "--workdir", str(tmp_path)]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert seen["test_timeouts"] is False
    assert CliRunner().invoke(main, [*argv[:3], "--timeouts", "fast"]).exit_code == 2

    for name in ("SESSION_TIMEOUT", "HEARTBEAT_INTERVAL", "COMMIT_INTERVAL", "TIMER_INTERVAL"):
        monkeypatch.delenv(f"STOCKFLOW_{name}", raising=False)
    defaults = Harness(workdir=tmp_path / "d", test_timeouts=False).settings
    fast = Harness(workdir=tmp_path / "f").settings
    assert defaults.session_timeout == Settings.model_fields["session_timeout"].default
    assert defaults.commit_interval == Settings.model_fields["commit_interval"].default
    assert fast.session_timeout < defaults.session_timeout
    assert defaults.web_bind == fast.web_bind == "127.0.0.1"


def test_a_late_record_left_as_a_key_s_last_word_is_a_compaction_problem() -> None:
    def record(offset: int, key: bytes, value: bytes, epoch: int) -> Record:
        return Record("changelog", 0, offset, key, value, 0, epoch)

    owner = [record(0, b"s:a", b"1", 1), record(1, b"s:a", b"2", 2), record(2, b"s:b", b"1", 2)]
    late = record(3, b"s:a", b"1", 1)  # a lost writer's, behind the owner's
    again = record(4, b"s:a", b"2", 2)  # the owner writes the key again
    logs = {"products": [*owner, late], "orders": [*owner, late, again]}
    problems = compaction_problems(logs.__getitem__, ("products", "orders"))
    assert problems == [
        "the products changelog, compacted, differs from the whole at 1 key(s), e.g. ['s:a']: "
        "a late record is a key's last word"
    ]
