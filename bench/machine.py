"""Where a ``python -m bench`` run ran: the machine, the date and the stockflow code measured
(its commit, and whether it is the compiled build), for the report's header and JSON."""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["build_label", "machine", "measured_commit"]


def machine() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    free = run("free", "-g").splitlines()
    return {
        "commit": measured_commit(run) + build_label(),
        "nproc": run("nproc"),
        "memory": " ".join(free[1].split()[:2]) + " GiB" if len(free) > 1 else "?",
        "free_g": free,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def build_label() -> str:
    """`` (compiled)`` when the stockflow measured is the compiled build (setup.py's default
    wheel), imported ahead of the editable install through PYTHONPATH."""
    from importlib.machinery import EXTENSION_SUFFIXES

    import stockflow.core.stock

    compiled = str(stockflow.core.stock.__file__).endswith(tuple(EXTENSION_SUFFIXES))
    return " (compiled)" if compiled else ""


def measured_commit(run: Any) -> str:
    """The stockflow code measured: the work tree's commit (``+dirty src`` if ``src/`` has
    uncommitted changes). When stockflow is imported from outside this tree: a snapshot's
    (``PYTHONPATH=SNAPSHOT/src`` with its commit in ``SNAPSHOT/COMMIT``, e.g. from ``git
    archive HEAD src``), or else the checkout it is imported from (a bench started in another
    worktree imports the virtualenv's editable install), by its own git."""
    import stockflow

    package = Path(stockflow.__file__).resolve().parent
    if Path("src").resolve() in package.parents:
        dirty = run("git", "status", "--porcelain", "--", "src")
        return str(run("git", "rev-parse", "--short", "HEAD")) + ("+dirty src" if dirty else "")
    root = package.parent.parent
    marker = root / "COMMIT"
    if marker.exists():
        return f"{marker.read_text().strip()} (snapshot {root})"
    commit = run("git", "-C", str(root), "rev-parse", "--short", "HEAD") or "?"
    dirty = run("git", "-C", str(root), "status", "--porcelain", "--", "src")
    return f"{commit}{'+dirty src' if dirty else ''} (imported from {root})"
