"""Python's garbage collector, tuned for a worker that allocates fast and keeps little.

A worker makes a handful of short-lived objects per record (records, dicts, steps, outputs,
futures), and holds a large, stable heap: Faust, aiokafka, pydantic's schemas, the app's
services. With Python's default thresholds (700, 10, 10) the young generations were collected
about every 700 allocations, and every so often the whole heap was traversed: measured in a
loaded worker (``python -m bench --only throughput``), 12 full collections of ~80 ms each and
~90 ms of younger ones in 5 s of CPU, about a quarter of the worker's time.

:func:`tune_garbage_collector` (run by :func:`stockflow.lifecycle.attach` when the worker
starts) freezes what exists then (``gc.freeze``: the startup heap is never traversed again) and
collects the youngest generation every ``threshold`` allocations instead (``Settings.gc_threshold``,
``STOCKFLOW_GC_THRESHOLD``; 0 leaves Python's collector alone). Reference cycles are still
collected, only in fewer, larger passes; memory held by uncollected cycles stays bounded by
the threshold.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["tune_garbage_collector"]

log = logging.getLogger(__name__)


def tune_garbage_collector(threshold: int) -> bool:
    """Freeze the current heap and collect the youngest generation every ``threshold``
    allocations (the older ones at Python's ratios). Returns whether anything was changed
    (``threshold`` 0: nothing)."""
    if threshold <= 0:
        return False
    gc.collect()  # what startup left behind, before the rest is frozen
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(threshold, middle, old)
    log.info(
        "garbage collector: %d startup objects frozen; youngest generation every %d allocations",
        gc.get_freeze_count(),
        threshold,
    )
    return True
