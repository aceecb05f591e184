#!/usr/bin/env bash
# The unit and agent tiers again, on the compiled build (setup.py's default wheel): a wheel
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
# The bench's build of this tree (bench/compiled.py: a copy of the tree built by a new, empty
# virtualenv's pip, as a user's `pip install .` builds it; a build that fell back to pure
# Python stops here with setup.py's reason), unpacked.
src="$(python -m bench.compiled . "$dir")"
# What the tests will import: the compiled modules, not the editable install's sources.
PYTHONPATH="$src" python - <<'PY'
import sys
from importlib.machinery import EXTENSION_SUFFIXES

import stockflow.core.stock
import stockflow.processing.products
import stockflow.tables.store

for module in (stockflow.core.stock, stockflow.processing.products, stockflow.tables.store):
    if not module.__file__.endswith(tuple(EXTENSION_SUFFIXES)):
        sys.exit(f"test-compiled: {module.__name__} imports from {module.__file__}, not compiled")
print("test-compiled: importing the compiled build", file=sys.stderr)
PY
if [ "$#" -eq 0 ]; then
  set -- tests/unit tests/agents
fi
PYTHONPATH="$src" python -m pytest -q -n 3 --dist loadfile "$@"
