"""The general-dimension instantiations of the engine: ``Entrywise(values=, operators=)`` (a
structural symbol given its general entries, an expectation over a one-hot target at symbolic
``K`` with a free index range), ``Explicit(coordinates=)`` (an exact change of variables whose
domain the witnesses respect). Each loophole row must be refused; the true rows must pass."""

from __future__ import annotations

import re

import pytest
import sympy as sp

from fisherlab.symbolic import Chain, Control, Derivation, Entrywise, Explicit, Link, Sizes
from fisherlab.symbolic.toolkit import Diag, Expect, Grad, Hess, abstract_family, family, one_hot_expectation

CAT = family("categorical")
K, eta, y, logp = CAT.size, CAT.eta, CAT.y, CAT.logp
(p,) = [s for s in CAT.abbreviations]


def one_link(lhs, rhs, by, controls=None, tier="A"):
    if controls is None:   # a changed right side (control results are not asserted here)
        wrong = p if rhs == sp.ZeroMatrix(K, 1) else 2 * rhs
        controls = [Control("changed", target="link", replace=(rhs, wrong), why="w")]
    return Derivation(name="t.general", title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                      proof=lambda: Chain(lhs, [Link(rhs, by, label="link")]), tier=tier,
                      scope="test", controls=list(controls))


def passes(d) -> bool:
    r = d.verify()
    return all(link.passed for link in r.links) and not r.error


# --------------------------------------------------------------- the one-hot expectation at general K

TRUE_AT_GENERAL_K = [
    (Grad(logp, eta), y - p),                                   # the score
    (Expect(y, "y"), p),                                         # a free index k: sum_c delta_ck p_c = p_k
    (Expect(y * y.T, "y"), Diag(p)),                             # two free indices: delta_kl p_k
    (Expect((y - p) * (y - p).T, "y"), CAT.closed),              # the covariance
    (Hess(-logp, eta), CAT.closed),                              # the Hessian, free of y
    (Expect(Hess(-logp, eta), "y"), CAT.closed),                 # sum_c p_c = 1
]
FALSE_AT_GENERAL_K = [
    (Expect(y, "y"), sp.ZeroMatrix(K, 1)),
    (Expect(y * y.T, "y"), p * p.T),                             # second moment taken as outer product of means
    (Expect((y - p) * (y - p).T, "y"), Diag(p)),                 # the -pp^T term dropped
    (Hess(-logp, eta), Diag(p)),
    (Grad(logp, eta), y + p),
]


@pytest.mark.parametrize("lhs, rhs", TRUE_AT_GENERAL_K)
def test_general_categorical_identities_pass_entrywise(lhs, rhs):
    assert passes(one_link(lhs, rhs, CAT.general))


@pytest.mark.parametrize("lhs, rhs", FALSE_AT_GENERAL_K)
def test_false_categorical_identities_fail_entrywise(lhs, rhs):
    assert not passes(one_link(lhs, rhs, CAT.general))


def test_entrywise_values_must_be_described_and_well_formed():
    with pytest.raises(ValueError, match="describe"):
        Entrywise(values=lambda ent: {})
    stray = sp.IndexedBase("q")
    j = sp.Symbol("j", integer=True)
    x = sp.MatrixSymbol("x", K, 1)
    c, e = sp.Symbol("c"), sp.Symbol("e")
    # an entry outside the evaluator's bases would be a constant to every derivative
    bad = Entrywise(values=lambda ent: {c: stray[0], e: stray[0]}, describe="a stray base")
    assert not passes(one_link(c, e, bad))
    # a sum over an index of x that does not run over x's range
    short_sum = lambda ent: sp.Sum(ent.base(x)[j, 0], (j, 0, K - 2))  # noqa: E731
    short = Entrywise(values=lambda ent: {c: short_sum(ent), e: short_sum(ent)},
                      describe="a short sum")
    d = one_link(c, e, short)
    assert not passes(d) and "runs over" in d.verify().error + " ".join(
        link.error for link in d.verify().links)
    # only Symbols and MatrixSymbols can be instantiated
    other = Entrywise(values=lambda ent: {sp.Function("f")(c): c}, describe="a function")
    assert not passes(one_link(c, e, other))


def test_expectation_without_an_operator_is_refused():
    bare = Entrywise(values=lambda ent: {}, describe="no operators")
    d = one_link(Expect(y, "y"), p, bare)
    assert not passes(d)


def test_one_hot_expectation_refuses_a_target_inside_a_nonlinear_function():
    op = one_hot_expectation(y, lambda ent, c: sp.Integer(1) / K)
    by = Entrywise(values=lambda ent: {logp: ent.base(eta)[0, 0] * sp.exp(ent.base(y)[0, 0])},
                   operators={"y": op}, describe="exp of a target entry")
    assert not passes(one_link(Expect(Grad(logp, eta), "y"), sp.ZeroMatrix(K, 1), by))


def test_a_general_control_is_refuted_with_a_witness_at_explicit_size():
    d = one_link(Expect((y - p) * (y - p).T, "y"), CAT.closed, CAT.general,
                 controls=[Control("drop_ppT", target="link", replace=(CAT.closed, Diag(p)),
                                   at=CAT.at(2), why="the -pp^T term dropped")])
    r = d.verify()
    assert r.ok and r.controls[0].rejected


# --------------------------------------------------------------- coordinates

def test_coordinates_must_be_stated():
    with pytest.raises(ValueError, match="change of variables"):
        Explicit(Sizes({K: (2,)}), coordinates=lambda sizes: ({}, []))


def test_coordinates_decide_softmax_identities_and_witnesses_respect_their_domain():
    z, s = sp.Symbol("z", positive=True), sp.Symbol("s", positive=True)
    a = sp.Symbol("a", real=True)
    # in z = e^a, s > z: the claim "s - z > 0" holds on the domain only; a witness for the
    # false claim (s - z)^2 = (s - z)*(s - z) + (s > z) must respect s > z
    by = Explicit(Sizes({K: (2,)}), coordinates=lambda sizes: ({a: sp.log(z)}, [sp.Gt(s, z)]),
                  describe="a = log z, and s > z")
    assert passes(one_link((sp.exp(a) + s) ** 2, sp.exp(2 * a) + 2 * sp.exp(a) * s + s ** 2, by, tier="B"))
    # z is the new coordinate: a claim that names it (e^a s = z s) would identify it with e^a
    assert not passes(one_link(sp.exp(a) * s, z * s, by, tier="B"))
    d = one_link(sp.exp(a), s - sp.exp(a), by, tier="B",
                 controls=[Control("c", target="link", replace=(s - sp.exp(a), s), why="w")])
    assert not passes(d)
    r = d.verify()
    assert r.controls[0].rejected
    # the witness lies in the stated domain s > z
    vals = _witness_values(r.controls[0].witness)
    assert set(vals) == {"s", "z"} and vals["s"] > vals["z"]


def _witness_values(text):
    """``{name: value}`` from a rendered witness (``s = \\frac{5}{4},\\ z = 2``)."""
    out = {}
    for name, num, den, whole in re.findall(r"\b(s|z) = (?:\\frac\{(\d+)\}\{(\d+)\}|(\d+))", text):
        out[name] = sp.Rational(int(num), int(den)) if num else sp.Integer(int(whole))
    return out


# --------------------------------------------------------------- the abstract exponential family

def test_abstract_family_checks_the_moment_identities_and_refuses_the_uncentred_one():
    F = abstract_family()
    gA = Grad(F.A, F.eta)
    ok = one_link(Expect(F.y, "y"), gA, F.explicit, tier="A-model")
    assert passes(ok)
    cov = one_link(Expect((F.y - gA) * (F.y - gA).T, "y"), F.closed, F.explicit, tier="A-model")
    assert passes(cov)
    wrong = one_link(Expect(F.y * F.y.T, "y"), F.closed, F.explicit, tier="A-model")
    assert not passes(wrong)
