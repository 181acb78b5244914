"""proofs/kl_expansion.py beyond "it verifies" (test_all_derivations.py checks that every
derivation verifies with exact witnesses and that its page is current).

* the family is complete, in chain form, with honest tiers, scopes, references (Johnson 2017
  §3) and numeric counterparts; the controls are the mistakes people make, each rejected;
* the structural KL the proofs are about is the KL: evaluated by the checker's own
  instantiation (``Family.evaluate``) at K = 3 it equals the textbook ``sum_k p_k log(p_k/q_k)``
  written independently here (exact comparison at rational points, 50 digits);
* the proved expansion, seen numerically with the numeric counterpart: for the categorical
  and the (mean, log-variance) Gaussian, ``KL(p_eta || p_{eta + eps v})`` computed in mpmath
  (60 digits) from the textbook formulas satisfies ``|KL - eps^2/2 v^T F v| <= c eps^3``
  (the remainder scales like ``eps^3``: halving eps divides it by about 8), with ``F`` the
  float64 ``output_fisher`` of fisherlab; for the fixed-variance Gaussian the remainder is 0.
"""

import importlib

import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
from _kfac_proof_helpers import check_metadata, family, report
from fisherlab import proofs
from fisherlab.symbolic import toolkit as tk

proofs.modules()  # registers the proofs/ folder as fisherlab._theorems
KL = importlib.import_module("fisherlab._theorems.kl_expansion")
NAMES = family("kl_expansion")

EXPECTED = {
    "kl_expansion.categorical": ("A+B", ("general K", "K = 2..5")),
    "kl_expansion.gaussian": ("B", ("C = 1..4", "sigma^2")),
    "kl_expansion.gaussian_mean_variance": ("B", ("D = 1..3",)),
    "kl_expansion.exponential_family": ("A-model", ("d = 1..4",)),
}
CONTROLS = {
    "kl_expansion.categorical": {"fisher_at_the_wrong_point", "half_in_the_hessian", "missing_ppT"},
    "kl_expansion.gaussian": {"half_missing", "variance_for_precision"},
    "kl_expansion.gaussian_mean_variance": {"half_in_the_hessian", "fisher_in_variance"},
    "kl_expansion.exponential_family": {"mean_of_t_forgotten", "half_in_the_hessian"},
}


def test_family_is_complete():
    assert set(NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata_verification_and_controls(name):
    tier, words = EXPECTED[name]
    check_metadata(name, tier, words)
    r, _ = report(name)
    r.raise_if_failed()
    assert r.achieved == tier
    assert CONTROLS[name] <= {c.name for c in r.controls if c.rejected}


def test_the_structural_kl_is_the_textbook_categorical_kl():
    F = tk.family("categorical")
    k = F.evaluate(KL.kl_divergence(F), 3)[0, 0]
    L = F.source(3)
    eta, eta2 = L.outputs, [sp.Symbol(f"{e.name}'", real=True) for e in L.outputs]
    p = [sp.exp(e) / sp.Add(*[sp.exp(x) for x in eta]) for e in eta]
    q = [sp.exp(e) / sp.Add(*[sp.exp(x) for x in eta2]) for e in eta2]
    textbook = sp.Add(*[pk * sp.log(pk / qk) for pk, qk in zip(p, q)])
    assert k.free_symbols <= set(eta) | set(eta2)
    for point in ({eta[0]: sp.Rational(1, 3), eta[1]: -2, eta[2]: sp.Rational(5, 4),
                   eta2[0]: 1, eta2[1]: sp.Rational(-1, 2), eta2[2]: 3},
                  {eta[0]: 0, eta[1]: 0, eta[2]: 0, eta2[0]: 2, eta2[1]: 0, eta2[2]: -1}):
        assert abs(sp.N((k - textbook).subs(point), 50)) < sp.Float("1e-45")


def _mp_categorical_kl(eta, delta):
    with mpmath.workdps(60):
        a = [mpmath.mpf(x) for x in eta]
        b = [mpmath.mpf(x) + d for x, d in zip(eta, delta)]
        la, lb = mpmath.log(sum(mpmath.exp(x) for x in a)), mpmath.log(sum(mpmath.exp(x) for x in b))
        return sum(mpmath.exp(x - la) * ((x - la) - (y - lb)) for x, y in zip(a, b))


def _mp_gaussian_kl(mu, s, dmu, ds):
    """KL(N(mu, e^s) || N(mu + dmu, e^{s + ds})), textbook formula at 60 digits (shifts added exactly)."""
    with mpmath.workdps(60):
        total = mpmath.mpf(0)
        for m, t, dm, dt in zip(mu, s, dmu, ds):
            t, dm, dt = mpmath.mpf(t), mpmath.mpf(dm), mpmath.mpf(dt)
            total += (dt + (mpmath.exp(t) + dm ** 2) * mpmath.exp(-(t + dt)) - 1) / 2
        return total


def _remainders(kl, quad, epss):
    return [abs(float(kl(e)) - 0.5 * e * e * quad) for e in epss]


@given(st.lists(st.floats(-4, 4), min_size=2, max_size=4), st.data())
def test_categorical_kl_expansion_numerically(eta, data):
    K = len(eta)
    v = np.asarray(data.draw(st.lists(st.floats(-1, 1), min_size=K, max_size=K)), np.float64)
    F = np.asarray(fl.Categorical().output_fisher(jnp.asarray([eta], jnp.float64)))[0]
    quad = float(v @ F @ v)
    epss = [1e-2, 5e-3]
    r = _remainders(lambda e: _mp_categorical_kl(eta, [mpmath.mpf(e) * x for x in v]), quad, epss)
    # |k(eps) - eps^2 q / 2| <= c eps^3 with c = sup|k'''|/6 <= (|v|_inf * 2)^3 (crude bound)
    c = (2 * np.abs(v).max()) ** 3
    for e, rem in zip(epss, r):
        assert rem <= c * e ** 3 + 1e-14 * quad * e * e + 1e-40, (e, rem, quad)  # 1e-40: mpmath floor


def test_categorical_remainder_is_third_order():
    eta, v = [0.3, -1.2, 0.8], np.array([1.0, -0.5, 0.25])
    F = np.asarray(fl.Categorical().output_fisher(jnp.asarray([eta], jnp.float64)))[0]
    quad = float(v @ F @ v)
    r1, r2 = _remainders(lambda e: _mp_categorical_kl(eta, [mpmath.mpf(e) * x for x in v]), quad,
                         [2e-2, 1e-2])
    assert 6.0 < r1 / r2 < 10.0, r1 / r2  # ~ 8 = 2^3


@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(-1, 1), st.floats(-1, 1))
def test_gmv_kl_expansion_numerically(mu, s, a, b):
    F = np.asarray(fl.GaussianMeanVariance().output_fisher(jnp.asarray([[mu, s]], jnp.float64)))[0]
    v = np.array([a, b])
    quad = float(v @ F @ v)
    epss = [1e-2, 5e-3]
    r = _remainders(lambda e: _mp_gaussian_kl([mu], [s], [mpmath.mpf(e) * a], [mpmath.mpf(e) * b]),
                    quad, epss)
    c = 10.0 * (1 + np.exp(-s)) * (abs(a) + abs(b)) ** 3
    for e, rem in zip(epss, r):
        assert rem <= c * e ** 3 + 1e-14 * quad * e * e + 1e-40, (e, rem, quad)  # 1e-40: mpmath floor


@given(st.floats(0.05, 20.0), st.lists(st.floats(-3, 3), min_size=1, max_size=3), st.data())
def test_fixed_variance_gaussian_kl_is_exactly_quadratic(variance, mu, data):
    C = len(mu)
    delta = np.asarray(data.draw(st.lists(st.floats(-3, 3), min_size=C, max_size=C)), np.float64)
    F = np.asarray(fl.Gaussian(variance=variance).output_fisher(jnp.asarray([mu], jnp.float64)))[0]
    s = float(np.log(variance))
    kl = float(_mp_gaussian_kl(mu, [s] * C, list(delta), [0.0] * C))
    np.testing.assert_allclose(kl, 0.5 * float(delta @ F @ delta), rtol=1e-12, atol=1e-40)  # mpmath floor
