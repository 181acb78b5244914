#!/usr/bin/env bash
# Mutation testing: a seeded sample of semantic one-line mutants of each core module, each run
# against the tests that mirror it (mapping and settings: scripts/mutation/config.toml).
# Runs in a temporary copy of the repository; the work tree is never modified. Not part of CI.
#
#   bash scripts/mutation.sh                       # every mapped module
#   bash scripts/mutation.sh fisherlab/updates     # the modules under a folder
#   bash scripts/mutation.sh fisherlab/updates/_damping.py --per-module 5 --seed 3
#   bash scripts/mutation.sh --list fisherlab/_core   # only print the sampled mutants
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m scripts.mutation "$@"
