"""Watching decisions flow: a background consumer that tails the output and reply topics, and
the recovery figures a chaos run reports after each fault.

Recovery after a fault at time *t* is read from record timestamps (the workers' send time):

``first decision``
    the first record on ``reservations`` stamped after *t*, whichever worker sent it;
``all flowing``
    the moment every partition flows again on both sides of the pipeline: for each order
    partition an order outcome (``OrderReserved``/``OrderRejected``, sent only by the order
    agent owning that partition) and for each product partition an answer of its product writer
    (a ``LineAnswer`` on the internal reply topic, alone or in a ``ReplyBatch``), both stamped
    after *t*. With one worker the two figures are close; with several, the first decision
    comes from a survivor at once and *all flowing* is the takeover time.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from stockflow.errors import BrokerError
from stockflow.holes import from_beginning
from stockflow.kafka import groupless_consumer
from stockflow.keys import partition_for

__all__ = ["FlowWatcher", "Recovery", "Undecided", "assigned_partitions"]

_OUTCOMES = ("OrderReserved", "OrderRejected")
_HORIZON_MS = 600_000  # how far back a "first after t" query looks


@dataclass(frozen=True, slots=True)
class Recovery:
    """Seconds from a fault until decisions flow again (see the module docstring). ``kind``
    groups faults for the report: ``kill``, ``rejoin``, ``join``, ``outage``."""

    kind: str
    fault: str
    first_decision: float
    all_flowing: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "fault": self.fault,
            "first_decision_s": round(self.first_decision, 3),
            "all_flowing_s": round(self.all_flowing, 3),
        }


class Undecided(BrokerError):
    """Orders still without an outcome when :meth:`FlowWatcher.wait_decided` gave up."""

    def __init__(self, missing: list[str], timeout: float) -> None:
        super().__init__(f"{len(missing)} orders undecided after {timeout}s: {missing[:5]}")
        self.missing = missing


class FlowWatcher:
    """Tails ``reservations`` and the reply topic from the beginning until :meth:`stop`."""

    def __init__(
        self,
        bootstrap: str,
        *,
        reservations: str,
        replies: str,
        partitions: int,
        group: str | None = None,
        committed_topics: tuple[str, ...] = (),
    ) -> None:
        """With ``group``, the group's committed offsets of ``committed_topics`` are polled
        (OffsetFetch, without joining the group) and every change is kept in
        :attr:`committed`: evidence for where a restarted worker resumes."""
        self.bootstrap = bootstrap
        self.group = group
        self.committed_topics = committed_topics
        self.committed: list[tuple[int, dict[str, int | None]]] = []
        self.reservations = reservations
        self.replies = replies
        self.partitions = partitions
        self.decided: dict[str, int] = {}
        """Order id -> the wall-clock ms at which this watcher first read its outcome."""
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._decisions: list[int] = []
        self._orders: dict[int, list[int]] = defaultdict(list)
        self._products: dict[int, list[int]] = defaultdict(list)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> FlowWatcher:
        self._thread = threading.Thread(target=self._run, name="chaos-watch", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise BrokerError(f"flow watcher not started in {timeout}s: {self.error!r}")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # --- queries (any thread) -------------------------------------------------------------

    def first_after(self, t_ms: int) -> tuple[int | None, dict[int, int], dict[int, int]]:
        """``(first decision, {order partition: first outcome}, {product partition: first
        answer})``, timestamps in ms, all strictly after ``t_ms``."""

        def first(stamps: list[int]) -> int | None:
            best = None
            for stamp in reversed(stamps):
                if stamp < t_ms - _HORIZON_MS:
                    break
                if stamp > t_ms and (best is None or stamp < best):
                    best = stamp
            return best

        with self._lock:
            decision = first(self._decisions)
            orders = {p: s for p, s in ((p, first(v)) for p, v in self._orders.items()) if s}
            products = {p: s for p, s in ((p, first(v)) for p, v in self._products.items()) if s}
        return decision, orders, products

    def wait_recovered(
        self, t: float, *, fault: str, timeout: float, kind: str = "kill"
    ) -> Recovery:
        """Wait until every partition flows again after ``t`` (epoch seconds)."""
        t_ms = int(t * 1000)
        deadline = time.monotonic() + timeout
        while True:
            decision, orders, products = self.first_after(t_ms)
            if decision and len(orders) == self.partitions and len(products) == self.partitions:
                flowing = max(*orders.values(), *products.values())
                return Recovery(kind, fault, (decision - t_ms) / 1000, (flowing - t_ms) / 1000)
            if self.error is not None:
                raise BrokerError(f"flow watcher failed: {self.error!r}")
            if time.monotonic() > deadline:
                missing_o = sorted(set(range(self.partitions)) - set(orders))
                missing_p = sorted(set(range(self.partitions)) - set(products))
                raise BrokerError(
                    f"decisions did not flow again within {timeout}s after {fault}: "
                    f"order partitions without outcome {missing_o}, product partitions "
                    f"without answer {missing_p}, first decision {decision}"
                )
            time.sleep(0.05)

    def wait_decided(self, order_ids: list[str], *, timeout: float) -> None:
        """Until every order of ``order_ids`` has an outcome; :class:`Undecided` after
        ``timeout`` seconds, :class:`BrokerError` if this watcher stopped reading (its orders
        would look undecided)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                missing = [order for order in order_ids if order not in self.decided]
            if not missing:
                return
            if self.error is not None:
                raise BrokerError(f"flow watcher failed: {self.error!r}")
            if time.monotonic() > deadline:
                raise Undecided(missing, timeout)
            time.sleep(0.2)

    # --- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _main(self) -> None:
        from aiokafka import TopicPartition

        consumer = groupless_consumer(
            self.bootstrap, fetch_max_wait_ms=50, request_timeout_ms=10_000
        )
        await consumer.start()
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in (self.reservations, self.replies)
                for p in range(self.partitions)
            ]
            consumer.assign(tps)
            # Not past a record a fetch skipped (stockflow.holes): an outcome on the topic
            # all along was once taken for an order undecided for 60 s.
            guard = await from_beginning(consumer, tps)
            poller = asyncio.create_task(self._poll_committed()) if self.group else None
            self._ready.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                for tp, messages in batch.items():
                    for message in guard.take(tp, messages):
                        self._note(tp.topic, tp.partition, message.value, message.timestamp)
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
        finally:
            await consumer.stop()

    async def _poll_committed(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        client = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            request_timeout_ms=5_000,
        )
        await client.start()
        try:
            tps = [
                TopicPartition(t, p) for t in self.committed_topics for p in range(self.partitions)
            ]
            last: dict[str, int | None] = {}
            while True:
                now: dict[str, int | None] = {}
                try:
                    for tp in tps:
                        now[f"{tp.topic}[{tp.partition}]"] = await client.committed(tp)
                except Exception:  # the broker unreachable (outage scenario): try again
                    await asyncio.sleep(0.5)
                    continue
                if now != last:
                    changed = {k: v for k, v in now.items() if last.get(k, -2) != v}
                    self.committed.append((int(time.time() * 1000), changed))
                    last = now
                await asyncio.sleep(0.1)
        finally:
            await client.stop()

    def _note(self, topic: str, partition: int, raw: bytes | None, stamp: int) -> None:
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            return
        if not isinstance(value, dict):
            return
        kind = value.get("type")
        with self._lock:
            if topic == self.reservations:
                self._decisions.append(stamp)
                if kind in _OUTCOMES:
                    self._orders[partition].append(stamp)
                    self.decided.setdefault(str(value.get("order_id")), int(time.time() * 1000))
            else:
                # One answer, or several in a ReplyBatch (one record per destination partition).
                answers = value.get("answers") if kind == "ReplyBatch" else [value]
                for answer in answers if isinstance(answers, list) else ():
                    if not isinstance(answer, dict) or answer.get("type") != "LineAnswer":
                        continue
                    product = answer.get("product_id")
                    if isinstance(product, str):
                        part = partition_for(product.encode(), self.partitions)
                        self._products[part].append(stamp)


_TABLE_ROW = re.compile(r"^\|\s*(?P<topic>\S+)\s*\|\s*\{(?P<parts>[^}]*)\}\s*\|", re.M)


def assigned_partitions(log_text: str, topic: str) -> set[int] | None:
    """Partitions of ``topic`` in the last assignment a Faust worker logged ("Setting newly
    assigned partitions" table), or ``None`` if it logged none."""
    start = log_text.rfind("Setting newly assigned partitions")
    if start < 0:
        return None
    end = log_text.find(" for group ", start)
    table = log_text[start : end if end > 0 else None]
    for match in _TABLE_ROW.finditer(table):
        if match.group("topic") != topic:
            continue
        result: set[int] = set()
        for part in match.group("parts").split(","):
            part = part.strip()
            if "-" in part:
                low, high = part.split("-")
                result.update(range(int(low), int(high) + 1))
            elif part:
                result.add(int(part))
        return result
    return set()
