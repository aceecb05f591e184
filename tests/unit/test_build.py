"""Which build setup.py makes (compiled where it can, else pure Python) and how an installed
stockflow says which build it is. The real builds, a failing compiler's included, are in
tests/integration/test_wheel_build.py; scripts/test-compiled.sh builds and tests the default."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

import stockflow
import stockflow.core.stock
from stockflow import _version
from stockflow.cli import main

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ["mypy==2.4.1", "pydantic>=2.7,<3"]
WHEEL = ["setup.py", "bdist_wheel"]


@pytest.fixture(scope="module")
def setup_py() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("stockflow_setup_py", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(module)  # main() runs only as __main__
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("", "auto"),
        ("auto", "auto"),
        (" AUTO ", "auto"),
        ("1", "required"),
        ("true", "required"),
        ("Yes", "required"),
        ("0", "pure"),
        ("false", "pure"),
        ("no", "pure"),
    ],
)
def test_the_variable_chooses_the_mode(setup_py: ModuleType, value: str, mode: str) -> None:
    assert setup_py.compile_mode({"STOCKFLOW_COMPILE": value}) == mode
    assert setup_py.compile_mode({}) == "auto"


def test_an_unknown_value_stops_the_build(setup_py: ModuleType) -> None:
    with pytest.raises(SystemExit, match="STOCKFLOW_COMPILE='maybe'"):
        setup_py.compile_mode({"STOCKFLOW_COMPILE": "maybe"})


def test_a_wheel_compiles_by_default_and_falls_back_where_it_cannot(setup_py: ModuleType) -> None:
    plan, gcc = setup_py.plan, "/usr/bin/gcc"
    assert plan("auto", WHEEL, REQUIREMENTS, True, gcc) == setup_py.Plan(
        compile=True, optional=True
    )
    no_mypyc = plan("auto", WHEEL, REQUIREMENTS, False, gcc)
    assert not no_mypyc.compile and "mypy==2.4.1" in no_mypyc.note and not no_mypyc.error
    no_cc = plan("auto", WHEEL, REQUIREMENTS, True, None)
    assert not no_cc.compile and "no C compiler" in no_cc.note and not no_cc.requires


def test_required_compiles_or_fails_and_pure_never_compiles(setup_py: ModuleType) -> None:
    plan, gcc = setup_py.plan, "/usr/bin/gcc"
    assert plan("required", WHEEL, REQUIREMENTS, True, gcc) == setup_py.Plan(
        compile=True, requires=tuple(REQUIREMENTS)
    )
    # No compiler: mypycify runs and setuptools' build_ext fails the build (not optional).
    assert plan("required", WHEEL, REQUIREMENTS, True, None).compile
    # No mypyc in the build: setuptools fetches what setup_requires names, as it always did.
    assert plan("required", WHEEL, REQUIREMENTS, False, gcc) == setup_py.Plan(
        requires=tuple(REQUIREMENTS)
    )
    for argv in (WHEEL, ["setup.py", "egg_info"], ["setup.py", "editable_wheel"]):
        assert plan("pure", argv, REQUIREMENTS, True, gcc) == setup_py.Plan()


def test_an_editable_install_is_never_compiled(setup_py: ModuleType) -> None:
    editable = ["setup.py", "editable_wheel"]
    assert setup_py.plan("auto", editable, REQUIREMENTS, True, "/usr/bin/gcc") == setup_py.Plan()
    refused = setup_py.plan("required", editable, REQUIREMENTS, True, "/usr/bin/gcc")
    assert "editable install stays pure Python" in refused.error


def test_mypy_is_asked_for_in_the_requirements_pass_only(setup_py: ModuleType) -> None:
    # egg_info is the pass in which setuptools' PEP 517 backend collects setup_requires (into
    # the isolated build environment); in any other pass setuptools would fetch them itself,
    # where a --no-build-isolation build without mypy should fall back instead.
    plan = setup_py.plan
    asked = plan("auto", ["setup.py", "egg_info"], REQUIREMENTS, False, None)
    assert asked.requires == tuple(REQUIREMENTS) and not asked.compile and not asked.note
    assert plan("auto", ["setup.py", "dist_info"], REQUIREMENTS, False, None) == setup_py.Plan()
    assert plan("required", ["setup.py", "dist_info"], REQUIREMENTS, False, None).requires


def test_the_build_requirements_pin_what_pyproject_pins(setup_py: ModuleType) -> None:
    requirements = setup_py.build_requirements(ROOT)
    assert requirements[0] == setup_py.MYPY
    assert {r.split(">")[0].split("=")[0] for r in requirements[1:]} == set(setup_py.TYPED_BY)


def test_the_c_compiler_is_cc_or_pythons_own(setup_py: ModuleType, tmp_path: Path) -> None:
    assert setup_py.c_compiler({"CC": str(tmp_path / "no-such-cc")}) is None
    fake = tmp_path / "my-cc"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert setup_py.c_compiler({"CC": f"{fake} -pthread"}) == str(fake)


def test_the_compiled_sources_leave_out_the_store_and_the_legacy_shapes(
    setup_py: ModuleType,
) -> None:
    sources = setup_py.compiled_sources(ROOT)
    assert "src/stockflow/core/stock.py" in sources
    assert "src/stockflow/keys.py" in sources
    assert "src/stockflow/tables/store.py" in sources
    assert not set(sources) & setup_py.NOT_COMPILED
    # A module renamed or moved must not drop out of the build (or break it) unnoticed.
    assert all((ROOT / source).is_file() for source in sources)


def test_build_says_what_is_imported() -> None:
    # True on both tiers: scripts/test-compiled.sh runs this file on the compiled build.
    imported = str(stockflow.core.stock.__file__)
    assert _version.build() == (
        "compiled" if imported.endswith(tuple(EXTENSION_SUFFIXES)) else "pure"
    )


def test_build_is_compiled_where_the_core_is_an_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = tmp_path / "core"
    core.mkdir()
    (core / "stock.py").write_text("")
    monkeypatch.setattr(_version, "_PROBE", core / "stock")
    assert _version.build() == "pure"
    (core / f"stock{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    assert _version.build() == "compiled"


def test_version_names_the_build() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert (
        result.output == f"stockflow, version {stockflow.__version__} ({_version.build()} build)\n"
    )
