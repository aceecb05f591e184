#!/usr/bin/env bash
# Every check: lint, format, types, then the test tiers (unit, agents, integration, chaos).
. "$(dirname "$0")/_venv.sh"
ruff check .
ruff format --check .
mypy
exec python -m pytest -q "$@"
