"""A small, explicit public API (STYLE.md item 3, after httpx's ``test_exported_members.py``)
and no side effects at import (item 10)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import textwrap

import pytest

import stockflow

MODULES = sorted(
    module.name for module in pkgutil.walk_packages(stockflow.__path__, prefix="stockflow.")
)


def test_all_is_sorted_and_unique() -> None:
    assert stockflow.__all__ == sorted(set(stockflow.__all__))


def test_every_exported_name_resolves() -> None:
    # ``app`` builds the standalone Faust app; it is resolved in a fresh interpreter below.
    for name in stockflow.__all__:
        if name != "app":
            assert getattr(stockflow, name) is not None, name


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = stockflow.nothing_here


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_its_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def run_fresh(code: str) -> None:
    """Run ``code`` in a new interpreter; its assertion message is the failure message."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_import_has_no_side_effects() -> None:
    run_fresh(
        """
        import logging, sys, threading
        argv = list(sys.argv)
        import stockflow
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"faust", "aiokafka", "mode"})
        assert not loaded, f"import stockflow loaded {loaded[:5]}"
        assert threading.active_count() == 1, threading.enumerate()
        assert logging.getLogger().handlers == [], logging.getLogger().handlers
        assert sys.argv == argv
        """
    )


def test_the_standalone_app_is_built_on_first_access_only() -> None:
    run_fresh(
        """
        import sys
        import stockflow
        assert "faust" not in sys.modules
        app = stockflow.app
        import faust
        assert isinstance(app, faust.App), type(app)
        assert stockflow.app is app
        assert isinstance(app.stockflow, stockflow.Stockflow)
        """
    )


def test_the_version_is_pyprojects() -> None:
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert stockflow.__version__ == tomllib.loads(pyproject.read_text())["project"]["version"]
