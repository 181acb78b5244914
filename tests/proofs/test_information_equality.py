"""proofs/information_equality.py beyond "it verifies" (test_all_derivations.py checks that
every derivation verifies with exact witnesses and that its page is current).

* the family is complete, in chain form, with honest tiers (A+B for the categorical, whose
  general-K chains are entry-wise; B at every size of each range; A-model for the abstract
  exponential family), scopes, references and numeric counterparts;
* the controls are the mistakes people make, each rejected;
* the ingredients the instantiations rely on are checked independently: the
  monomial-by-monomial expectation equals the family's own operator, the softmax coordinates
  are exact, the moment axiom ``E[t^alpha] = e^{-A} d^alpha e^A`` of the A-model chains holds
  for every concrete family, and the proved Fisher (the structural right-hand side evaluated
  at K = 3) equals the library's ``fisher_definition``.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from _kfac_proof_helpers import check_metadata, family, report
from fisherlab import proofs
from fisherlab.likelihoods import symbolic as lik
from fisherlab.symbolic import Entrywise, Explicit, Model, is_zero
from fisherlab.symbolic import toolkit as tk

NAMES = family("information_equality")

EXPECTED = {
    "information_equality.categorical": ("A+B", ("general K", "K = 2..5")),
    "information_equality.gaussian": ("B", ("C = 1..4", "sigma^2")),
    "information_equality.bernoulli": ("B", ("C = 1..4",)),
    "information_equality.poisson": ("B", ("C = 1..4",)),
    "information_equality.gaussian_mean_variance": ("B", ("D = 1..3",)),
    "information_equality.exponential_family": ("A-model", ("d = 1..4",)),
}
NATURAL_CONTROLS = {"log_partition_forgotten", "second_moment_for_covariance", "dropped_minus_sign"}


def test_family_is_complete():
    assert set(NAMES) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata_verification_and_controls(name):
    tier, words = EXPECTED[name]
    check_metadata(name, tier, words)
    r, _ = report(name)
    r.raise_if_failed()
    assert r.achieved == tier
    rejected = {c.name for c in r.controls if c.rejected}
    if name.endswith("gaussian_mean_variance"):
        assert {"dropped_minus_sign", "hessian_at_the_target"} <= rejected
    else:
        assert NATURAL_CONTROLS <= rejected


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_link_is_checked_over_the_whole_stated_range(name):
    key = name.split(".", 1)[1]
    want = tk.ABSTRACT_SIZES if key == "exponential_family" else tk.FAMILY_SIZES[key]
    for chain in proofs.get(name).chains():
        for link in chain.links:
            if isinstance(link.by, (Explicit, Model)):
                (size,) = {s for a in link.by.sizes.assignments for s in a}
                got = sorted(int(a[size]) for a in link.by.sizes.assignments)
                assert got == list(want), (name, got)


def test_the_categorical_reaches_tier_a_for_both_parts():
    d = proofs.get("information_equality.categorical")
    general = {chain.part for chain in d.chains()
               if any(isinstance(link.by, Entrywise) for link in chain.links)}
    assert general == {0, 1}


def test_proved_categorical_fisher_equals_the_library_definition_at_k_3():
    F = tk.family("categorical")
    proved = F.evaluate(F.closed, 3)
    diff = (proved - lik.categorical(3).fisher_definition()).applyfunc(sp.cancel)
    assert diff == sp.zeros(3, 3)


@pytest.mark.parametrize("family,builder,polys", [
    ("categorical", lambda: lik.categorical(3),
     lambda y: [y[0] * y[1], y[0] ** 2 + 3 * y[2], (y[0] - y[1]) ** 2 * y[2] + 1]),
    ("bernoulli", lambda: lik.bernoulli(2),
     lambda y: [y[0] * y[1], (y[0] + 2 * y[1]) ** 2, y[0] ** 3 - y[1]]),
    ("gaussian", lambda: lik.gaussian(2, tk.gaussian_variance_symbol()),
     lambda y: [y[0] * y[1], (y[0] + y[1]) ** 3, y[0] ** 4 - 2 * y[1] ** 2]),
    ("gaussian_mean_variance", lambda: lik.gaussian_mean_variance(1),
     lambda y: [y[0] ** 3, (y[0] - 1) ** 4]),
    ("poisson", lambda: lik.poisson(1), lambda y: [y[0] ** 2 - 3 * y[0] + 1]),
])
def test_moment_expectation_equals_the_family_operator(family, builder, polys):
    L = builder()
    E = tk.moment_expectation(L)
    for h in polys(L.targets):
        eta = L.outputs
        coeff = sp.exp(eta[0]) + 2  # a coefficient depending on the outputs rides along
        ok, _ = is_zero(E(coeff * h) - coeff * L.expectation(h))
        assert ok, (family, h)


@given(st.lists(st.floats(-30, 30), min_size=2, max_size=5))
def test_softmax_coordinates_are_exact(logits):
    K = len(logits)
    z, s, subs, probs = tk.softmax_coordinates(K)
    eta = lik.categorical(K).outputs
    # substituting the coordinate map into exp(eta_k) gives back z_k and s - sum z
    for k, e in enumerate(eta):
        expected = z[k] if k < K - 1 else s - sp.Add(*z)
        assert sp.simplify(sp.exp(e).subs(subs) - expected) == 0
    # and the coordinates of a numeric eta, evaluated at 50 digits (s - sum z cancels),
    # reproduce jax.nn.softmax
    x = np.asarray(logits, np.float64)
    exact = [sp.Rational(v) for v in logits]  # the float inputs, exactly
    point = {**{zk: sp.exp(e) for zk, e in zip(z, exact[:-1])}, s: sp.Add(*[sp.exp(e) for e in exact])}
    p = np.array([float(sp.N(v.subs(point), 50)) for v in probs])
    np.testing.assert_allclose(p, np.asarray(jax.nn.softmax(jnp.asarray(x, jnp.float64))),
                               rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("family", ["poisson", "bernoulli", "gaussian", "categorical"])
def test_exponential_family_moment_axiom_holds_for_every_concrete_family(family):
    # The tier-A axiom E[t^alpha] = e^{-A} d^alpha e^{A}, with A and t of a concrete source.
    L = {"poisson": lik.poisson(1), "bernoulli": lik.bernoulli(1),
         "gaussian": lik.gaussian(1), "categorical": lik.categorical(3)}[family]
    A_fn = sp.Function("A")
    eta = L.outputs
    t = L.sufficient_statistic
    assert L.log_partition is not None
    max_degree = 2 if family == "categorical" else 3
    for alpha in itertools.product(range(max_degree + 1), repeat=len(eta)):
        if not 0 < sum(alpha) <= max_degree:
            continue
        axiom = tk.expfam_moment(A_fn, eta, alpha)
        axiom = axiom.replace(lambda x: isinstance(x, sp.core.function.AppliedUndef),
                              lambda x: L.log_partition.subs(dict(zip(eta, x.args)))).doit()
        moment = L.expectation(sp.Mul(*[ti ** a for ti, a in zip(t, alpha)]))
        ok, _ = is_zero(sp.simplify(axiom - moment))
        assert ok, (family, alpha)
