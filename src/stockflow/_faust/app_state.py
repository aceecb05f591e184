"""What stockflow reads of a running Faust app that Faust's types do not declare.

Faust ships type hints (``faust.types.AppT`` and friends) and stockflow's agents, views and
wiring use them; these few reads go past them, each to a name :mod:`stockflow._faust.internals`
checks at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from faust.tables import TableManager
    from faust.types import TP, AppT

__all__ = ["changelog_writer", "committed_offset", "rebalance_round", "tables_recovered"]


def tables_recovered(app: AppT) -> bool:
    """Whether the app's tables finished recovering (set again after every rebalance)."""
    # TableManagerT does not declare ``recovery``; Faust's TableManager (every app's) has it.
    return cast("TableManager", app.tables).recovery.completed.is_set()


def committed_offset(app: AppT, tp: TP) -> int | None:
    """The group's committed offset of ``tp`` as the consumer last saw it, if any."""
    committed: Mapping[TP, int] | None = getattr(app.consumer, "_committed_offset", None)
    if committed is None:
        return None
    value = committed.get(tp)
    return value if isinstance(value, int) else None


def rebalance_round(app: Any) -> object:
    """Which rebalance ``app`` is in (``None`` without an app): Faust's consumer generation and
    its count of rebalances, the count too because tansu has answered a rejoin at the same
    generation. What holds for one rebalance only is kept under it."""
    if app is None:
        return None
    return (getattr(app, "consumer_generation_id", None), getattr(app, "rebalancing_count", None))


def changelog_writer(app: Any) -> Any:
    """The app's :class:`~stockflow._faust.changelog.ChangelogWriter`, which
    :func:`stockflow.install` gives its transport (``None`` before that)."""
    return getattr(getattr(app, "transport", None), "changelog", None)
