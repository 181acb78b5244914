"""``fisher_mc`` converges to ``fisher`` at the Monte-Carlo rate (statistical tests, fixed seeds).

Problem: a small softmax MLP (N = 4 examples, C = 3 classes, d = 21 parameters). For a
categorical likelihood the label space is finite, so the *exact* variance of every entry of
the estimator is computable by enumeration (independently of the code under test):
with ``Z_{n,k} = g_{n,k} g_{n,k}^T``, ``g_{n,k} = J_n^T (p_n - e_k)`` (``J_n`` from
``jax.jacfwd`` of the model),

    Var(hat F_ij) = (1 / (N^2 S)) sum_n ( sum_k p_nk Z_nk,ij^2 - (sum_k p_nk Z_nk,ij)^2 ),

and ``E ||hat F - F||_F^2 = V_1 / S`` with ``V_1 = sum_ij S Var(hat F_ij)``.

Assertions and their false-failure probabilities (for a correct estimator):

* Markov (distribution-free): ``P(||hat F_S - F||^2 >= V_1 / (S delta)) <= delta``; checked at
  ``S = 16, 256, 4096`` with ``delta = 1e-3`` each: false-failure probability <= 3e-3. The
  bound shrinking like ``1/S`` is the Monte-Carlo rate.
* Entry-wise z-scores at ``S = 4096`` (``N S = 16384`` i.i.d. summands per entry, so the CLT
  applies): ``max_ij |z_ij| <= z*`` with a Bonferroni level of ``1e-4`` over the
  ``d(d+1)/2`` entries: false-failure probability <= 1e-4 under the normal approximation.

The seeds are fixed, so the outcome is deterministic; the probabilities say how unlucky a
correct implementation would have to be to fail. Power: the same bounds reject the
empirical Fisher (data labels instead of sampled ones) and a ``2x`` scaling (checked
below), so the test is not vacuous.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from curvature_cases import make_problem

DELTA = 1e-3  # Markov level per sample size
FAMILY_LEVEL = 1e-4  # Bonferroni level for the z-scores


@pytest.fixture(scope="module")
def problem():
    f, params, x, y, lik = make_problem("categorical", seed=7, n=4, in_features=2, hidden=3,
                                        outputs=3)
    theta, unravel = ravel_pytree(params)
    p = np.asarray(jax.nn.softmax(jax.vmap(f, in_axes=(None, 0))(params, x), axis=-1))
    m1 = m2 = 0.0
    n, c = p.shape
    for i in range(n):
        J = np.asarray(jax.jacfwd(lambda th: f(unravel(th), x[i]))(theta))  # (C, d)
        Zs = [np.outer(J.T @ (p[i] - np.eye(c)[k]), J.T @ (p[i] - np.eye(c)[k]))
              for k in range(c)]
        e1 = sum(p[i, k] * Zs[k] for k in range(c))
        e2 = sum(p[i, k] * Zs[k] ** 2 for k in range(c))
        m1 = m1 + e1 / n
        m2 = m2 + (e2 - e1 ** 2) / n ** 2  # per-entry variance of hat F for S = 1
    return dict(f=f, params=params, x=x, y=y, lik=lik, F_enum=m1, var1=m2)


def test_enumerated_mean_is_the_exact_fisher(problem):
    np.testing.assert_allclose(fl.fisher(problem["f"], problem["params"], problem["x"],
                                         problem["lik"]), problem["F_enum"],
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("num_samples,seed", [(16, 11), (256, 12), (4096, 13)])
def test_frobenius_error_within_markov_bound(problem, num_samples, seed):
    F = np.asarray(fl.fisher(problem["f"], problem["params"], problem["x"], problem["lik"]))
    Fmc = np.asarray(fl.fisher_mc(problem["f"], problem["params"], problem["x"], problem["lik"],
                                  jax.random.key(seed), num_samples))
    V = problem["var1"].sum() / num_samples  # E ||hat F - F||^2
    err2 = np.sum((Fmc - F) ** 2)
    assert err2 <= V / DELTA, f"||hat F - F||^2 = {err2:.3e} > V/delta = {V / DELTA:.3e}"


def _z_threshold(num_entries: int) -> float:
    # two-sided normal quantile at FAMILY_LEVEL / num_entries (bisection on erfc)
    target = FAMILY_LEVEL / num_entries
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if math.erfc(mid / math.sqrt(2)) > target else (lo, mid)
    return hi


def test_entrywise_z_scores_at_4096_samples(problem):
    S = 4096
    F = np.asarray(fl.fisher(problem["f"], problem["params"], problem["x"], problem["lik"]))
    Fmc = np.asarray(fl.fisher_mc(problem["f"], problem["params"], problem["x"],
                                  problem["lik"], jax.random.key(2024), S))
    sd = np.sqrt(problem["var1"] / S)
    iu = np.triu_indices_from(F)
    dev, sd_u = (Fmc - F)[iu], sd[iu]
    degenerate = sd_u <= 1e-14 * np.abs(F).max()
    np.testing.assert_allclose(dev[degenerate], 0.0, atol=1e-12)
    z = np.abs(dev[~degenerate]) / sd_u[~degenerate]
    zstar = _z_threshold(int((~degenerate).sum()))
    assert z.max() <= zstar, f"max |z| = {z.max():.2f} > z* = {zstar:.2f}"


def test_the_bounds_reject_plausible_wrong_estimators(problem):
    # Power check: at S = 4096 each wrong variant lies far outside the Markov bound.
    S = 4096
    f, params, x, y, lik = (problem[k] for k in ("f", "params", "x", "y", "lik"))
    F = np.asarray(fl.fisher(f, params, x, lik))
    Fmc = np.asarray(fl.fisher_mc(f, params, x, lik, jax.random.key(13), S))
    bound = problem["var1"].sum() / S / DELTA
    wrong = {
        "empirical Fisher (data labels)": np.asarray(fl.empirical_fisher(f, params, x, y, lik)),
        "2x scaling": 2.0 * Fmc,
    }
    for name, M in wrong.items():
        assert np.sum((M - F) ** 2) > bound, name


def test_same_key_same_estimate_and_labels_from_likelihood_sample(problem):
    f, params, x, lik = (problem[k] for k in ("f", "params", "x", "lik"))
    key = jax.random.key(5)
    a = fl.fisher_mc(f, params, x, lik, key, 8)
    b = fl.fisher_mc(f, params, x, lik, key, 8)
    np.testing.assert_array_equal(a, b)
    c = fl.fisher_mc(f, params, x, lik, jax.random.key(6), 8)
    assert not np.array_equal(a, c)
    # the documented labels: likelihood.sample(key, outputs, S), shape (S, N)
    outs = jax.vmap(f, in_axes=(None, 0))(params, x)
    labels = lik.sample(key, outs, 8)
    theta, unravel = ravel_pytree(params)
    grads = jax.vmap(jax.vmap(
        jax.grad(lambda th, xn, yn: lik._nll(f(unravel(th), xn), yn)), in_axes=(None, 0, 0)),
        in_axes=(None, None, 0))(theta, x, labels)  # (S, N, d)
    g = np.asarray(grads).reshape(-1, theta.size)
    np.testing.assert_allclose(a, g.T @ g / (8 * x.shape[0]), rtol=1e-12, atol=1e-14)
