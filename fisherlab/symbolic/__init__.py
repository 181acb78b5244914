r"""The symbolic face of fisherlab: derivations in chain form, their checker and renderer, the
proof toolkit, and exact SymPy curvature for tiny networks (``curvature``).

How to write a derivation (chain form)
======================================

A derivation states **what** it proves as a SymPy relation over structural objects and proves
it by a **calculational chain** whose every link the machine checks::

    import sympy as sp
    from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, Explicit, Lemma, Link,
                                    Sizes)
    from fisherlab.symbolic import toolkit as tk

    n, m = sp.symbols("n m", integer=True, positive=True)
    A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", m, m)

    INVERSE = Derivation(
        name="kronecker.inverse_right",
        title="A right inverse of a Kronecker product",
        # 1. the conclusion: a relation over MatrixSymbols, rendered on the page by sympy.latex
        conclusion=sp.Eq(tk.Kron(A, B) * tk.Kron(A.I, B.I), sp.Identity(n * m), evaluate=False),
        hypotheses=[sp.Q.invertible(A), sp.Q.invertible(B)],
        # 2. the proof: chains e0 = e1 = ... = en from the conclusion's left to its right side
        proof=lambda: Chain(tk.Kron(A, B) * tk.Kron(A.I, B.I), [
            # a lemma: another verified derivation's conclusion, instantiated by a substitution
            Link(tk.Kron(sp.MatMul(A, A.I), sp.MatMul(B, B.I)),
                 Lemma(MIXED_PRODUCT, {C: A.I, D: B.I}), why="mixed-product rule"),
            # tier A: the matrix-algebra normal form (X X^{-1} = I is an axiom; det X != 0 recorded)
            Link(tk.Kron(sp.Identity(n), sp.Identity(m)), Algebra(), why="X X^{-1} = I"),
            Link(sp.Identity(n * m), Lemma(KRON_IDENTITY), why="I (x) I = I"),
        ]),
        tier="A",
        scope="general n, m",
        # 3. a negative control: one named sub-expression of one link changed -- a real mistake
        controls=[Control("inverse_order", target="conclusion",
                          replace=(tk.Kron(A.I, B.I), tk.Kron(B.I, A.I)),
                          why="factors of the inverse swapped")],
        references=[tk.REF_VAN_LOAN_2000], numeric=["fisherlab.kfac.solve"],
        tested_by=["tests/kfac/test_solve.py::test_exact_solve_matches_dense"],
    )

The pieces:

* **Conclusion** -- ``sympy.Eq(lhs, rhs, evaluate=False)`` or ``sympy.Ge(...)``, or a tuple of
  them (parts; each needs a chain with ``Chain(..., part=k)``). ``MatrixSymbol``\ s with
  symbolic sizes, undefined functions and the inert nodes of the toolkit (``Kron``, ``Vec``,
  ``RVec``, ``Diag``, ``Scalar``, ``Grad``, ``Hess``, ``At``, ``Expect``). No explicit
  matrices, no Floats; SymPy's ``KroneckerProduct`` is refused (its rewrite rules presuppose
  the theorems). ``definitions={F: Expect(s * s.T)}`` names abbreviations the checker unfolds.
* **Chain** -- ``Chain(start, [Link(expr, by, why=..., rel="=" or ">=", label=...)])``. The
  start must be the conclusion's left side and the last ``expr`` its right side, exactly.
  Each link is checked by ``by``:

  - ``Algebra()`` (tier ``A``): the matrix-algebra normal form (associativity, distributivity,
    identity, ``X X^{-1} = I``, ``(XY)^{-1} = Y^{-1}X^{-1}``, transpose rules -- the axioms
    used are listed on the page), finite sums with symbolic bounds (SymPy ``Sum``), or exact
    scalar canonicalisation; ``>=`` links need a manifestly nonnegative difference.
  - ``Entrywise()`` (tier ``A``): every entry at general dimension -- Kronecker products,
    ``vec``/``rvec``, products, traces and gradients become finite sums over ``IndexedBase``
    entries with symbolic bounds, compared by a sound canonical form (capture-free renaming).
  - ``Explicit(Sizes({n: range(1, 4), m: range(1, 4)}), values=...)`` (tier ``B``): the checker
    substitutes matrices of symbols for the ``MatrixSymbol``\ s at every size and compares
    exactly; hypotheses shape the instances (``Q.symmetric(S)``, ``Q.positive_definite(F)`` as
    ``L L^T``, ``Q.orthogonal(Q)`` by Cayley); ``values(sizes)`` overrides some of them.
  - ``Model(Sizes.of([{d: 2, K: 3}]), values=..., describe=...)`` (tier ``A-model``): the same
    with a generic model (undefined functions) at the stated sizes; ``operators`` give
    ``Expect`` its meaning.
  - ``Lemma(other_derivation, {symbol: replacement}, part=0)``: the cited conclusion,
    instantiated by the substitution, replaces a sub-expression (or a run of factors); the
    cited derivation must verify, its hypotheses must be among this one's, and cycles are
    refused.

* **Tier** -- the declared ``tier`` (``"A"``, ``"A-model"``, ``"B"``, ``"A+B"``) must be what the
  chains reach: a chain has the weakest tier of its links; ``+`` joins tiers every conclusion
  part reaches by separate chains (a general-dimension chain and an exhaustive one).
* **Controls** -- ``Control(name, target=<link label> | "conclusion", replace=(old, new),
  why=...)``: one sub-expression of one link changed (``Lambda -> Diag(p)``, a dropped term,
  ``A*C -> C*A``, a changed scalar). It is refuted only by an exact witness that respects the
  symbols' assumptions, the side equations and hypotheses, and the non-vanishing conditions;
  ``witness={g: Lambda(u, u**2)}`` gives abstract functions concrete stand-ins.
* **Pages** -- :func:`to_markdown` renders only checked objects (``sympy.latex``), the prose
  ``why`` apart, the sizes of every explicit check, the conditions ``det X != 0`` the checks
  needed, the numeric counterparts and the tests (``tested_by``) that check them.

The legacy form (``LegacyDerivation`` with ``Step``/``NegativeControl``) still verifies while the
families move over; it is marked *legacy* in ``fisherlab prove`` and on its page.
"""

from fisherlab.symbolic._check import CheckError, is_zero
from fisherlab.symbolic._derivation import (
    TIERS,
    Algebra,
    Axiom,
    Chain,
    Control,
    Derivation,
    Entrywise,
    Explicit,
    Given,
    Lemma,
    Link,
    Model,
    Sizes,
    verify,
)
from fisherlab.symbolic._legacy import LegacyDerivation, LegacyReport, NegativeControl, Step, Tier
from fisherlab.symbolic._render import index_markdown, tier_text, to_markdown
from fisherlab.symbolic._report import ControlResult, LinkResult, Report
from fisherlab.symbolic._witness import Witness, find_witness

__all__ = [
    "Algebra",
    "Axiom",
    "Chain",
    "CheckError",
    "Control",
    "ControlResult",
    "Derivation",
    "Entrywise",
    "Explicit",
    "Given",
    "LegacyDerivation",
    "LegacyReport",
    "Lemma",
    "Link",
    "LinkResult",
    "Model",
    "NegativeControl",
    "Report",
    "Sizes",
    "Step",
    "TIERS",
    "Tier",
    "Witness",
    "curvature",
    "find_witness",
    "index_markdown",
    "is_zero",
    "tier_text",
    "to_markdown",
    "toolkit",
    "verify",
]


def __getattr__(name):
    # `curvature` builds SymPy networks and `toolkit` loads the likelihood definitions; both
    # are imported on first use.
    if name == "curvature":
        from fisherlab.symbolic._curvature import curvature

        return curvature
    if name == "toolkit":
        import importlib

        return importlib.import_module("fisherlab.symbolic.toolkit")
    raise AttributeError(f"module 'fisherlab.symbolic' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
