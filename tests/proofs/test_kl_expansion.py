"""proofs/kl_expansion.py beyond "it verifies" (the generic test does that).

* metadata (tier, scope, references to seed 003 §3, numeric counterparts);
* every negative control is false with an exact witness, re-evaluated at 50 digits;
* ``kl_along`` computes the KL: it equals the textbook ``sum_k p_k log(p_k / q_k)`` written
  independently here (exact comparison at rational points, 50 digits);
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
from _resolve import resolve
from fisherlab import proofs
from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import Tier, find_witness

proofs.modules()  # registers the proofs/ folder as fisherlab._theorems
KL = importlib.import_module("fisherlab._theorems.kl_expansion")
BY_NAME = {d.name: d for d in KL.DERIVATIONS}

EXPECTED = {
    "kl_expansion.categorical": (Tier.AB, ("general K", "K = 2..5")),
    "kl_expansion.gaussian": (Tier.B, ("C = 1..4",)),
    "kl_expansion.gaussian_mean_variance": (Tier.B, ("D = 1..3",)),
    "kl_expansion.exponential_family": (Tier.A, ("d = 1..4",)),
}


def _entries(x):
    return list(x) if isinstance(x, sp.MatrixBase) else [sp.sympify(x)]


def test_module_declares_exactly_the_expected_derivations():
    assert set(BY_NAME) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata(name):
    d = BY_NAME[name]
    tier, words = EXPECTED[name]
    assert d.tier is tier
    for w in words:
        assert w in d.scope
    assert any("Johnson" in r and "§3" in r for r in d.references)
    assert d.numeric and all(callable(resolve(n)) for n in d.numeric)
    assert d.assumptions
    # the O(|delta|^3) conclusion rests on Taylor's theorem: it must be stated
    assert any("Taylor" in a for a in d.assumptions)


@pytest.mark.parametrize("name,label,sizes", [
    ("kl_expansion.categorical", "K", KL.KL_CATEGORICAL_SIZES),
    ("kl_expansion.gaussian", "C", KL.KL_GAUSSIAN_SIZES),
    ("kl_expansion.gaussian_mean_variance", "D", KL.KL_GMV_SIZES),
    ("kl_expansion.exponential_family", "d", KL.KL_EXPFAM_SIZES),
])
def test_every_size_has_value_first_and_second_order_steps(name, label, sizes):
    assert tuple(sizes) == tuple(range(min(sizes), max(sizes) + 1))
    steps = BY_NAME[name].build()
    labels = [f"{label} = {n}" for n in sizes] + (["general K"] if label == "K" else [])
    for tag in labels:
        claims = [s.claim for s in steps if s.claim.startswith(f"{tag}:")]
        text = " | ".join(claims)
        assert ("k(0)" in text or "KL(eta, eta) = 0" in text), text
        assert ("k'(0) = 0" in text or "grad_2 KL(eta, eta) = 0" in text), text
        assert ("k''(0) = v^T F_out v" in text or "k''(0) = v^T (diag(p) - p p^T) v" in text
                or "grad^2_22 KL(eta, eta) = Hess A" in text), text


CONTROLS = [(d.name, c) for d in KL.DERIVATIONS for c in d.negative_controls]


@pytest.mark.parametrize("name,control", CONTROLS, ids=[f"{n}:{c.name}" for n, c in CONTROLS])
def test_every_control_is_false_with_an_exact_witness(name, control):
    step = control.build()
    diff = [a - b for a, b in zip(_entries(step.lhs), _entries(step.rhs))]
    w = control.witness() if callable(control.witness) else control.witness
    found = find_witness(sp.Matrix(diff), w)
    assert found is not None, control.name
    subs, _ = found
    fn = {k: v for k, v in subs.items() if isinstance(k, sp.FunctionClass)}
    sym = {k: v for k, v in subs.items() if not isinstance(k, sp.FunctionClass)}
    values = []
    for e in diff:
        for f, lam in fn.items():
            e = e.replace(lambda x, f=f: isinstance(x, sp.core.function.AppliedUndef) and x.func == f,
                          lambda x, lam=lam: lam(*x.args)).doit()
        values.append(sp.N(e.subs(sym).doit(), 50))
    assert any(abs(complex(v)) > 1e-20 for v in values), (control.name, values)
    assert {"factor 1/2 missing"} <= {c.name for c in BY_NAME[name].negative_controls} or \
        name == "kl_expansion.gaussian"


def test_kl_along_is_the_textbook_categorical_kl():
    K = 3
    L = lik.categorical(K)
    v = sp.Matrix(sp.symbols("v_1:4", real=True))
    k = KL.kl_along(L, v)
    eps = sp.Symbol("epsilon", real=True)
    eta = L.outputs
    p = [sp.exp(e) / sp.Add(*[sp.exp(x) for x in eta]) for e in eta]
    q = [sp.exp(e + eps * vi) / sp.Add(*[sp.exp(x + eps * vj) for x, vj in zip(eta, v)])
         for e, vi in zip(eta, v)]
    textbook = sp.Add(*[pk * sp.log(pk / qk) for pk, qk in zip(p, q)])
    for point in ({eta[0]: sp.Rational(1, 3), eta[1]: -2, eta[2]: sp.Rational(5, 4), v[0]: 1,
                   v[1]: sp.Rational(-1, 2), v[2]: 3, eps: sp.Rational(2, 7)},
                  {eta[0]: 0, eta[1]: 0, eta[2]: 0, v[0]: 2, v[1]: 0, v[2]: -1, eps: 1}):
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
