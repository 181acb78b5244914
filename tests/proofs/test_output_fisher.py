"""proofs/output_fisher.py beyond "it verifies" (the generic test does that).

* metadata (tier, scope, references, numeric counterparts that resolve);
* every negative control is false with an exact witness, re-evaluated at 50 digits; the
  GaussianMeanVariance control "the NLL Hessian does not depend on y" is among them;
* the proved closed forms back the numeric code: ``closed_form`` (the right-hand side the
  proofs establish), evaluated in mpmath at 50 digits on the exact float inputs, equals
  ``fisherlab.likelihoods.<Family>.output_fisher`` (float64, rtol 1e-12);
* the proved target (in)dependence shows in the numeric ``output_hessian``: identical for
  every target of a natural-parameter family, equal to the proved target-dependent closed
  form for GaussianMeanVariance.
"""

import importlib

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
from _resolve import resolve
from fisherlab import proofs
from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import Tier, find_witness, is_zero

proofs.modules()  # registers the proofs/ folder as fisherlab._theorems
OF = importlib.import_module("fisherlab._theorems.output_fisher")
BY_NAME = {d.name: d for d in OF.DERIVATIONS}

EXPECTED = {
    "output_fisher.categorical": (Tier.AB, ("general K", "K = 2..5")),
    "output_fisher.gaussian": (Tier.B, ("C = 1..4",)),
    "output_fisher.bernoulli": (Tier.B, ("C = 1..4",)),
    "output_fisher.poisson": (Tier.B, ("C = 1..4",)),
    "output_fisher.gaussian_mean_variance": (Tier.B, ("D = 1..3",)),
}

RTOL = 1e-12


def _entries(x):
    if isinstance(x, sp.MatrixBase):
        return list(x)
    if isinstance(x, (list, tuple)):
        return [e for item in x for e in _entries(item)]
    return [sp.sympify(x)]


def test_module_declares_exactly_the_expected_derivations():
    assert set(BY_NAME) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata(name):
    d = BY_NAME[name]
    tier, words = EXPECTED[name]
    assert d.tier is tier
    for w in words:
        assert w in d.scope
    assert any("Johnson" in r and "App. A" in r for r in d.references)
    family = {"categorical": "Categorical", "gaussian": "Gaussian", "bernoulli": "Bernoulli",
              "poisson": "Poisson", "gaussian_mean_variance": "GaussianMeanVariance"}[name.split(".")[1]]
    assert f"fisherlab.likelihoods.{family}.output_fisher" in d.numeric
    assert f"fisherlab.likelihoods.{family}.output_hessian" in d.numeric
    for dotted in d.numeric:
        assert callable(resolve(dotted))


CONTROLS = [(d.name, c) for d in OF.DERIVATIONS for c in d.negative_controls]


@pytest.mark.parametrize("name,control", CONTROLS, ids=[f"{n}:{c.name}" for n, c in CONTROLS])
def test_every_control_is_false_with_an_exact_witness(name, control):
    step = control.build()
    diff = [a - b for a, b in zip(_entries(step.lhs), _entries(step.rhs))]
    w = control.witness() if callable(control.witness) else control.witness
    found = find_witness(sp.Matrix(diff), w)
    assert found is not None, control.name
    subs, _ = found
    values = [sp.N(e.subs(subs).doit(), 50) for e in diff]
    assert any(abs(complex(v)) > 1e-20 for v in values), (control.name, values)


def test_gmv_target_independence_is_a_rejected_control():
    controls = {c.name: c for c in BY_NAME["output_fisher.gaussian_mean_variance"].negative_controls}
    c = controls["target independence (true only for natural parameters)"]
    step = c.build()
    # d/dy H = [[0, e^-s], [e^-s, (y - mu) e^-s]]: nonzero wherever it is evaluated
    L = lik.gaussian_mean_variance(1)
    mu, s = L.outputs
    y = L.targets[0]
    expected = sp.Matrix([[0, sp.exp(-s)], [sp.exp(-s), (y - mu) * sp.exp(-s)]])
    assert is_zero(step.lhs - expected)[0]
    assert step.rhs == sp.zeros(2, 2)


@pytest.mark.parametrize("name", ["output_fisher.categorical", "output_fisher.gaussian",
                                  "output_fisher.bernoulli", "output_fisher.poisson"])
def test_natural_families_prove_target_independence_at_every_size(name):
    steps = BY_NAME[name].build()
    claims = [s.claim for s in steps if "does not depend on the target" in s.claim]
    sizes = {"categorical": OF.CATEGORICAL_SIZES, "gaussian": OF.GAUSSIAN_SIZES,
             "bernoulli": OF.BERNOULLI_SIZES, "poisson": OF.POISSON_SIZES}[name.split(".")[1]]
    assert len(claims) == len(sizes)
    for step in steps:
        if "does not depend on the target" in step.claim:
            assert all(e == 0 for e in _entries(step.rhs))
            assert len(_entries(step.lhs)) > 0


def test_closed_form_rejects_unknown_family():
    L = lik.categorical(2)
    fake = type(L)(**{**L.__dict__, "name": "Mystery"})
    with pytest.raises(ValueError, match="Mystery"):
        OF.closed_form(fake)


# --------------------------------------------------------------------------- numeric counterparts

_NUMERIC = {
    "Categorical": (lambda C: lik.categorical(C), lambda: fl.Categorical()),
    "Gaussian": (lambda C: lik.gaussian(C), None),
    "Bernoulli": (lambda C: lik.bernoulli(C), lambda: fl.Bernoulli()),
    "Poisson": (lambda C: lik.poisson(C), lambda: fl.Poisson()),
    "GaussianMeanVariance": (lambda C: lik.gaussian_mean_variance(C // 2), lambda: fl.GaussianMeanVariance()),
}


def _mp_closed_form(L, outputs, variance=None):
    """The proved closed form at exact float inputs, evaluated at 50 digits."""
    F = OF.closed_form(L, variance=None if variance is None else sp.Rational(variance))
    point = {e: sp.Rational(float(x)) for e, x in zip(L.outputs, outputs)}
    return np.array([[float(sp.N(F[i, j].subs(point), 50)) for j in range(F.cols)]
                     for i in range(F.rows)])


@st.composite
def _outputs(draw, family):
    C = draw(st.sampled_from([2, 4] if family == "GaussianMeanVariance" else [1, 2, 3]))
    if family == "Categorical":
        C = max(C, 2)
    vals = draw(st.lists(st.floats(-20, 20), min_size=C, max_size=C))
    return np.asarray([vals], np.float64)


@pytest.mark.parametrize("family", ["Categorical", "Bernoulli", "Poisson", "GaussianMeanVariance"])
@given(data=st.data())
def test_proved_closed_form_equals_numeric_output_fisher(family, data):
    outputs = data.draw(_outputs(family))
    builder, numeric = _NUMERIC[family]
    L = builder(outputs.shape[1])
    got = np.asarray(numeric().output_fisher(jnp.asarray(outputs, jnp.float64)))[0]
    want = _mp_closed_form(L, outputs[0])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max())


@given(st.floats(0.01, 100.0), st.lists(st.floats(-5, 5), min_size=1, max_size=3))
def test_proved_gaussian_closed_form_equals_numeric_output_fisher(variance, mean):
    outputs = np.asarray([mean], np.float64)
    L = lik.gaussian(len(mean))
    got = np.asarray(fl.Gaussian(variance=variance).output_fisher(jnp.asarray(outputs, jnp.float64)))[0]
    want = _mp_closed_form(L, mean, variance=variance)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@given(st.lists(st.floats(-10, 10), min_size=3, max_size=3), st.integers(0, 2), st.integers(0, 2))
def test_natural_output_hessian_is_the_same_for_every_target(logits, t1, t2):
    # Proved: d/dy of the categorical NLL Hessian is 0 and it equals diag(p) - pp^T.
    x = jnp.asarray([logits, logits], jnp.float64)
    H = np.asarray(fl.Categorical().output_hessian(x, jnp.asarray([t1, t2])))
    np.testing.assert_allclose(H[0], H[1], rtol=1e-13, atol=1e-15)
    want = _mp_closed_form(lik.categorical(3), logits)
    np.testing.assert_allclose(H[0], want, rtol=1e-11, atol=1e-13)


@given(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3))
def test_gmv_output_hessian_is_the_proved_target_dependent_form(mu, s, y):
    L = lik.gaussian_mean_variance(1)
    H_closed = OF.gmv_output_hessian(L)
    point = {L.outputs[0]: sp.Rational(mu), L.outputs[1]: sp.Rational(s), L.targets[0]: sp.Rational(y)}
    want = np.array([[float(sp.N(H_closed[i, j].subs(point), 50)) for j in range(2)] for i in range(2)])
    got = np.asarray(fl.GaussianMeanVariance().output_hessian(
        jnp.asarray([[mu, s]], jnp.float64), jnp.asarray([[y]], jnp.float64)))[0]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_gmv_output_hessian_differs_from_the_fisher_off_the_mean():
    # The proved dependence on y, seen numerically: at y = mu + 1 the (mu, s) entry is e^{-s}.
    out = jnp.asarray([[0.5, 0.0]], jnp.float64)
    H = np.asarray(fl.GaussianMeanVariance().output_hessian(out, jnp.asarray([[1.5]], jnp.float64)))[0]
    F = np.asarray(fl.GaussianMeanVariance().output_fisher(out))[0]
    assert H[0, 1] == pytest.approx(1.0, rel=1e-14)
    assert F[0, 1] == 0.0
