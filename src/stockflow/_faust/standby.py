"""Standby table partitions kept up to date in RocksDB write batches, not record by record.

A worker holds standby copies of other workers' table partitions
(``STOCKFLOW_STANDBY_REPLICAS``, default 1) so that a takeover has little left to restore.
Faust keeps them current through its recovery service: every changelog record of a standby
partition becomes a message, an event, a queue item and a ``wait_for`` in its loop. With two
workers each following the other's changelogs (five records per order), that doubled the CPU
per order: measured with ``python -m bench --only scaleout``, 2 workers ran at 0.63x the rate
of one with standbys and at 1.46x without.

Once recovery is complete, :class:`StandbyApplier` takes the fetched records of standby
partitions from the batch consumer and writes each partition's records with one ``WriteBatch``
that also carries the partition's persisted offset (:mod:`stockflow._faust.fast_restore`'s
writer), and moves Faust's standby offset: a takeover restores from there as before. Records
fetched during recovery are fetched again once it is complete (:meth:`StandbyApplier.take`);
for stores that are not RocksDB (``memory://``) Faust's own path is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import TP

from stockflow._faust.fast_restore import RestoreTarget, write_records
from stockflow._faust.repairs import app_repairs

__all__ = ["StandbyApplier"]

_NO_END = 2**63 - 1


class StandbyApplier:
    """See the module docstring. One per consumer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def take(self, records: dict[TP, Sequence[Any]]) -> tuple[dict[TP, int], dict[TP, int]]:
        """Remove from ``records`` those of the standby partitions this applier owns. Returns
        ``(applied, again)``: per partition applied, the offset after its last record; per
        partition held back, the offset to fetch again from.

        Until recovery is complete they are held back, not handed to Faust: Faust's recovery
        loop counts a standby record as seen when it buffers it and writes its buffer only at
        the next rebalance, while this applier, once running, skips what Faust has seen. Records
        fetched between "Resume standby partitions" and the end of recovery were so never
        written while the store's persisted offset moved past them: a hole that a takeover's
        restore, which starts at that offset, never filled."""
        tables = self.app.tables
        recovery = tables.recovery
        standby = recovery.standby_tps
        if not standby:
            return {}, {}
        ready = not recovery.in_recovery and recovery.completed.is_set()
        applied: dict[TP, int] = {}
        again: dict[TP, int] = {}
        repairs = app_repairs(self.app)  # a key skipped here is written again if promoted
        skipped = None if repairs is None else repairs.skipped
        for tp in [tp for tp in records if tp in standby]:
            table = recovery.tp_to_table.get(tp)
            store = None if table is None else table.data
            if not getattr(store, "use_rocksdict", False):
                continue  # Faust's path: memory:// or another RocksDB binding
            batch = records.pop(tp)
            if not ready:
                if batch:
                    again[tp] = batch[0].offset
                continue
            seen = recovery.standby_offsets.get(tp)
            if seen is not None:
                batch = [record for record in batch if record.offset > seen]
            target = RestoreTarget(store=store, first=0, end=_NO_END, skipped=skipped)
            last = write_records(target, tp, batch)
            if last is None:
                continue
            recovery.standby_offsets[tp] = last
            applied[tp] = last + 1
        if applied and not tables.standbys_ready and not recovery.standby_remaining_total():
            tables.on_standbys_ready()
        return applied, again
