"""proofs/output_fisher.py beyond "it verifies" (test_all_derivations.py checks that every
derivation verifies with exact witnesses and that its page is current).

* the family is complete, in chain form, with honest tiers, scopes, references and numeric
  counterparts; the tier-B links cover every size of the family's range; the categorical
  reaches tier A by entry-wise chains at general K;
* the controls are the mistakes people make, each rejected;
* the proved closed forms back the numeric code: the structural right-hand side the proofs
  establish, evaluated by the checker's own instantiation (``Family.evaluate``) in mpmath at
  50 digits on the exact float inputs, equals ``fisherlab.likelihoods.<Family>.output_fisher``
  (float64, rtol 1e-12);
* the proved target (in)dependence shows in the numeric ``output_hessian``: identical for
  every target of a natural-parameter family, equal to the proved target-dependent form for
  GaussianMeanVariance.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
from _kfac_proof_helpers import check_metadata, family, report
from fisherlab import proofs
from fisherlab.symbolic import Entrywise, Explicit
from fisherlab.symbolic import toolkit as tk

NAMES = family("output_fisher")

EXPECTED = {
    "output_fisher.categorical": ("A+B", ("general K", "K = 2..5")),
    "output_fisher.gaussian": ("B", ("C = 1..4", "sigma^2")),
    "output_fisher.bernoulli": ("B", ("C = 1..4",)),
    "output_fisher.poisson": ("B", ("C = 1..4",)),
    "output_fisher.gaussian_mean_variance": ("B", ("D = 1..3",)),
}
CONTROLS = {
    "output_fisher.categorical": {"missing_ppT", "bernoulli_formula_on_softmax"},
    "output_fisher.gaussian": {"variance_for_precision", "variance_forgotten"},
    "output_fisher.bernoulli": {"softmax_formula_on_sigmoid", "missing_one_minus_sigma"},
    "output_fisher.poisson": {"fisher_of_the_rate", "second_moment_for_covariance"},
    "output_fisher.gaussian_mean_variance": {"target_independence", "fisher_in_variance"},
}
RTOL = 1e-12


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


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_tier_b_links_cover_every_size_of_the_range(name):
    F = tk.family(name.split(".", 1)[1])
    for chain in proofs.get(name).chains():
        for link in chain.links:
            if isinstance(link.by, Explicit):
                got = sorted(int(a[F.size]) for a in link.by.sizes.assignments)
                assert got == list(F.sizes), (name, chain.title, got)


def test_the_categorical_reaches_tier_a_at_general_k_for_every_part():
    d = proofs.get("output_fisher.categorical")
    general = {chain.part for chain in d.chains()
               if all(isinstance(link.by, Entrywise) for link in chain.links)}
    assert general == {0, 1, 2}


def test_gmv_hessian_depends_on_the_target_and_natural_ones_do_not():
    for name in ("categorical", "gaussian", "bernoulli", "poisson"):
        F = tk.family(name)
        H = F.evaluate(F.hessian, F.sizes[0])
        assert not H.free_symbols & set(F.source(F.sizes[0]).targets), name
    G = tk.family("gaussian_mean_variance")
    H = G.evaluate(G.hessian, 1)
    assert H.free_symbols & set(G.source(1).targets)


# --------------------------------------------------------------------------- numeric counterparts

_NUMERIC = {
    "Categorical": ("categorical", lambda C: C, lambda: fl.Categorical()),
    "Gaussian": ("gaussian", lambda C: C, None),
    "Bernoulli": ("bernoulli", lambda C: C, lambda: fl.Bernoulli()),
    "Poisson": ("poisson", lambda C: C, lambda: fl.Poisson()),
    "GaussianMeanVariance": ("gaussian_mean_variance", lambda C: C // 2,
                             lambda: fl.GaussianMeanVariance()),
}


def _mp(expr, family_name, n, outputs, extra=None):
    """The proved structural form at size ``n``, at exact float inputs, evaluated at 50 digits."""
    F = tk.family(family_name)
    M = F.evaluate(expr, n)
    point = {e: sp.Rational(float(x)) for e, x in zip(F.source(n).outputs, outputs)}
    point.update(extra or {})
    return np.array([[float(sp.N(M[i, j].subs(point), 50)) for j in range(M.cols)]
                     for i in range(M.rows)])


def _mp_closed_form(family_name, n, outputs, extra=None):
    return _mp(tk.family(family_name).closed, family_name, n, outputs, extra)


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
    name, size, numeric = _NUMERIC[family]
    got = np.asarray(numeric().output_fisher(jnp.asarray(outputs, jnp.float64)))[0]
    want = _mp_closed_form(name, size(outputs.shape[1]), outputs[0])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max())


@given(st.floats(0.01, 100.0), st.lists(st.floats(-5, 5), min_size=1, max_size=3))
def test_proved_gaussian_closed_form_equals_numeric_output_fisher(variance, mean):
    outputs = np.asarray([mean], np.float64)
    got = np.asarray(fl.Gaussian(variance=variance).output_fisher(jnp.asarray(outputs, jnp.float64)))[0]
    want = _mp_closed_form("gaussian", len(mean), mean,
                           {tk.gaussian_variance_symbol(): sp.Rational(variance)})
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@given(st.lists(st.floats(-10, 10), min_size=3, max_size=3), st.integers(0, 2), st.integers(0, 2))
def test_natural_output_hessian_is_the_same_for_every_target(logits, t1, t2):
    # Proved: d/dy of the categorical NLL Hessian is 0 and it equals diag(p) - pp^T.
    x = jnp.asarray([logits, logits], jnp.float64)
    H = np.asarray(fl.Categorical().output_hessian(x, jnp.asarray([t1, t2])))
    np.testing.assert_allclose(H[0], H[1], rtol=1e-13, atol=1e-15)
    want = _mp_closed_form("categorical", 3, logits)
    np.testing.assert_allclose(H[0], want, rtol=1e-11, atol=1e-13)


@given(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3))
def test_gmv_output_hessian_is_the_proved_target_dependent_form(mu, s, y):
    G = tk.family("gaussian_mean_variance")
    want = _mp(G.hessian, "gaussian_mean_variance", 1, [mu, s],
               {G.source(1).targets[0]: sp.Rational(y)})
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
