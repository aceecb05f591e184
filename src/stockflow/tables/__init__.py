"""Faust tables: the store adapter, batched changelog writes, and recovery that survives
broker and crash defects (the last two live with stockflow's other Faust internals in
``stockflow._faust``; this is their public home)."""

from stockflow._faust.changelog import ChangelogWriter
from stockflow._faust.recovery import SelfHealingRecovery, SelfHealingTableManager
from stockflow.tables.factory import create_state_table
from stockflow.tables.guard import UncleanShutdownGuard
from stockflow.tables.store import TableStore

__all__ = [
    "ChangelogWriter",
    "SelfHealingRecovery",
    "SelfHealingTableManager",
    "TableStore",
    "UncleanShutdownGuard",
    "create_state_table",
]
