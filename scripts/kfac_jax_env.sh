#!/usr/bin/env bash
# Create a separate virtual environment with the real kfac-jax library, for
# benchmarks/kfac_jax_compare.py (docs/peers/kfac_jax.md).
#
# kfac-jax 0.0.8 does not run on the JAX of fisherlab's main environment, so it lives
# in its own venv pinned to JAX 0.9.1. Never installs into the global interpreter and
# never installs torch.
#
# Usage: bash scripts/kfac_jax_env.sh [VENV_DIR]      (default /tmp/fisherlab-kfacjax)
# Then:  VENV_DIR/bin/python benchmarks/kfac_jax_compare.py
set -euo pipefail

VENV="${1:-/tmp/fisherlab-kfacjax}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
"$VPY" -m pip install --quiet --upgrade pip

# The working set found by trying (see docs/peers/kfac_jax.md for the full `pip freeze`).
# kfac-jax 0.0.8 itself: JAX 0.9.1 pins; its own deps resolved by pip with these bounds.
"$VPY" -m pip install --quiet \
  "jax==0.9.1" "jaxlib==0.9.1" "kfac-jax==0.0.8" \
  ${KFAC_JAX_EXTRA_PINS:-}

# fisherlab's own dependencies, then fisherlab itself without deps (it must not pull
# the main environment's JAX into this venv).
"$VPY" -m pip install --quiet sympy numpy hypothesis pytest
"$VPY" -m pip install --quiet --no-deps -e "$REPO"

"$VPY" - <<'PY'
import jax, kfac_jax, fisherlab
print("venv ok: jax", jax.__version__, "| kfac_jax", getattr(kfac_jax, "__version__", "?"),
      "| fisherlab from", fisherlab.__file__)
PY
