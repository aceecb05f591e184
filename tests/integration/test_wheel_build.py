"""Real ``pip wheel`` builds of this tree where the compiled build cannot be made: the wheel is
then the same code as pure Python, and the build says why (setup.py). The compiled default
itself is built and tested by scripts/test-compiled.sh (which fails if that build fell back).

Each build runs in a new virtualenv's pip with build isolation, as a user's ``pip install .``:
it needs the package index that installed the dev tools."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from bench.compiled import build_compiled, build_wheel, compiled_modules

ROOT = Path(__file__).resolve().parents[2]


def _pure(wheel: Path) -> None:
    assert compiled_modules(wheel) == []
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "stockflow/core/stock.py" in names  # the sources, which the install then runs
    assert "stockflow/processing/products.py" in names


@pytest.mark.timeout(300)
def test_no_c_compiler_builds_pure_python_and_says_why(tmp_path: Path) -> None:
    wheel, output = build_wheel(ROOT, tmp_path, {"CC": str(tmp_path / "no-such-cc")})
    _pure(wheel)
    assert wheel.name.endswith("-py3-none-any.whl")
    assert "stockflow: building pure Python: no C compiler on PATH" in output


@pytest.mark.timeout(600)
def test_a_compiler_that_fails_leaves_no_extension_behind(tmp_path: Path) -> None:
    # mypyc generates the C, then every compile fails: nothing half-built may be shipped (the
    # compiled modules share one library, so it is all of them or none).
    wheel, output = build_wheel(ROOT, tmp_path, {"CC": "false"})
    _pure(wheel)
    assert wheel.name.endswith("-py3-none-any.whl")  # tagged as what it is
    assert "stockflow: building pure Python: compiling failed" in output


@pytest.mark.timeout(300)
def test_pure_on_request(tmp_path: Path) -> None:
    wheel, output = build_wheel(ROOT, tmp_path, {"STOCKFLOW_COMPILE": "0"})
    _pure(wheel)
    assert "stockflow: building pure Python" not in output  # asked for: nothing to explain


@pytest.mark.timeout(300)
def test_the_compiled_build_for_tests_and_bench_refuses_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # scripts/test-compiled.sh and the bench's core section build setup.py's default; a
    # wheel that fell back to pure Python must stop them, with setup.py's reason.
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(RuntimeError, match=r"fell back to pure Python: .*no C compiler on PATH"):
        build_compiled(ROOT, tmp_path)
