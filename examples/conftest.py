"""pytest set-up for the example tests: float64 JAX, reproducible Hypothesis draws."""

import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)  # compare in float64, the precision of the references

settings.register_profile("examples", deadline=None, derandomize=True)
settings.load_profile("examples")
