"""The derivation engine in chain form: construction errors, what verification accepts and
refuses, lemmas, tiers, and pages rendered only from checked expressions. The legacy
(step-bag) form is tested at the end while unmigrated families still use it."""

import dataclasses
import re

import pytest
import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Entrywise, Explicit,
                                Given, LegacyDerivation, Lemma, Link, Model, NegativeControl,
                                Sizes, Step, Tier, index_markdown, to_markdown, verify)
from fisherlab.symbolic.toolkit import Kron

x, y = sp.symbols("x y", real=True)
n, m = sp.symbols("n m", integer=True, positive=True)
A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", m, m)
C, D = sp.MatrixSymbol("C", n, n), sp.MatrixSymbol("D", m, m)


def _control(target="conclusion", old=x, new=y, **kw):
    return Control("c", target=target, replace=(old, new), why="a changed variable", **kw)


def _mixed():
    lhs, rhs = Kron(A, B) * Kron(C, D), Kron(A * C, B * D)
    return Derivation(
        name="t.mixed", title="mixed product", conclusion=sp.Eq(lhs, rhs, evaluate=False),
        proof=lambda: [Chain(lhs, [Link(rhs, Entrywise(), label="entries", why="finite sums")]),
                       Chain(lhs, [Link(rhs, Explicit(Sizes({n: (1, 2), m: (1, 2)})))])],
        tier="A+B", scope="test",
        controls=[Control("swapped", target="entries", replace=(rhs, Kron(C * A, D * B)),
                          why="products in the wrong order")],
        numeric=["fisherlab.kfac.solve"], tested_by=["tests/x.py::test_y"], references=["ref"])


MIXED = _mixed()


# --------------------------------------------------------------------------- construction

def test_construction_errors_name_the_derivation_and_what_is_wrong():
    kw = dict(title="t", proof=lambda: Chain(x, [Link(y, Algebra())]), tier="A", scope="s",
              controls=[_control()])
    with pytest.raises(ValueError, match="'t.a' has no conclusion"):
        Derivation(name="t.a", conclusion=None, **kw)
    with pytest.raises(TypeError, match="sympy.Eq"):
        Derivation(name="t.b", conclusion=x + y, **kw)
    with pytest.raises(ValueError, match="tier must be one of"):
        Derivation(name="t.c", conclusion=sp.Eq(x, y), **{**kw, "tier": "A-general"})
    with pytest.raises(ValueError, match="no negative control"):
        Derivation(name="t.d", conclusion=sp.Eq(x, y), **{**kw, "controls": []})
    with pytest.raises(ValueError, match="explicit matrices in a conclusion"):
        Derivation(name="t.e", conclusion=sp.Eq(sp.Matrix([x]), sp.Matrix([y]), evaluate=False), **kw)
    with pytest.raises(TypeError, match="`by` must be one of"):
        Link(y, "algebra")
    with pytest.raises(ValueError, match="rel must be"):
        Link(y, Algebra(), rel="<=")
    with pytest.raises(ValueError, match="describe"):
        Model(Sizes({n: (1,)}), values=lambda s: {}, describe="")
    with pytest.raises(TypeError, match="chain form"):
        Lemma(LegacyDerivation(name="t.l", title="", statement="", tier=Tier.A, scope="",
                               build=lambda: [], negative_controls=[NegativeControl(
                                   "c", "", lambda: Step.equal("f", x, x + 1, justification=""))]))
    assert Derivation(name="t.ok", conclusion=sp.Eq(x, y), **kw).tier == "A"
    with pytest.raises(dataclasses.FrozenInstanceError):
        MIXED.name = "other"


def test_sizes_enumerate_every_combination_and_say_so():
    s = Sizes({n: range(1, 4), m: range(1, 3)})
    assert len(s.assignments) == 6 and "(6 sizes)" in s.text()
    w = Sizes({n: (1, 2, 3)}, where=lambda n: n != 2, where_text="n ≠ 2")
    assert [a[n] for a in w.assignments] == [1, 3] and "n ≠ 2" in w.text()
    with pytest.raises(ValueError, match="where_text"):
        Sizes({n: (1, 2)}, where=lambda n: True)


# --------------------------------------------------------------------------- verification

def test_a_two_level_derivation_verifies_with_its_tiers_and_control():
    r = verify(MIXED)
    assert r.ok, r.failures()
    assert r.achieved == "A+B" and [t for _, t in r.chain_tiers] == ["A", "B"]
    assert r.links[1].sizes.endswith("(4 sizes)")
    (c,) = r.controls
    assert c.rejected and c.target.endswith("[entries]")
    assert r"\left[\begin{matrix}" in c.witness  # the witness matrices, rendered as math
    assert "Lambda(" not in c.witness and c.value


def test_a_false_link_fails_and_says_where():
    lhs = Kron(A, B) * Kron(C, D)
    d = Derivation(name="t.f", title="t", conclusion=sp.Eq(lhs, Kron(C * A, D * B), evaluate=False),
                   proof=lambda: Chain(lhs, [Link(Kron(C * A, D * B), Explicit(Sizes({n: (1, 2), m: (2,)})))]),
                   tier="B", scope="s", controls=[Control("c", target="conclusion", replace=(A, B.T),
                                                          specialise={m: n}, why="w")])
    r = d.verify()
    assert not r.ok and "does not reduce to 0" in r.links[0].error
    with pytest.raises(AssertionError, match="chain 1 link 1 NOT verified"):
        r.raise_if_failed()


def test_build_errors_are_failures_not_passes():
    def boom():
        raise RuntimeError("kaboom")

    d = Derivation(name="t.boom", title="b", conclusion=sp.Eq(x, y), proof=boom, tier="A",
                   scope="s", controls=[_control()])
    r = d.verify()
    assert not r.ok and "kaboom" in r.error


def test_every_conclusion_part_needs_a_chain():
    sq = (x + 1) ** 2
    d = Derivation(name="t.parts", title="t", conclusion=(sp.Eq(sq, x ** 2 + 2 * x + 1, evaluate=False),
                                                          sp.Eq(sq - 1, x ** 2 + 2 * x, evaluate=False)),
                   proof=lambda: Chain(sq, [Link(x ** 2 + 2 * x + 1, Algebra())]), tier="A", scope="s",
                   controls=[_control(old=sq, new=x ** 2)])
    r = d.verify()
    assert not r.ok and "part(s) [2]" in r.error


def test_model_links_need_undefined_functions_and_operators_are_applied():
    t = sp.MatrixSymbol("t", 2, 1)
    f = sp.Function("f")
    u = sp.Symbol("u", real=True)
    M = sp.MatrixSymbol("M", 1, 1)
    model = Model(Sizes({n: (1,)}), values=lambda s: {M: sp.Matrix([[f(u)]])}, describe="f undefined")
    fixed = Model(Sizes({n: (1,)}), values=lambda s: {M: sp.Matrix([[u]])}, describe="no function")
    for by, ok in ((model, True), (fixed, False)):
        d = Derivation(name="t.model", title="t", conclusion=sp.Eq(M, sp.MatMul(M, sp.Identity(1)), evaluate=False),
                       proof=lambda by=by: Chain(M, [Link(sp.MatMul(M, sp.Identity(1)), by)]),
                       tier="A-model", scope="s",
                       controls=[Control("c", target="conclusion", replace=(M, 2 * M), at=by,
                                         witness={f: sp.Lambda(u, u + 1)}, why="w")])
        r = d.verify()
        assert r.links[0].passed is ok, r.links[0].error
        if not ok:
            assert "fixed instance" in r.links[0].error
    del t


def test_given_rewrites_only_by_a_stated_hypothesis_and_axioms_are_applied():
    k = sp.Symbol("k", positive=True)
    hyp = sp.Eq(k, x ** 2 + 1, evaluate=False)
    d = Derivation(name="t.given", title="t", conclusion=sp.Eq(k - 1, x ** 2, evaluate=False),
                   hypotheses=[hyp], proof=lambda: Chain(k - 1, [Link(x ** 2, Given(hyp))]),
                   tier="A", scope="s", controls=[_control(old=x ** 2, new=x ** 3)])
    assert d.verify().ok
    other = sp.Eq(k, x ** 2 + 2, evaluate=False)
    d2 = Derivation(name="t.given2", title="t", conclusion=sp.Eq(k - 1, x ** 2 + 1, evaluate=False),
                    proof=lambda: Chain(k - 1, [Link(x ** 2 + 1, Given(other))]),
                    tier="A", scope="s", controls=[_control(old=x ** 2, new=x ** 3)])
    assert "not among the hypotheses" in d2.verify().links[0].error
    X, Y = sp.MatrixSymbol("X", n, n), sp.MatrixSymbol("Y", n, n)
    mult = Axiom("det multiplicative", sp.Eq(sp.Determinant(X * Y), sp.Determinant(X) * sp.Determinant(Y),
                                             evaluate=False), {X: A, Y: C})
    d3 = Derivation(name="t.axiom", title="t",
                    conclusion=sp.Eq(sp.Determinant(A * C), sp.Determinant(C) * sp.Determinant(A), evaluate=False),
                    proof=lambda: Chain(sp.Determinant(A * C), [
                        Link(sp.Determinant(C) * sp.Determinant(A), mult)]),
                    tier="A", scope="s", controls=[Control("c", target="conclusion", replace=(C, A), why="w")])
    assert all(r.passed for r in d3.verify().links)


def test_lemmas_are_instantiated_by_substitution_and_their_hypotheses_discharged():
    inv = sp.Eq(sp.MatMul(A, sp.Inverse(A)), sp.Identity(n), evaluate=False)
    lemma = Derivation(name="t.inv", title="t", conclusion=inv, hypotheses=[sp.Q.invertible(A)],
                       proof=lambda: Chain(inv.lhs, [Link(inv.rhs, Algebra())]), tier="A", scope="s",
                       controls=[Control("c", target="conclusion", replace=(sp.Identity(n), 2 * sp.Identity(n)), why="w")])
    assert lemma.verify().ok
    Bn = sp.MatrixSymbol("B", n, n)
    use = sp.MatMul(Bn, sp.Inverse(Bn), C)

    def make(hyps):
        return Derivation(name="t.use", title="t", conclusion=sp.Eq(use, C, evaluate=False),
                          hypotheses=hyps, proof=lambda: Chain(use, [Link(C, Lemma(lemma, {A: Bn}))]),
                          tier="A", scope="s",
                          controls=[Control("c", target="conclusion", replace=(use, sp.MatMul(Bn, C)),
                                            why="the inverse dropped")])

    assert make([sp.Q.invertible(Bn)]).verify().ok
    r = make([]).verify()
    assert not r.ok and "hypothesis Q.invertible(B) of t.inv is not among" in r.links[0].error
    bad = Derivation(name="t.use2", title="t", conclusion=sp.Eq(use, C, evaluate=False),
                     proof=lambda: Chain(use, [Link(C, Lemma(lemma, {x: y}))]), tier="A", scope="s",
                     controls=[Control("c", target="conclusion", replace=(C, 2 * C), why="w")])
    assert "not free in" in bad.verify().links[0].error


def test_a_control_on_a_true_variant_is_not_rejected():
    d = Derivation(name="t.true_control", title="t",
                   conclusion=sp.Eq((x + 1) ** 2, x ** 2 + 2 * x + 1, evaluate=False),
                   proof=lambda: Chain((x + 1) ** 2, [Link(x ** 2 + 2 * x + 1, Algebra())]),
                   tier="A", scope="s",
                   controls=[Control("same_value", target="conclusion",
                                     replace=((x + 1) ** 2, sp.Mul(x + 1, x + 1, evaluate=False)),
                                     why="the same expression written differently")])
    r = d.verify()
    assert not r.controls[0].rejected and not r.ok


# --------------------------------------------------------------------------- pages

def test_pages_render_checked_expressions_without_times():
    r = verify(MIXED)
    page = to_markdown(MIXED, r)
    assert r"\left(A \otimes B\right) \left(C \otimes D\right)" in page  # sympy.latex of the conclusion
    assert "## Statement" in page and "## Tested by" in page and "`tests/x.py::test_y`" in page
    assert "## Numeric counterpart" in page and "`fisherlab.kfac.solve`" in page
    assert "(4 sizes)" in page and "index bijection" in page
    assert not re.search(r"\d+\.\d+ ?s\b", page), "no wall-clock times on a page"
    assert page == to_markdown(MIXED, verify(MIXED))  # regenerating gives the same page
    idx = index_markdown([(MIXED, r)])
    assert "| [mixed product](t.mixed.md) | A+B | test | chain | 2 | 1/1 | verified |" in idx


# --------------------------------------------------------------------------- legacy form

def _legacy(steps, controls=None, **kw):
    if controls is None:
        controls = [NegativeControl("false", "x = x + 1", lambda: Step.equal("f", x, x + 1, justification=""))]
    return LegacyDerivation(name=kw.pop("name", "test.demo"), title="demo", statement="x = x",
                            tier=kw.pop("tier", Tier.B), scope="test", build=lambda: steps,
                            negative_controls=controls, **kw)


def test_legacy_steps_go_through_the_same_checker():
    ok = _legacy([Step.equal("binomial", (x + y) ** 2, x ** 2 + 2 * x * y + y ** 2, justification="")])
    r = ok.verify()
    assert r.ok and r.legacy and r.steps[0].method == "expand"
    for bad in ([Step.equal("log", sp.log(x * y), sp.log(x) + sp.log(y), justification="")],
                [Step.equal("empty", [], [], justification="")],
                [Step.equal("float", x * (1 + sp.Float("1e-20")), x, justification="")],
                [Step.equal("shape", sp.Matrix(2, 3, sp.symbols("a:6")),
                            sp.Matrix(2, 3, sp.symbols("a:6")).reshape(6, 1), justification="")],
                [Step.nonnegative("complex", sp.Symbol("z") ** 2, sp.Symbol("z") ** 2, justification="")],
                []):
        assert not _legacy(bad).verify().ok, bad


def test_legacy_controls_respect_assumptions_and_pages_say_legacy():
    t = sp.Symbol("t", positive=True)
    true_for_positive = NegativeControl("pos", "t >= 0", lambda: Step.nonnegative("n", t, t, justification=""))
    r = _legacy([Step.equal("ok", x, x, justification="")], [true_for_positive]).verify()
    assert not r.controls[0].rejected and not r.ok
    d = _legacy([Step.equal("ok", x, x, justification="", display="x = x")])
    page = to_markdown(d, d.verify())
    assert "legacy form" in page and "status: verified" in page
    assert "| legacy |" in index_markdown([(d, d.verify())])
