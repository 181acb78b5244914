"""kfac_weight_sharing.*: K-FAC-expand and K-FAC-reduce exactness verify in chain form at
general dimension; the structural formulas the proofs use are checked against JAX autodiff of
the explicit networks (the stacked Jacobian W2 (x) X^T and the GGN of each setting), with each
variant's factors exact in its own setting and off in the other. fl.kfac.factors itself is
checked against the dense GGN in tests/kfac/test_kfac_factors.py (named by the derivations)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _kfac_proof_helpers import check_metadata, report
from fisherlab import proofs


@pytest.mark.parametrize("name", ["kfac_weight_sharing.expand_exactness",
                                  "kfac_weight_sharing.reduce_exactness"])
def test_metadata_and_verification(name):
    check_metadata(name, "A", ("general C, m, n, N examples and R positions",))
    r, seconds = report(name)
    r.raise_if_failed()
    assert r.achieved == "A" and seconds < 30


@settings(max_examples=20, deadline=None)
@given(N=st.integers(1, 3), R=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_stacked_jacobian_and_both_settings_numerically(N, R, seed):
    rng = np.random.default_rng(seed)
    C, m, n = 2, 3, 2
    W2, Wbar = rng.normal(size=(C, m)), rng.normal(size=(m, n))
    X = rng.normal(size=(n, N * R))
    L = rng.normal(size=(C, C))
    Lam = L @ L.T
    G0 = W2.T @ Lam @ W2
    pool = np.kron(np.eye(N), np.ones((R, 1))) / R
    M = X @ pool
    for Y, count in ((X, N * R), (M, N)):
        J = jax.jacobian(lambda W: (W2 @ W @ Y).reshape(-1))(jnp.asarray(Wbar)).reshape(C * count, m * n)
        np.testing.assert_allclose(J, np.kron(W2, Y.T), rtol=1e-12, atol=1e-12)
    ggn = lambda J, count: J.T @ np.kron(Lam, np.eye(count)) @ J / N  # noqa: E731
    exact_expand, exact_reduce = ggn(np.kron(W2, X.T), N * R), ggn(np.kron(W2, M.T), N)
    expand = np.kron(R * G0, X @ X.T / (N * R))
    reduce = np.kron(G0, M @ M.T / N)
    np.testing.assert_allclose(expand, exact_expand, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(reduce, exact_reduce, rtol=1e-10, atol=1e-12)
    # each variant in the other's setting (the controls)
    reduce_in_expand = np.kron(R * G0, M @ M.T / N)
    expand_in_reduce = np.kron(G0 / R, X @ X.T / (N * R))
    assert np.linalg.norm(reduce_in_expand - exact_expand) > 1e-6 * np.linalg.norm(exact_expand)
    assert np.linalg.norm(expand_in_reduce - exact_reduce) > 1e-6 * np.linalg.norm(exact_reduce)
