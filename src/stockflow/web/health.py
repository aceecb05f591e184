"""Probes for orchestrators: ``GET /health`` (liveness) and ``GET /ready`` (readiness).

``GET /health``
    200 ``{"status": "ok"}`` when the event loop answers; 503 ``{"status": "crashed"|"stopping",
    "reason"}`` once the worker crashed or is stopping (it then exits within
    ``STOCKFLOW_CRASH_EXIT_TIMEOUT``/``STOCKFLOW_STOP_TIMEOUT``, see :mod:`stockflow.lifecycle`).
    A blocked event loop does not answer at all: the probe's timeout is the signal.
``GET /ready``
    200 ``{"ready": true, "partitions", "lag"}`` when partitions are assigned, no rebalance or
    recovery is in progress, the end of every partition is known (after its first fetch) and
    the records not yet processed in this worker's partitions (``lag``) are at most
    ``STOCKFLOW_READY_MAX_LAG`` (default 10000); otherwise 503 ``{"ready": false, "reasons":
    [...]}``.

Faust starts its web server once the first recovery is complete, so both answer only from then
on: give the liveness probe a start-up allowance (a Kubernetes ``startupProbe``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stockflow._faust.app_state import tables_recovered
from stockflow.web.freshness import Progress, partition_position

if TYPE_CHECKING:
    from aiohttp.web import Request
    from faust.types import AppT
    from faust.web import Response

__all__ = ["ReadyState", "readiness", "register_health"]


@dataclass(frozen=True, slots=True)
class ReadyState:
    """What readiness is decided from (read from the app by :func:`register_health`)."""

    crashed: bool
    stopping: bool
    partitions: int
    rebalancing: bool
    recovered: bool
    lag: int
    lag_unknown: int = 0
    """Partitions whose end the consumer has not learned yet (before their first fetch)."""


def readiness(state: ReadyState, max_lag: int) -> list[str]:
    """Why the worker is not ready; empty when it is."""
    reasons = []
    if state.crashed:
        reasons.append("crashed")
    if state.stopping:
        reasons.append("stopping")
    if state.partitions == 0:
        reasons.append("no partitions assigned")
    if state.rebalancing:
        reasons.append("rebalancing")
    if not state.recovered:
        reasons.append("recovering tables")
    if state.lag_unknown:
        reasons.append(f"lag not yet known for {state.lag_unknown} partitions")
    if state.lag > max_lag:
        reasons.append(f"lag {state.lag} > {max_lag} (STOCKFLOW_READY_MAX_LAG)")
    return reasons


def _state(app: AppT, progress: Progress, consumed: Iterable[str]) -> ReadyState:
    wanted = set(consumed)
    actives = app.assignor.assigned_actives()
    lags = [
        partition_position(app, progress, tp.topic, tp.partition)["lag"]
        for tp in actives
        if tp.topic in wanted
    ]
    return ReadyState(
        crashed=app.crash_reason is not None,
        stopping=app.should_stop,
        partitions=len(actives),
        rebalancing=app.rebalancing,
        recovered=tables_recovered(app),
        lag=sum(lag for lag in lags if lag is not None),
        lag_unknown=sum(1 for lag in lags if lag is None),
    )


def register_health(
    app: AppT, progress: Progress, consumed: Iterable[str], *, max_lag: int, prefix: str
) -> None:
    """Add ``/health`` and ``/ready`` to ``app``'s web server (see the module docstring);
    ``max_lag`` is ``STOCKFLOW_READY_MAX_LAG``, ``prefix`` names the views."""
    from faust import web

    topics = tuple(consumed)

    class HealthView(web.View):
        """Liveness: the event loop answers and the worker has not crashed or begun to stop."""

        async def get(self, request: Request) -> Response:
            crash = app.crash_reason
            if crash is not None:
                return self.json({"status": "crashed", "reason": repr(crash)}, status=503)
            if app.should_stop:
                return self.json({"status": "stopping"}, status=503)
            return self.json({"status": "ok"})

    class ReadyView(web.View):
        """Readiness: partitions assigned, recovered, lag below the bound."""

        async def get(self, request: Request) -> Response:
            state = _state(app, progress, topics)
            reasons = readiness(state, max_lag)
            body = {"ready": not reasons, "partitions": state.partitions, "lag": state.lag}
            if reasons:
                return self.json({**body, "reasons": reasons}, status=503)
            return self.json(body)

    app.page("/health", name=f"{prefix}-health")(HealthView)
    app.page("/ready", name=f"{prefix}-ready")(ReadyView)
