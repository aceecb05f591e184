"""Evidence kept from a failed chaos run: every topic's records as JSON lines
(:func:`write_topics`), and for a reader who has only the assertion message (a CI run's temporary
directory is gone by the time anyone looks) the records written late (:func:`late_records`) and
every record naming an order that had no outcome in time (:func:`order_traces`).

:func:`late_records` finds records stamped well before an earlier offset of their own partition:
written late, as by a producer that sent after a pause. That is the mark a writer leaves when it
lost its partitions and wrote on behind their new owner (how the freeze soak's oversells showed
in the dumped topics: records stamped 2 ms before a SIGSTOP at offsets after records stamped 8.4 s
later).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stockflow.kafka import Record

__all__ = ["late_records", "order_traces", "write_topics"]

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


def order_traces(
    records: Mapping[str, Iterable[Record]],
    order_ids: Iterable[str],
    seen_ms: Mapping[str, int],
    *,
    limit: int = 40,
) -> dict[str, Any]:
    """Per order: every record that names it (key or value, any topic: the input, the Reserve,
    the internal answers, the changelogs, the outcome) in stamp order, and when the run's
    watcher first read its outcome (``watcher_saw_ms``, ``None``: never). Stamps are relative to
    the order's first record. Tells a late decision (the outcome stamped late) from a late
    delivery (stamped early, written late) and from an outcome the watcher missed."""
    wanted = {order: order.encode() for order in order_ids}
    found: dict[str, list[tuple[int, str, int, int, str]]] = {order: [] for order in wanted}
    for topic, rows in records.items():
        for r in rows:
            key, value = r.key or b"", r.value or b""
            for order, needle in wanted.items():
                if needle in key or needle in value:
                    found[order].append(
                        (r.timestamp_ms, topic, r.partition, r.offset, _kind(value))
                    )
    traces: dict[str, Any] = {}
    for order, hits in found.items():
        hits.sort()
        origin = hits[0][0] if hits else 0
        seen = seen_ms.get(order)
        traces[order] = {
            "first_stamp_ms": origin,
            "watcher_saw_ms": None if seen is None else seen - origin,
            "records": [
                f"+{stamp - origin}ms {topic}[{partition}]@{offset} {kind}"
                for stamp, topic, partition, offset, kind in hits[:limit]
            ],
            "more": max(len(hits) - limit, 0),
        }
    return traces


def _kind(value: bytes) -> str:
    try:
        parsed = json.loads(value)
    except ValueError:
        return "?"
    if isinstance(parsed, dict):
        return str(parsed.get("type") or parsed.get("status") or sorted(parsed)[:3])
    return type(parsed).__name__


def write_topics(records: Mapping[str, Iterable[Record]], target: Path) -> None:
    """One ``{topic}.jsonl`` per topic under ``target``: partition, offset, stamp, key and value
    (UTF-8 text, or ``b64:...`` for bytes that are not), and a changelog record's epoch
    (:mod:`stockflow.fencing`) where it has one."""
    target.mkdir(parents=True, exist_ok=True)
    for name, rows in records.items():
        with open(target / f"{name}.jsonl", "w", encoding="utf-8") as handle:
            for r in rows:
                row = {
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp_ms": r.timestamp_ms,
                    "key": _text(r.key),
                    "value": _text(r.value),
                }
                if r.epoch is not None:
                    row["epoch"] = r.epoch
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "b64:" + base64.b64encode(data).decode("ascii")
