"""Offline replay and recording of event streams as JSON lines.

``stockflow replay`` feeds a recorded stream through :class:`LocalPipeline` (the processors the
worker runs, routed in-process, clocked by the records' own timestamps) and prints what stockflow
decides; ``stockflow record`` writes the topics of a live cluster in the same format, so that an
incident can be replayed on a laptop. Nothing here touches a broker or a clock.

Line format
    One JSON object per line, ``\\n``-terminated::

        {"key": "o-1", "timestamp": 1764061200000, "topic": "orders",
         "value": {"type": "OrderPaid", "order_id": "o-1"}}

    ``topic``
        The topic name. On input the configured names (``Settings.orders_topic``,
        ``Settings.inventory_topic``) are replayed; the contract names ``orders`` and
        ``inventory`` are accepted as well unless configured to mean another topic. Lines of
        stockflow's other topics (outputs, internal) are skipped, so a recording that includes
        ``reservations`` replays; any other topic is an error. On output: the configured
        ``reservations_topic`` or ``dead_letter_topic``.
    ``key``
        The record key as a string, or ``null``. Keys that are not UTF-8 are written as
        ``"key_b64"`` (base64) instead of ``"key"``.
    ``value``
        The record value: a JSON object (the event), a string (any other bytes that are
        UTF-8, replayed as exactly those bytes, e.g. ``"not json"`` or ``"[1, 2]"``), or ``null``
        (a tombstone). Values that are not UTF-8 are written as ``"value_b64"`` instead. An
        object is replayed as compact JSON in the file's key order, so the decisions are the
        same but the bytes may differ from the original (whitespace, escapes); this shows only in
        a :class:`~stockflow.models.DeadLetter`'s ``value_b64``.
    ``timestamp``
        The record timestamp, epoch milliseconds (the only clock stockflow decides by). Optional
        on input: default the previous line's timestamp, or 0 on the first line.

    Written canonically: keys sorted, no spaces, ASCII only (``\\uXXXX`` escapes), so the same
    input always gives the same bytes. Blank input lines are ignored.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stockflow.core.policy import Policy
from stockflow.errors import StockflowError
from stockflow.processing.pipeline import Emitted, LocalPipeline
from stockflow.settings import Settings
from stockflow.topics import topic_names

if TYPE_CHECKING:
    from stockflow.kafka import Record

__all__ = [
    "InputRecord",
    "ReplayError",
    "format_line",
    "parse_lines",
    "policy_from_settings",
    "record_lines",
    "replay",
    "replay_lines",
]

_FIELDS = frozenset({"topic", "key", "key_b64", "value", "value_b64", "timestamp"})


class ReplayError(StockflowError, ValueError):
    """A line of a recorded stream could not be read; the message names the line (1-based)."""


@dataclass(frozen=True, slots=True)
class InputRecord:
    """One parsed line: a record as the broker would deliver it."""

    topic: str
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


# --- canonical JSON -------------------------------------------------------------------------------


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} does not fit a double")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return result


def _loads(text: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no overflowing numbers, no duplicate keys (each would
    come back from :func:`_compact` as different bytes or a different meaning)."""
    return json.loads(
        text,
        parse_constant=_reject_constant,
        parse_float=_finite_float,
        object_pairs_hook=_unique_keys,
    )


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _compact(obj: Any) -> bytes:
    """An object value as record bytes: compact, in its own key order, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def format_line(topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int) -> str:
    """One record as a canonical line (without the newline); see the module docstring."""
    line: dict[str, Any] = {"topic": topic, "timestamp": timestamp_ms}
    text = _utf8(key)
    if key is None or text is not None:
        line["key"] = text
    else:
        line["key_b64"] = base64.b64encode(key).decode("ascii")
    text = _utf8(value)
    if value is None:
        line["value"] = None
    elif text is None:
        line["value_b64"] = base64.b64encode(value).decode("ascii")
    else:
        parsed = _as_object(text)
        line["value"] = text if parsed is None else parsed
    return _canonical(line)


def _utf8(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, if it is one that survives the round trip."""
    try:
        parsed = _loads(text)
        if isinstance(parsed, dict):
            _compact(parsed)  # lone surrogates (\ud800) cannot be written back as UTF-8
            return parsed
    except (ValueError, RecursionError, UnicodeEncodeError):
        pass
    return None


# --- reading lines --------------------------------------------------------------------------------


def parse_lines(lines: Iterable[str]) -> Iterator[tuple[int, InputRecord]]:
    """``(line number, record)`` for every non-blank line; raises :class:`ReplayError`."""
    timestamp = 0
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = _parse(raw.rstrip("\r\n"), default_timestamp=timestamp)
        except json.JSONDecodeError as exc:
            # json's own message ends in "line 1 column 5 (char 4)": a second, wrong line number.
            raise ReplayError(
                f"line {number}: not JSON ({exc.msg} at column {exc.pos + 1})"
            ) from None
        except (ValueError, RecursionError, UnicodeEncodeError, binascii.Error) as exc:
            raise ReplayError(f"line {number}: {exc}") from None
        timestamp = record.timestamp_ms
        yield number, record


def _parse(raw: str, *, default_timestamp: int) -> InputRecord:
    line = _loads(raw)
    if not isinstance(line, dict):
        raise ValueError("a line must be a JSON object")
    unknown = sorted(set(line) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    topic = line.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ValueError('"topic" must be a non-empty string')
    timestamp = line.get("timestamp", default_timestamp)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise ValueError('"timestamp" must be an integer (epoch ms)')
    key = _bytes_field(line, "key", allow_object=False)
    value = _bytes_field(line, "value", allow_object=True)
    return InputRecord(topic=topic, key=key, value=value, timestamp_ms=timestamp)


def _bytes_field(line: Mapping[str, Any], name: str, *, allow_object: bool) -> bytes | None:
    b64 = f"{name}_b64"
    if name in line and b64 in line:
        raise ValueError(f'give "{name}" or "{b64}", not both')
    if b64 in line:
        encoded = line[b64]
        if not isinstance(encoded, str):
            raise ValueError(f'"{b64}" must be a base64 string')
        return base64.b64decode(encoded, validate=True)
    if name not in line:
        if allow_object:
            raise ValueError(f'"{name}" is missing (write null for a tombstone)')
        return None
    data = line[name]
    if data is None:
        return None
    if isinstance(data, str):
        return data.encode("utf-8")
    if allow_object and isinstance(data, dict):
        return _compact(data)
    kinds = "an object, a string or null" if allow_object else "a string or null"
    raise ValueError(f'"{name}" must be {kinds}')


# --- replay ---------------------------------------------------------------------------------------


def policy_from_settings(settings: Settings) -> Policy:
    """The decision policy the worker derives from ``settings``."""
    return Policy.from_seconds(
        reservation_ttl=settings.reservation_ttl,
        saga_timeout=settings.saga_timeout,
        retention=settings.retention,
        max_lines=settings.max_lines,
        forward_single_line=settings.single_line_at_writer,
    )


def _input_roles(settings: Settings) -> dict[str, str]:
    roles = {settings.orders_topic: "orders", settings.inventory_topic: "inventory"}
    taken = set(settings.all_topics())
    for contract in ("orders", "inventory"):
        if contract not in taken:
            roles[contract] = contract
    return roles


def replay(
    records: Iterable[tuple[int, InputRecord]],
    settings: Settings | None = None,
    *,
    until_ms: int | None = None,
) -> list[tuple[str, Emitted]]:
    """Run ``records`` through a fresh :class:`LocalPipeline`; ``(topic name, record)`` of every
    output, in the order the pipeline emitted them.

    ``settings`` (default: ``Settings()``, i.e. the ``STOCKFLOW_*`` environment) gives the
    policy, the partition count and the topic names. ``until_ms`` (default none) moves the clock
    on after the last record, firing the timers due by then (expiries, saga deadlines).
    Values are as the pipeline emitted them: a DeadLetter names its source topic by role
    (``orders``); :func:`replay_lines` rewrites it to the configured name, as the worker has it.
    """
    settings = settings if settings is not None else Settings()
    pipeline = LocalPipeline(policy=policy_from_settings(settings), partitions=settings.partitions)
    roles = _input_roles(settings)
    known = set(settings.all_topics())
    for number, record in records:
        role = roles.get(record.topic)
        if role is None:
            if record.topic in known:
                continue  # an output or internal topic of a full recording
            raise ReplayError(
                f"line {number}: topic {record.topic!r} is not an input topic "
                f"(expected {settings.orders_topic!r} or {settings.inventory_topic!r})"
            )
        pipeline.process(role, record.key, record.value, record.timestamp_ms)
    if until_ms is not None:
        pipeline.advance(until_ms)
    names = topic_names(settings)
    return [(names[out.role], out) for out in pipeline.emitted]


def replay_lines(
    lines: Iterable[str], settings: Settings | None = None, *, until_ms: int | None = None
) -> list[str]:
    """Recorded lines in, output lines out (without newlines); see :func:`replay` for the
    arguments and the module docstring for the format. Raises :class:`ReplayError` for a line
    that cannot be read."""
    settings = settings if settings is not None else Settings()
    names = topic_names(settings)
    outputs = replay(parse_lines(lines), settings, until_ms=until_ms)
    return [_output_line(topic, out, names) for topic, out in outputs]


def _output_line(topic: str, out: Emitted, names: Mapping[str, str]) -> str:
    value = out.value
    if out.role == "dead_letters":
        # The pipeline names the source by role; the worker by the topic it consumed.
        letter = json.loads(value)
        source = str(letter.get("topic", ""))
        letter["topic"] = names.get(source, source)
        value = _compact(letter)
    return format_line(topic, out.key, value, out.timestamp_ms)


# --- recording ------------------------------------------------------------------------------------


def record_lines(records: Iterable[Record]) -> list[str]:
    """Records read from the broker as lines (without newlines), in replay order.

    Each partition's records stay in offset order (the order the worker consumed them); the
    partitions are merged by timestamp, ties broken by partition, offset, then topic. With
    timestamps that only grow within a partition (the usual CreateTime case) this is exactly
    the order of ``(timestamp, partition, offset)``.
    """
    logs: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for record in records:
        logs[(record.topic, record.partition)].append(record)
    ordered = [sorted(logs[log], key=lambda r: r.offset) for log in sorted(logs)]
    merged = heapq.merge(*ordered, key=lambda r: (r.timestamp_ms, r.partition, r.offset, r.topic))
    return [format_line(r.topic, r.key, r.value, r.timestamp_ms) for r in merged]
