#!/usr/bin/env bash
# Every check: lint, format, types, then the test tiers (unit, agents, integration, chaos).
. "$(dirname "$0")/_venv.sh"
ruff check .
ruff format --check .
mypy
if [ "$#" -gt 0 ]; then
  exec python -m pytest -q "$@"
fi
# Most integration tests wait on a broker and worker processes more than they compute, and each
# starts its own broker on a free port: three run at a time (about half the wall time). The
# chaos tier times kills, takeovers and outages, so it runs alone, after them.
python -m pytest -q -n 3 --dist loadfile --ignore=tests/chaos tests
# The optional compiled build (setup.py, STOCKFLOW_COMPILE=1) runs the unit and agent tiers too:
# it compiles the same sources, and mypyc enforces their annotations at run time.
bash "$(dirname "$0")/test-compiled.sh"
exec python -m pytest -q tests/chaos
