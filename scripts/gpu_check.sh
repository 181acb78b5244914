#!/usr/bin/env bash
# GPU readiness: on a machine with a CUDA JAX backend, compare every dense reference and product
# computed on the GPU with the CPU float64 result (scripts/gpu_compare.py), run the numeric
# curvature tests on the GPU and the dense-curvature benchmarks. Without a CUDA backend it says
# so and exits 0 (nothing to check). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python3 - <<'PY' 2>/dev/null
import sys
import jax
try:
    sys.exit(0 if jax.devices("gpu") else 1)
except RuntimeError:
    sys.exit(1)
PY
then
    echo "gpu_check: no CUDA JAX backend on this machine (jax.devices('gpu') is empty or" \
         "unavailable): skipped"
    exit 0
fi

python3 -c "import jax; print('gpu_check:', jax.__version__, jax.devices('gpu'))"
echo "== GPU against CPU float64 references"
python3 scripts/gpu_compare.py
echo "== numeric curvature and update tests on the GPU"
JAX_PLATFORMS=cuda,cpu python3 -m pytest -p no:cacheprovider -q -x \
    tests/curvature/test_curvature_fast_vs_naive.py tests/curvature/test_curvature_closed_forms.py \
    tests/curvature/test_curvature_blocks.py tests/curvature/test_curvature_matvec.py \
    tests/curvature/test_memory.py tests/updates/test_dense_updates.py "$@"
echo "== benchmarks"
python3 benchmarks/bench_curvature.py --repeats 3
python3 benchmarks/bench_scaling.py --repeats 2 --figure /tmp/fisherlab_scaling_gpu.png
