"""An instantiation (``values=``, ``operators=``) may not change what a check is about: a value
must satisfy the hypotheses of its symbol, must stay generic (not a constant, a copy of another
value or a structured matrix) unless the link declares it a quantity the instantiation defines,
and an operator must be an expectation of something random. Each false derivation below passed
before these guards; each is now refused, with the symbol and the reason named."""

from __future__ import annotations

import pytest
import sympy as sp

from fisherlab.symbolic import (Chain, Control, Derivation, Entrywise, Explicit, Lemma, Link, Sizes,
                                to_markdown)
from fisherlab.symbolic.toolkit import Expect, sample_average

n = sp.Symbol("n", integer=True, positive=True)
a, t = sp.symbols("a t", real=True)
A, B, F = (sp.MatrixSymbol(s, n, n) for s in "ABF")
u = sp.MatrixSymbol("u", n, 1)
TWO = Sizes({n: (2,)})


def one_link(lhs, rhs, by, hypotheses=(), tier="B", name="t.guard"):
    """The single link ``lhs = rhs`` checked by ``by``; the control (the left side doubled) is
    refuted at generic instances, so only the link decides whether the derivation passes."""
    return Derivation(name=name, title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                      proof=lambda: Chain(lhs, [Link(rhs, by, label="link")]), tier=tier,
                      scope="test", hypotheses=hypotheses,
                      controls=[Control("doubled", target="conclusion", replace=(lhs, 2 * lhs),
                                        why="a doubled side", at=Explicit(TWO))])


def link_error(d) -> str:
    r = d.verify()
    assert not r.ok
    (link,) = r.links
    assert not link.passed
    return link.error


def explicit(values, defines=()):
    return Explicit(TWO, values=lambda s: values, describe="a special value", defines=defines)


# ------------------------------------------------------------------ 1. values meet the hypotheses

def test_an_indefinite_value_for_a_positive_definite_symbol_is_refused():
    # F F = I is false for a positive definite F, true at the indefinite diag(1, -1)
    d = one_link(F * F, sp.Identity(n), explicit({F: sp.diag(1, -1)}), [sp.Q.positive_definite(F)])
    assert "the value given for F is not shown positive definite" in link_error(d)


def test_a_value_built_as_a_gram_matrix_is_positive_definite():
    # L L^T with L lower triangular and a positive diagonal: its leading minors are products of
    # squares of positive symbols; the true identity (F^T = F) then checks
    l11, l22 = sp.symbols("l_11 l_22", positive=True)
    L = sp.Matrix([[l11, 0], [sp.Symbol("l_21", real=True), l22]])
    d = one_link(F.T, F, explicit({F: L * L.T}), [sp.Q.positive_definite(F)])
    r = d.verify()
    assert r.ok, r.failures()


def test_the_general_symmetric_matrix_covers_positive_definite_ones_in_a_link_not_in_a_witness():
    # a link's check holds for every value of the instance's symbols: the general symmetric F
    # includes every positive definite one. A witness must lie in the class itself: at the
    # symmetric F = [[f11, f12], [f12, f22]] a refutation could sit at an indefinite point
    general = sp.Matrix([[sp.Symbol("f_11"), sp.Symbol("f_12")], [sp.Symbol("f_12"), sp.Symbol("f_22")]])
    by = Explicit(TWO, values=lambda s: {F: general}, describe="F general symmetric")
    lhs = F - F.T
    d = Derivation(name="t.cover", title="t", conclusion=sp.Eq(lhs, sp.ZeroMatrix(n, n), evaluate=False),
                   hypotheses=[sp.Q.positive_definite(F)],
                   proof=lambda: Chain(lhs, [Link(sp.ZeroMatrix(n, n), by)]), tier="B", scope="test",
                   controls=[Control("c", target="conclusion", replace=(lhs, F), why="w", at=by)])
    r = d.verify()
    assert r.links[0].passed, r.links[0].error
    (c,) = r.controls
    assert not c.rejected and "a witness must itself be positive definite" in c.error


def test_a_lazily_computed_value_must_meet_the_hypotheses_too():
    # S + S^T = 0 is false for a symmetric S, true at an antisymmetric value given lazily
    S = sp.MatrixSymbol("S", n, n)
    anti = sp.Matrix([[0, a], [-a, 0]])
    d = one_link(S + S.T, sp.ZeroMatrix(n, n), explicit({S: lambda: anti}), [sp.Q.symmetric(S)])
    assert "the value given for S is not symmetric" in link_error(d)


@pytest.mark.parametrize("prop, value, lhs, rhs, why", [
    ("invertible", sp.zeros(2, 2), A * A, sp.ZeroMatrix(n, n), "is singular"),
    ("diagonal", sp.Matrix([[0, a], [0, 0]]), A * A, sp.ZeroMatrix(n, n), "is not diagonal"),
], ids=["invertible", "diagonal"])
def test_a_value_that_breaks_a_matrix_hypothesis_is_refused(prop, value, lhs, rhs, why):
    d = one_link(lhs, rhs, explicit({A: value}, defines=(A,)), [getattr(sp.Q, prop)(A)])
    err = link_error(d)
    assert f"the value given for A {why}" in err and f"Q.{prop}(A)" in err


def test_an_entrywise_value_of_a_symbol_with_a_matrix_hypothesis_is_refused():
    # S + S^T = 0 with S's entries given as those of an antisymmetric matrix
    S, M = sp.MatrixSymbol("S", n, n), sp.MatrixSymbol("M", n, n)
    by = Entrywise(values=lambda ent: {S: lambda i, j: ent.base(M)[i, j] - ent.base(M)[j, i]},
                   describe="antisymmetric entries")
    d = one_link(S + S.T, sp.ZeroMatrix(n, n), by, [sp.Q.symmetric(S)], tier="A")
    assert "S has the hypothesis Q.symmetric(S)" in link_error(d)


# ------------------------------------------------------------------ 2. values stay generic

@pytest.mark.parametrize("values, why", [
    ({A: sp.eye(2)}, "A is set to a special value"),
    ({A: sp.zeros(2, 2)}, "A is set to a special value"),
    ({A: a * sp.eye(2)}, "A is set to a special value"),
    ({A: sp.Matrix(2, 2, sp.symbols("m_1:5")), B: sp.Matrix(2, 2, sp.symbols("m_1:5"))},
     "B is set to the value of A"),
], ids=["identity", "zero", "scalar_multiple_of_identity", "two_symbols_equal"])
def test_a_special_value_that_makes_a_false_identity_hold_is_refused(values, why):
    # A B = B A is false; it holds when A is I, 0, a I, or when B = A. (The a of a I is a
    # symbol of the link, not one of the value's own.)
    d = one_link(a * A * B, a * B * A, explicit(values))
    assert why in link_error(d)


def test_an_entrywise_value_that_is_special_is_refused():
    # a A = 0 at general dimension with the scalar a set to 0
    by = Entrywise(values=lambda ent: {a: sp.Integer(0)}, describe="a = 0")
    d = one_link(a * A, sp.ZeroMatrix(n, n), by, tier="A")
    assert "a is set to a special value (0) with no free symbol of its own" in link_error(d)


def test_a_scalar_value_must_keep_the_symbols_assumptions():
    # p is declared positive; the value -r^2 is not (a check there is about other objects)
    p, r = sp.Symbol("p", positive=True), sp.Symbol("r", real=True)
    d = one_link(sp.MatAdd(p * A, p * A), 2 * p * A,
                 Explicit(TWO, values=lambda s: {p: -r ** 2}, describe="p = -r^2"))
    assert "the value given for p, -r**2, is not known to be positive" in link_error(d)


def test_a_value_must_satisfy_a_scalar_hypothesis():
    # |x| = -x is false under the hypothesis x > 0; the value x = -r^2 breaks the hypothesis
    x, r = sp.Symbol("x", real=True), sp.Symbol("r", real=True)
    d = one_link(sp.Abs(x) * A, -x * A, Explicit(TWO, values=lambda s: {x: -r ** 2}, describe="x = -r^2"),
                 [sp.Gt(x, 0)])
    assert "the values given do not satisfy the hypothesis x > 0" in link_error(d)


def test_an_entrywise_operator_that_is_no_expectation_is_refused():
    by = Entrywise(operators={"y": lambda ent, poly: poly.scale(0)}, describe="E = 0")
    lhs, rhs = Expect(u * u.T, "y"), Expect(u, "y") * Expect(u, "y").T
    d = Derivation(name="t.op_e", title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                   proof=lambda: Chain(lhs, [Link(rhs, by)]), tier="A", scope="test",
                   controls=[Control("c", target="conclusion", replace=(rhs, 2 * rhs), why="w",
                                     at=Explicit(TWO, operators={"y": lambda h: h}))])
    r = d.verify()
    assert "the operator over 'y' is not an expectation" in r.links[0].error


@pytest.mark.parametrize("value, rank", [
    (sp.Function("g")(t) * sp.eye(2), 1),                          # a generic multiple of I
    (sp.diag(sp.Symbol("d_1"), sp.Symbol("d_2")), 2),               # diagonal, for a general A
    (sp.Matrix([[sp.Symbol("p"), sp.Symbol("q")], [sp.Symbol("q"), sp.Symbol("p")]]), 2),
], ids=["function_times_identity", "diagonal", "circulant"])
def test_a_structured_value_with_fewer_free_directions_than_its_class_is_refused(value, rank):
    # A B = B A holds for every B once A = g(t) I; for B = diag too, with A diagonal; the
    # circulant [[p, q], [q, p]] commutes with the circulant B below. Each value has symbols of
    # its own, but fewer free directions than the 4 of a general 2 x 2 matrix
    Bv = (sp.Matrix([[sp.Symbol("r"), sp.Symbol("s")], [sp.Symbol("s"), sp.Symbol("r")]])
          if rank == 2 and value[0, 1] != 0 else sp.diag(sp.Symbol("e_1"), sp.Symbol("e_2")))
    values = {A: value} if rank == 1 else {A: value, B: Bv}
    d = one_link(a * A * B, a * B * A, explicit(values))
    assert f"the value of A has {rank} free direction(s) of its own, fewer than the 4" in link_error(d)


def test_a_scalar_set_to_zero_is_refused():
    d = one_link(a * A, sp.ZeroMatrix(n, n), Explicit(TWO, values=lambda s: {a: 0}, describe="a = 0"))
    assert "a is set to a special value" in link_error(d)


def test_a_quantity_the_instantiation_defines_is_accepted_and_shown_on_the_page():
    # a selection vector is a defined object, not a variable: declared, it checks and is shown
    e = sp.MatrixSymbol("e", n, 1)
    by = Explicit(TWO, values=lambda s: {e: sp.Matrix([1, 0])}, describe="e the first unit vector",
                  defines=(e,))
    d = one_link(e.T * e, sp.Identity(1), by, name="t.defines")
    r = d.verify()
    assert r.ok, r.failures()
    shown = r"defined by the instantiation: $e = \left[\begin{matrix}1\\0\end{matrix}\right]$"
    assert r.links[0].sizes.endswith(shown) and shown in to_markdown(d, r)


def test_a_value_special_at_some_sizes_only_is_shown_at_those_sizes():
    # A u = lambda u with A's first column solved from the hypothesis: at n = 2 A has free
    # entries of its own, at n = 1 the hypothesis forces A = [lambda] -- accepted, and shown
    lam = sp.Symbol("lambda", real=True)
    eig = sp.Eq(A * u, lam * u, evaluate=False)

    def value(sizes):
        k = sizes[n]
        uu = sp.Matrix(k, 1, lambda i, _: sp.Symbol(f"u_{i + 1}", real=True))
        M = sp.Matrix(k, k, lambda i, j: sp.Symbol(f"m_{i + 1}{j + 1}", real=True))
        rest = sum((M[:, j] * uu[j] for j in range(1, k)), sp.zeros(k, 1))
        return {u: uu, A: sp.Matrix.hstack((lam * uu - rest) / uu[0], M[:, 1:])}

    by = Explicit(Sizes({n: (1, 2)}), values=value, describe="A with the eigenpair (lambda, u)")
    d = Derivation(name="t.partly", title="t", conclusion=eig, hypotheses=[eig],
                   proof=lambda: Chain(A * u, [Link(lam * u, by)]), tier="B", scope="test",
                   controls=[Control("c", target="conclusion", replace=(lam * u, 2 * lam * u),
                                     why="w", at=by)])
    r = d.verify()
    assert r.ok, r.failures()
    assert r.links[0].sizes.endswith(r"; special value $A = \left[\begin{matrix}\lambda\end{matrix}"
                                     r"\right]$ at n = 1")


def test_defines_names_symbols_and_needs_values():
    with pytest.raises(ValueError, match="defines"):
        Explicit(TWO, defines=(A,))


# ------------------------------------------------------------------ 3. operators are expectations

@pytest.mark.parametrize("op", [lambda h: 0, lambda h: sp.Integer(1), lambda h: 0 * h],
                         ids=["zero", "one", "times_zero"])
def test_an_operator_that_is_no_expectation_is_refused(op):
    # E[u u^T] = E[u] E[u]^T is false; an operator sending everything to 0 or 1 makes it hold
    lhs, rhs = Expect(u * u.T, "y"), Expect(u, "y") * Expect(u, "y").T
    by = Explicit(TWO, operators={"y": op})
    d = Derivation(name="t.op", title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                   proof=lambda: Chain(lhs, [Link(rhs, by)]), tier="B", scope="test",
                   controls=[Control("c", target="conclusion", replace=(rhs, 2 * rhs), why="w")])
    r = d.verify()
    assert "the operator over 'y' is not an expectation" in r.links[0].error


def _variance_claim(by):
    lhs, rhs = Expect(u * u.T, "y"), Expect(u, "y") * Expect(u, "y").T
    return Derivation(name="t.op", title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                      proof=lambda: Chain(lhs, [Link(rhs, by)]), tier="B", scope="test",
                      controls=[Control("c", target="conclusion", replace=(rhs, 2 * rhs), why="w")])


def test_an_operator_that_changes_nothing_is_refused():
    # h -> h is the expectation of a deterministic quantity: E[u u^T] = E[u] E[u]^T holds
    r = _variance_claim(Explicit(TWO, operators={"y": lambda h: h}, describe="u fixed")).verify()
    assert "the operator over 'y' leaves every entry it is applied to unchanged" in r.links[0].error


def test_a_link_checked_with_an_operator_says_what_it_is():
    # a two-point average is an expectation, but the page must say which one
    u1, u2 = sp.symbols("u_1 u_2")
    avg = {u1: [1, -1], u2: [0, 2]}
    r = _variance_claim(Explicit(TWO, operators={"y": sample_average(avg)})).verify()
    assert "say which distribution the operators over ['y'] are (describe=...)" in r.links[0].error


# ------------------------------------------------------------------ 4. tiers of cited lemmas

def test_citing_a_lemma_checked_at_stated_sizes_reaches_that_tier_only():
    # tr(A B) = tr(B A) checked at n = 1, 2 (tier B); a chain citing it cannot claim tier A
    lem = one_link(sp.Trace(A * B), sp.Trace(B * A), Explicit(Sizes({n: (1, 2)})), name="t.trace_b")
    assert lem.verify().ok
    cite = one_link(sp.Trace(F * A), sp.Trace(A * F), Lemma(lem, {A: F, B: A}), tier="A",
                    name="t.cite_b")
    r = cite.verify()
    assert not r.ok and r.achieved == "B" and r.links[0].tier == "B"
    assert "t.trace_b's sizes: n ∈ {1, 2}" in r.links[0].sizes
