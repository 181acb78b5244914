#!/usr/bin/env bash
# The test command of the README: install fisherlab with its test extras, then run the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
python3 -m pytest -n 2 "$@"
