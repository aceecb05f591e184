#!/usr/bin/env bash
# The unit and agent tiers again, on the compiled build (setup.py, STOCKFLOW_COMPILE=1): a wheel
# built from a copy of this tree, unpacked into a temporary src/ that is imported ahead of the
# editable install. Arguments go to pytest (default: tests/unit tests/agents).
. "$(dirname "$0")/_venv.sh"
if ! command -v "${CC:-gcc}" >/dev/null 2>&1 && ! command -v cc >/dev/null 2>&1; then
  # CI must test what it ships; a contributor without a C compiler can still run the rest.
  if [ "${CI:-}" = "true" ]; then
    echo "test-compiled: no C compiler, and CI tests the compiled build" >&2
    exit 1
  fi
  echo "test-compiled: no C compiler here: the compiled build was NOT tested" >&2
  exit 0
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
# A copy: setuptools writes build/ and egg-info next to the sources it builds.
mkdir "$dir/tree"
tar -cf - --exclude=./.venv --exclude=./.git --exclude=./build --exclude=__pycache__ --exclude=.mypy_cache \
  --exclude=.ruff_cache --exclude=.hypothesis --exclude="*.egg-info" . | tar -xf - -C "$dir/tree"
# Built by the pip of a new, empty virtualenv, as `STOCKFLOW_COMPILE=1 pip install .` in a user's
# new virtualenv builds it. mypy (mypyc) looks for the packages it type-checks against in the
# site-packages of the interpreter that builds, even from pip's isolated build environment: from
# this virtualenv it would see Faust and every other dependency, which a user's build does not.
python -m venv "$dir/builder"
STOCKFLOW_COMPILE=1 "$dir/builder/bin/python" -m pip wheel --quiet --no-deps -w "$dir/wheel" "$dir/tree"
python -m zipfile -e "$dir"/wheel/stockflow-*.whl "$dir/src"
# What the tests will import: the compiled modules, not the editable install's sources.
PYTHONPATH="$dir/src" python - <<'PY'
import sys
from importlib.machinery import EXTENSION_SUFFIXES

import stockflow.core.stock
import stockflow.processing.products

for module in (stockflow.core.stock, stockflow.processing.products):
    if not module.__file__.endswith(tuple(EXTENSION_SUFFIXES)):
        sys.exit(f"test-compiled: {module.__name__} imports from {module.__file__}, not compiled")
print("test-compiled: importing the compiled build", file=sys.stderr)
PY
if [ "$#" -eq 0 ]; then
  set -- tests/unit tests/agents
fi
PYTHONPATH="$dir/src" python -m pytest -q -n 3 --dist loadfile "$@"
