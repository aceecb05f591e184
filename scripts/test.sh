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
# The compiled build (setup.py's default wheel, what `pip install .` installs) runs the unit and
# agent tiers too: the tiers above ran the editable install's pure sources, the same code.
bash "$(dirname "$0")/test-compiled.sh"
exec python -m pytest -q tests/chaos
