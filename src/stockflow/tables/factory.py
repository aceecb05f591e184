"""The Faust tables stockflow keeps its state in: changelogged, raw bytes keys and values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stockflow.tables.protocols import FaustTable, TableFactory

__all__ = ["create_state_table"]


def create_state_table(
    app: TableFactory,
    name: str,
    *,
    partitions: int,
    help: str,
    options: Mapping[str, object] | None = None,
) -> FaustTable:
    """A changelogged table of raw bytes; stockflow encodes keys and values itself.

    ``options`` go to the table's store (:meth:`stockflow.Settings.table_options`)."""
    import faust

    schema: faust.Schema[bytes, bytes] = faust.Schema(
        key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    return app.Table(
        name,
        default=None,
        partitions=partitions,
        schema=schema,
        key_type=bytes,
        value_type=bytes,
        help=help,
        # Copied: Faust's RocksDB store pops keys from the dict it is given.
        options=dict(options or {}),
    )
