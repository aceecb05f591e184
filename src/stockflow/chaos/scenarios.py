"""The chaos scenarios of issue 5, each on its own embedded broker with real worker processes
and orders flowing the whole time, each judged by ``stockflow audit --strict`` and the run's
own checks (:mod:`stockflow.chaos.checks`):

``kill``
    SIGKILL the worker at random moments (every fourth stop SIGTERM: a deploy, whose exit
    must come within the stop timeout with status 0), at least ``min_kills`` times, restart it
    at once; some stops land while the restarted worker is still starting or restoring.
``takeover``
    two workers, then three, in one group: SIGKILL one, the survivors take over its partitions
    (standby replicas, changelog restore), restart it and let the group rebalance back.
``redelivery``
    two workers; every input sent twice, batches shuffled, payments and cancellations before,
    after and twice.
``bad-input``
    garbage mixed into the orders and inventory topics (fuzzed bytes, wrong types, huge values,
    broken Unicode, tombstones); every bad record dead-lettered, valid Unicode ids decided.
``outage``
    two workers behind a TCP proxy the broker advertises; the proxy is cut (connections reset,
    or blackholed) and restored repeatedly; workers must recover on their own.
``freeze``
    two workers; one at a time is stopped (SIGSTOP) for 2-3.5 session timeouts, as by a long
    garbage collection or a stalled VM, then continued: the group drops it, the other worker
    takes its partitions over, and the frozen one must not act on them when it wakes up
    (counted as outages). Up to :data:`EXTRA_FREEZES` more until the membership guard has held
    a woken worker's records or sends once (``details["freezes"]``: what each freeze caught).

:func:`run_chaos` runs any of them with a time budget (``duration=None``: the short CI shape).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stockflow.chaos.load import LoadMix
from stockflow.chaos.proxy import CutMode
from stockflow.chaos.session import ChaosSession
from stockflow.chaos.verdict import ScenarioResult
from stockflow.chaos.watch import assigned_partitions
from stockflow.errors import StockflowError
from stockflow.testing.worker import WorkerProcess

__all__ = ["GUARD_LINES", "SCENARIOS", "Budget", "plan", "run_chaos", "run_scenario"]

SIGTERM_EVERY = 4
"""Every fourth of the ``kill`` scenario's stops (the 2nd, 6th, ...) is graceful (SIGTERM)."""
BASE_MIX = LoadMix(rate=30.0, duplicate=0.05, garbage=0.02)
REDELIVERY_MIX = LoadMix(
    rate=25.0,
    duplicate=1.0,
    shuffle=True,
    before=0.3,
    pay_after=0.35,
    cancel_after=0.2,
    both_after=0.15,
    twice=0.5,
)
BAD_INPUT_MIX = LoadMix(rate=25.0, garbage=0.6, unknown_product=0.05)


@dataclass(frozen=True, slots=True)
class Budget:
    """How long a scenario keeps injecting faults: at least ``seconds`` of load and at least
    ``faults`` faults (kills, kill cycles per group size, or cuts)."""

    seconds: float
    faults: int = 1
    cut: tuple[float, float] = (4.0, 7.0)


CI_BUDGETS: dict[str, Budget] = {
    "kill": Budget(seconds=10.0, faults=10),
    "takeover": Budget(seconds=0.0, faults=1),
    "redelivery": Budget(seconds=8.0),
    "bad-input": Budget(seconds=6.0),
    "outage": Budget(seconds=0.0, faults=2, cut=(3.5, 5.0)),
    "freeze": Budget(seconds=0.0, faults=2),
}
_WEIGHTS = {
    "kill": 0.3,
    "takeover": 0.25,
    "redelivery": 0.15,
    "bad-input": 0.1,
    "outage": 0.2,
    "freeze": 0.15,
}
_OVERHEAD = {
    "kill": 15.0,
    "takeover": 40.0,
    "redelivery": 15.0,
    "bad-input": 15.0,
    "outage": 20.0,
    "freeze": 20.0,
}

TITLES = {
    "kill": "SIGKILL (a quarter: SIGTERM) one worker at random moments, restart it",
    "takeover": "2 then 3 workers: kill one, survivors take over, restart, rebalance back",
    "redelivery": "every input twice, shuffled, lifecycle commands before/after/twice",
    "bad-input": "garbage mixed in at random (orders and inventory topics)",
    "outage": "broker unreachable (proxy cut: reset or blackhole), then restored",
    "freeze": "one of two workers stopped (SIGSTOP) past its session timeout, then continued",
}


def _kill(s: ChaosSession, budget: Budget) -> None:
    (worker,) = s.start_workers(1)
    s.begin()
    s.watch(1.0)
    rng, result = s.rng, s.result
    end = time.monotonic() + budget.seconds
    while result.kills < budget.faults or time.monotonic() < end:
        s.watch(rng.uniform(0.2, 2.0))
        at, how = _stop(s, worker)
        if rng.random() < 0.3:  # stop it again while it starts or restores its tables
            s.restart(worker, wait=False)
            s.watch(rng.uniform(0.3, 4.0))
            at, how = _stop(s, worker)
            result.kills_during_recovery += 1
        s.restart(worker)
        s.recovered(at, f"{how} #{result.kills}")


def _stop(s: ChaosSession, worker: WorkerProcess) -> tuple[float, str]:
    """SIGKILL (a crash), or every :data:`SIGTERM_EVERY` th stop SIGTERM (a deploy): a graceful
    stop runs other code (the batch in flight finished, the last commit, the group left), and
    lands as early in a start or a recovery as a kill. Counted, not drawn: every run, the CI's
    ten stops too, has some."""
    if s.result.kills % SIGTERM_EVERY == 1:
        return s.terminate(worker), "SIGTERM"
    return s.kill(worker), "SIGKILL"


def _owned(s: ChaosSession, index: int) -> set[int]:
    topic = s.h.settings.orders_topic
    return assigned_partitions(s.workers[index].log_text(), topic) or set()


def _wait_owned(s: ChaosSession, indexes: list[int], want: Callable[[set[int]], bool]) -> bool:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        union = set().union(*(_owned(s, i) for i in indexes))
        if want(union):
            return True
        s.watch(0.2)
    return False


def _joined(s: ChaosSession, index: int, size: int) -> tuple[list[int], Callable[[set[int]], bool]]:
    """What a rebalance after worker ``index`` (re)joins a group of ``size`` must show: that
    worker owning some partition, or, with fewer partitions than workers (where some worker
    owns none by design), the group owning every one."""
    if s.partitions >= size:
        return [index], bool
    every = set(range(s.partitions))
    return list(range(size)), lambda union: union == every


def _takeover(s: ChaosSession, budget: Budget) -> None:
    s.start_workers(2)
    s.begin()
    s.watch(1.0)
    rng, result = s.rng, s.result
    every = set(range(s.partitions))
    for size in (2, 3):
        if size == 3:
            at = time.time()
            s.start_workers(1)
            s.recovered(at, "third worker joins", kind="join")
            if not _wait_owned(s, *_joined(s, 2, 3)):
                result.anomalies.append("the third worker got no partitions")
        end = time.monotonic() + budget.seconds / 2
        cycles = 0
        while cycles < budget.faults or time.monotonic() < end:
            s.watch(rng.uniform(1.0, 3.0))
            victim = rng.randrange(size)
            survivors = [i for i in range(size) if i != victim]
            owned = sorted(_owned(s, victim))
            at = s.kill(s.workers[victim])
            s.recovered(at, f"SIGKILL w{victim + 1} of {size} (owned {owned}): takeover")
            if not _wait_owned(s, survivors, lambda union: union == every):
                result.anomalies.append(f"survivors of w{victim + 1} never owned all partitions")
            s.watch(rng.uniform(0.5, 2.0))
            at = time.time()
            s.restart(s.workers[victim])
            if not _wait_owned(s, *_joined(s, victim, size)):
                result.anomalies.append(f"w{victim + 1} got no partitions back after restart")
            s.recovered(at, f"restart w{victim + 1} of {size}: rebalance back", kind="rejoin")
            result.details.setdefault("owned_after_rejoin", []).append(
                {f"w{i + 1}": sorted(_owned(s, i)) for i in range(size)}
            )
            cycles += 1


def _steady(workers: int) -> Callable[[ChaosSession, Budget], None]:
    def body(s: ChaosSession, budget: Budget) -> None:
        s.start_workers(workers)
        s.begin()
        s.watch(max(budget.seconds, 1.0))

    return body


def _outage(s: ChaosSession, budget: Budget) -> None:
    proxy = s.proxy
    assert proxy is not None
    s.start_workers(2)
    s.begin()
    s.watch(2.0)
    evidence = s.connections()
    s.result.details["connections_before_first_cut"] = evidence
    if not evidence or any(c["to_broker"] or not c["to_proxy"] for c in evidence.values()):
        s.result.anomalies.append(f"workers do not all go through the proxy: {evidence}")
    rng, result = s.rng, s.result
    end = time.monotonic() + budget.seconds
    while result.outages < budget.faults or time.monotonic() < end:
        s.watch(rng.uniform(1.5, 3.0))
        mode: CutMode = "refuse" if result.outages % 2 == 0 else "blackhole"
        length = rng.uniform(*budget.cut)
        start = time.time()
        closed = proxy.cut(mode)
        s.note(start, f"cut ({mode})")
        s.watch(length)
        back = time.time()
        held = proxy.restore()
        s.note(back, "restore")
        result.outages += 1
        result.outage_seconds = round(result.outage_seconds + back - start, 1)
        result.details.setdefault("cuts", []).append(
            {"mode": mode, "seconds": round(back - start, 1), "closed": closed, "held": held}
        )
        s.recovered(back, f"{mode} outage of {back - start:.1f}s", kind="outage")
    result.details["connections_at_end"] = s.connections()


GUARD_LINES = ("group membership not confirmed", "dropped from the consumer group")
"""What a woken worker logs when the membership guard held its fetched records or its sends
(:mod:`stockflow._faust.consumer`, :mod:`stockflow._faust.membership`)."""

EXTRA_FREEZES = 4
"""Freezes beyond the budget while the guard has not acted yet. A woken worker whose first
heartbeat is answered before its fetcher delivers records is simply revoked: nothing to hold.
Measured: 9 of 13 freezes in six CI-shape runs held something, so two freezes missed it about
one run in ten (CI failed so once); six miss it about one run in a thousand."""


def _guard_count(workers: list[WorkerProcess]) -> int:
    return sum(
        worker.log_text(since_start=False).count(line) for worker in workers for line in GUARD_LINES
    )


def _freeze(s: ChaosSession, budget: Budget) -> None:
    workers = s.start_workers(2)
    s.begin()
    s.watch(2.0)
    rng, result = s.rng, s.result
    session = s.h.settings.session_timeout
    end = time.monotonic() + budget.seconds
    freezes: list[dict[str, Any]] = result.details.setdefault("freezes", [])

    def more() -> bool:
        if result.outages < budget.faults or time.monotonic() < end:
            return True
        unguarded = not any(freeze["guarded"] for freeze in freezes)
        return unguarded and result.outages < budget.faults + EXTRA_FREEZES

    while more():
        s.watch(rng.uniform(1.5, 3.0))
        length = session * rng.uniform(2.0, 3.5)
        worker = workers[result.outages % 2]
        before = _guard_count(workers)
        back = s.freeze(worker, length)
        s.recovered(back, f"SIGSTOP of {length:.1f}s", kind="outage")
        guarded = _guard_count(workers) - before
        freezes.append({"seconds": round(length, 1), "guarded": guarded})


@dataclass(frozen=True, slots=True)
class _Spec:
    body: Callable[[ChaosSession, Budget], None]
    mix: LoadMix
    proxy: bool = False
    partitions: int = 4


# Six partitions for the group: Faust's sticky assignor may leave a third worker without any
# active partition when four are shared by three (2 + 2 + 0); six give every worker some.
_BODIES: dict[str, _Spec] = {
    "kill": _Spec(_kill, BASE_MIX),
    "takeover": _Spec(_takeover, BASE_MIX, partitions=6),
    "redelivery": _Spec(_steady(2), REDELIVERY_MIX),
    "bad-input": _Spec(_steady(1), BAD_INPUT_MIX),
    "outage": _Spec(_outage, BASE_MIX, proxy=True),
    "freeze": _Spec(_freeze, BASE_MIX),
}
SCENARIOS: tuple[str, ...] = tuple(_BODIES)


def run_scenario(
    name: str,
    *,
    budget: Budget,
    seed: int,
    workdir: Path,
    rate: float | None = None,
    partitions: int | None = None,
    test_timeouts: bool = True,
) -> ScenarioResult:
    """One scenario on a fresh broker; never raises for a failed run (see ``result.ok``).
    ``partitions``: of every topic (default: the scenario's own, 4, or 6 for takeover).
    ``test_timeouts``: workers with the short group timeouts of the tests; off, with the
    settings' defaults (a 6 s session timeout: slower takeovers, the same checks)."""
    spec = _BODIES[name]
    mix = spec.mix if rate is None else replace(spec.mix, rate=rate)
    result = ScenarioResult(name=name, title=TITLES[name], seed=seed, workers=0)
    count = spec.partitions if partitions is None else partitions
    result.details["partitions"] = count
    result.details["timeouts"] = "test" if test_timeouts else "defaults"
    with ChaosSession(
        result,
        workdir=workdir / name,
        mix=mix,
        proxy=spec.proxy,
        partitions=count,
        test_timeouts=test_timeouts,
    ) as session:
        try:
            spec.body(session, budget)
        except StockflowError as exc:
            result.anomalies.append(f"scenario stopped: {exc}")
        if session.load is not None:
            try:
                session.finish()
            except StockflowError as exc:
                result.anomalies.append(f"verdict incomplete: {exc}")
    return result


def plan(names: Iterable[str], duration: float | None) -> dict[str, Budget]:
    """Budgets: the CI shape when ``duration`` is ``None``, else ``duration`` seconds in total
    shared by weight (each scenario's fixed start-up and verdict time counted in)."""
    chosen = list(names)
    if duration is None:
        return {name: CI_BUDGETS[name] for name in chosen}
    total = sum(_WEIGHTS[name] for name in chosen)
    budgets = {}
    for name in chosen:
        share = duration * _WEIGHTS[name] / total
        seconds = max(share - _OVERHEAD[name], 10.0)
        budgets[name] = replace(CI_BUDGETS[name], seconds=seconds, cut=(5.0, 15.0))
    return budgets


def run_chaos(
    names: Iterable[str] = SCENARIOS,
    *,
    duration: float | None = None,
    seed: int = 1,
    workdir: Path,
    rate: float | None = None,
    partitions: int | None = None,
    test_timeouts: bool = True,
    on_result: Callable[[ScenarioResult], None] | None = None,
) -> list[ScenarioResult]:
    """Run scenarios one after the other; each gets its own seed derived from ``seed``."""
    seeds = random.Random(seed)
    results = []
    for name, budget in plan(names, duration).items():
        result = run_scenario(
            name,
            budget=budget,
            seed=seeds.randrange(10**6),
            workdir=workdir,
            rate=rate,
            partitions=partitions,
            test_timeouts=test_timeouts,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
