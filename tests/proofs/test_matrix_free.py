"""matrix_free: the derivation verifies; fl.fisher_vp / ggn_vp / hvp equal the symbolic
ground-truth matrices times v (tier C), and hvp != ggn_vp (the residual term)."""

import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl

from _verified import verified
from fisherlab.symbolic import curvature


def test_derivation_verifies():
    report = verified("matrix_free.fisher_vector_product")
    report.raise_if_failed()
    assert report.controls_rejected == 3


@pytest.mark.parametrize("lik, y", [(fl.Categorical(), np.array([0, 1])),
                                    (fl.Poisson(), np.array([[1.0, 0.0], [3.0, 2.0]]))])
def test_products_equal_symbolic_matrices_times_v(lik, y):
    rng = np.random.default_rng(11)
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Sigmoid(), fl.nn.Dense(2, 2)])
    params = [(rng.normal(size=(2, 2)), rng.normal(size=2)) for _ in range(2)]
    x = rng.normal(size=(2, 2))
    v = rng.normal(size=12)
    jp = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
    jx = jnp.asarray(x)
    jy = jnp.asarray(y) if isinstance(lik, fl.Categorical) else jnp.asarray(y, jnp.float64)
    jv = jnp.asarray(v)

    def sym(kind):
        return np.array(curvature(model, params, x, y, lik, kind).evalf(20).tolist(), float)

    F, G, H = sym("fisher"), sym("ggn"), sym("hessian")
    for got, want in [(fl.fisher_vp(model, jp, jx, lik)(jv), F @ v),
                      (fl.ggn_vp(model, jp, jx, jy, lik)(jv), G @ v),
                      (fl.hvp(model, jp, jx, jy, lik)(jv), H @ v)]:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)
    assert np.linalg.norm(H @ v - G @ v) > 1e-3 * np.linalg.norm(G @ v)
