"""Test configuration: Hypothesis profiles, x64 and strict dtype promotion.

Profiles (select with ``FISHERLAB_PROFILE``; default ``dev``, ``ci`` under CI=true):
- ``dev``: quick local runs;
- ``ci``: the default suite on 2 cores in well under 15 minutes;
- ``thorough``: many more examples, for a release or a nightly run.
"""

import os

import hypothesis
import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

_common = dict(deadline=None, derandomize=False,
               suppress_health_check=[hypothesis.HealthCheck.too_slow,
                                      hypothesis.HealthCheck.data_too_large])
hypothesis.settings.register_profile("dev", max_examples=10, **_common)
hypothesis.settings.register_profile("ci", max_examples=15, print_blob=True, **_common)
hypothesis.settings.register_profile("thorough", max_examples=200, **_common)
_default = "ci" if os.environ.get("CI") else "dev"
hypothesis.settings.load_profile(os.environ.get("FISHERLAB_PROFILE", _default))


@pytest.fixture
def x32():
    """Run a test body with the global x64 flag *off* (float32 defaults)."""
    with jax.enable_x64(False):
        yield
