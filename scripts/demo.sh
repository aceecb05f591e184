#!/usr/bin/env bash
# The demo: embedded broker (unless STOCKFLOW_BROKER is set), a worker, a flash sale, a summary.
. "$(dirname "$0")/_venv.sh"
exec stockflow demo "$@"
