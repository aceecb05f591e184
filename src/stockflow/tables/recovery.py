"""Changelog recovery that heals itself instead of crashing.

Faust raises ``ConsistencyError`` when the offset a local RocksDB store says it has applied lies
beyond the end of its changelog (Faust issues #158 and #651; on tansu also after every SIGKILL,
see :mod:`stockflow.transport`). The worker then dies at every restart. The changelog is the
source of truth, so stockflow discards that partition's local store and restores it from the
beginning of the changelog, with a warning.
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

__all__ = ["SelfHealingRecovery", "SelfHealingTableManager", "discard_partition"]

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


class SelfHealingRecovery(Recovery):
    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if not tps:
            return
        highwaters = await consumer.highwaters(*tps)
        for tp in tps:
            end = highwaters.get(tp)
            if end is None:
                continue
            last = end - 1  # Faust keeps "last applied offset"; the end is one past the last
            applied = destination.get(tp)
            if applied is None or applied <= last:
                continue
            table = self.tp_to_table.get(tp)
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


class SelfHealingTableManager(TableManager):
    """Faust's table manager with :class:`SelfHealingRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SelfHealingRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
