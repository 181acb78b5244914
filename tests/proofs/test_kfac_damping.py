"""kfac_damping.*: factored residual, trace-norm-optimal pi, exact damping verify; controls
(pi inverted, damping added to each factor, ...) are rejected with witnesses; and the pi rule
is confirmed numerically: at pi* the residual's trace norm (sum of singular values, NumPy)
equals the proved closed form and is no larger than at any other pi tried."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _kfac_proof_helpers import check_metadata, family, report
from fisherlab import proofs

NAMES = family("kfac_damping")


def test_family():
    assert set(NAMES) == {"kfac_damping.factored_residual", "kfac_damping.pi_trace_norm",
                          "kfac_damping.exact_eigendecomposition"}



def test_metadata_and_required_controls():
    check_metadata("kfac_damping.factored_residual", "A", ("general n, m",))
    check_metadata("kfac_damping.pi_trace_norm", "A", ("general dimensions",))
    check_metadata("kfac_damping.exact_eigendecomposition", "A", ("never an inverse rewrite rule",))
    controls = {c.name for n in NAMES for c in proofs.get(n).controls}
    assert {"pi_inverted", "pi_unnormalised", "cross_terms_dropped", "kronecker_sum_eigenvalues",
            "factored_is_not_exact"} <= controls
    assert "trace norm of a PSD matrix" in proofs.get("kfac_damping.pi_trace_norm").axioms


@pytest.mark.parametrize("name", NAMES)
def test_verifies_at_general_dimension(name):
    r, seconds = report(name)
    r.raise_if_failed()
    assert r.achieved == "A" and seconds < 30


@given(n=st.integers(1, 4), m=st.integers(1, 4), seed=st.integers(0, 2**16),
       lam=st.floats(1e-3, 10.0))
def test_pi_star_minimises_the_trace_norm_numerically(n, m, seed, lam):
    rng = np.random.default_rng(seed)
    L, M = rng.normal(size=(n, n)), rng.normal(size=(m, m))
    A, G = L @ L.T + 1e-3 * np.eye(n), M @ M.T + 1e-3 * np.eye(m)

    def tracenorm(pi):
        R = np.sqrt(lam) * (np.kron(A, np.eye(m)) / pi + pi * np.kron(np.eye(n), G))
        return np.linalg.svd(R, compute_uv=False).sum()

    pi_star = np.sqrt((np.trace(A) / n) / (np.trace(G) / m))
    best = tracenorm(pi_star)
    closed = 2 * np.sqrt(lam * n * m * np.trace(A) * np.trace(G))
    np.testing.assert_allclose(best, closed, rtol=1e-9)
    for factor in (0.5, 0.9, 1.1, 2.0):
        assert tracenorm(pi_star * factor) >= best * (1 - 1e-12)
    # the residual identity itself
    pi = 0.7
    lhs = np.kron(A + pi * np.sqrt(lam) * np.eye(n), G + np.sqrt(lam) / pi * np.eye(m))
    rhs = np.kron(A, G) + lam * np.eye(n * m) + np.sqrt(lam) * (
        np.kron(A, np.eye(m)) / pi + pi * np.kron(np.eye(n), G))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
