"""proofs/information_equality.py beyond "it verifies" (the generic test does that).

* metadata: tier, scope, references, resolvable numeric counterparts, recorded axioms;
* every negative control is false *with an exact witness*, re-evaluated here at 50 digits,
  and the categorical witnesses lie in the coordinate domain ``{z > 0, s > sum z}``;
* the tier-B chains cover every size of their stated range;
* the steps are not vacuous: perturbing a proved right-hand side makes the checker fail;
* the two non-source ingredients are checked independently: the monomial-by-monomial
  expectation equals the family's own operator, the softmax coordinates are exact, and the
  tier-A moment axiom ``E[t^alpha] = e^{-A} d^alpha e^A`` holds for every concrete family;
* the general-K (tier A) closed form agrees with the K = 3 tier-B Fisher of the source.
"""

import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from _resolve import resolve
from fisherlab import proofs
from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import Tier, find_witness, is_zero

proofs.modules()  # registers the proofs/ folder as fisherlab._theorems
IE = importlib.import_module("fisherlab._theorems.information_equality")
BY_NAME = {d.name: d for d in IE.DERIVATIONS}

EXPECTED = {
    "information_equality.categorical": (Tier.AB, ("general K", "K = 2..5")),
    "information_equality.gaussian": (Tier.B, ("C = 1..4", "sigma^2")),
    "information_equality.bernoulli": (Tier.B, ("C = 1..4",)),
    "information_equality.poisson": (Tier.B, ("C = 1..4",)),
    "information_equality.gaussian_mean_variance": (Tier.B, ("D = 1..3",)),
    "information_equality.exponential_family": (Tier.A, ("d = 1..4",)),
}


def _diff_entries(step):
    lhs, rhs = step.lhs, step.rhs
    le = list(lhs) if isinstance(lhs, sp.MatrixBase) else [sp.sympify(lhs)]
    re_ = list(rhs) if isinstance(rhs, sp.MatrixBase) else [sp.sympify(rhs)]
    assert len(le) == len(re_)
    return [a - b for a, b in zip(le, re_)]


def _assert_witness_is_genuine(control):
    """The control's difference is nonzero at the witness, re-evaluated independently at 50 digits."""
    step = control.build()
    w = control.witness() if callable(control.witness) else control.witness
    found = find_witness(sp.Matrix(_diff_entries(step)), w)
    assert found is not None, f"{control.name}: no witness"
    subs, _ = found
    fn_subs = {k: v for k, v in subs.items() if isinstance(k, sp.FunctionClass)}
    sym_subs = {k: v for k, v in subs.items() if not isinstance(k, sp.FunctionClass)}
    values = []
    for e in _diff_entries(step):
        for f, lam in fn_subs.items():
            e = e.replace(lambda x, f=f: isinstance(x, sp.core.function.AppliedUndef) and x.func == f,
                          lambda x, lam=lam: lam(*x.args)).doit()
        values.append(sp.N(e.subs(sym_subs).doit(), 50))
    assert any(v.is_number and abs(complex(v)) > 1e-20 for v in values), (control.name, values)
    return sym_subs


def test_module_declares_exactly_the_expected_derivations():
    assert set(BY_NAME) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata(name):
    d = BY_NAME[name]
    tier, scope_words = EXPECTED[name]
    assert d.tier is tier
    for word in scope_words:
        assert word in d.scope, (name, d.scope)
    assert any("Johnson" in r and "§7" in r for r in d.references)
    assert any("Martens" in r for r in d.references)
    assert d.numeric, name
    for dotted in d.numeric:
        assert callable(resolve(dotted)), dotted
    assert d.axioms and d.assumptions
    for text in d.axioms.values():
        assert text.count("$") % 2 == 0 and "$" in text, text  # rendered as inline math
    if tier in (Tier.A, Tier.AB):
        assert len(d.negative_controls) >= 2


def test_tier_a_chains_record_their_hand_supplied_facts():
    cat = BY_NAME["information_equality.categorical"].axioms
    for key in ("index range", "canonical dummy index", "linearity of the finite sum",
                "categorical pmf in general K"):
        assert key in cat
    assert "moments of the sufficient statistic" in BY_NAME["information_equality.exponential_family"].axioms


CONTROLS = [(d.name, c) for d in IE.DERIVATIONS for c in d.negative_controls]


@pytest.mark.parametrize("name,control", CONTROLS, ids=[f"{n}:{c.name}" for n, c in CONTROLS])
def test_every_control_is_false_with_an_exact_witness(name, control):
    subs = _assert_witness_is_genuine(control)
    if name.endswith("categorical") and any(str(k) == "s" for k in subs):
        z = [v for k, v in subs.items() if str(k).startswith("z_")]
        s = [v for k, v in subs.items() if str(k) == "s"][0]
        assert all(v > 0 for v in z) and s > sum(z), "witness outside the coordinate domain"


def test_expected_controls_are_present():
    names = {n: {c.name for c in BY_NAME[n].negative_controls} for n in BY_NAME}
    assert {"dropped minus sign", "empirical Fisher at a fixed label", "missing p p^T term"} <= \
        names["information_equality.categorical"]
    for n in BY_NAME:
        assert "dropped minus sign" in names[n], n
    assert "uncentred second moment" in names["information_equality.exponential_family"]


@pytest.mark.parametrize("name,label,sizes", [
    ("information_equality.categorical", "K", IE.CATEGORICAL_SIZES),
    ("information_equality.gaussian", "C", IE.GAUSSIAN_SIZES),
    ("information_equality.bernoulli", "C", IE.BERNOULLI_SIZES),
    ("information_equality.poisson", "C", IE.POISSON_SIZES),
    ("information_equality.gaussian_mean_variance", "D", IE.GMV_SIZES),
    ("information_equality.exponential_family", "d", IE.EXPFAM_SIZES),
])
def test_tier_b_chains_cover_every_size_of_the_range(name, label, sizes):
    d = BY_NAME[name]
    lo, hi = min(sizes), max(sizes)
    assert tuple(sizes) == tuple(range(lo, hi + 1))
    assert f"{label} = {lo}..{hi}" in d.scope
    steps = d.build()
    for n in sizes:
        tagged = [s for s in steps if s.claim.startswith(f"{label} = {n}:")]
        assert len(tagged) == 2, (name, n, [s.claim for s in tagged])
        assert "zero mean" in tagged[0].claim


def _perturbed_fails(step, bump):
    entries = _diff_entries(step)
    ok, _ = is_zero([entries[0] + bump] + entries[1:])
    return not ok


def test_steps_are_not_vacuous_general_k():
    # The general-K steps are settled while building (check "literal"): make sure a wrong
    # right-hand side is not accepted, i.e. the lhs really is the computed quantity.
    steps = BY_NAME["information_equality.categorical"].build()
    general = [s for s in steps if s.claim.startswith("general K")]
    assert len(general) == 5
    g = IE.general_categorical()
    bump = g["p"](g["k"]) * g["p"](g["l"])
    for step in general:
        assert _perturbed_fails(step, bump), step.claim


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_steps_are_not_vacuous_tier_b(name):
    # The first two steps of the smallest size: adding 1/7 to one entry must be rejected.
    steps = [s for s in BY_NAME[name].build() if not s.claim.startswith("general K")][:2]
    for step in steps:
        assert _perturbed_fails(step, sp.Rational(1, 7)), step.claim


@pytest.mark.parametrize("family,builder,polys", [
    ("categorical", lambda: lik.categorical(3),
     lambda y: [y[0] * y[1], y[0] ** 2 + 3 * y[2], (y[0] - y[1]) ** 2 * y[2] + 1]),
    ("bernoulli", lambda: lik.bernoulli(2),
     lambda y: [y[0] * y[1], (y[0] + 2 * y[1]) ** 2, y[0] ** 3 - y[1]]),
    ("gaussian", lambda: lik.gaussian(2, IE.gaussian_variance_symbol()),
     lambda y: [y[0] * y[1], (y[0] + y[1]) ** 3, y[0] ** 4 - 2 * y[1] ** 2]),
    ("gaussian_mean_variance", lambda: lik.gaussian_mean_variance(1),
     lambda y: [y[0] ** 3, (y[0] - 1) ** 4]),
    ("poisson", lambda: lik.poisson(1), lambda y: [y[0] ** 2 - 3 * y[0] + 1]),
])
def test_moment_expectation_equals_the_family_operator(family, builder, polys):
    L = builder()
    E = IE.moment_expectation(L)
    for h in polys(L.targets):
        eta = L.outputs
        coeff = sp.exp(eta[0]) + 2  # a coefficient depending on the outputs rides along
        ok, _ = is_zero(E(coeff * h) - coeff * L.expectation(h))
        assert ok, (family, h)


@given(st.lists(st.floats(-30, 30), min_size=2, max_size=5))
def test_softmax_coordinates_are_exact(logits):
    K = len(logits)
    z, s, subs, probs = IE.softmax_coordinates(K)
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
        axiom = IE.expfam_moment(A_fn, eta, alpha)
        axiom = axiom.replace(lambda x: isinstance(x, sp.core.function.AppliedUndef),
                              lambda x: L.log_partition.subs(dict(zip(eta, x.args)))).doit()
        moment = L.expectation(sp.Mul(*[ti ** a for ti, a in zip(t, alpha)]))
        ok, _ = is_zero(sp.simplify(axiom - moment))
        assert ok, (family, alpha)


def test_general_k_fisher_agrees_with_the_tier_b_source_at_k_3():
    g = IE.general_categorical()
    K, k, l, eta = g["K"], g["k"], g["l"], g["eta"]
    closed = sp.KroneckerDelta(k, l) * g["p"](k) - g["p"](k) * g["p"](l)
    L = lik.categorical(3)
    F = L.fisher_definition()
    for a, b in itertools.product(range(3), repeat=2):
        general = closed.subs({K: 3, k: a + 1, l: b + 1}).doit().subs(
            {eta[i + 1]: L.outputs[i] for i in range(3)})
        ok, _ = is_zero(sp.cancel(general - F[a, b]))
        assert ok, (a, b)


def test_general_k_index_range_axiom_refuses_other_piecewise():
    g = IE.general_categorical()
    bad = sp.Piecewise((g["eta"][g["k"]], g["k"] > 3), (0, True))
    with pytest.raises(ValueError, match="index-range"):
        g["finish"](bad)
