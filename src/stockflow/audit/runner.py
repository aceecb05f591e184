"""Reading the topics from a broker and auditing them, once or until pending inputs settle.

Outputs (``reservations``, dead letters) are read *before* inputs: every output seen was then
produced before the inputs were read, so its cause is in the input snapshot and a race with a
producer can never look like an outcome without an order.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from stockflow.audit.checks import audit_records
from stockflow.audit.findings import AuditResult
from stockflow.kafka import Record, bootstrap_servers, client_kwargs, read_topics
from stockflow.settings import Settings

__all__ = ["AuditTopics", "audit_topics", "audit_topics_async"]


@dataclass(frozen=True, slots=True)
class AuditTopics:
    """The four topic names the audit reads."""

    orders: str
    inventory: str
    reservations: str
    dead_letters: str

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: str | None) -> AuditTopics:
        """Names from ``settings``; an override that is not ``None`` wins."""
        names = {
            "orders": settings.orders_topic,
            "inventory": settings.inventory_topic,
            "reservations": settings.reservations_topic,
            "dead_letters": settings.dead_letter_topic,
        }
        names.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**names)


_P = ParamSpec("_P")
_R = TypeVar("_R")

_Snapshot = tuple[list[Record], list[Record], list[Record], list[Record]]


async def _read(
    bootstrap: str, topics: AuditTopics, *, timeout: float, kwargs: Mapping[str, Any]
) -> _Snapshot:
    """``(orders, inventory, reservations, dead letters)``, outputs read first."""
    outputs = await read_topics(
        bootstrap, [topics.reservations, topics.dead_letters], timeout=timeout, client_kwargs=kwargs
    )
    inputs = await read_topics(
        bootstrap, [topics.orders, topics.inventory], timeout=timeout, client_kwargs=kwargs
    )
    return (
        inputs[topics.orders],
        inputs[topics.inventory],
        outputs[topics.reservations],
        outputs[topics.dead_letters],
    )


async def audit_topics_async(
    bootstrap: str,
    settings: Settings | None = None,
    *,
    topics: AuditTopics | None = None,
    settle: float = 0.0,
    strict: bool = False,
    clock_skew_ms: int = 0,
    max_lag_ms: int | None = None,
    interval: float = 1.0,
    read_timeout: float = 60.0,
) -> AuditResult:
    """Audit the topics on ``bootstrap`` (``host:port[,host:port]``, or a ``kafka://`` URL).

    With ``settle`` > 0, the topics are read again every ``interval`` seconds while inputs are
    pending (no outcome yet), for at most ``settle`` seconds; the last audit is returned. With
    ``strict``, inputs still pending then are violations. Names come from ``topics``, else from
    ``settings`` (default: ``Settings()``, i.e. the ``STOCKFLOW_*`` environment)."""
    settings = settings if settings is not None else Settings()
    bootstrap = bootstrap_servers(bootstrap)
    names = topics or AuditTopics.from_settings(settings)
    kwargs = client_kwargs(settings)
    deadline = time.monotonic() + max(settle, 0.0)
    options: dict[str, Any] = {"clock_skew_ms": clock_skew_ms, "max_lag_ms": max_lag_ms}
    while True:
        snapshot = await _read(bootstrap, names, timeout=read_timeout, kwargs=kwargs)
        result = audit_records(*snapshot, strict=False, **options)
        remaining = deadline - time.monotonic()
        if not result.pending or remaining <= 0:
            break
        await asyncio.sleep(min(interval, remaining))
    return audit_records(*snapshot, strict=True, **options) if strict else result


def _blocking(
    function: Callable[_P, Coroutine[Any, Any, _R]], name: str, doc: str
) -> Callable[_P, _R]:
    """``function`` run to its end by :func:`asyncio.run`: the same parameters (one signature to
    keep, which :func:`inspect.signature` and mypy both see), its own name and docstring."""

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return asyncio.run(function(*args, **kwargs))

    run.__name__ = run.__qualname__ = name
    run.__doc__ = doc
    return run


audit_topics = _blocking(
    audit_topics_async,
    "audit_topics",
    "Blocking :func:`audit_topics_async` (for scripts and tests outside an event loop).",
)
