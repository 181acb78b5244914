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

The test programs are tiny, so XLA's CPU backend compiles them at LLVM optimisation level 0
(``--xla_backend_optimization_level=0``, added to ``XLA_FLAGS`` unless that already sets a
level): compilation dominates the suite and takes about a third less CPU time; the arithmetic is
the same IEEE float64 (no fast-math at any level), only the machine code is less optimised.
"""

import os
import tempfile

if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import hypothesis  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

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
