"""Test configuration: Hypothesis profiles, x64 and strict dtype promotion.

Profiles (select with ``FISHERLAB_PROFILE``; default ``dev``, ``ci`` under CI=true):
- ``dev``: quick local runs (5 examples per property);
- ``ci``: the default suite on 2 cores in under 15 minutes (8 examples per property,
  derandomized: every CI run draws the same examples, so a red CI is a reproducible failure and
  never a lucky draw; exploration is the job of the other two profiles);
- ``thorough``: 200 examples per property, new draws each run, for a release or a nightly run.

``dev`` and ``thorough`` draw new examples on every run (``--hypothesis-seed=N`` replays one).

Compiled XLA programs are cached on disk (JAX's persistent compilation cache) so the two
xdist workers and later runs reuse them: ``FISHERLAB_JAX_CACHE`` sets the folder
(default: a folder in the system temp dir), ``FISHERLAB_JAX_CACHE=off`` disables it.

The tests compile with XLA's default settings, as users' programs do: at
``--xla_backend_optimization_level=0`` the K-FAC G factor of a layer whose pre-activation
gradients reach 1e200 came out as 0 instead of overflowing (so the overflow check did not fire).
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import hypothesis
import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

_cache = os.environ.get("FISHERLAB_JAX_CACHE",
                        os.path.join(tempfile.gettempdir(), "fisherlab-jax-cache"))
if _cache.lower() != "off":
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

_common = dict(deadline=None, derandomize=False,
               suppress_health_check=[hypothesis.HealthCheck.too_slow,
                                      hypothesis.HealthCheck.data_too_large])
hypothesis.settings.register_profile("dev", max_examples=5, **_common)
hypothesis.settings.register_profile("ci", max_examples=8, print_blob=True,
                                     **{**_common, "derandomize": True, "database": None})
hypothesis.settings.register_profile("thorough", max_examples=200, **_common)
_default = "ci" if os.environ.get("CI") else "dev"
hypothesis.settings.load_profile(os.environ.get("FISHERLAB_PROFILE", _default))


@pytest.fixture
def x32():
    """Run a test body with the global x64 flag *off* (float32 defaults)."""
    with jax.enable_x64(False):
        yield


@pytest.fixture(scope="session")
def simulated_devices():
    """``run(worker, timeout)``: the JSON a worker script prints, run in a subprocess that sees
    4 CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=4``; JAX fixes the
    number of devices when it starts) with this checkout first on ``PYTHONPATH``."""
    root = pathlib.Path(__file__).parent.parent

    def run(worker, timeout):
        env = dict(os.environ)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_force_host_platform_device_count=4").strip()
        env["JAX_PLATFORMS"] = "cpu"
        env["PYTHONPATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("PYTHONPATH")]
                                                            if p])
        done = subprocess.run([sys.executable, str(worker)], env=env, capture_output=True,
                              text=True, timeout=timeout, cwd=root)
        assert done.returncode == 0, done.stderr[-4000:]
        return json.loads(done.stdout)

    return run


@pytest.fixture
def nested_token_problem():
    """``(model, params, x, y)``: a tiny transformer whose params nest (Embedding, a Residual
    LayerNorm + MultiHeadAttention block, a Dense read-out), N = 2 sequences of R = 3 tokens."""
    import fisherlab as fl

    nn = fl.nn
    model = nn.Sequential([nn.Embedding(5, 4),
                           nn.Residual(nn.Sequential([nn.LayerNorm(4), nn.MultiHeadAttention(4, 2)])),
                           nn.Dense(4, 3)])
    return (model, model.init(jax.random.key(0)), np.array([[0, 1, 2], [3, 4, 0]]),
            np.array([[0, 1, 2], [2, 1, 0]]))
