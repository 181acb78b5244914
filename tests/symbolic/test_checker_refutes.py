"""The checker's own parts, each pinned by a small hand-built derivation: a false step, a false
inequality, a witness outside the assumptions or a wrong certificate must be REFUTED by
``verify()`` (the failing link or control named), and the true version accepted. Where a part
is only reachable directly (the zero ladder's rung, the nonnegativity certificate of a matrix),
it is tested against SymPy as the ground truth. Expressions are kept tiny: every test here runs
in well under a second."""

from __future__ import annotations

import pytest
import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Explicit, Lemma, Link, Model, Sizes
from fisherlab.symbolic._check import (CheckError, difference, is_zero, manifestly_nonnegative,
                                       undefined_functions)
from fisherlab.symbolic._witness import Witness, find_witness, latex_point

x = sp.Symbol("x", real=True)
a, b, t = sp.symbols("a b t", real=True)
n = sp.Symbol("n", integer=True, positive=True)
g = sp.Function("g")


def _control(old, new, target="conclusion"):
    return [Control("c", target=target, replace=(old, new), why="a changed term")]


def _failed_links(report):
    return [(r.chain, r.index) for r in report.links if not r.passed]


# ------------------------------------------------------------------ difference: lhs - rhs

def test_difference_is_lhs_minus_rhs_entry_by_entry():
    assert difference(sp.Matrix([x, 1]), sp.Matrix([1, x]), "w") == [x - 1, 1 - x]
    assert difference(x ** 2, 1, "w") == [x ** 2 - 1]
    with pytest.raises(CheckError, match="w: shapes differ"):
        difference(sp.Matrix([x, 1]), sp.Matrix([[x, 1]]), "w")


def test_a_refuted_control_reports_lhs_minus_rhs_of_the_mutated_claim_at_its_witness():
    # x (x + 1) = x^2 + x, mutated to x (x + 1) = x^2 + 1 + x: the difference is -1 at any x
    d = Derivation(name="t.value", title="t", conclusion=sp.Eq(x * (x + 1), x ** 2 + x, evaluate=False),
                   proof=lambda: Chain(x * (x + 1), [Link(x ** 2 + x, Algebra())]), tier="A",
                   scope="test", controls=_control(x ** 2, x ** 2 + 1))
    r = d.verify()
    assert r.ok, r.failures()
    (c,) = r.controls
    assert c.rejected and c.value == "-1"


# ------------------------------------------------------------------ the zero ladder's rung

def test_is_zero_reports_the_strongest_rung_any_entry_needed():
    by_expand = x * (x + 1) - x ** 2 - x
    by_cancel = (x ** 2 - 1) / (x - 1) - x - 1
    by_simplify = sp.sin(x) ** 2 + sp.cos(x) ** 2 - 1
    # the ground truth, from SymPy directly: which rewrite first reduces each entry to 0
    assert sp.expand(by_expand) == 0
    assert sp.expand(by_cancel) != 0 and sp.cancel(sp.expand(by_cancel)) == 0
    assert sp.expand(by_simplify) != 0 and sp.cancel(by_simplify) != 0 and sp.simplify(by_simplify) == 0
    assert is_zero(by_expand) == (True, "expand")
    assert is_zero([by_expand, by_cancel]) == (True, "cancel")
    assert is_zero([by_cancel, by_expand]) == (True, "cancel")
    assert is_zero(sp.Matrix([by_simplify, by_expand, by_cancel])) == (True, "simplify")
    assert is_zero([by_expand, x]) == (False, "")


# ------------------------------------------------------------------ nonnegativity certificates

def test_a_reflexive_inequality_step_is_accepted_and_a_false_one_refuted():
    # x^2 >= x^2 (difference exactly 0) >= 0: a true chain; x^2 - 1 >= 0 is false at x = 0
    def chain(mid):
        return lambda: Chain(x ** 2, [Link(mid, Algebra(), rel=">=", label="refl"),
                                      Link(0, Algebra(), rel=">=")])

    good = Derivation(name="t.refl", title="t", conclusion=sp.Ge(x ** 2, 0, evaluate=False),
                      proof=chain(x ** 2), tier="A", scope="test",
                      controls=_control(x ** 2, x ** 2 - 1))
    r = good.verify()
    assert r.ok, r.failures()
    assert r.links[0].method == "a sum of nonnegative terms (as written)"
    assert r.controls[0].rejected
    bad = Derivation(name="t.refl_bad", title="t", conclusion=sp.Ge(x ** 2, 0, evaluate=False),
                     proof=chain(x ** 2 + 1), tier="A", scope="test",
                     controls=_control(x ** 2, x ** 2 - 1))
    r = bad.verify()
    assert not r.ok and _failed_links(r) == [(1, 1)]
    assert "not, as written, a sum of products of real nonnegative factors" in r.links[0].error


def test_the_nonnegativity_certificate_accepts_zero_and_refuses_matrices_and_negative_terms():
    assert manifestly_nonnegative(sp.Integer(0))
    assert manifestly_nonnegative(2 * x ** 2 + sp.Rational(1, 3))
    assert not manifestly_nonnegative(-2 * x ** 2)
    assert not manifestly_nonnegative(sp.Integer(-1))
    # a matrix is not a scalar: '>=' would be ambiguous, and this one has a negative entry
    assert not manifestly_nonnegative(sp.Matrix([[x ** 2, -1]]))
    assert not manifestly_nonnegative(sp.MatrixSymbol("u", n, 1))


# ------------------------------------------------------------------ generic models

def test_a_generic_model_may_fix_a_scalar_by_a_plain_python_number():
    # the model's values mix an undefined function and a Python int (b = 2, a constant of the
    # model: declared as a quantity the instantiation defines)
    model = Model(Sizes({n: (1,)}), values=lambda s: {a: g(t), b: 2}, describe="a = g(t), b = 2",
                  defines=(b,))
    d = Derivation(name="t.model", title="t", conclusion=sp.Eq(a * (a + b), a ** 2 + a * b, evaluate=False),
                   proof=lambda: Chain(a * (a + b), [Link(a ** 2 + a * b, model)]), tier="A-model",
                   scope="test", controls=_control(a ** 2, 2 * a ** 2))
    r = d.verify()
    assert r.ok, r.failures()
    assert undefined_functions([g(t), 2]) == {g}
    assert undefined_functions([2, sp.Matrix([[t, 1]])]) == set()


# ------------------------------------------------------------------ the sizes a check states

u = sp.MatrixSymbol("u", n, 1)
k0 = sp.Symbol("k", integer=True, nonnegative=True)


def _explicit_sizes_text(sizes):
    twice = sp.MatAdd(u, u)   # unevaluated: u + u
    d = Derivation(name="t.sizes", title="t", conclusion=sp.Eq(twice, 2 * u, evaluate=False),
                   proof=lambda: Chain(twice, [Link(2 * u, Explicit(sizes))]), tier="B",
                   scope="test", controls=_control(2 * u, 3 * u))
    r = d.verify()
    assert r.ok, r.failures()
    return r.links[0].sizes


def test_an_explicit_link_states_exactly_the_sizes_it_checked():
    # a gap must not be abbreviated as a run: {1, 2, 3, 5} does not check n = 4
    assert _explicit_sizes_text(Sizes({n: (1, 2, 3, 5)})) == "n ∈ {1, 2, 3, 5} (4 sizes)"
    assert _explicit_sizes_text(Sizes({n: range(1, 6)})) == "n ∈ {1, …, 5} (5 sizes)"
    assert Sizes({n: (1, 3)}).text() == "n ∈ {1, 3} (2 sizes)"
    assert Sizes({n: (2,)}).text() == "n ∈ {2} (1 size)"
    assert Sizes({n: (1, 2, 3)}).text() == "n ∈ {1, 2, 3} (3 sizes)"
    assert Sizes({n: (1, 2, 4, 5)}).text() == "n ∈ {1, 2, 4, 5} (4 sizes)"


def test_sizes_admit_zero_and_refuse_a_negative_size_by_name():
    # size 0 is a size (an empty sum, an empty product); a negative one is not
    assert [s[k0] for s in Sizes({k0: (0, 1, 2)}).assignments] == [0, 1, 2]
    with pytest.raises(ValueError, match="Sizes: negative size for k"):
        Sizes({k0: (-1, 0, 1)})


# ------------------------------------------------------------------ witnesses

def _scalar_derivation(name, lhs, rhs, controls, hypotheses=()):
    return Derivation(name=name, title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                      proof=lambda: Chain(lhs, [Link(rhs, Algebra())]), tier="A", scope="test",
                      hypotheses=list(hypotheses), controls=controls)


def test_a_control_true_under_the_hypotheses_is_not_refuted_by_a_point_outside_them():
    # (x + 1)^2 = x^2 + 2x + 1; the mutation x^2 -> |x| x is true exactly when x >= 0
    lhs, rhs = (x + 1) ** 2, x ** 2 + 2 * x + 1
    ctrl = _control(x ** 2, sp.Abs(x) * x)
    r = _scalar_derivation("t.hyp_free", lhs, rhs, ctrl).verify()
    assert r.ok, r.failures()
    (c,) = r.controls
    assert c.rejected and not c.value.startswith("-")   # x^2 - |x| x = 2 x^2 at x < 0
    r = _scalar_derivation("t.hyp_bound", lhs, rhs, ctrl, hypotheses=[sp.Ge(x, 0)]).verify()
    assert r.links[0].passed and not r.ok
    (c,) = r.controls
    assert not c.rejected and "no witness found" in c.error


def test_a_nonpositive_integer_symbol_gets_nonpositive_witness_values():
    j = sp.Symbol("j", integer=True, nonpositive=True)
    # j (j + 1) = j^2 + j; the mutation j^2 -> -j^2 is off by 2 j^2: false at every j < 0
    r = _scalar_derivation("t.nonpos", j * (j + 1), j ** 2 + j, _control(j ** 2, -j ** 2)).verify()
    assert r.ok, r.failures()
    assert "j = -" in r.controls[0].witness
    w = find_witness(2 * j ** 2)
    assert w is not None and w.point[j] < 0 and w.value == 2 * w.point[j] ** 2


def test_the_first_point_tried_is_positive_so_one_try_meets_a_positivity_hypothesis():
    # the first point gives distinct positive values to unrestricted symbols: a claim stated
    # for x > 0 (as a hypothesis, not an assumption on x) is refuted at once
    xr, yr = sp.symbols("x_r y_r", real=True)
    w = find_witness(xr - yr, hypotheses=[sp.Gt(xr, 0), sp.Gt(yr, 0)], tries=1)
    assert w is not None and w.point[xr] > 0 and w.point[yr] > 0 and w.point[xr] != w.point[yr]


def test_an_exact_irrational_witness_given_by_the_author_refutes_and_renders():
    # x (x + 1) = x^2 + x; the mutation x -> x^3 in the linear term is off by x - x^3, which
    # the author's witness x = sqrt(2) makes -sqrt(2) (exact, irrational): shown to 6 digits
    ctrl = [Control("c", target="conclusion", replace=(x ** 2 + x, x ** 2 + x ** 3),
                    witness={x: sp.sqrt(2)}, why="a changed term")]
    r = _scalar_derivation("t.irrational", x * (x + 1), x ** 2 + x, ctrl).verify()
    assert r.ok, r.failures()
    (c,) = r.controls
    assert c.rejected, c.error
    assert "1.41421" in c.witness


def test_a_hypothesis_bounding_a_symbol_below_two_sevenths_still_admits_a_witness():
    # the search draws unit fractions 1/k: under 0 < x < 2/7 the claim x = 0 is refuted
    xp = sp.Symbol("x_p", positive=True)
    w = find_witness(xp, hypotheses=[sp.Lt(xp, sp.Rational(2, 7))], tries=200)
    assert w is not None and 0 < w.point[xp] < sp.Rational(2, 7) and w.value == w.point[xp]


def test_a_function_in_a_witness_point_is_shown_as_its_formula():
    u = sp.Symbol("u", real=True)
    text = latex_point({g: sp.Lambda(u, u ** 3 + 1), x: sp.Integer(2)})
    assert sp.latex(g(u)) + " = " + sp.latex(u ** 3 + 1) in text and "x = 2" in text


def test_a_tiny_but_exactly_nonzero_difference_is_refuted():
    # the mutated claim is off by sqrt(2) 10^-30: far above the 50-digit rounding residue
    tiny = sp.sqrt(2) / sp.Integer(10) ** 30
    r = _scalar_derivation("t.tiny", x * (x + 1), x ** 2 + x, _control(x ** 2, x ** 2 + tiny)).verify()
    assert r.ok, r.failures()
    assert r.controls[0].value.startswith("-1.41421")


def test_a_witness_point_shows_twelve_values_then_counts_the_rest():
    xs = sp.symbols("v1:16", real=True)   # 15 symbols
    point = {s: sp.Integer(i) for i, s in enumerate(xs)}
    text = latex_point(point)
    assert text.count(" = ") == 12 and r"\dots\ (3\ \text{more values})" in text
    assert Witness(point, 1).latex(limit=14).endswith(r"\dots\ (1\ \text{more values})")
    assert r"\dots" not in latex_point(dict(list(point.items())[:12]))


# ------------------------------------------------------------------ chains, values, tiers

def test_a_chain_refuses_a_link_that_is_not_a_link():
    with pytest.raises(TypeError, match=r"Chain: link 2 is x\*\*2, not a Link"):
        Chain(x, [Link(x, Algebra()), x ** 2])


def _orthogonal_derivation(value):
    O = sp.MatrixSymbol("O", n, n)
    ex = Explicit(Sizes({n: (2,)}), values=lambda s: {O: value}, describe="a fixed 2 x 2 matrix",
                  defines=(O,))   # a constant: declared, so that only its orthogonality is at stake
    return Derivation(name="t.orthogonal", title="t", conclusion=sp.Eq(O.T * O * u, u, evaluate=False),
                      hypotheses=[sp.Q.orthogonal(O)], proof=lambda: Chain(O.T * O * u, [Link(u, ex)]),
                      tier="B", scope="test", controls=_control(O.T * O, O * O))


def test_a_value_given_for_an_orthogonal_matrix_must_be_orthogonal():
    # a rotation (3-4-5 triangle) is orthogonal; [[1, 1], [0, -1]] squares to I but is not
    rotation = sp.Matrix([[sp.Rational(3, 5), -sp.Rational(4, 5)], [sp.Rational(4, 5), sp.Rational(3, 5)]])
    involution = sp.Matrix([[1, 1], [0, -1]])
    assert rotation.T * rotation == sp.eye(2) and involution * involution == sp.eye(2)
    assert involution.T * involution != sp.eye(2)
    r = _orthogonal_derivation(rotation).verify()
    assert r.ok, r.failures()
    r = _orthogonal_derivation(involution).verify()
    assert not r.ok and _failed_links(r) == [(1, 1)]
    assert "the value given for O is not orthogonal" in r.links[0].error


def test_a_chain_citing_an_own_part_checked_at_stated_sizes_reaches_only_that_tier():
    # part 1 (u + u + u = 3u) is proved by an algebra link and an explicit one: tier B; part 2
    # cites it, so it holds at part 1's sizes only -- tier B, never A
    A = sp.MatrixSymbol("A", n, n)
    three = sp.MatAdd(u, u, u)
    holder = {}

    def proof():
        return [Chain(three, [Link(sp.MatAdd(2 * u, u), Algebra()),
                              Link(3 * u, Explicit(Sizes({n: (1, 2)})))]),
                Chain(sp.MatMul(A, three), [Link(3 * A * u, Lemma(holder["d"], part=0))], part=1)]

    holder["d"] = Derivation(
        name="t.own_tier", title="t", proof=proof, tier="B", scope="test",
        conclusion=(sp.Eq(three, 3 * u, evaluate=False), sp.Eq(sp.MatMul(A, three), 3 * A * u, evaluate=False)),
        controls=_control(3 * A * u, 2 * A * u, target="conclusion:2"))
    r = holder["d"].verify()
    assert r.ok, r.failures()
    assert [lk.tier for lk in r.links] == ["A", "B", "B"]
    assert r.chain_tiers == ((0, "B"), (1, "B"))


def test_an_inequality_control_between_one_by_one_matrices_is_refuted():
    # u^T u >= 0 (as 1 x 1 matrices), checked at n = 1, 2; the mutation -u^T u >= 0 is false
    zero = sp.ZeroMatrix(1, 1)
    d = Derivation(name="t.ge_matrix", title="t", conclusion=sp.Ge(u.T * u, zero, evaluate=False),
                   proof=lambda: Chain(u.T * u, [Link(zero, Explicit(Sizes({n: (1, 2)})), rel=">=")]),
                   tier="B", scope="test", controls=_control(u.T * u, -u.T * u))
    r = d.verify()
    assert r.ok, r.failures()
    (c,) = r.controls
    assert c.rejected and c.value.startswith("-")


def test_a_control_swaps_a_run_of_factors_inside_a_longer_product_in_place():
    # u^T A (B + C) v = u^T A B v + u^T A C v; the control A B -> B A acts on the run A B in
    # the middle of u^T A B v (a sub-product SymPy does not hold as a node): u^T B A v
    v = sp.MatrixSymbol("v", n, 1)
    A, B, C = (sp.MatrixSymbol(s, n, n) for s in "ABC")
    lhs, rhs = u.T * A * (B + C) * v, u.T * A * B * v + u.T * A * C * v
    d = Derivation(name="t.run", title="t", conclusion=sp.Eq(lhs, rhs, evaluate=False),
                   proof=lambda: Chain(lhs, [Link(rhs, Algebra())]), tier="A", scope="test",
                   controls=_control(A * B, B * A))
    r = d.verify()
    assert r.ok, r.failures()
    (c,) = r.controls
    assert c.rejected and c.witness.startswith(r"\text{sizes }")
