#!/usr/bin/env bash
# The project's test command (README, CI): the pytest suite plus nbval over every notebook in notebooks/
# (executed with their default, smoke-sized parameters; --nbval-lax because outputs vary run to run).
# pytest's exit 5 (no tests collected) counts as a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
"$PY" -m pytest tests notebooks --nbval-lax "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"
