"""The web layer depends on a narrow ReadSource, not on stockflow.application (issue 14: the
cycle application -> web -> views -> application is gone, also for type checkers)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import stockflow.web

WEB = Path(stockflow.web.__file__).parent


IMPORT = re.compile(r"^\s*(?:from|import)\s+([\w.]+)", re.MULTILINE)


def _imported_modules(path: Path) -> set[str]:
    # A text scan, not ast.parse: an earlier test in the session can leave CPython 3.11's AST
    # recursion counter off ("AST constructor recursion depth mismatch").
    return set(IMPORT.findall(path.read_text()))


def test_no_web_module_imports_the_application() -> None:
    modules = sorted(WEB.glob("*.py"))
    assert len(modules) >= 9
    offenders = {
        path.name: sorted(name for name in _imported_modules(path) if "application" in name)
        for path in modules
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_importing_every_web_module_loads_no_application() -> None:
    names = sorted(f"stockflow.web.{path.stem}" for path in WEB.glob("*.py"))
    code = (
        f"import importlib, sys; [importlib.import_module(n) for n in {names!r}]; "
        "print('stockflow.application' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "False"


def test_stockflow_satisfies_read_source() -> None:
    """What install() returns carries every lookup ReadSource names (mypy checks the types
    where install() passes it to register_views)."""
    from stockflow.application import Stockflow
    from stockflow.web.source import ReadSource

    wanted = {name for name in vars(ReadSource) if not name.startswith("_")}
    assert wanted == {"settings", "product_table", "order_table", "product_store", "orders"}
    assert wanted <= set(Stockflow.__dataclass_fields__)
