"""pullback_sampling: the derivation verifies; fl.fisher_mc (sampled-label pseudo-gradients
pulled back by J^T) estimates the exact Fisher J^T F_out J.

Statistical test: a single-output Bernoulli linear model, N = 1. Each sampled label gives
Dz = sigma(eta) - y in [-1, 1], so Dz^2 in [0, 1] and the Monte-Carlo Fisher is
mean_s(Dz_s^2) xbar xbar^T. Hoeffding: P(|mean_s Dz_s^2 - E Dz^2| >= t) <= 2 exp(-2 S t^2);
with S = 20000 and t = 0.02 the false-failure probability is <= 2 e^{-16} < 3e-7 (for a
random key; the key is fixed, so the test is deterministic).
"""

import jax
import jax.numpy as jnp
import numpy as np

import fisherlab as fl

from _verified import verified


def test_derivation_verifies():
    report = verified("pullback_sampling.pseudo_gradient_covariance")
    report.raise_if_failed()
    assert report.controls_rejected == 3


def test_fisher_mc_is_the_covariance_of_pulled_back_sampled_scores():
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    W, b = jnp.asarray([[0.7, -0.4]]), jnp.asarray([0.2])
    x = jnp.asarray([[1.5, 0.5]])
    S, t = 20000, 0.02
    F_mc = np.asarray(fl.fisher_mc(model, [(W, b)], x, fl.Bernoulli(), jax.random.key(0), S))
    eta = float(W[0] @ x[0] + b[0])
    p = 1.0 / (1.0 + np.exp(-eta))
    xbar = np.array([1.5, 0.5, 1.0])
    E_dz2 = p * (1 - p)                     # E[(p - y)^2] = p (1 - p) = F_out
    # the estimate is exactly (mean_s Dz_s^2) xbar xbar^T: recover the scalar and bound it
    ratio = F_mc / np.outer(xbar, xbar)
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-12)
    assert abs(ratio[0, 0] - E_dz2) < t
    F = np.asarray(fl.fisher(model, [(W, b)], x, fl.Bernoulli()))
    np.testing.assert_allclose(F, E_dz2 * np.outer(xbar, xbar), rtol=1e-12)
