"""Build script: a wheel compiles the hot path with mypyc where it can, else is pure Python.

Everything about the package is in pyproject.toml. This file only adds the compiled build, as
mypy and black ship theirs: ``pip install .`` (or ``pip wheel .``) compiles the decision core,
the processors, the key codec and the table adapter with mypyc into C extensions, and falls
back to the same code as pure Python where it cannot (no C compiler, no mypyc in a
``--no-build-isolation`` build, a compile that fails). Measured on this machine:
``LocalPipeline`` 1.63-1.71x the pure build, a worker's CPU per order 0.84x on 3-line orders
and 0.88x on single-line ones (docs/benchmarks.md). The sources are the same: the whole unit
and agent suite runs on both (scripts/test.sh). ``stockflow --version`` and the worker's first
log lines say which build runs.

``STOCKFLOW_COMPILE`` chooses (read by :func:`compile_mode`):

- unset, empty or ``auto``: compile where possible, else pure Python;
- ``1``/``true``/``yes``: compile, and fail the build where it cannot (a CI's or a packager's
  build, which must not ship the slower build without noticing);
- ``0``/``false``/``no``: pure Python.

An editable install (``pip install -e .``) is never compiled: the extensions would sit next
to the sources in src/ and be imported instead of them, so an edit would silently not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

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

TABLE_ADAPTER = ("overlay.py", "ordered.py", "recent.py", "store.py")
"""The table adapter's modules, on every read and write of a processed batch (the rest of
``stockflow.tables`` declares a Faust service and Protocols, which are not compiled). Compiled,
a worker's CPU per multi-line order was 0.95x and its p50 at part load 0.96-0.97x
(docs/benchmarks.md)."""

Mode = Literal["auto", "required", "pure"]

_MODES: dict[str, Mode] = {
    "": "auto",
    "auto": "auto",
    "1": "required",
    "true": "required",
    "yes": "required",
    "0": "pure",
    "false": "pure",
    "no": "pure",
}

_EDITABLE = ("editable_wheel", "develop")
_BUILDING = ("bdist_wheel", "build_ext", "build")


def compiled_sources(root: Path) -> list[str]:
    """The modules the compiled build compiles: every module of the decision core and of the
    processors (but :data:`NOT_COMPILED`), the key codec (murmur2, key layouts) and the table
    adapter (:data:`TABLE_ADAPTER`)."""
    sources = [
        *sorted(root.glob("src/stockflow/core/*.py")),
        *sorted(root.glob("src/stockflow/processing/*.py")),
        root / "src/stockflow/keys.py",
        *(root / "src/stockflow/tables" / name for name in TABLE_ADAPTER),
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


def compile_mode(environ: dict[str, str] | os._Environ[str]) -> Mode:
    """What ``STOCKFLOW_COMPILE`` asks for. A value it does not know stops the build: a typo
    must not choose a build silently."""
    raw = environ.get("STOCKFLOW_COMPILE", "")
    mode = _MODES.get(raw.strip().lower())
    if mode is None:
        sys.exit(f"STOCKFLOW_COMPILE={raw!r}: use 1 (compile or fail), 0 (pure Python) or auto")
    return mode


def c_compiler(environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The C compiler the build would run (``CC``, else Python's own), if it is on PATH."""
    command = environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc")
    words = shlex.split(command)
    return shutil.which(words[0]) if words else None


@dataclass(frozen=True)
class Plan:
    """What :func:`main` hands setuptools."""

    compile: bool = False
    """mypycify the sources (a build pass)."""
    requires: tuple[str, ...] = ()
    """``setup_requires``: what a PEP 517 frontend installs in the build environment."""
    optional: bool = False
    """A failed compile falls back to pure Python (auto) instead of failing the build."""
    note: str = ""
    """Why a wheel is pure Python although compiling was asked for (printed)."""
    error: str = ""
    """Why the build stops (required, but impossible)."""


def plan(
    mode: Mode, argv: list[str], requirements: list[str], has_mypyc: bool, compiler: str | None
) -> Plan:
    """What this run of setup.py does (a pure function of what it finds, for the tests)."""
    if mode == "pure":
        return Plan()
    if any(command in argv for command in _EDITABLE):
        if mode == "required":
            return Plan(
                error="STOCKFLOW_COMPILE=1 builds a wheel; an editable install stays pure Python "
                "(its extensions would shadow the sources you edit). Use `pip install .`."
            )
        return Plan()
    if not any(command in argv for command in _BUILDING):
        # A pass of a PEP 517 build that only asks what the build needs (``egg_info``: mypy is
        # then fetched into the build environment) or writes the metadata. In auto mode mypy
        # is asked for in that pass alone: in a later one setuptools would fetch it itself, where
        # a --no-build-isolation build without mypy should fall back instead.
        wanted = mode == "required" or "egg_info" in argv
        return Plan(requires=tuple(requirements) if wanted else ())
    if mode == "required":
        if not has_mypyc:
            return Plan(requires=tuple(requirements))  # setuptools fetches it, as it always did
        return Plan(compile=True, requires=tuple(requirements))
    if not has_mypyc:
        return Plan(note=f"mypyc is not in the build environment (it needs {requirements[0]})")
    if compiler is None:
        return Plan(note="no C compiler on PATH (CC, or Python's own)")
    return Plan(compile=True, optional=True)


class FallbackBuildExt(build_ext):
    """``build_ext`` that leaves the wheel pure Python when the C compiler fails (auto mode):
    every extension or none, since the compiled modules share one library."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, ExecError, PlatformError, OSError) as error:
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            # And a wheel tagged as pure Python, as the build without a compiler is:
            # bdist_wheel chose its tag from the extensions before they failed.
            self.distribution.ext_modules = []
            wheel = self.distribution.command_obj.get("bdist_wheel")
            if wheel is not None:
                wheel.root_is_pure = True
            first = (str(error).splitlines() or [""])[0]
            _say(f"compiling failed ({first[:200]}{'...' if len(first) > 200 else ''})")


def _say(why: str) -> None:
    print(
        f"stockflow: building pure Python: {why}. It runs the same code, slower "
        "(docs/benchmarks.md); STOCKFLOW_COMPILE=1 makes this an error.",
        file=sys.stderr,
    )


def main() -> None:
    root = Path(__file__).resolve().parent
    mypycify: Any = None
    # Without mypyc, auto builds pure Python (and says so); required has setuptools fetch it.
    with contextlib.suppress(ImportError):
        from mypyc.build import mypycify
    chosen = plan(
        compile_mode(os.environ),
        sys.argv,
        build_requirements(root),
        mypycify is not None,
        c_compiler(os.environ),
    )
    if chosen.error:
        sys.exit(chosen.error)
    if chosen.note:
        _say(chosen.note)
    options: dict[str, Any] = {"setup_requires": list(chosen.requires)}
    if chosen.compile and mypycify is not None:
        os.chdir(root)  # mypycify takes paths relative to here
        arguments = [
            # Not pyproject.toml's strict checks (scripts/test.sh runs them on the whole
            # package): a build environment holds only TYPED_BY of the dependencies, and what
            # comes from the others (Faust) is Any, which strict mode refuses.
            *("--config-file", os.devnull, "--ignore-missing-imports"),
            *compiled_sources(root),
        ]
        try:
            options["ext_modules"] = mypycify(arguments, opt_level="3", debug_level="1")
        except (Exception, SystemExit) as error:  # mypyc exits on a type error
            if not chosen.optional:
                raise
            _say(f"mypyc failed ({error!r})")
        if chosen.optional:
            options["cmdclass"] = {"build_ext": FallbackBuildExt}
    setup(**options)


if __name__ == "__main__":
    main()
