"""Evidence kept from a failed chaos run, for a reader who has only its assertion message (a CI
run's temporary directory is gone by the time anyone looks).

:func:`late_records` finds records stamped well before an earlier offset of their own partition:
written late, as by a producer that sent after a pause. That is the mark a writer leaves when it
lost its partitions and wrote on behind their new owner (how the freeze soak's oversells showed
in the dumped topics: records stamped 2 ms before a SIGSTOP at offsets after records stamped 8.4 s
later).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stockflow.kafka import Record

__all__ = ["late_records"]

SLACK_MS = 500
"""How far behind the newest stamp of its partition a record may be stamped before it counts as
late (producers stamp at append time; a batch waiting a little for its turn is not late)."""


def late_records(
    records: Mapping[str, Iterable[Record]], *, slack_ms: int = SLACK_MS, limit: int = 10
) -> dict[str, Any]:
    """``{"count": n, "first": [...]}``: every record stamped more than ``slack_ms`` before an
    earlier record of its partition, the first ``limit`` of them described."""
    found: list[dict[str, Any]] = []
    count = 0
    for topic, rows in records.items():
        newest: dict[int, int] = {}
        for record in sorted(rows, key=lambda r: (r.partition, r.offset)):
            top = newest.get(record.partition, record.timestamp_ms)
            if record.timestamp_ms < top - slack_ms:
                count += 1
                if len(found) < limit:
                    key = record.key.decode(errors="replace") if record.key else None
                    found.append(
                        {
                            "topic": topic,
                            "partition": record.partition,
                            "offset": record.offset,
                            "stamped_ms": record.timestamp_ms,
                            "behind_ms": top - record.timestamp_ms,
                            "key": key,
                        }
                    )
            newest[record.partition] = max(top, record.timestamp_ms)
    return {"count": count, "first": found}
