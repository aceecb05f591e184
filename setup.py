"""Build script: pure Python by default; ``STOCKFLOW_COMPILE=1`` compiles the hot path.

Everything about the package is in pyproject.toml. This file only adds the optional compiled
build: ``STOCKFLOW_COMPILE=1 pip install .`` (or ``pip wheel .``) compiles the decision core,
the processors and the key codec with mypyc into C extensions (a C compiler and the Python
headers are needed; mypy, pydantic and sortedcontainers are fetched into the build
environment). Measured on this machine: ``LocalPipeline`` 1.65x the pure build, a worker's
CPU per order 0.84x on 3-line orders and 0.88x on single-line ones (docs/benchmarks.md). The
sources are the same: the whole unit and agent suite runs on both (scripts/test.sh).

An editable install (``pip install -e .``) is never compiled: the extensions would sit next
to the sources in src/ and be imported instead of them, so an edit would silently not run.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path

from setuptools import setup

MYPY = "mypy==2.4.1"
"""The mypyc the compiled build was measured and tested with."""

TYPED_BY = ("pydantic", "sortedcontainers")
"""The packages whose types the compiled modules use. They must be in the build environment:
mypyc trusts the types it infers and checks them at run time, and without pydantic it
inferred ``parse()`` to return only ``str`` (a TypeError on every model it returned)."""

NOT_COMPILED = {
    # A pydantic model: mypyc cannot compile a BaseModel subclass.
    "src/stockflow/processing/legacy_state.py",
    # The memory store binds its dict's methods to the instance (a native class cannot).
    "src/stockflow/processing/store.py",
}


def compiled_sources(root: Path) -> list[str]:
    """The modules the compiled build compiles: every module of the decision core and of the
    processors (but :data:`NOT_COMPILED`), and the key codec (murmur2, key layouts)."""
    sources = [
        *sorted(root.glob("src/stockflow/core/*.py")),
        *sorted(root.glob("src/stockflow/processing/*.py")),
        root / "src/stockflow/keys.py",
    ]
    relative = [path.relative_to(root).as_posix() for path in sources]
    return [path for path in relative if path not in NOT_COMPILED]


def build_requirements(root: Path) -> list[str]:
    """mypy, and :data:`TYPED_BY` as pyproject.toml's dependencies pin them."""
    with (root / "pyproject.toml").open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    typed = [
        spec
        for spec in dependencies
        if re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0].lower() in TYPED_BY
    ]
    return [MYPY, *typed]


def _compile_requested() -> bool:
    return os.environ.get("STOCKFLOW_COMPILE", "").strip().lower() in {"1", "true", "yes"}


def main() -> None:
    if not _compile_requested():
        setup()
        return
    if any(command in sys.argv for command in ("editable_wheel", "develop")):
        sys.exit(
            "STOCKFLOW_COMPILE=1 builds a wheel; an editable install stays pure Python "
            "(its extensions would shadow the sources you edit). Use `pip install .`."
        )
    root = Path(__file__).resolve().parent
    requirements = build_requirements(root)
    building = any(command in sys.argv for command in ("bdist_wheel", "build_ext", "build"))
    try:
        from mypyc.build import mypycify
    except ImportError:
        building = False
    if not building:
        # A pass of a PEP 517 build that only asks what the build needs (mypy is then fetched
        # into the build environment) or writes the metadata: nothing to compile yet.
        setup(setup_requires=requirements)
        return
    os.chdir(root)  # mypycify takes paths relative to here
    setup(
        setup_requires=requirements,
        ext_modules=mypycify(
            # Not pyproject.toml's strict checks (scripts/test.sh runs them on the whole
            # package): a build environment holds only TYPED_BY of the dependencies, and what
            # comes from the others (Faust) is Any, which strict mode refuses.
            ["--config-file", os.devnull, "--ignore-missing-imports", *compiled_sources(root)],
            opt_level="3",
            debug_level="1",
        ),
    )


if __name__ == "__main__":
    main()
