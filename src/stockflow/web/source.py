"""What the web layer reads of an installed stockflow: a narrow :class:`ReadSource`.

:class:`stockflow.Stockflow` (what :func:`stockflow.install` returns) is one; the web package
imports nothing from :mod:`stockflow.application`, so the views can be read, and tested, with
only these lookups in mind.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from stockflow.settings import Settings

if TYPE_CHECKING:
    from stockflow.core.saga import Saga

__all__ = ["ReadSource", "SagaLookup", "StockStore", "TableData", "TableLike", "TopicName"]


class TopicName(Protocol):
    def get_topic_name(self) -> str: ...


class TableLike(Protocol):
    """A Faust table as routing sees it: its name and its changelog topic (whose partitions
    say which worker owns what)."""

    @property
    def name(self) -> str: ...
    @property
    def changelog_topic(self) -> TopicName: ...


class TableData(Protocol):
    @property
    def data(self) -> object:
        """The table's store; a RocksDB one has a database per partition."""
        ...


class StockStore(Protocol):
    """The product table's store (:class:`stockflow.tables.TableStore`): raw reads by key and
    prefix scans of one partition."""

    @property
    def table(self) -> TableData: ...

    def get(self, key: str) -> bytes | None: ...
    def scan(self, prefix: str, *, partition: int) -> Iterable[tuple[str, bytes]]: ...


class SagaLookup(Protocol):
    def saga(self, order_id: str) -> Saga | None:
        """The order's state if it is in a local partition (active or standby), else None."""
        ...


class ReadSource(Protocol):
    """The lookups the read model, the writes and routing need."""

    @property
    def settings(self) -> Settings: ...
    @property
    def product_table(self) -> TableLike: ...
    @property
    def order_table(self) -> TableLike: ...
    @property
    def product_store(self) -> StockStore: ...
    @property
    def orders(self) -> SagaLookup: ...
