r"""The symbolic face of fisherlab: derivations in chain form, their checker and renderer, the
proof toolkit, and exact SymPy curvature for tiny networks (``curvature``).

How to write a derivation (chain form)
======================================

A derivation states **what** it proves as a SymPy relation over structural objects and proves
it by a **calculational chain** whose every link the machine checks. A complete small example:
a lemma proved twice (at general dimension, entry by entry, and exhaustively at explicit sizes),
then a theorem that cites it.

>>> import sympy as sp
>>> from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, Entrywise, Explicit,
...                                 Lemma, Link, Sizes, to_markdown)
>>> from fisherlab.symbolic.toolkit import Kron
>>> n, m = sp.symbols("n m", integer=True, positive=True)
>>> A, C = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("C", n, n)
>>> B, D = sp.MatrixSymbol("B", m, m), sp.MatrixSymbol("D", m, m)
>>> lhs, rhs = Kron(A, B) * Kron(C, D), Kron(A * C, B * D)
>>> MIXED = Derivation(
...     name="demo.mixed_product", title="Mixed-product rule",
...     conclusion=sp.Eq(lhs, rhs, evaluate=False),         # 1. the conclusion, a checked object
...     proof=lambda: [                                      # 2. chains from its left to its right side
...         Chain(lhs, [Link(rhs, Entrywise(), why="the entries are finite sums that factor")]),
...         Chain(lhs, [Link(rhs, Explicit(Sizes({n: (1, 2), m: (1, 2)})))])],
...     tier="A+B", scope="general n, m; and every n, m <= 2 with symbolic entries",
...     controls=[Control("order_swapped", target="conclusion",   # 3. a real mistake, refuted
...                       replace=(rhs, Kron(C * A, D * B)), why="the products in the wrong order")])
>>> MIXED.verify().ok
True
>>> right = Kron(A, B) * Kron(A.I, B.I)
>>> RIGHT_INVERSE = Derivation(
...     name="demo.right_inverse", title="A right inverse of a Kronecker product",
...     conclusion=sp.Eq(right, Kron(sp.Identity(n), sp.Identity(m)), evaluate=False),
...     hypotheses=[sp.Q.invertible(A), sp.Q.invertible(B)],
...     proof=lambda: Chain(right, [
...         Link(Kron(sp.MatMul(A, A.I), sp.MatMul(B, B.I)), Lemma(MIXED, {C: A.I, D: B.I}),
...              why="the mixed-product rule with C = A^-1, D = B^-1"),
...         Link(Kron(sp.Identity(n), sp.Identity(m)), Algebra(), why="X X^-1 = I")]),
...     tier="A", scope="general n, m",
...     controls=[Control("one_factor_inverted", target="conclusion",
...                       replace=(Kron(A.I, B.I), Kron(A.I, B)), why="inverting one factor only")])
>>> report = RIGHT_INVERSE.verify()
>>> report.ok, report.achieved, report.controls[0].rejected
(True, 'A', True)
>>> page = to_markdown(RIGHT_INVERSE, report)   # every formula on it is sympy.latex of a checked object
>>> r"\left(A \otimes B\right) \left(A^{-1} \otimes B^{-1}\right)" in page
True

The likelihood families' SymPy definitions, the single source the proofs start from, are
:mod:`fisherlab.likelihoods.symbolic` (``symbolic.categorical(K)``, ...; the numeric
``fl.Categorical().symbolic(K)`` returns the same objects).

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
  - What an instantiation may do (``Explicit``, ``Model``, ``Entrywise``): a value meets its
    symbol's hypotheses exactly (symmetric, diagonal, orthogonal, invertible, a scalar's
    assumptions and side relations; positive definite by Sylvester's criterion -- build it as
    ``L L^T`` -- or, in a link, the general symmetric matrix, which covers every positive
    definite one). A value stays *generic*: it carries a symbol, an entry or an undefined
    function of its own, and no two symbols share a value -- ``A -> 0``, ``A -> I``,
    ``A -> a I``, ``B -> A`` are refused (special at some sizes only, it is shown on the page
    there). A quantity the instantiation *defines* rather than a free variable (a selection
    matrix, ``Phi(0)`` of a model, ``Lambda`` by its formula) is listed in ``defines=(...)`` and
    its value is shown. An operator is an expectation: ``E[c] = c`` for a constant, it changes
    something (``h -> h`` is refused), and a link that uses one says which (``describe``).
  - ``Lemma(other_derivation, {symbol: replacement}, part=0)``: the cited conclusion,
    instantiated by the substitution (sizes first: ``{m: n, A: X}``), replaces a sub-expression
    (or a run of factors) of the previous expression; the cited derivation must verify, its
    hypotheses must be among this one's, and cycles are refused. Its definitions are unfolded
    first (a defined symbol is not a variable: it cannot be substituted). A derivation may
    cite a part of its *own* conclusion (``Lemma(itself, subs, part=k)``, built inside the
    ``proof`` callable) when every chain proving part ``k`` comes earlier and passed.
  - ``toolkit.expectation_linearity(M, over, left=X, right=Y)`` and
    ``toolkit.inverse_of_product(X, Y, Z)``: the axioms ``E[XMY] = X E[M] Y`` and
    ``(XYZ)^{-1} = Z^{-1} Y^{-1} X^{-1}`` (for a factor that is a sum, which the normal form
    would distribute) as ready :class:`Axiom` links; ``toolkit.sample_average`` gives
    ``Expect`` a meaning at a control's witness.
  - ``Given(hypothesis)``: rewrite by one of this derivation's own hypotheses (``Eq(mu, ...)``,
    ``Eq(A*u, lam*u)``); ``Axiom(name, relation, subs)``: a fact supplied by hand, written as a
    relation (``det(XY) = det X det Y``), applied the same way and listed on the page.

  SymPy simplifies eagerly: ``C * C.I`` is already ``I`` and ``g + 2*mu*C*(-C.I*g/(2*mu))`` is
  already ``0``, so write a link that *shows* a cancellation with the constructors
  ``sp.MatMul(...)`` / ``sp.MatAdd(...)`` (they do not simplify), and wrap a product you want
  displayed as ``(Yx)^T (Yx)`` as ``sp.MatMul(sp.Transpose(y), y)``.

* **Tier** -- the declared ``tier`` (``"A"``, ``"A-model"``, ``"B"``, ``"A+B"``) must be what the
  chains reach: a chain has the weakest tier of its links; ``+`` joins tiers every conclusion
  part reaches by separate chains (a general-dimension chain and an exhaustive one).
* **Controls** -- ``Control(name, target=<link label> | "conclusion", replace=(old, new),
  why=...)``: one sub-expression of one link changed (``Lambda -> Diag(p)``, a dropped term,
  ``A*C -> C*A``, a changed scalar). It is refuted only by an exact witness that respects the
  symbols' assumptions, the side equations and hypotheses, and the non-vanishing conditions;
  ``witness={g: Lambda(u, u**2)}`` gives abstract functions concrete stand-ins, ``at=`` the
  instantiation to search (default: the target link's own, or every size symbol at 2), and
  ``specialise={k: m}`` sets sizes equal so that a swapped product is defined. A control whose
  ``old`` does not occur in its target, or that leaves it unchanged, is an error.
* **Pages** -- :func:`to_markdown` renders only checked objects (``sympy.latex``), the prose
  ``why`` apart, the sizes of every explicit check, the conditions ``det X != 0`` the checks
  needed, the numeric counterparts and the tests (``tested_by``) that check them.

Templates: ``proofs/kronecker.py`` (entry-wise tier A, explicit tier B, lemmas, ``Given``,
``Axiom``, an inequality by a Gram form), ``proofs/fisher_ggn.py`` (a generic model, ``Expect``
with the exponential-family moment axiom, ``definitions``) and
``proofs/empirical_fisher_update.py`` (a Lagrangian's gradient entry-wise, stationarity and a
multiplier fixed by a side equation). ``Step`` is another name for :class:`Link` (a step of a
chain).
"""

from fisherlab.symbolic._check import CheckError, is_zero
from fisherlab.symbolic._checks import TIERS, Algebra, Axiom, Entrywise, Explicit, Given, Model, Sizes
from fisherlab.symbolic._derivation import Chain, Control, Derivation, Lemma, Link, verify
from fisherlab.symbolic._render import index_markdown, tier_text, to_markdown
from fisherlab.symbolic._report import ControlResult, LinkResult, Report
from fisherlab.symbolic._witness import Witness, find_witness

#: a step of a chain: another name for :class:`Link`
Step = Link

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
    "Lemma",
    "Link",
    "LinkResult",
    "Model",
    "Report",
    "Sizes",
    "Step",
    "TIERS",
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
        from fisherlab.testing.references.symbolic import curvature

        return curvature
    if name == "toolkit":
        import importlib

        return importlib.import_module("fisherlab.symbolic.toolkit")
    raise AttributeError(f"module 'fisherlab.symbolic' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
