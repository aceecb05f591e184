"""Python's garbage collector, tuned for a worker that allocates fast and keeps little.

A worker makes a handful of short-lived objects per record (records, dicts, steps, outputs,
futures), and holds a large, stable heap: Faust, aiokafka, pydantic's schemas, the app's
services. With Python's default thresholds (700, 10, 10) the young generations were collected
about every 700 allocations, and every so often the whole heap was traversed: measured in a
loaded worker (``python -m bench --only throughput``), 12 full collections of ~80 ms each and
~90 ms of younger ones in 5 s of CPU, about a quarter of the worker's time.

:func:`tune_garbage_collector` (run by :func:`stockflow.lifecycle.attach` when the worker
starts) freezes what exists then (``gc.freeze``: the startup heap is never traversed again) and
collects the youngest generation once ``threshold`` more objects exist than after the last
collection (``Settings.gc_threshold``, ``STOCKFLOW_GC_THRESHOLD``; 0 leaves Python's collector
alone), at the end of a processed batch (:func:`collect_between_batches`, called by the batch
consumer) rather than in the middle of one.

Why between batches: the objects a collection traverses are the young ones still alive, and in
the middle of a batch that is the whole batch (its fetched records, parsed commands, steps and
outputs). Collected there, every 50,000 allocations, each young collection took 23-80 ms and
collections added up to ~15% of a loaded worker's CPU with multi-line orders (1.6-1.9 s of
11-13 s) and ~9% with single-line ones (0.6 s of ~6.5 s; a ``gc.callbacks`` probe). Once a
batch is done, its objects are freed and what is left young is what outlives it. Python's own
trigger stays as a backstop, at :data:`BACKSTOP_FACTOR` times the threshold, for allocations
that no batch boundary follows. Reference cycles are still collected: the garbage they leave
stays bounded by the threshold at each batch boundary, and by the backstop in between.
"""

from __future__ import annotations

import gc
import logging

__all__ = [
    "BACKSTOP_FACTOR",
    "collect_between_batches",
    "release_garbage_collector",
    "tune_garbage_collector",
]

log = logging.getLogger(__name__)

BACKSTOP_FACTOR = 20
"""Python's automatic young-generation trigger, as a multiple of the threshold: reached only
by allocations that no batch boundary follows soon (the largest batches measured stayed below
it: no automatic collection in 60,000 multi-line orders)."""

_threshold = [0]
"""The threshold :func:`collect_between_batches` applies (0: not tuned, it does nothing)."""


def tune_garbage_collector(threshold: int) -> bool:
    """Freeze the current heap; from now on the youngest generation is collected between
    batches once ``threshold`` objects more exist (:func:`collect_between_batches`), and by
    Python itself only at :data:`BACKSTOP_FACTOR` times that (the older generations at
    Python's ratios). Returns whether anything was changed (``threshold`` 0: nothing)."""
    if threshold <= 0:
        return False
    gc.collect()  # what startup left behind, before the rest is frozen
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(threshold * BACKSTOP_FACTOR, middle, old)
    _threshold[0] = threshold
    log.info(
        "garbage collector: %d startup objects frozen; youngest generation collected between"
        " batches every %d allocations",
        gc.get_freeze_count(),
        threshold,
    )
    return True


def collect_between_batches() -> int | None:
    """Collect the young generation if ``threshold`` objects more exist than after the last
    collection, and the older ones with it when their own counts are due, as Python would
    (the middle one every ``gc.get_threshold()[1]`` young collections, the oldest every
    ``[2]`` middle ones); called where a batch's objects have just been freed. Returns the
    generation collected, or ``None``."""
    threshold = _threshold[0]
    if not threshold:
        return None
    young, middle, old = gc.get_count()
    if young < threshold:
        return None
    _backstop, middle_threshold, old_threshold = gc.get_threshold()
    generation = 0
    if middle + 1 > middle_threshold:
        generation = 2 if old + 1 > old_threshold else 1
    gc.collect(generation)
    return generation


def release_garbage_collector(thresholds: tuple[int, int, int]) -> None:
    """Undo :func:`tune_garbage_collector`: unfreeze, Python's ``thresholds`` again, nothing
    collected between batches (a benchmark or a test that tuned the collector for a while)."""
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    _threshold[0] = 0
