"""conjugate_gradient: the derivation verifies (its Krylov-minimiser parts at tier A, the CG
recursion at tier B) with every control refuted, and fl.updates.hessian_free's k-th iterate is
the minimiser of the quadratic model over the Krylov subspace computed directly -- an
orthonormal basis of K_k(G + lambda I, g) (numpy QR) and a small dense solve -- and equals the
dense damped solve after d steps."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab import proofs


def test_derivation_verifies_with_every_control_refuted():
    d = proofs.get("conjugate_gradient.krylov_optimality")
    report = d.verify()
    report.raise_if_failed()
    assert report.achieved == d.tier == "B"
    assert [t for _, t in report.chain_tiers] == ["A"] * 5 + ["B"]
    assert report.controls_rejected == len(d.controls) >= 3


def _krylov_minimiser(A, g, k):
    """argmin over span{g, Ag, ..., A^{k-1} g} of (1/2) p^T A p - g^T p."""
    K = np.stack([np.linalg.matrix_power(A, j) @ g for j in range(k)], axis=1)
    Q, _ = np.linalg.qr(K)
    return Q @ np.linalg.solve(Q.T @ A @ Q, Q.T @ g)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2 ** 16), damping=st.floats(0.1, 2.0), data=st.data())
def test_hessian_free_iterates_are_the_krylov_minimisers(seed, damping, data):
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = model.init(jax.random.key(seed))
    x = jnp.asarray(rng.normal(size=(5, 2)))
    y = jnp.asarray(rng.integers(0, 2, size=5))
    lik = fl.Categorical()
    G = np.asarray(fl.ggn(model, params, x, y, lik))
    g = np.asarray(ravel_pytree(fl.gradient(model, params, x, y, lik))[0])
    A = G + damping * np.eye(G.shape[0])
    dim = G.shape[0]
    k = data.draw(st.integers(1, dim), label="k")
    step = fl.updates.hessian_free(model, params, x, y, lik, lr=1.0, damping=damping,
                                   maxiter=k, tol=1e-14)
    p = -np.asarray(ravel_pytree(step)[0])
    want = _krylov_minimiser(A, g, k)
    np.testing.assert_allclose(p, want, rtol=1e-6, atol=1e-10 * np.linalg.norm(want))
    # no vector of the subspace does better on the quadratic model
    q = lambda v: 0.5 * v @ A @ v - g @ v  # noqa: E731
    assert q(p) <= q(want) + 1e-10 * abs(q(want))
    # after d steps: the dense damped solve (termination in exact arithmetic)
    full = -np.asarray(ravel_pytree(fl.updates.hessian_free(
        model, params, x, y, lik, lr=1.0, damping=damping, maxiter=dim, tol=1e-14))[0])
    np.testing.assert_allclose(full, np.linalg.solve(A, g), rtol=1e-6, atol=1e-10)
