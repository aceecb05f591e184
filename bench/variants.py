"""stockflow's worker with one experimental change, to measure a proposal before anyone edits
``src/``: the app is built by :func:`stockflow.create_app` exactly as the real worker, after
this module applied what the environment asks for.

``BENCH_FAUST_KWARGS``  JSON object merged into the ``faust.App`` arguments, e.g.
                        ``{"producer_threaded": true}`` (Faust settings stockflow does not expose).
``BENCH_SEND_SOON=1``   every ``topic.send`` hands its record to Faust's producer buffer
                        (``topic.send_soon``, the path changelog writes take) instead of
                        publishing it before the agent goes on: the cost of the awaited send.
``BENCH_ROCKSDB_OPTIONS``  JSON object given to every table as Faust's per-table RocksDB
                        ``options``, over stockflow's ``STOCKFLOW_ROCKSDB_*`` settings, e.g.
                        ``{"bloom_filter_size": 10}``.

Run by the harness as ``python -m faust -A bench.variants worker``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from stockflow.settings import Settings

__all__ = ["EXTRA_KWARGS", "ROCKSDB_OPTIONS", "SEND_SOON", "app"]

EXTRA_KWARGS: dict[str, Any] = json.loads(os.environ.get("BENCH_FAUST_KWARGS", "{}"))
SEND_SOON = os.environ.get("BENCH_SEND_SOON") == "1"
ROCKSDB_OPTIONS: dict[str, Any] = json.loads(os.environ.get("BENCH_ROCKSDB_OPTIONS", "{}"))

_faust_kwargs = Settings.faust_kwargs


def _patched_faust_kwargs(self: Settings) -> dict[str, Any]:
    return {**_faust_kwargs(self), **EXTRA_KWARGS}


Settings.faust_kwargs = _patched_faust_kwargs  # type: ignore[method-assign]

if SEND_SOON:
    # Patched on Faust's Topic rather than on stockflow's publisher, so that the experiment
    # does not depend on the publisher's signature: every awaited ``topic.send`` (stockflow's
    # outputs; changelog writes already use ``send_soon``) only enqueues the record.
    import faust

    async def _send_without_waiting(self: Any, **kwargs: Any) -> Any:
        return self.send_soon(**kwargs)

    faust.Topic.send = _send_without_waiting  # type: ignore[method-assign]

if ROCKSDB_OPTIONS:
    import faust

    _table = faust.App.Table

    def _table_with_options(self: Any, name: str, **kwargs: Any) -> Any:
        # Over stockflow's own options (Settings.table_options), in a new dict each time:
        # Faust's RocksDB store pops keys from the dict it is given.
        kwargs["options"] = {**kwargs.get("options", {}), **ROCKSDB_OPTIONS}
        return _table(self, name, **kwargs)

    faust.App.Table = _table_with_options  # type: ignore[method-assign]

from stockflow.application import create_app  # noqa: E402 - after the patches above

app = create_app()
