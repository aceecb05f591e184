#!/usr/bin/env bash
# Every check: lint, format, types, then the test tiers (unit, agents, integration, chaos).
. "$(dirname "$0")/_venv.sh"
ruff check src tests bench examples
ruff format --check src tests bench examples
mypy
exec python -m pytest -q "$@"
