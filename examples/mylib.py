"""A stand-in for *your* library: the curvature code that the oracle tests in this folder check.

``ggn`` is a correct, independent GGN (plain JAX autodiff, no fisherlab);
``fisher_from_data_labels`` is a common mistake: a "Fisher" built from the data labels, which is
the empirical Fisher, not the Fisher.
"""

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def ggn(f, params, x, y, likelihood):
    """Mean over examples of ``J_n^T Lambda_n J_n`` (``Lambda_n`` the Hessian of the NLL in f)."""
    flat, unravel = ravel_pytree(params)

    def per_example(xi, yi):
        out = lambda p: f(unravel(p), xi)  # noqa: E731
        J = jax.jacobian(out)(flat)
        Lam = jax.hessian(lambda o: likelihood.nll(o[None], yi[None])[0])(out(flat))
        return J.T @ Lam @ J

    return jnp.mean(jax.vmap(per_example)(x, y), axis=0)


def fisher_from_data_labels(f, params, x, y, likelihood):
    """Mean of ``g_n g_n^T`` with ``g_n`` the gradient at the data label: the empirical Fisher."""
    flat, unravel = ravel_pytree(params)

    def grad(xi, yi):
        return jax.grad(lambda p: likelihood.nll(f(unravel(p), xi)[None], yi[None])[0])(flat)

    g = jax.vmap(grad)(x, y)
    return g.T @ g / x.shape[0]
