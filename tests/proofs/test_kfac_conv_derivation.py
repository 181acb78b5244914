"""kfac_conv.kfc_exactness: KFC verifies in chain form; and the theorem is confirmed by exact
enumeration in NumPy (no fisherlab code): with patches i.i.d. over positions, independent of
gradients g_t = eps_t v_t with independent random signs (IAD, SH, SUD), the Fisher block
E[rvec(sum_t g_t a_t^T) rvec(...)^T] equals G (x) A with G = sum_t E[g_t g_t^T] and
A = mean_t E[a_t a_t^T]; with one sign shared by all positions (correlated derivatives) it does
not, and the difference is the cross-position sum of part 1. fl.kfac's Conv2d factors are
checked against the dense curvature in tests/kfac/test_kfac_conv.py."""

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from _kfac_proof_helpers import check_metadata, report


def test_metadata_and_verification():
    check_metadata("kfac_conv.kfc_exactness", "B", ("T ∈ {1, 2, 3}",))
    r, seconds = report("kfac_conv.kfc_exactness")
    r.raise_if_failed()
    assert seconds < 30


def _fisher(points_a, vs, T, shared_sign):
    """Exact expectation over: a_t i.i.d. uniform on points_a, g_t = eps_t vs[t] with eps_t
    independent signs (or one sign for all positions)."""
    m, n = vs.shape[1], points_a.shape[1]
    F = np.zeros((m * n, m * n))
    Gs, As, count = np.zeros((m, m)), np.zeros((n, n)), 0
    signs = [(s,) * T for s in (-1, 1)] if shared_sign else list(itertools.product((-1, 1), repeat=T))
    for ai in itertools.product(range(len(points_a)), repeat=T):
        X = points_a[list(ai)].T                       # n x T, columns a_t
        for eps in signs:
            Gam = (np.asarray(eps)[:, None] * vs).T    # m x T, columns g_t
            r = (Gam @ X.T).reshape(-1)                # rvec of the weight gradient
            F += np.outer(r, r)
            Gs += Gam @ Gam.T
            As += X @ X.T / T
            count += 1
    return F / count, Gs / count, As / count


@settings(max_examples=15, deadline=None)
@given(T=st.integers(2, 3), seed=st.integers(0, 2**16))
def test_kfc_exact_under_sud_and_not_with_correlated_derivatives(T, seed):
    rng = np.random.default_rng(seed)
    points_a = np.concatenate([rng.normal(size=(2, 2)), np.ones((2, 1))], axis=1)  # augmented
    v = rng.normal(size=2)
    vs = np.tile(v, (T, 1))                            # the same distribution at every position (SH)
    F, G, A = _fisher(points_a, vs, T, shared_sign=False)
    np.testing.assert_allclose(F, np.kron(G, A), rtol=1e-10, atol=1e-12)
    Fc, Gc, Ac = _fisher(points_a, vs, T, shared_sign=True)
    mu = points_a.mean(axis=0)
    cross = T * (T - 1) * np.kron(np.outer(v, v), np.outer(mu, mu))   # sum over t != t'
    np.testing.assert_allclose(Fc, np.kron(Gc, Ac) + cross, rtol=1e-10, atol=1e-12)
    assert np.linalg.norm(Fc - np.kron(Gc, Ac)) > 1e-6 * np.linalg.norm(Fc)
