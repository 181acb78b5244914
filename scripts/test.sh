#!/usr/bin/env bash
# The test command of the README: install fisherlab with its test, peer, Flax and Equinox extras,
# then run the suite.
#
# torch is installed FIRST and pinned (torch==2.13.0 is the local CPU wheel; any other version
# would download gigabytes), then the extras are installed under a constraint that keeps it there.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_install() { python3 -m pip install -q --disable-pip-version-check "$@"; }
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" > "$constraints"
pip_install torch==2.13.0
pip_install --constraint "$constraints" -e ".[test,peers,flax,equinox]"
python3 -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'torch {v} installed, expected 2.13.0')"
# progress as a count of tests done ([ 123/1924]) and the 20 slowest tests and set-ups at the end
python3 -m pytest -n 2 -o console_output_style=count --durations=20 "$@"
