"""kfac_exactness.*: K-FAC exactness (N = 1, any activation; deep linear + Gaussian, any N)
verifies; the empirical-K-FAC counterexample is rejected with an exact witness; and the
counterexample is confirmed numerically from scratch (NumPy, no fisherlab code)."""

import numpy as np
import pytest

from _kfac_proof_helpers import check_metadata, family
from fisherlab import proofs
from fisherlab.symbolic import to_markdown

NAMES = family("kfac_exactness")


def test_family():
    assert set(NAMES) == {"kfac_exactness.single_example", "kfac_exactness.deep_linear"}



def test_metadata():
    check_metadata("kfac_exactness.single_example", "A+B", ("general dimension", "generic", "activation"))
    check_metadata("kfac_exactness.deep_linear", "A+B", ("general N", "linear", "N)"))


def test_empirical_counterexample_is_on_the_page():
    d = proofs.get("kfac_exactness.deep_linear")
    from _kfac_proof_helpers import report
    r, _ = report(d.name)
    ctrl = {c.name: c for c in r.controls}["empirical_kfac_deep_linear"]
    assert ctrl.rejected and "y1 =" in ctrl.witness and "y2 =" in ctrl.witness
    assert ctrl.witness in to_markdown(d, r)


def test_empirical_kfac_differs_from_ef_block_for_deep_linear_numerically():
    """Deep linear 2-2-2 network, MSE, N = 3: exact-type K-FAC equals the GGN block of layer 1,
    empirical K-FAC does not equal the EF block (all in plain NumPy, [W b] row-major order)."""
    rng = np.random.default_rng(0)
    n0, n1, C, N = 2, 2, 2, 3
    W1, W2 = rng.normal(size=(n1, n0 + 1)), rng.normal(size=(C, n1 + 1))
    X, Y = rng.normal(size=(N, n0)), rng.normal(size=(N, C))
    ggn, ef, A, Gx, Ge = 0, 0, 0, 0, 0
    for x, y in zip(X, Y):
        a0 = np.append(x, 1.0)
        f = W2 @ np.append(W1 @ a0, 1.0)
        Js = W2[:, :n1]
        J1 = np.kron(Js, a0[None, :])  # d f / d rvec(W1bar) = J_s (I (x) a0^T)
        g = Js.T @ (f - y)  # per-example pre-activation gradient (sigma^2 = 1)
        grad = J1.T @ (f - y)
        ggn = ggn + J1.T @ J1 / N
        ef = ef + np.outer(grad, grad) / N
        A = A + np.outer(a0, a0) / N
        Gx = Gx + Js.T @ Js / N
        Ge = Ge + np.outer(g, g) / N
    np.testing.assert_allclose(np.kron(Gx, A), ggn, rtol=1e-12, atol=1e-12)
    assert np.linalg.norm(np.kron(Ge, A) - ef) > 1e-3 * np.linalg.norm(ef)
