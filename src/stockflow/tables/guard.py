"""Local state is only trusted after a clean shutdown.

A table write lands in local RocksDB at once and in its changelog only when the producer's
batch is acknowledged. A worker killed in between (SIGKILL, OOM, power loss) leaves local state
*ahead* of the changelog; Faust's recovery then replays the changelog tail *over* the newer
local values, and the result is neither the local state nor the changelog (measured: a reserved
count that no longer matched the ledger after one SIGKILL). The redelivered, uncommitted inputs
then see effects that never reached the changelog, so those effects never reach it either, and
another worker restoring that partition would decide on different stock.

So, like Kafka Streams under exactly-once, stockflow treats the changelog as the only truth after
an unclean stop: a marker file is created when the worker starts and removed only after a clean
shutdown (the producer flushed, nothing crashed); finding it at start means the last run ended
uncleanly, and the local stores of stockflow's tables are deleted before any is opened, to be
restored from their changelogs.

Since stockflow's tables write RocksDB through rocksdict only once their changelog records are
acknowledged, together with the persisted offset (:class:`stockflow.tables.TableStore`), their
local stores are never ahead of the changelog: after an unclean stop they are kept and the
restore reads only the changelog past their persisted offsets (measured at 1,000,000 products:
a SIGKILLed worker restarted on its directory restored everything again, ~25 s, before). The
discard remains for a RocksDB binding that writes at once (``keep_local=False``).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faust.sensors import Sensor

if TYPE_CHECKING:
    from stockflow.tables.protocols import GuardedApp

__all__ = ["UncleanShutdownGuard"]

log = logging.getLogger(__name__)


class UncleanShutdownGuard(Sensor):
    """A sensor, because Faust starts sensors first and stops them last: before any table
    partition is opened, and after the producer has flushed and stopped."""

    def __init__(
        self,
        app: GuardedApp,
        table_names: Iterable[str],
        name: str,
        *,
        keep_local: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.table_names = tuple(table_names)
        self.marker_name = f"{name}.running"
        self.keep_local = keep_local
        """The tables' local stores never hold a write their changelogs lack: keep them."""

    @property
    def tabledir(self) -> Path:
        return Path(self.app.conf.tabledir)

    @property
    def marker(self) -> Path:
        return self.tabledir / self.marker_name

    async def on_start(self) -> None:
        if not str(self.app.conf.store).startswith("rocksdb"):
            return
        if self.marker.exists() and self.keep_local:
            log.warning(
                "the previous run of this worker did not stop cleanly: its local tables hold "
                "only acknowledged changelog records; the rest is restored from the changelogs"
            )
        elif self.marker.exists():
            removed = self.discard_local_state()
            log.warning(
                "the previous run of this worker did not stop cleanly: discarded %d local "
                "table partition(s); they are restored from their changelogs",
                removed,
            )
        self.tabledir.mkdir(parents=True, exist_ok=True)
        self.marker.touch()

    async def on_stop(self) -> None:
        if getattr(self.app, "crash_reason", None) is None and self.marker.exists():
            self.marker.unlink()

    def discard_local_state(self) -> int:
        removed = 0
        for table in self.table_names:
            for path in self.tabledir.glob(f"{table}-*.db"):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed
