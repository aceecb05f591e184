"""One chaos scenario's machinery: a broker (optionally behind a cuttable proxy), workers,
steady load, a flow watcher, faults with recovery timing, and the final verdict.

The verdict of a scenario is the ``stockflow audit`` command run as a subprocess (``--strict``,
exit status 0 required) plus :func:`stockflow.chaos.checks.check_run`; a worker that exits
without being killed, or does not flow again after a fault, is an anomaly and fails the run.
Everything started here is stopped by PID in :meth:`ChaosSession.close`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import time
from pathlib import Path

from stockflow.chaos.checks import EXPIRY_GRACE_MS, Topics, awaiting_expiry, check_run
from stockflow.chaos.divergence import late_emissions, writer_replay
from stockflow.chaos.evidence import late_records, order_traces, write_topics
from stockflow.chaos.load import LoadMix, LoadProducer, make_catalog
from stockflow.chaos.proxy import TcpProxy, tcp_connections
from stockflow.chaos.verdict import ScenarioResult, run_audit
from stockflow.chaos.watch import FlowWatcher, Recovery, Undecided
from stockflow.errors import StockflowError
from stockflow.kafka import Record
from stockflow.testing.broker import EmbeddedBroker, free_port
from stockflow.testing.harness import Harness
from stockflow.testing.worker import WorkerProcess

__all__ = ["ChaosSession"]

READY_TIMEOUT = 90.0
RECOVERY_TIMEOUT = 120.0
DECIDE_TIMEOUT = 60.0
STOP_GRACE = 10.0
"""Seconds past a worker's stop timeout before a SIGTERM'd worker is killed (its watchdog
should have ended it by then)."""
_LOG_PROBLEM = re.compile(r"\[(ERROR|CRITICAL)\] (.{0,160})")
_LOG_WARNING = re.compile(r"\[(WARNING)\] (.{0,160})")
_NUMBERS = re.compile(r"[0-9a-f-]{8,}|\d+")


class ChaosSession:
    """Set up in ``__enter__``; ``begin`` starts the load, ``finish`` stops it and judges."""

    def __init__(
        self,
        result: ScenarioResult,
        *,
        workdir: Path,
        mix: LoadMix,
        partitions: int = 4,
        proxy: bool = False,
        test_timeouts: bool = True,
    ) -> None:
        self.result = result
        self.test_timeouts = test_timeouts
        self.workdir = workdir
        self.mix = mix
        self.partitions = partitions
        self.rng = random.Random(result.seed)
        self.use_proxy = proxy
        self.proxy: TcpProxy | None = None
        self.broker: EmbeddedBroker | None = None
        self.harness: Harness | None = None
        self.watcher: FlowWatcher | None = None
        self.load: LoadProducer | None = None
        self.workers: list[WorkerProcess] = []
        self._down: set[int] = set()  # indexes of workers killed on purpose
        self._started = time.monotonic()
        self.catalog = make_catalog(self.rng, partitions)
        result.workdir = str(workdir)

    # --- setup and teardown -----------------------------------------------------------------

    def __enter__(self) -> ChaosSession:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.use_proxy:
                broker_port = free_port()
                self.proxy = TcpProxy(upstream_port=broker_port).start()
                self.broker = EmbeddedBroker(
                    broker_port,
                    log_path=self.workdir / "broker.log",
                    advertised_port=self.proxy.port,
                ).start()
                url: str | None = f"kafka://127.0.0.1:{self.proxy.port}"
            else:
                url = None
            self.harness = Harness(
                partitions=self.partitions,
                workdir=self.workdir,
                broker_url=url,
                test_timeouts=self.test_timeouts,
            )
            self.harness.start()
            broker = self.broker or self.harness.broker
            if broker.process is not None:
                self.note(time.time(), f"broker started (pid {broker.process.pid})")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.load is not None:
            self.load.abort()
        if self.watcher is not None:
            self.watcher.stop()
        if self.harness is not None:
            self.harness.close()  # every worker, by PID
        if self.broker is not None:
            self.broker.stop()
        if self.proxy is not None:
            self.proxy.stop()

    @property
    def h(self) -> Harness:
        assert self.harness is not None
        return self.harness

    # --- workers ---------------------------------------------------------------------------

    def start_workers(self, count: int) -> list[WorkerProcess]:
        new = [self.h.worker(f"w{len(self.workers) + i + 1}").start() for i in range(count)]
        self.workers.extend(new)
        for worker in new:
            worker.wait_ready(READY_TIMEOUT)
        self.result.workers = max(self.result.workers, len(self.workers))
        return new

    def kill(self, worker: WorkerProcess) -> float:
        """SIGKILL; returns the epoch time just before the signal."""
        index = self.workers.index(worker)
        self._down.add(index)
        at = time.time()
        pid = worker.pid
        worker.kill()
        self.result.kills += 1
        self.note(at, f"SIGKILL w{index + 1} (pid {pid})")
        return at

    def terminate(self, worker: WorkerProcess) -> float:
        """SIGTERM (a deploy, a scale-in) and wait for the exit; returns the epoch time just
        before the signal. Counted as a kill. A worker that does not exit within its stop
        timeout, or exits with a status other than 0, is an anomaly: a stop that hangs or
        fails is what an orchestrator then kills, mid-batch. Status -15 (the signal's default
        action) is accepted: it only happens before Faust has installed its handlers."""
        index = self.workers.index(worker)
        self._down.add(index)
        bound = self.h.settings.stop_timeout
        at = time.time()
        pid = worker.pid
        self.note(at, f"SIGTERM w{index + 1} (pid {pid})")
        code = worker.stop(signal.SIGTERM, timeout=bound + STOP_GRACE)
        took = time.time() - at
        self.result.kills += 1
        self.result.details.setdefault("sigterm_stops", []).append(round(took, 1))
        self.note(time.time(), f"w{index + 1} exited with status {code} after {took:.1f}s")
        if code not in (0, -signal.SIGTERM) or took > bound:
            tail = worker.log_text()[-3000:]
            self.result.anomalies.append(
                f"w{index + 1} stopped by SIGTERM exited with status {code} after {took:.1f}s "
                f"(stop timeout {bound:g}s); log tail:\n{tail}"
            )
        return at

    def freeze(self, worker: WorkerProcess, seconds: float) -> float:
        """SIGSTOP ``worker`` for ``seconds`` (a long garbage collection, a stalled VM), then
        SIGCONT; counted as an outage. Returns the epoch time just after the SIGCONT."""
        index = self.workers.index(worker)
        pid = worker.pid
        assert pid is not None
        at = time.time()
        os.kill(pid, signal.SIGSTOP)
        self.note(at, f"SIGSTOP w{index + 1} (pid {pid})")
        try:
            self.watch(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)  # never leave a stopped process behind
        back = time.time()
        self.note(back, f"SIGCONT w{index + 1} after {back - at:.1f}s")
        self.result.outages += 1
        self.result.outage_seconds = round(self.result.outage_seconds + back - at, 1)
        return back

    def restart(self, worker: WorkerProcess, *, wait: bool = True) -> None:
        worker.start()
        index = self.workers.index(worker)
        self._down.discard(index)
        self.note(time.time(), f"start w{index + 1} (pid {worker.pid})")
        if wait:
            worker.wait_ready(READY_TIMEOUT)
            self.note(time.time(), f"w{index + 1} ready")

    def note(self, at: float, what: str) -> None:
        """Add a line to the run's timeline (epoch milliseconds: comparable to record stamps)."""
        self.result.details.setdefault("timeline", []).append([int(at * 1000), what])

    def watch(self, seconds: float) -> None:
        """Sleep while checking that workers stay up and the producer works."""
        deadline = time.monotonic() + seconds
        while True:
            self.check_health()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(0.2, remaining))

    def check_health(self) -> None:
        for index, worker in enumerate(self.workers):
            if index in self._down or worker.running:
                continue
            code = worker.process.returncode if worker.process is not None else None
            tail = worker.log_text()[-3000:]
            self.result.anomalies.append(
                f"worker w{index + 1} exited on its own (status {code}); log tail:\n{tail}"
            )
            worker.stop()
            self.restart(worker, wait=False)
        if self.load is not None and self.load.error is not None:
            raise StockflowError(f"load producer failed: {self.load.error!r}")

    def recovered(self, since: float, fault: str, *, kind: str = "kill") -> Recovery:
        """Wait until every partition flows again after ``since``; a timeout is an anomaly."""
        assert self.watcher is not None
        try:
            recovery = self.watcher.wait_recovered(
                since, fault=fault, timeout=RECOVERY_TIMEOUT, kind=kind
            )
        except StockflowError as exc:
            self.result.anomalies.append(f"stuck: {exc}")
            raise
        self.result.recoveries.append(recovery)
        return recovery

    def connections(self) -> dict[str, dict[str, int]]:
        """Per worker: established connections to the proxy and straight to the broker."""
        evidence: dict[str, dict[str, int]] = {}
        for index, worker in enumerate(self.workers):
            if worker.pid is None:
                continue
            remote = [c.remote_port for c in tcp_connections(worker.pid)]
            evidence[f"w{index + 1}"] = {
                "to_proxy": sum(1 for port in remote if self.proxy and port == self.proxy.port),
                "to_broker": sum(1 for port in remote if self.broker and port == self.broker.port),
            }
        return evidence

    # --- load and verdict ----------------------------------------------------------------------

    def begin(self) -> None:
        """Stock the catalog, start watching and start the load."""
        h = self.h
        h.stock_many(self.catalog.stock, timeout=60)
        settings = h.settings
        self.watcher = FlowWatcher(
            h.bootstrap,
            reservations=settings.reservations_topic,
            replies=settings.order_replies_topic,
            partitions=self.partitions,
            group=settings.app_id,
            committed_topics=(settings.orders_topic, settings.product_commands_topic),
        ).start()
        self.load = LoadProducer(
            h.bootstrap,
            topics={"orders": settings.orders_topic, "inventory": settings.inventory_topic},
            catalog=self.catalog,
            mix=self.mix,
            seed=self.result.seed,
        ).start()
        self._started = time.monotonic()

    def _wait_expiries(self) -> None:
        """Until every abandoned order (a TTL of its own, reserved, never paid or cancelled)
        has expired, or :data:`EXPIRY_GRACE_MS` has passed since the last one's TTL ended:
        check_run reports the ones still held then."""
        settings = self.h.settings
        names = (settings.orders_topic, settings.reservations_topic)
        while True:
            read = self.h.read(*names)
            waiting = awaiting_expiry(read[names[0]], read[names[1]])
            if not waiting or time.time() * 1000 > max(waiting.values()) + EXPIRY_GRACE_MS:
                return
            time.sleep(0.5)

    def finish(self) -> ScenarioResult:
        """Stop the load, wait for every outcome, audit, check, and fill in the result."""
        assert self.load is not None and self.watcher is not None
        result, h = self.result, self.h
        result.seconds = round(time.monotonic() - self._started, 1)
        self.load.stop()
        self.check_health()
        undecided: list[str] = []
        try:
            self.watcher.wait_decided(self.load.sent.order_ids, timeout=DECIDE_TIMEOUT)
        except StockflowError as exc:
            result.anomalies.append(str(exc))
            if isinstance(exc, Undecided):
                undecided = exc.missing
        self._wait_expiries()
        run_audit(
            result,
            bootstrap=h.bootstrap,
            env=h.env,
            workdir=self.workdir,
            orders=len(self.load.sent.order_ids),
        )
        settings = h.settings
        names = (
            settings.orders_topic,
            settings.inventory_topic,
            settings.reservations_topic,
            settings.dead_letter_topic,
        )
        read = h.read(*names)
        topics = Topics(*(read[name] for name in names))
        report = check_run(
            topics,
            self.catalog.stock,
            h.stock_state,
            reservations=lambda: h.read(settings.reservations_topic)[settings.reservations_topic],
            changelog=h.changelog_records,
        )
        counts = report.counts
        result.check_problems = report.problems
        result.orders = counts["orders"]
        result.orders_decided = counts["orders_decided"]
        result.duplicates = counts["duplicate_inputs"]
        result.bad_inputs = counts["bad_inputs"]
        result.dead_lettered = counts["dead_lettered_inputs"]
        result.lifecycle = {
            name: counts[f"lifecycle_{name}"] for name in ("before", "after", "twice")
        }
        result.details["checks"] = dict(sorted(counts.items()))
        result.details["sent"] = {
            "records": dict(self.load.sent.records),
            "copies": dict(self.load.sent.copies),
            "send_failures": self.load.sent.send_failures,
        }
        result.details["worker_log_problems"] = self._log_problems()
        if self.proxy is not None:
            result.details["proxy"] = dict(self.proxy.stats)
        with open(self.workdir / "committed.jsonl", "w", encoding="utf-8") as handle:
            for stamp, offsets in self.watcher.committed:
                handle.write(json.dumps([stamp, offsets]) + "\n")
        if not result.ok:
            records = self.dump_topics()
            result.details["late_records"] = late_records(records)
            changelog = records.get(self.h.changelog_topic("products"), [])
            result.details["writer_replay"] = writer_replay(
                records.get(self.h.settings.product_commands_topic, []), changelog
            )
            result.details["late_emissions"] = late_emissions(
                changelog, records.get(self.h.settings.reservations_topic, [])
            )
            result.details["worker_log_warnings"] = self._log_problems(_LOG_WARNING)
            if undecided:
                result.details["undecided"] = order_traces(
                    records, undecided[:3], dict(self.watcher.decided)
                )
        (self.workdir / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
        return result

    def dump_topics(self) -> dict[str, list[Record]]:
        """Every topic of the run (inputs, outputs, internal topics, changelogs) as JSON lines
        under ``topics/``: the evidence, since the embedded broker keeps nothing. Returns the
        records read."""
        from stockflow.testing.topics import read_topics

        names = [
            *self.h.settings.all_topics(),
            self.h.changelog_topic("products"),
            self.h.changelog_topic("orders"),
        ]
        records = asyncio.run(read_topics(self.h.bootstrap, names, timeout=120))
        write_topics(records, self.workdir / "topics")
        return records

    def _log_problems(self, pattern: re.Pattern[str] = _LOG_PROBLEM) -> dict[str, dict[str, int]]:
        """ERROR/CRITICAL lines (or what ``pattern`` matches) per worker log (whole file),
        grouped by their first words."""
        problems: dict[str, dict[str, int]] = {}
        for index, worker in enumerate(self.workers):
            seen: dict[str, int] = {}
            for match in pattern.finditer(worker.log_text(since_start=False)):
                text = _NUMBERS.sub("#", match.group(2))
                head = f"{match.group(1)} {text}"
                seen[head[:120]] = seen.get(head[:120], 0) + 1
            if seen:
                problems[f"w{index + 1}"] = seen
        return problems
