"""Never a silent inf/NaN from fl.curvature: float64 overflow raises, naming the cause.

Review defect 3 (reproducers /tmp/review/t14.py, t21.py): finite, valid inputs whose
curvature overflows float64 -- a Poisson log-rate of 710 (``exp(710) > 1.8e308``), a
GaussianMeanVariance log-variance of -710, ``fl.Gaussian(variance=1e-310)`` -- used to return
``[inf nan inf nan]``. Every public entry point (the seven dense functions and the four
matrix-free closures) now raises a ``ValueError`` naming the function and what overflowed.
Just below overflow the results are finite and equal independent closed forms computed here
in NumPy float64 (linear model ``f(W, b; x) = W x + b`` with ``J_n = [x_n^T, 1]``):

* Poisson, ``eta = 700`` for every example: ``F = G = H = exp(700) (1/N) sum_n a_n a_n^T``,
  ``a_n = [x_n; 1]`` (output Fisher/Hessian ``exp(eta)``), and the gradient
  ``(1/N) sum_n (exp(700) - y_n) a_n``;
* Poisson, ``eta = 350``: empirical Fisher ``(1/N) sum_n (exp(350) - y_n)^2 a_n a_n^T`` (its
  square ``exp(700)`` stays representable) and the gradient covariance;
* Gaussian, ``variance = 1e-300``: ``F = (1/var) (1/N) sum_n a_n a_n^T``; Monte-Carlo Fisher
  ``(1/N) sum_n r_n^2 a_n a_n^T`` with ``r_n = (f_n - yhat_n) / var`` at the labels of
  ``likelihood.sample`` (the documented sampling contract of ``fl.fisher_mc``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl

X = np.array([[1.0, 0.5], [0.3, -1.0]])
Y = np.array([[1.0], [2.0]])
A = np.concatenate([X, np.ones((2, 1))], axis=1)  # a_n = [x_n; 1] = J_n (ravel order W, b)
MEAN_AAT = A.T @ A / 2


def linear(p, x):
    return p["W"] @ x + p["b"]


def linear2(p, x):  # two outputs: [mean | log-variance] for GaussianMeanVariance
    return p["W"] @ x + p["b"]


def poisson_params(eta):
    return {"W": np.zeros((1, 2)), "b": np.array([float(eta)])}


P710 = poisson_params(710.0)
V3 = np.array([1.0, -0.5, 2.0])

# (entry point, call) for the Poisson log-rate 710 reproducer, and the cause the message names.
POISSON_710 = [
    ("fl.fisher", lambda L: fl.fisher(linear, P710, X, L), "output-space Fisher F_out"),
    ("fl.ggn", lambda L: fl.ggn(linear, P710, X, Y, L), "output-space Hessian Lambda"),
    ("fl.hessian", lambda L: fl.hessian(linear, P710, X, Y, L), "output-space Hessian Lambda"),
    ("fl.fisher_mc", lambda L: fl.fisher_mc(linear, P710, X, L, key=jax.random.key(0)),
     "labels sampled from the Poisson likelihood"),
    ("fl.empirical_fisher", lambda L: fl.empirical_fisher(linear, P710, X, Y, L),
     "output gradient"),
    ("fl.gradient_covariance", lambda L: fl.gradient_covariance(linear, P710, X, Y, L),
     "output gradient"),
    ("fl.gradient", lambda L: fl.gradient(linear, P710, X, Y, L), "output gradient"),
    ("the fl.fisher_vp matvec", lambda L: fl.fisher_vp(linear, P710, X, L)(V3),
     "output-space Fisher F_out"),
    ("the fl.ggn_vp matvec", lambda L: fl.ggn_vp(linear, P710, X, Y, L)(V3),
     "output-space Hessian Lambda"),
    ("the fl.hvp matvec", lambda L: fl.hvp(linear, P710, X, Y, L)(V3),
     "output-space Hessian Lambda"),
    ("the fl.empirical_fisher_vp matvec",
     lambda L: fl.empirical_fisher_vp(linear, P710, X, Y, L)(V3), "output gradient"),
]


@pytest.mark.parametrize("name,call,cause", POISSON_710, ids=[c[0] for c in POISSON_710])
def test_poisson_log_rate_710_raises_naming_the_cause(name, call, cause):
    with pytest.raises(ValueError) as info:
        call(fl.Poisson())
    msg = str(info.value)
    assert msg.startswith(f"{name}: the result is not finite"), msg
    assert cause in msg, msg
    assert "Poisson" in msg and "outputs[0] = [710.]" in msg, msg


def test_gaussian_mean_variance_log_variance_minus_710_raises():
    p = {"W": np.zeros((2, 2)), "b": np.array([0.0, -710.0])}
    L = fl.GaussianMeanVariance()
    with pytest.raises(ValueError, match=r"^fl\.fisher: .*GaussianMeanVariance output-space "
                                         r"Fisher F_out overflowed at outputs\[0\] = \[ +0\. -710\.\]"):
        fl.fisher(linear2, p, X, L)
    with pytest.raises(ValueError, match=r"^fl\.ggn: .*GaussianMeanVariance output-space "
                                         r"Hessian Lambda .*overflowed at outputs\[0\]"):
        fl.ggn(linear2, p, X, Y, L)


def test_gaussian_variance_1e_310_raises_and_1e_300_matches_closed_form():
    p = {"W": np.array([[0.3, 0.2]]), "b": np.array([0.1])}
    with pytest.raises(ValueError, match=r"^fl\.fisher: .*Gaussian output-space Fisher F_out "
                                         r"overflowed at outputs\[0\]"):
        fl.fisher(linear, p, X, fl.Gaussian(variance=1e-310))
    F = np.asarray(fl.fisher(linear, p, X, fl.Gaussian(variance=1e-300)))
    np.testing.assert_allclose(F, MEAN_AAT / 1e-300, rtol=1e-13)


def test_model_jacobian_overflow_is_named():
    # f = sqrt(a) x: finite outputs (0) at a = 0, but d f / d a = x / (2 sqrt(a)) = inf.
    def f(p, x):
        return jnp.sqrt(p["a"]) * x[:1]

    with pytest.raises(ValueError, match=r"^fl\.fisher: .*model Jacobian .* is not finite at "
                                         r"example 0"):
        fl.fisher(f, {"a": np.array([0.0])}, X, fl.Gaussian())


def test_final_accumulation_overflow_is_named():
    # eta = 400: every per-example gradient (exp(400) - y) a_n ~ 5e173 is finite, but its
    # outer product ~ 3e347 is not.
    with pytest.raises(ValueError, match=r"^fl\.empirical_fisher: .*are finite .*so the final "
                                         r"accumulation .* overflowed float64"):
        fl.empirical_fisher(linear, poisson_params(400.0), X, Y, fl.Poisson())


def test_just_below_overflow_gauss_newton_family_matches_closed_form():
    p = poisson_params(700.0)
    L = fl.Poisson()
    lam = np.exp(700.0)  # 1.01e304: representable
    expected = lam * MEAN_AAT
    for name, M in [("fisher", fl.fisher(linear, p, X, L)),
                    ("ggn", fl.ggn(linear, p, X, Y, L)),
                    ("hessian", fl.hessian(linear, p, X, Y, L)),
                    ("fisher sum", fl.fisher(linear, p, X, L, reduction="sum") / 2)]:
        M = np.asarray(M)
        assert np.all(np.isfinite(M)), name
        np.testing.assert_allclose(M, expected, rtol=1e-12, err_msg=name)
    for name, mv in [("fisher_vp", fl.fisher_vp(linear, p, X, L)),
                     ("ggn_vp", fl.ggn_vp(linear, p, X, Y, L)),
                     ("hvp", fl.hvp(linear, p, X, Y, L))]:
        np.testing.assert_allclose(np.asarray(mv(V3)), expected @ V3, rtol=1e-12, err_msg=name)
    g = np.asarray(fl.gradient(linear, p, X, Y, L))
    np.testing.assert_allclose(g, ((lam - Y[:, 0])[:, None] * A).mean(0), rtol=1e-12)


def test_just_below_overflow_gradient_outer_products_match_closed_form():
    p = poisson_params(350.0)
    L = fl.Poisson()
    G = (np.exp(350.0) - Y[:, 0])[:, None] * A  # per-example gradients g_n (N, d)
    E = G.T @ G / 2
    np.testing.assert_allclose(np.asarray(fl.empirical_fisher(linear, p, X, Y, L)), E,
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(fl.empirical_fisher_vp(linear, p, X, Y, L)(V3)),
                               E @ V3, rtol=1e-12)
    D = G - G.mean(0)
    S = D.T @ D / 2
    got = np.asarray(fl.gradient_covariance(linear, p, X, Y, L))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, S, rtol=1e-10, atol=1e-12 * np.abs(E).max())


def test_just_below_overflow_fisher_mc_matches_closed_form_at_its_labels():
    var = 1e-300
    L = fl.Gaussian(variance=var)
    p = {"W": np.zeros((1, 2)), "b": np.zeros(1)}  # f_n = 0, so r_n = -yhat_n / var exactly
    key = jax.random.key(3)
    yhat = np.asarray(L.sample(key, np.zeros((2, 1)), 1))[0, :, 0]  # (N,), std 1e-150
    r = -yhat / var  # ~1e150; r^2 ~ 1e300 stays representable
    expected = (A * (r ** 2)[:, None]).T @ A / 2
    got = np.asarray(fl.fisher_mc(linear, p, X, L, key=key))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_under_jit_the_check_cannot_run_documented():
    # Documented limitation (fisherlab/curvature/__init__.py, fisherlab/curvature/_finite.py): traced
    # values cannot be tested, so a jitted caller sees the overflow and must check it.
    out = jax.jit(lambda p: fl.fisher(linear, p, X, fl.Poisson()))(P710)
    assert not np.all(np.isfinite(np.asarray(out)))
    assert "jax.jit" in fl.curvature.__doc__ and "isfinite" in fl.curvature.__doc__


def test_finite_result_whose_entry_sum_overflows_is_returned():
    # eta = 708, reduction="sum": every entry of F = exp(708) sum_n a_n a_n^T is finite
    # (largest 2 exp(708) = 6.0e307) but their sum 6.34 exp(708) = 1.9e308 overflows, so the
    # fast sum test fails and the exact entrywise test must accept the result.
    expected = np.exp(708.0) * (A.T @ A)
    with np.errstate(over="ignore"):
        assert np.all(np.isfinite(expected)) and not np.isfinite(expected.sum())
    F = np.asarray(fl.fisher(linear, poisson_params(708.0), X, fl.Poisson(), reduction="sum"))
    np.testing.assert_allclose(F, expected, rtol=1e-12)
