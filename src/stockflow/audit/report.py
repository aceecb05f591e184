"""Showing an :class:`~stockflow.audit.findings.AuditResult`: a short text report or JSON."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from stockflow.audit.findings import AuditResult, Finding

__all__ = ["print_report", "to_json"]

SHOWN = 50
"""At most this many violations (and pending inputs) are listed; the counts cover them all."""


def to_json(result: AuditResult) -> str:
    """The whole result as one JSON document (every finding, not only the first ones)."""
    return json.dumps(result.to_dict(), indent=2, sort_keys=False)


def print_report(result: AuditResult, console: Console | None = None) -> None:
    """Counts per event type, then violations with their offsets, then a one-line verdict."""
    console = console or Console()
    console.print(_counts_table(result))
    if result.violations:
        console.print(_findings_table("Violations", result.violations, style="red"))
    if result.pending and not result.strict:
        console.print(_findings_table("Pending (no outcome yet)", result.pending, style="yellow"))
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"))
    if result.ok:
        verdict = "OK: no violation"
        if result.pending:
            verdict += f" ({len(result.pending)} input(s) still pending)"
        console.print(Text(verdict, style="bold green"))
    else:
        by_kind = ", ".join(
            f"{kind} {n}" for kind, n in sorted(result.counts["violations"].items())
        )
        console.print(
            Text(f"FAILED: {len(result.violations)} violation(s): {by_kind}", style="bold red")
        )


def _counts_table(result: AuditResult) -> Table:
    table = Table(title="stockflow audit", show_lines=False)
    table.add_column("group")
    table.add_column("type")
    table.add_column("count", justify="right")
    for group in ("inputs", "outputs", "dead_letters", "duplicates", "accounting"):
        for name, count in sorted(result.counts.get(group, {}).items()):
            table.add_row(group, name, str(count))
    return table


def _findings_table(title: str, findings: tuple[Finding, ...], *, style: str) -> Table:
    table = Table(title=title, title_style=style)
    table.add_column("kind", style=style)
    table.add_column("at")
    table.add_column("message", overflow="fold")
    for finding in findings[:SHOWN]:
        where = str(finding.at)
        if finding.related:
            where += "\nvs " + ", ".join(str(p) for p in finding.related[:3])
        table.add_row(finding.kind, where, finding.message)
    if len(findings) > SHOWN:
        table.add_row("...", "", f"{len(findings) - SHOWN} more (see --json)")
    return table
