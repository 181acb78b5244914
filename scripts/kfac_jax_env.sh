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

# The working set found by trying (2026-11-22; `pip freeze` in docs/peers/kfac_jax.md).
# pip resolved kfac-jax 0.0.8's requirements (absl-py, immutabledict, numpy, distrax, dm-tree,
# optax, typing-extensions; distrax pulls chex and tfp-nightly) with no conflict; dm-haiku is
# NOT needed (only kfac-jax's "examples"/"tests" extras use it). The versions are pinned as a
# constraints file so the venv is reproducible; KFAC_JAX_UNPINNED=1 lets pip choose instead.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
if [ "${KFAC_JAX_UNPINNED:-0}" != "1" ]; then
  cat > "$CONSTRAINTS" <<'PINS'
absl-py==2.5.1
chex==0.1.92
distrax==0.1.9
dm-tree==0.1.10
immutabledict==4.3.1
ml_dtypes==0.6.0
numpy==2.4.6
opt_einsum==3.4.0
optax==0.2.8
scipy==1.17.1
tfp-nightly==0.26.0.dev20261027
toolz==1.2.0
typing_extensions==4.16.0
PINS
fi
"$VPY" -m pip install --quiet -c "$CONSTRAINTS" \
  "jax==0.9.1" "jaxlib==0.9.1" "kfac-jax==0.0.8"

# fisherlab's own dependencies, then fisherlab itself from this checkout, without deps (it
# must not pull the main environment's JAX into this venv): a .pth file puts the repo on the
# venv's sys.path (no `pip install -e`, which would write fisherlab.egg-info into the tree).
"$VPY" -m pip install --quiet -c "$CONSTRAINTS" sympy numpy hypothesis pytest
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$REPO" > "$SITE/fisherlab_checkout.pth"

"$VPY" - <<'PY'
import jax, kfac_jax, fisherlab
print("venv ok: jax", jax.__version__, "| kfac_jax", getattr(kfac_jax, "__version__", "?"),
      "| fisherlab from", fisherlab.__file__)
PY
