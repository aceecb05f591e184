"""What an audit finds: positions in topics, findings (violations and pending inputs), results.

Everything here is plain data with a JSON form (:meth:`AuditResult.to_dict`), so that the report,
the ``--json`` output and Python callers (chaos tests) all see the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AuditResult", "Finding", "Position"]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a record sits: ``topic[partition]@offset``."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def to_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation (or one input still pending) found by a check.

    ``check`` names the check (``outcomes``, ``stock``, ``lifecycle``, ``dead_letters``,
    ``accounting``, ``format``); ``kind`` is the precise rule that failed, e.g.
    ``conflicting_outcome``. ``at`` is the record that shows it; ``related`` are the records it
    contradicts (the first outcome, the earlier release...).
    """

    check: str
    kind: str
    message: str
    at: Position
    order_id: str | None = None
    product_id: str | None = None
    related: tuple[Position, ...] = ()
    details: Mapping[str, int | str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "kind": self.kind,
            "message": self.message,
            "at": self.at.to_dict(),
            "order_id": self.order_id,
            "product_id": self.product_id,
            "related": [position.to_dict() for position in self.related],
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class AuditResult:
    """The outcome of one audit. ``ok`` is true when there is no violation.

    ``counts`` groups counters: ``inputs`` and ``outputs`` per event type (every record,
    re-emissions included), ``dead_letters``, ``duplicates`` (identical re-emissions per type),
    ``accounting`` (input records per status: decided, applied, dead_lettered, pending) and
    ``violations`` per kind. ``pending`` lists input records without an outcome yet: not
    violations unless the audit was strict (then they are reported as violations as well).
    """

    violations: tuple[Finding, ...]
    pending: tuple[Finding, ...]
    counts: Mapping[str, Mapping[str, int]]
    notes: tuple[str, ...] = ()
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "strict": self.strict,
            "counts": {name: dict(sorted(group.items())) for name, group in self.counts.items()},
            "violations": [finding.to_dict() for finding in self.violations],
            "pending": [finding.to_dict() for finding in self.pending],
            "notes": list(self.notes),
        }
