"""``stockflow audit``: an independent check of the worker's outputs against its inputs.

It reads the input topics (``orders``, ``inventory``) and the output topics (``reservations``,
dead letters) from the beginning, parses them with the standard library's ``json`` and checks,
without the worker's tables or code: one distinct outcome per order, no oversold product, a sane
life for every reservation, dead letters that carry their input's bytes, and every input
accounted for. See :mod:`stockflow.audit.checks` for the exact rules.

From Python::

    from stockflow.audit import audit_topics

    result = audit_topics("127.0.0.1:9092", settle=30, strict=True)
    assert result.ok, result.violations
"""

from stockflow.audit.checks import audit_records
from stockflow.audit.findings import AuditResult, Finding, Position
from stockflow.audit.report import print_report, to_json
from stockflow.audit.runner import AuditTopics, audit_topics, audit_topics_async

__all__ = [
    "AuditResult",
    "AuditTopics",
    "Finding",
    "Position",
    "audit_records",
    "audit_topics",
    "audit_topics_async",
    "print_report",
    "to_json",
]
