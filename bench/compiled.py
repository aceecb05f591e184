"""The core section on the compiled build as well, in the same run as the pure one.

The compiled build (setup.py: what ``pip install .`` builds where it can) is not what the
editable install the bench runs from imports; its figures used to come from
a separate command (a wheel built by hand, then ``PYTHONPATH=<wheel> python -m bench --only
core``), at another minute than the pure build's. Here the core section builds it from the
source tree the measured stockflow is imported from (its ``src/``, ``pyproject.toml``,
``setup.py`` and ``README.md``, copied into a temporary directory, so the tree gets no
``build/``), and runs the same layers in a child process with the unpacked wheel first on its
``PYTHONPATH``. A build that cannot happen (no C compiler, no package index, stockflow
imported already compiled or not from a source tree) is reported with its reason, and the
pure rows stand alone.

:func:`build_compiled` is also the build ``scripts/test-compiled.sh`` tests (``python -m
bench.compiled TREE DEST``): the tests and the bench run one build, made one way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.core import CoreResult

__all__ = [
    "BUILD_TIMEOUT",
    "COMPILED",
    "build_compiled",
    "build_wheel",
    "compiled_modules",
    "compiled_source_tree",
    "main",
    "run_core_compiled",
]

BUILD_TIMEOUT = 600.0
"""Seconds the wheel build may take (~40 s here: mypy type-checks, then gcc compiles)."""

COMPILED = "-compiled"
"""Appended to each layer's key (and a note to its name) for the compiled build's rows."""

_BENCH_ROOT = Path(__file__).resolve().parent.parent
"""The directory holding ``bench/``: the child process imports the bench from here."""

_TREE_FILES = ("pyproject.toml", "setup.py", "README.md")


def compiled_source_tree() -> tuple[Path | None, str]:
    """The source tree of the stockflow this process imports, and ``""``; or ``None`` and
    why the compiled build cannot be made from it."""
    from importlib.machinery import EXTENSION_SUFFIXES

    import stockflow.core.stock

    if str(stockflow.core.stock.__file__).endswith(tuple(EXTENSION_SUFFIXES)):
        return None, "the stockflow measured is the compiled build already"
    root = Path(stockflow.core.stock.__file__).resolve().parents[3]
    missing = [name for name in _TREE_FILES if not (root / name).is_file()]
    if missing:
        return None, f"stockflow is not imported from a source tree ({root} has no {missing[0]})"
    return root, ""


def build_wheel(tree: Path, into: Path, environ: dict[str, str] | None = None) -> tuple[Path, str]:
    """The wheel ``pip wheel`` makes of ``tree`` in ``into`` (an empty directory), and the
    build's output (setup.py's lines among pip's), as a user's
    ``pip install .`` in a new virtualenv builds it, with ``environ`` added to this process's
    environment (``STOCKFLOW_COMPILE`` removed first: setup.py's default is what is built
    unless ``environ`` says otherwise). Raises RuntimeError (or OSError, SubprocessError)
    saying why it could not be built."""
    copy = into / "tree"
    copy.mkdir()
    for name in _TREE_FILES:
        shutil.copy2(tree / name, copy / name)
    shutil.copytree(
        tree / "src",
        copy / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so"),
    )
    # Built by a new, empty virtualenv's pip, as `pip install .` in a user's new virtualenv
    # builds it. mypy (mypyc) looks for the packages it type-checks against in the
    # site-packages of the interpreter that builds, even from pip's isolated build
    # environment: from a dev virtualenv it would see Faust and every other dependency, which a
    # user's build does not.
    builder = into / "builder"
    subprocess.run([sys.executable, "-m", "venv", str(builder)], check=True, timeout=120)
    wheel_dir = into / "wheel"
    # -v: setup.py's own lines (why a build fell back to pure Python) are shown only so.
    command = [str(builder / "bin" / "python"), "-m", "pip", "wheel", "-v", "--no-deps"]
    command += ["-w", str(wheel_dir), str(copy)]  # paths: a bare name is looked up as a package
    env = {k: v for k, v in os.environ.items() if k != "STOCKFLOW_COMPILE"}
    env.update(environ or {})
    done = subprocess.run(
        command, cwd=into, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    wheels = sorted(wheel_dir.glob("stockflow-*.whl"))
    if done.returncode != 0 or not wheels:
        raise RuntimeError(f"the wheel build failed (exit {done.returncode}): {_last(done)}")
    return wheels[0], done.stdout + done.stderr


def compiled_modules(wheel: Path) -> list[str]:
    """The C extension modules in ``wheel`` (none in a pure Python one)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    with zipfile.ZipFile(wheel) as archive:
        return [name for name in archive.namelist() if name.endswith(tuple(EXTENSION_SUFFIXES))]


def build_compiled(tree: Path, into: Path) -> Path:
    """The compiled wheel of ``tree`` (setup.py's default build), built in ``into`` (an empty
    directory) and unpacked there: the directory to put on PYTHONPATH. Raises RuntimeError (or
    OSError, SubprocessError) saying why it could not be built, a build that fell back to pure
    Python included."""
    wheel, output = build_wheel(tree, into)
    if not compiled_modules(wheel):
        said = [line.strip() for line in output.splitlines() if "stockflow: building pure" in line]
        raise RuntimeError(f"the build fell back to pure Python: {(said or ['(no reason)'])[-1]}")
    unpacked = into / "src"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    return unpacked


def _last(done: subprocess.CompletedProcess[str]) -> str:
    """What went wrong, in a line: the build's own last ``error:`` (a compiler that failed,
    say), which pip follows with its generic "Failed to build"; else the last line that is not
    a warning (pip warns about every package index location it cannot read, after the error).
    At most :data:`_SAID` characters."""
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    said = errors or [line for line in lines if not line.startswith("WARNING:")]
    line = (said or lines or ["(no output)"])[-1]
    return line if len(line) <= _SAID else line[: _SAID - 3] + "..."


_SAID = 300


_CHILD = """
import json, sys
from dataclasses import asdict
from importlib.machinery import EXTENSION_SUFFIXES
import stockflow.core.stock
from bench.core import run_core
if not stockflow.core.stock.__file__.endswith(tuple(EXTENSION_SUFFIXES)):
    sys.exit("the child imported " + stockflow.core.stock.__file__ + ", not the compiled build")
count, products, rounds = (int(arg) for arg in sys.argv[1:4])
print(json.dumps([asdict(r) for r in run_core(count, products, rounds)]))
"""


def run_core_compiled(count: int, products: int, rounds: int) -> tuple[list[CoreResult], str]:
    """:func:`bench.core.run_core` on the compiled build of the measured tree, with its layers'
    keys suffixed :data:`COMPILED`; or no rows and why not. The child's own baseline row and
    its default-collector row are left out (the pure run has both)."""
    tree, reason = compiled_source_tree()
    if tree is None:
        return [], reason
    with tempfile.TemporaryDirectory(prefix="stockflow-bench-compiled-") as scratch:
        try:
            src = build_compiled(tree, Path(scratch))
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            return [], str(error)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(_BENCH_ROOT)])}
        command = [sys.executable, "-c", _CHILD, str(count), str(products), str(rounds)]
        done = subprocess.run(
            command, cwd=_BENCH_ROOT, env=env, capture_output=True, text=True, timeout=600
        )
    if done.returncode != 0:
        return [], f"the compiled run failed (exit {done.returncode}): {_last(done)}"
    rows = [CoreResult(**{**row, "rates": tuple(row["rates"])}) for row in json.loads(done.stdout)]
    return [
        CoreResult(
            row.key + COMPILED,
            f"{row.name}, compiled build",
            row.decisions,
            row.seconds,
            row.rates,
        )
        for row in rows
        if row.key not in ("baseline", "pipeline-default-gc")
    ], ""


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.compiled TREE DEST``: :func:`build_compiled` of the source tree TREE in
    the empty directory DEST; prints the directory to put on PYTHONPATH, or why it failed."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.compiled TREE DEST", file=sys.stderr)
        return 2
    try:
        print(build_compiled(Path(args[0]).resolve(), Path(args[1]).resolve()))
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        print(f"bench.compiled: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
