"""What a run needs, checked before anything starts: a missing package fails the run at once,
with the command that installs it, instead of a peer that dies on import while the harness
waits for its answers.

``quix``       the Quix Streams peer: ``quixstreams`` (the ``bench`` extra).
``--profile``  ``py-spy`` on the ``PATH``.
charts         ``matplotlib`` (the ``bench`` extra), when ``--json`` or ``--charts`` is given.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterable

__all__ = ["INSTALL_BENCH", "SYSTEM_SECTIONS", "missing", "require"]

INSTALL_BENCH = "pip install -e '.[bench]'"
SYSTEM_SECTIONS = frozenset({"throughput", "latency"})
"""The sections that run every selected system (the others run stockflow alone)."""


def _module_found(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def missing(
    sections: Iterable[str],
    systems: Iterable[str],
    *,
    charts: bool,
    found: Callable[[str], bool] | None = None,
    which: Callable[[str], str | None] | None = None,
) -> list[str]:
    """One line per missing requirement of this run (empty: nothing is missing). ``found``
    (is a module importable) and ``which`` (an executable's path) default to the real checks."""
    found = found or _module_found
    which = which or shutil.which
    sections = set(sections)
    problems = []
    if sections & SYSTEM_SECTIONS and "quix" in set(systems) and not found("quixstreams"):
        problems.append(
            "the Quix Streams peer (system 'quix') needs the package quixstreams: "
            f"{INSTALL_BENCH}, or leave it out with --systems"
        )
    if charts and not found("matplotlib"):
        problems.append(
            f"the charts (--json/--charts) need the package matplotlib: {INSTALL_BENCH}, "
            "or pass --no-charts"
        )
    if "profile" in sections and which("py-spy") is None:
        problems.append("the profile section needs py-spy on the PATH: pip install py-spy")
    return problems


def require(sections: Iterable[str], systems: Iterable[str], *, charts: bool) -> None:
    """Raise :class:`SystemExit` (exit status 1) naming every missing requirement."""
    problems = missing(sections, systems, charts=charts)
    if problems:
        raise SystemExit("python -m bench: cannot run:\n  " + "\n  ".join(problems))
