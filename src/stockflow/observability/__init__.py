"""Watching a worker: Prometheus metrics (:mod:`.metrics`), JSON/decision logs (:mod:`.logs`)
and the event loop's stalls (:mod:`.loop_watch`).

Settings: ``STOCKFLOW_LOG_JSON`` (default off) and ``STOCKFLOW_LOG_DECISIONS`` (default off).
Importing this package has no side effects: nothing is registered or configured until
:func:`stockflow.install` builds a :class:`Metrics` for its app.
"""

from stockflow.observability.labels import event_type
from stockflow.observability.logs import DecisionLog, JsonFormatter, json_logging_config
from stockflow.observability.loop_watch import LoopWatch, register_loop_watch
from stockflow.observability.metrics import Metrics, StepProbe

__all__ = [
    "DecisionLog",
    "JsonFormatter",
    "LoopWatch",
    "Metrics",
    "StepProbe",
    "event_type",
    "json_logging_config",
    "register_loop_watch",
]
