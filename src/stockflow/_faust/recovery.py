"""Changelog recovery that heals itself instead of crashing, and resumes streams safely.

1. Faust raises ``ConsistencyError`` when the offset a local RocksDB store says it has applied
   lies beyond the end of its changelog (Faust issues #158 and #651; on tansu also after every
   SIGKILL, see :mod:`stockflow._faust.transport`). The worker then dies at every restart.
   The changelog is the source of truth, so stockflow discards that partition's local store
   and restores it from the beginning of the changelog, with a warning.
2. When recovery completes, Faust resumes the stream partitions *before* seeking them to their
   committed offsets, and resumes flow (which empties every stream's queue) only after the seek.
   Records fetched in between were handed to the streams and then thrown away with the queues,
   while the consumer counted them as read: the next record after them became an offset "gap",
   committed as if processed (found by the chaos suite: 21 consecutive orders of one partition
   never answered after a SIGKILL). The seek is done while the partitions are still paused.
3. A changelog that grew while the worker recovered it (another worker writes it: this one
   lost the partition, e.g. frozen past its session timeout) is restored only up to the end
   Faust read first (:func:`within_known_ends`): past it, Faust's own check raised
   ``ConsistencyError`` and stopped the worker.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Mapping
from typing import Any, cast

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

from stockflow._faust.app_state import changelog_writer
from stockflow._faust.epochs import is_unconfirmed
from stockflow._faust.fast_restore import RestoreTarget, restore_partitions
from stockflow._faust.repairs import app_repairs
from stockflow._faust.transport import client_settings

__all__ = [
    "SelfHealingRecovery",
    "SelfHealingTableManager",
    "discard_partition",
    "within_known_ends",
]

log = logging.getLogger(__name__)


def discard_partition(table: Any, partition: int) -> None:
    """Delete one partition of a table's local store so that it is rebuilt from the changelog."""
    store = table.data
    dbs = getattr(store, "_dbs", None)
    if dbs is None:  # memory store: nothing persists across restarts
        return
    db = dbs.pop(partition, None)
    if db is not None:
        try:
            db.close()
        except Exception:  # already closed; the directory goes anyway
            log.debug("closing %s partition %d failed", table.name, partition, exc_info=True)
    key_index = getattr(store, "_key_index", None)
    if key_index is not None:
        key_index.clear()
    shutil.rmtree(store.partition_path(partition), ignore_errors=True)


def within_known_ends(ends: Mapping[TP, int], known: Mapping[TP, int]) -> dict[TP, int]:
    """Each changelog's end offset, but no further than the last offset Faust read for it
    (``known``: Faust's ``active_highwaters``, the last offset, not one past it).

    Faust checks the offsets a recovery starts from against the highwaters it read first. A
    changelog that grew in between was written by another worker: this one lost the partition
    while it recovered (frozen past its session timeout, found by the chaos suite's ``freeze``
    scenario). Restored past Faust's highwater, the partition made Faust stop the worker with
    ``ConsistencyError``; up to it, the recovery ends and the rebalance under way restores the
    rest."""
    return {tp: min(end, known[tp] + 1) if tp in known else end for tp, end in ends.items()}


class SelfHealingRecovery(Recovery):
    @property
    def fast_restore(self) -> bool:
        """Restore active partitions with :mod:`stockflow._faust.fast_restore` first, unless
        the table manager was told otherwise (``STOCKFLOW_FAST_RESTORE``, given by
        :func:`stockflow.install`)."""
        tables = self.tables
        return not isinstance(tables, SelfHealingTableManager) or tables.fast_restore

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if not tps:
            return
        highwaters = await consumer.highwaters(*tps)
        if title == "active":
            highwaters = within_known_ends(highwaters, self.active_highwaters)
        await self._heal(consumer, destination, highwaters, tps)
        if title == "active" and self.fast_restore:
            await self._restore_in_batches(destination, highwaters, tps)

    async def _heal(
        self, consumer: Any, destination: Any, highwaters: Mapping[TP, int], tps: set[TP]
    ) -> None:
        for tp in tps:
            end = highwaters.get(tp)
            if end is None:
                continue
            last = end - 1  # Faust keeps "last applied offset"; the end is one past the last
            applied = destination.get(tp)
            table: Any = self.tp_to_table.get(tp)
            if table is not None and is_unconfirmed(table.data, tp.partition):
                log.warning(
                    "%s: the local partition took changelog records while this worker's group "
                    "membership was not confirmed; discarding it and restoring it from the "
                    "changelog",
                    tp,
                )
            elif applied is None or applied <= last:
                continue
            else:
                log.warning(
                    "%s: local state says offset %d was applied but the changelog ends at %d; "
                    "discarding the local partition and restoring it from the changelog",
                    tp,
                    applied,
                    last,
                )
            if table is not None:
                discard_partition(table, tp.partition)
            earliest = (await consumer.earliest_offsets(tp)).get(tp)
            destination[tp] = earliest - 1 if earliest is not None else -1

    async def _restore_in_batches(
        self, destination: Any, highwaters: Mapping[TP, int], tps: set[TP]
    ) -> None:
        """Bring the active partitions' local stores up to the changelog's end with
        :func:`restore_partitions`, and start Faust's restore where that stopped."""
        targets: dict[TP, RestoreTarget] = {}
        repairs = app_repairs(self.app)
        skipped = None if repairs is None else repairs.skipped
        for tp in tps:
            table: Any = self.tp_to_table.get(tp)
            end = highwaters.get(tp)
            store = None if table is None else table.data
            if end is None or not getattr(store, "use_rocksdict", False):
                continue  # memory:// (nothing persists) or another RocksDB binding: Faust's path
            targets[tp] = RestoreTarget(
                store=store, first=destination[tp] + 1, end=end, skipped=skipped
            )
        if not targets:
            return
        servers, auth = client_settings(self.app, self.app.transport)
        applied = await restore_partitions(
            servers,
            targets,
            # Faust bounds this whole step by the request timeout: leave it room for the rest.
            budget=self.app.conf.broker_request_timeout / 2,
            client_kwargs=auth,
        )
        for tp, last in applied.items():
            destination[tp] = max(destination[tp], last)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        """Faust 0.15.3's ``Recovery.on_recovery_completed`` with one change: the stream
        partitions are sought to their committed offsets while still paused, then resumed (see
        the module docstring). Faust's no-table path (``_resume_streams``) is never taken:
        stockflow always has tables."""
        consumer = self.app.consumer
        self.log.info("Restore complete!")
        await self.app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if self.app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                self.app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=self.app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        # From here to resume_flow() nothing awaits: no record is fetched before the streams'
        # queues are emptied and flow resumes.
        self.completed.set()
        writer = changelog_writer(self.app)
        if writer is not None:
            # Records of these partitions from where the restore stopped on are this worker's
            # own, or a lost writer's whose keys it writes again (stockflow._faust.repairs).
            writer.adopt(
                {
                    (tp.topic, tp.partition): self.active_offsets.get(tp, -1) + 1
                    for tp in self.active_tps
                }
            )
        self.app.flow_control.resume()
        consumer.resume_flow()
        await cast(Any, self.app)._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not self.app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        self.app.on_rebalance_end()
        self.log.info("Worker ready")


class SelfHealingTableManager(TableManager):
    """Faust's table manager with :class:`SelfHealingRecovery`."""

    fast_restore: bool = True
    """Whether recovery restores active partitions in batches first; :func:`stockflow.install`
    sets it from ``Settings.fast_restore``."""
    _recovery: Recovery | None  # Faust's; declared for a type check that cannot see Faust

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SelfHealingRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
