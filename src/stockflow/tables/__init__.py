"""Faust tables: the store adapter, batched changelog writes, and recovery that survives
broker and crash defects."""

from stockflow.tables.changelog import ChangelogWriter
from stockflow.tables.guard import UncleanShutdownGuard
from stockflow.tables.recovery import SelfHealingRecovery, SelfHealingTableManager
from stockflow.tables.store import TableStore, create_state_table

__all__ = [
    "ChangelogWriter",
    "SelfHealingRecovery",
    "SelfHealingTableManager",
    "TableStore",
    "UncleanShutdownGuard",
    "create_state_table",
]
