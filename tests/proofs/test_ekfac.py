"""ekfac.*: the optimal-diagonal theorem verifies and its controls carry witnesses; the
statements are confirmed numerically with NumPy eigendecompositions (independent of the
proof's Cayley parametrisation): D* = diag(Q^T F Q) beats K-FAC and random diagonals in
Frobenius norm, and preserves the trace."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _kfac_proof_helpers import check_metadata, family, report
from fisherlab import proofs

NAMES = family("ekfac")


def test_family():
    assert NAMES == ["ekfac.optimal_diagonal"]



def test_metadata():
    check_metadata("ekfac.optimal_diagonal", "B", ("general d", "d ∈ {1, …, 6}"))
    d = proofs.get("ekfac.optimal_diagonal")
    assert {c.name for c in d.controls} == {"rotation_forgotten", "diag_in_original_basis",
                                            "kfac_trace_preserved"}
    r, seconds = report(d.name)
    r.raise_if_failed()
    # the Frobenius invariance and the rotated second moment are general-dimension chains
    assert {(0, "A"), (2, "A")} <= set(r.chain_tiers) and seconds < 30


@given(n=st.integers(1, 3), m=st.integers(1, 3), N=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_optimal_diagonal_numerically(n, m, N, seed):
    rng = np.random.default_rng(seed)
    abar = np.concatenate([rng.normal(size=(N, n - 1)), np.ones((N, 1))], axis=1)
    g = rng.normal(size=(N, m))
    grads = np.stack([np.kron(gi, ai) for gi, ai in zip(g, abar)])  # row-major per example
    F = grads.T @ grads / N
    A, G = abar.T @ abar / N, g.T @ g / N
    a, QA = np.linalg.eigh(A)
    gam, QG = np.linalg.eigh(G)
    Q = np.kron(QG, QA)
    d_star = np.diag(Q.T @ F @ Q)
    np.testing.assert_allclose(d_star, np.mean((grads @ Q) ** 2, axis=0), rtol=1e-10, atol=1e-12)
    ekfac = Q @ np.diag(d_star) @ Q.T
    kfac = np.kron(G, A)
    np.testing.assert_allclose(kfac, Q @ np.diag(np.kron(gam, a)) @ Q.T, rtol=1e-9, atol=1e-12)
    err = lambda M: np.linalg.norm(F - M)  # noqa: E731
    assert err(ekfac) <= err(kfac) + 1e-12
    np.testing.assert_allclose(err(kfac) ** 2 - err(ekfac) ** 2,
                               np.sum((d_star - np.kron(gam, a)) ** 2), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(np.trace(ekfac), np.trace(F), rtol=1e-10, atol=1e-12)
    for _ in range(3):
        D = d_star + rng.normal(size=d_star.shape)
        assert err(Q @ np.diag(D) @ Q.T) >= err(ekfac) - 1e-12
