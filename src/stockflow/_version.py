"""stockflow's version, and which build of it is installed: its own module, so that a module
the package imports (the OpenAPI document states the version) reads it without importing the
package's ``__init__``. ``__version__`` is kept equal to ``pyproject.toml``'s ``version`` (a
test holds them together)."""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Literal

__all__ = ["__version__", "build"]

__version__ = "0.1.0"

_PROBE = Path(__file__).resolve().parent / "core" / "stock"
"""A module every compiled build compiles (setup.py): the decision core's."""


def build() -> Literal["compiled", "pure"]:
    """``"compiled"`` where the hot path is mypyc's C extensions (what ``pip install .`` builds
    where it can, setup.py), ``"pure"`` where it is the Python sources (an editable install,
    ``STOCKFLOW_COMPILE=0``, or a machine without a C compiler). Python imports an extension
    module ahead of a source file of the same name, so its presence decides."""
    probes = (_PROBE.with_name(_PROBE.name + suffix) for suffix in EXTENSION_SUFFIXES)
    return "compiled" if any(path.is_file() for path in probes) else "pure"
