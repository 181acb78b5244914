"""The checker refuses every known loophole: a table of false derivations that must FAIL and
of true ones that must PASS, one row per loophole (branch cuts, empty checks, shapes, Floats,
genericity, witnesses that ignore assumptions, free-standing controls, index capture, rewrite
rules that presuppose the theorem, conclusions the chain does not reach)."""

from __future__ import annotations

import pytest
import sympy as sp

from fisherlab.symbolic import (Algebra, Chain, CheckError, Control, Derivation, Entrywise,
                                Explicit, Lemma, Link, Sizes, find_witness, is_zero)
from fisherlab.symbolic.toolkit import Kron, Scalar

x, y, s = sp.symbols("x y sigma", real=True)
xp, yp, sp_ = sp.symbols("x y sigma", positive=True)
n, m = sp.symbols("n m", integer=True, positive=True)
k = sp.Symbol("k", integer=True)
A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", m, m)
C, D = sp.MatrixSymbol("C", n, n), sp.MatrixSymbol("D", m, m)


def one_link(lhs, rhs, by=None, rel="=", hypotheses=(), controls=None, tier="A", name="t.loophole"):
    """A derivation whose proof is the single link lhs rel rhs, with a control that changes
    the right side (refutable whenever the link is meaningful)."""
    by = by or Algebra()
    relation = sp.Eq(lhs, rhs, evaluate=False) if rel == "=" else sp.Ge(lhs, rhs, evaluate=False)
    if controls is None:
        wrong = 2 * rhs if isinstance(rhs, sp.MatrixExpr) else rhs + 1
        controls = [Control("changed", target="link", replace=(rhs, wrong), why="a changed scalar")]
    return Derivation(name=name, title="t", conclusion=relation,
                      proof=lambda: Chain(lhs, [Link(rhs, by, rel=rel, label="link")]),
                      tier=tier, scope="test", hypotheses=hypotheses, controls=controls)


def link_passes(d) -> bool:
    r = d.verify()
    return all(link.passed for link in r.links) and not r.error


# ------------------------------------------------------------------ 1. branch cuts

BRANCH_CUT = [
    # (lhs, rhs, holds): the rewrite is valid only for the positive symbols
    (sp.log(x * y), sp.log(x) + sp.log(y), False),
    (sp.log(s ** 2), 2 * sp.log(s), False),
    (sp.sqrt(x) * sp.sqrt(y), sp.sqrt(x * y), False),
    (sp.log(xp * yp), sp.log(xp) + sp.log(yp), True),
    (sp.log(sp_ ** 2), 2 * sp.log(sp_), True),
]


@pytest.mark.parametrize("lhs, rhs, holds", BRANCH_CUT, ids=[str(r[0]) + "=" + str(r[1]) + ("/pos" if r[2] else "")
                                                           for r in BRANCH_CUT])
def test_branch_cut_rewrites_only_under_assumptions_that_make_them_valid(lhs, rhs, holds):
    assert link_passes(one_link(lhs, rhs)) is holds
    assert is_zero(lhs - rhs)[0] is holds


def test_branch_cut_unsafe_inequality_is_refused():
    # sqrt(x) sqrt(y) - sqrt(x y) + x^2 >= 0 is -1 at x = y = -1
    q = sp.sqrt(x) * sp.sqrt(y) - sp.sqrt(x * y) + x ** 2
    d = Derivation(name="t.ineq", title="t", conclusion=sp.Ge(q, 0, evaluate=False),
                   proof=lambda: Chain(q, [Link(x ** 2, Algebra()), Link(0, Algebra(), rel=">=")]),
                   tier="A", scope="test",
                   controls=[Control("c", target="conclusion", replace=(x ** 2, -x ** 2), why="w")])
    r = d.verify()
    assert not r.ok and not r.links[0].passed and r.links[1].passed
    # the recorded assumptions make the same rewrite valid
    qp = sp.sqrt(xp) * sp.sqrt(yp) - sp.sqrt(xp * yp) + xp ** 2
    assert is_zero(qp - xp ** 2)[0]


# ------------------------------------------------------------------ 2. empty checks

def test_empty_size_loops_are_refused_at_construction():
    with pytest.raises(ValueError, match="empty"):
        Sizes({n: range(3, 1)})
    with pytest.raises(ValueError, match="leaves no size"):
        Sizes({n: (1, 2)}, where=lambda n: n > 5, where_text="n > 5")
    with pytest.raises(ValueError, match="empty"):
        Sizes.of([])


def test_an_empty_chain_and_empty_matrices_prove_nothing():
    with pytest.raises(ValueError, match="at least one link"):
        Chain(x, [])
    d = one_link(sp.MatrixSymbol("E", 0, 0), sp.MatrixSymbol("F", 0, 0),
                 by=Explicit(Sizes({n: (1,)})), tier="B",
                 controls=[Control("c", target="conclusion", replace=(x, y), why="w")])
    assert not d.verify().ok


# ------------------------------------------------------------------ 3. shapes

def test_shapes_are_compared_not_flattened_entries():
    X23 = sp.MatrixSymbol("X", 2, 3)
    v6 = sp.MatrixSymbol("v", 6, 1)
    with pytest.raises(ValueError, match="shapes"):
        one_link(X23, v6)
    # explicit values: a 2x3 matrix is not a 6x1 vector with the same entries
    from fisherlab.symbolic._check import difference
    M = sp.Matrix(2, 3, sp.symbols("a:6"))
    with pytest.raises(CheckError, match="shapes differ"):
        difference(M, M.reshape(6, 1), "test")
    with pytest.raises(CheckError, match="shapes differ"):
        difference(M, M.reshape(3, 2), "test")
    # a chain link between different shapes fails even when every entry matches
    Y = sp.MatrixSymbol("Y", n, m)
    YI = sp.MatMul(Y, sp.Identity(m))
    d = Derivation(name="t.shape", title="t", conclusion=sp.Eq(Y, YI, evaluate=False),
                   proof=lambda: Chain(Y, [Link(Y.T, Algebra()), Link(YI, Algebra())]),
                   tier="A", scope="t", controls=[Control("c", target="conclusion", replace=(Y, 2 * Y), why="w")])
    r = d.verify()
    assert not r.ok and "shape" in r.links[0].error


# ------------------------------------------------------------------ 4. Floats

def test_float_constants_are_refused():
    with pytest.raises(ValueError, match="Float"):
        one_link(x * (1 + sp.Float("1e-20")), x)
    half = sp.Mul(2, x, sp.Rational(1, 2), evaluate=False)
    d2 = Derivation(name="t.f", title="t", conclusion=sp.Eq(x, half, evaluate=False),
                    proof=lambda: Chain(x, [Link(x * (1 + sp.Float("1e-20")), Algebra()),
                                            Link(half, Algebra())]),
                    tier="A", scope="t", controls=[Control("c", target="conclusion", replace=(y, x), why="w")])
    r = d2.verify()
    assert not r.ok and "Float" in r.links[0].error


# ------------------------------------------------------------------ 5. genericity

def test_generically_true_identities_record_the_denominators_that_must_not_vanish():
    F = sp.MatrixSymbol("F", n, n)
    lam = sp.Symbol("lambda", nonnegative=True)
    M = F + lam * sp.Identity(n)
    d = one_link(sp.MatMul(M, sp.Inverse(M)), sp.Identity(n),
                 by=Explicit(Sizes({n: (1, 2)})), tier="B", hypotheses=[sp.Q.symmetric(F)])
    r = d.verify()
    assert r.ok, r.failures()
    assert sp.Determinant(M) in r.conditions  # det(F + lambda I) != 0 is on the record (and page)
    from fisherlab.symbolic import to_markdown
    assert "Holds where" in to_markdown(d, r)
    # a scalar rational identity records its denominator too
    r2 = one_link((x ** 2 - 1) / (x - 1), x + 1).verify()
    assert r2.ok and (x - 1) in r2.conditions


# ------------------------------------------------------------------ 6. witnesses

def test_witnesses_respect_symbol_assumptions():
    # x >= 0 is TRUE for a positive x: the control is not refuted (so the derivation fails)
    d = Derivation(name="t.pos", title="t", conclusion=sp.Ge(xp ** 2 + xp, 0, evaluate=False),
                   proof=lambda: Chain(xp ** 2 + xp, [Link(0, Algebra(), rel=">=")]),
                   tier="A", scope="t",
                   controls=[Control("drop_square", target="conclusion", replace=(xp ** 2, 0),
                                     why="a true claim for positive x")])
    r = d.verify()
    assert r.links[0].passed and not r.controls[0].rejected and not r.ok
    # integrality: sin(pi k) = 0 for an integer k -- never refuted
    assert find_witness(sp.sin(sp.pi * k)) is None
    assert find_witness(sp.Abs(xp) - xp) is None
    with pytest.raises(ValueError, match="violates the assumptions"):
        find_witness(x - xp, {xp: -1})


def test_witnesses_respect_side_equations_and_hypotheses():
    z = sp.Symbol("z", real=True)
    # under the side equation z = x^2, the claim z = x^2 is true: no witness
    assert find_witness(z - x ** 2, hypotheses=[sp.Eq(z, x ** 2)]) is None
    # under the hypothesis x > 1, Max(x, 1) = x is true: a point with x <= 1 is no witness
    assert find_witness(sp.Max(x, 1) - x, hypotheses=[sp.Gt(x, 1)]) is None
    assert find_witness(sp.Max(x, 1) - x) is not None
    # a point where a denominator vanishes is no witness
    assert find_witness(x / x - 1, conditions=[x]) is None


def test_controls_are_tied_to_a_link_and_mutate_something():
    with pytest.raises(ValueError, match="free-standing"):
        Control("one_is_two", target="", replace=(sp.Integer(1), sp.Integer(2)), why="1 = 2")
    with pytest.raises(TypeError):
        Control("one_is_two", replace=(sp.Integer(1), sp.Integer(2)), why="1 = 2")  # no target
    with pytest.raises(ValueError, match="mutates nothing"):
        Control("same", target="link", replace=(x, x), why="w")
    d = one_link((x + 1) ** 2, x ** 2 + 2 * x + 1,
                 controls=[Control("absent", target="link", replace=(y, 2 * y), why="y is not there")])
    r = d.verify()
    assert not r.ok and "mutates nothing" in r.controls[0].error
    d = one_link((x + 1) ** 2, x ** 2 + 2 * x + 1,
                 controls=[Control("ghost", target="no_such_link", replace=(x, y), why="w")])
    assert "no link labelled" in d.verify().controls[0].error


# ------------------------------------------------------------------ 7. index capture

def test_summation_indices_are_never_captured():
    i, j, K = sp.Symbol("i", integer=True), sp.Symbol("j", integer=True), sp.Symbol("K", integer=True, positive=True)
    a, b = sp.IndexedBase("a"), sp.IndexedBase("b")
    # sum_i a_i b_j  (j free)  is not  sum_j a_j b_j  (renaming i -> j captures j)
    lhs = sp.Sum(a[i] * b[j], (i, 1, K))
    captured = sp.Sum(a[j] * b[j], (j, 1, K))
    assert not link_passes(one_link(lhs, captured))
    # renaming to a fresh index is alpha-equivalence and passes
    assert link_passes(one_link(lhs, sp.Sum(a[k] * b[j], (k, 1, K))))
    # a product of sums is the double sum (distributivity), in any order
    t = sp.Symbol("t", integer=True)
    assert link_passes(one_link(sp.Sum(a[i], (i, 1, K)) * sp.Sum(b[t], (t, 1, K)),
                                sp.Sum(sp.Sum(b[i] * a[t], (i, 1, K)), (t, 1, K))))


# ------------------------------------------------------------------ 8. rewrite rules that presuppose the theorem

def test_sympy_kronecker_rewrites_are_refused_and_algebra_does_not_know_kronecker_rules():
    with pytest.raises(ValueError, match="KroneckerProduct"):
        one_link(sp.KroneckerProduct(A, B).T, sp.KroneckerProduct(A.T, B.T))
    # the matrix-algebra normal form treats (x) as opaque: none of its rules is assumed
    assert not link_passes(one_link(Kron(A, B).T, Kron(A.T, B.T)))
    assert not link_passes(one_link(sp.Inverse(Kron(A, B)), Kron(A.I, B.I),
                                    hypotheses=[sp.Q.invertible(A), sp.Q.invertible(B)]))
    # ... while entry by entry at general dimension the transpose rule is a theorem
    assert link_passes(one_link(Kron(A, B).T, Kron(A.T, B.T), by=Entrywise()))


FALSE_MIXED = (Kron(A, B) * Kron(C, D), Kron(C * A, D * B))


@pytest.mark.parametrize("by", [Algebra(), Entrywise(), Explicit(Sizes({n: (1, 2), m: (1, 2)}))],
                         ids=["algebra", "entrywise", "explicit"])
def test_the_false_mixed_product_rule_fails_at_every_level(by):
    d = one_link(*FALSE_MIXED, by=by, tier=by.tier)
    assert not link_passes(d)


def test_one_generic_summand_is_not_a_proof():
    # A check of one summand with hand-chosen indices only shows that scalar multiplication
    # commutes; the entry-wise check builds the whole finite sums of both sides itself.
    i_, k_, s_, t_, j_, l_ = sp.symbols("i k s t j l", integer=True)
    Ai, Bi, Ci, Di = (sp.IndexedBase(c) for c in "ABCD")
    summand = Ai[i_, s_] * Bi[k_, t_] * Ci[s_, j_] * Di[t_, l_]
    assert is_zero(summand - (Ai[i_, s_] * Ci[s_, j_]) * (Bi[k_, t_] * Di[t_, l_]))[0]
    assert not link_passes(one_link(*FALSE_MIXED, by=Entrywise()))
    assert link_passes(one_link(Kron(A, B) * Kron(C, D), Kron(A * C, B * D), by=Entrywise()))


# ------------------------------------------------------------------ 9. the chain must reach the conclusion

def test_a_chain_that_does_not_reach_the_conclusion_fails():
    F, H = sp.MatrixSymbol("F", n, n), sp.MatrixSymbol("H", n, n)
    # "F = H for every model", proved by the single link F = F
    d = Derivation(name="t.fh", title="t", conclusion=sp.Eq(F, H, evaluate=False),
                   proof=lambda: Chain(F, [Link(sp.MatMul(F, sp.Identity(n)), Algebra())]),
                   tier="A", scope="t", controls=[Control("c", target="conclusion", replace=(H, 2 * H), why="w")])
    r = d.verify()
    assert not r.ok and "ends at" in r.error
    d2 = Derivation(name="t.start", title="t", conclusion=sp.Eq(F, H, evaluate=False),
                    proof=lambda: Chain(H, [Link(H, Algebra())]),
                    tier="A", scope="t", controls=[Control("c", target="conclusion", replace=(H, 2 * H), why="w")])
    assert "starts at" in d2.verify().error


def test_trivially_true_or_missing_conclusions_are_refused():
    with pytest.raises(ValueError, match="no conclusion"):
        Derivation(name="t.none", title="t", conclusion=None, proof=lambda: [], tier="A", scope="t",
                   controls=[Control("c", target="conclusion", replace=(x, y), why="w")])
    with pytest.raises(ValueError, match="evaluated"):
        Derivation(name="t.true", title="t", conclusion=sp.Eq(x + 1, 1 + x), proof=lambda: [],
                   tier="A", scope="t", controls=[Control("c", target="conclusion", replace=(x, y), why="w")])
    with pytest.raises(ValueError, match="same expression"):
        Derivation(name="t.same", title="t", conclusion=sp.Eq(x, x, evaluate=False),
                   proof=lambda: Chain(x, [Link(x, Algebra())]), tier="A", scope="t",
                   controls=[Control("c", target="conclusion", replace=(x, y), why="w")])


def test_nonnegativity_only_of_real_quantities():
    zc = sp.Symbol("z")  # complex: z**2 < 0 at z = i
    assert not link_passes(one_link(zc ** 2, 0, rel=">="))
    assert link_passes(one_link(x ** 2 + 1, 0, rel=">="))
    # a Gram form u^T u is a sum of squares of real entries
    u = sp.MatrixSymbol("u", n, 1)
    assert link_passes(one_link(Scalar(u.T * u), 0, rel=">="))
    assert not link_passes(one_link(Scalar(u.T * A * u), 0, rel=">="))


def test_lemmas_must_be_verified_and_acyclic():
    bad = one_link(x, x + 1, name="t.bad")
    d = Derivation(name="t.uses_bad", title="t", conclusion=sp.Eq(y + x, y + x + 1, evaluate=False),
                   proof=lambda: Chain(y + x, [Link(y + x + 1, Lemma(bad))]), tier="A", scope="t",
                   controls=[Control("c", target="conclusion", replace=(y, 2 * y), why="w")])
    r = d.verify()
    assert not r.ok and "not verified" in r.links[0].error

    holder = {}
    p = Derivation(name="t.p", title="t", conclusion=sp.Eq(x, y, evaluate=False),
                   proof=lambda: Chain(x, [Link(y, Lemma(holder["q"]))]), tier="A", scope="t",
                   controls=[Control("c", target="conclusion", replace=(y, 2 * y), why="w")])
    holder["q"] = Derivation(name="t.q", title="t", conclusion=sp.Eq(x, y, evaluate=False),
                             proof=lambda: Chain(x, [Link(y, Lemma(p))]), tier="A", scope="t",
                             controls=[Control("c", target="conclusion", replace=(y, 2 * y), why="w")])
    r = p.verify()
    assert not r.ok and "cycle" in r.links[0].error


def test_a_declared_tier_the_chains_do_not_reach_fails():
    d = one_link(Kron(A, B).T, Kron(A.T, B.T), by=Explicit(Sizes({n: (1, 2), m: (1, 2)})), tier="A")
    r = d.verify()
    assert all(x.passed for x in r.links) and r.achieved == "B" and not r.ok
    assert "declared tier" in "\n".join(r.failures())


def test_a_lemma_is_only_instantiated_where_its_assumptions_hold():
    # log(x y) = log x + log y is proved for positive x, y; citing it with x -> -1 is refused
    lemma = one_link(sp.log(xp * yp), sp.log(xp) + sp.log(yp), name="t.log")
    assert lemma.verify().ok
    z = sp.Symbol("z", real=True)

    def citing(value):
        lhs = sp.log(value * yp)
        return Derivation(name="t.cite", title="t",
                          conclusion=sp.Eq(lhs, sp.log(value) + sp.log(yp), evaluate=False),
                          proof=lambda: Chain(lhs, [Link(sp.log(value) + sp.log(yp), Lemma(lemma, {xp: value}))]),
                          tier="A", scope="t",
                          controls=[Control("c", target="conclusion", replace=(yp, 2 * yp), why="w")])

    r = citing(z).verify()
    assert not r.links[0].passed and "not known to be" in r.links[0].error
    assert citing(sp.Symbol("w", positive=True) + 1).verify().links[0].passed


# ------------------------------------------------------------------ 10. abbreviations are not variables

def test_a_defined_symbol_cannot_be_instantiated_by_a_lemma():
    # L defines S := A C and proves S^T = C^T A^T; instantiating S itself ({S: D2}) would give
    # the false D2^T = C^T A^T -- a defined symbol is an abbreviation, not a free variable
    S, D2 = sp.MatrixSymbol("S", n, n), sp.MatrixSymbol("D2", n, n)
    L = Derivation(name="t.defs", title="t", conclusion=sp.Eq(S.T, C.T * A.T, evaluate=False),
                   definitions={S: A * C}, proof=lambda: Chain(S.T, [Link(C.T * A.T, Algebra())]),
                   tier="A", scope="t",
                   controls=[Control("c", target="conclusion", replace=(C.T * A.T, A.T * C.T), why="w")])
    assert L.verify().ok
    d = Derivation(name="t.abuse", title="t", conclusion=sp.Eq(D2.T, C.T * A.T, evaluate=False),
                   proof=lambda: Chain(D2.T, [Link(C.T * A.T, Lemma(L, {S: D2}))]), tier="A", scope="t",
                   controls=[Control("c", target="conclusion", replace=(C.T * A.T, C.T), why="w")])
    r = d.verify()
    assert not r.ok and "defines" in r.links[0].error
    # the symbols of the definition are free: {A: D2} instantiates inside it, (D2 C)^T = C^T D2^T
    lhs = sp.Transpose(D2 * C)
    ok = Derivation(name="t.use", title="t", conclusion=sp.Eq(lhs, C.T * D2.T, evaluate=False),
                    proof=lambda: Chain(lhs, [Link(C.T * D2.T, Lemma(L, {A: D2}))]), tier="A",
                    scope="t", controls=[Control("c", target="conclusion", replace=(C.T * D2.T, C.T), why="w")])
    assert ok.verify().links[0].passed


# ------------------------------------------------------------------ 11. citing one's own conclusion

def _own(parts, chains):
    holder = {}

    def proof():
        return chains(holder["d"])

    holder["d"] = Derivation(name="t.own", title="t", conclusion=parts, proof=proof, tier="A",
                             scope="t", controls=[Control("c", target="conclusion:1",
                                                          replace=(B, 2 * B), why="w")])
    return holder["d"]


def test_a_part_may_cite_only_parts_proved_by_earlier_chains():
    Bm = sp.MatrixSymbol("B", n, n)
    P = sp.MatrixSymbol("P", n, n)
    one = sp.Eq(P * Bm, Bm * P, evaluate=False)            # false in general ...
    two = sp.Eq(P * Bm * C, Bm * P * C, evaluate=False)    # ... and so is what follows from it
    # a later part cited by an earlier chain: refused (no cycle can prove a false part)
    d = _own((one, two), lambda D: [
        Chain(P * Bm, [Link(Bm * P, Lemma(D, part=1))]),
        Chain(P * Bm * C, [Link(Bm * P * C, Lemma(D, part=0))], part=1)])
    r = d.verify()
    assert not r.ok and "proved earlier" in r.links[0].error
    # a part citing itself: refused
    d = _own((one,), lambda D: [Chain(P * Bm, [Link(Bm * P, Lemma(D, part=0))])])
    assert "proved earlier" in d.verify().links[0].error
    # a failed earlier part cannot be cited either
    d = _own((one, two), lambda D: [
        Chain(P * Bm, [Link(Bm * P, Algebra())]),
        Chain(P * Bm * C, [Link(Bm * P * C, Lemma(D, part=0))], part=1)])
    r = d.verify()
    assert not r.links[0].passed and "did not pass" in r.links[1].error


def test_a_part_proved_earlier_is_cited_inside_an_expectation_through_its_definition():
    from fisherlab.symbolic import toolkit as tk
    s, sp_ = sp.MatrixSymbol("s", n, 1), sp.MatrixSymbol("s'", n, 1)
    u, z = sp.MatrixSymbol("u", n, 1), sp.MatrixSymbol("z", n, 1)
    Fp = sp.MatrixSymbol("F'", n, n)
    defs = {sp_: tk.At(tk.Grad(tk.Scalar(tk.At(s.T * z, z, A * u)), u), u, sp.ZeroMatrix(n, 1)),
            Fp: tk.Expect(sp_ * sp_.T, "y")}
    rhs = A.T * tk.Expect(s * s.T, "y") * A

    def build(transposed):
        first = A.T * s if transposed else A * s
        return Derivation(
            name="t.exp", title="t",
            conclusion=(sp.Eq(sp_, first, evaluate=False), sp.Eq(Fp, rhs, evaluate=False)),
            definitions=defs, tier="A", scope="t",
            proof=lambda: [
                Chain(sp_, [Link(first, Entrywise())]),
                Chain(Fp, [Link(tk.Expect(first * first.T, "y"), Lemma(D[0], part=0)),
                           Link(rhs, tk.expectation_linearity(s * s.T, "y", left=A.T, right=A))],
                      part=1)],
            controls=[Control("c", target="conclusion:1", replace=(first, 2 * first), why="w")])

    D = [None]
    D[0] = build(True)
    r = D[0].verify()
    assert r.ok, r.failures()
    assert r.links[1].tier == "A"
    # the false chain rule (A s, no transpose) fails, and the part citing it fails with it
    D[0] = build(False)
    r = D[0].verify()
    assert not r.links[0].passed and not r.links[1].passed
    # a wrong use of linearity (the factors swapped outside the expectation) fails
    wrong = tk.Expect(s * s.T, "y")
    bad = Derivation(name="t.lin", title="t",
                     conclusion=sp.Eq(tk.Expect(A.T * s * s.T * A, "y"), A * wrong * A.T, evaluate=False),
                     proof=lambda: Chain(tk.Expect(A.T * s * s.T * A, "y"), [
                         Link(A * wrong * A.T, tk.expectation_linearity(s * s.T, "y", left=A.T, right=A))]),
                     tier="A", scope="t", controls=[Control("c", target="conclusion", replace=(A, 2 * A), why="w")])
    assert not bad.verify().links[0].passed


def test_the_transpose_of_an_inverse_cancels_against_the_transpose_only():
    I = sp.Identity(n)
    assert link_passes(one_link(sp.MatMul(A.I.T, A.T), I, hypotheses=[sp.Q.invertible(A)]))
    assert link_passes(one_link(sp.MatMul(A.T, sp.Inverse(A * A.T), A), I, hypotheses=[sp.Q.invertible(A)]))
    assert not link_passes(one_link(sp.MatMul(A.I.T, A), I, hypotheses=[sp.Q.invertible(A)]))
    assert not link_passes(one_link(sp.MatMul(A.T, sp.Inverse(A.T * A), A), I, hypotheses=[sp.Q.invertible(A)]))
