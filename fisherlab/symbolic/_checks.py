"""How a link of a chain is checked, and the tiers the checks reach.

* :class:`Algebra` and :class:`Entrywise` -- tier ``A``, at general dimension;
* :class:`Explicit` -- tier ``B``, at every size of a :class:`Sizes` range;
* :class:`Model` -- tier ``A-model``, on a generic model at stated sizes;
* :class:`Given` and :class:`Axiom` -- rewriting by one of the derivation's hypotheses or by a
  fact supplied by hand (a relation, listed on the page).

(:class:`~fisherlab.symbolic.Lemma`, which cites another derivation, lives with the derivation.)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import sympy as sp

from ._check import same_shape, validate

__all__ = ["TIERS", "tier_rank", "check_tier_text", "validate_relation", "Sizes", "Algebra",
           "Entrywise", "Explicit", "Model", "Given", "Axiom"]

#: Tier names, strongest first.
TIERS = ("A", "A-model", "B")


def tier_rank(t: str) -> int:
    return TIERS.index(t)


def check_tier_text(tier: str, who: str) -> str:
    parts = tier.split("+")
    if not parts or any(p not in TIERS for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"{who}: tier must be one of {TIERS} or a '+'-joined combination "
                         f"(e.g. 'A+B'), got {tier!r}")
    return "+".join(sorted(parts, key=tier_rank))




class Sizes:
    """Every combination of integer sizes in the given ranges (tier ``B``: no size skipped).

    ``Sizes({n: range(1, 4), m: range(1, 4)})`` is the 9 pairs; ``where`` (a predicate on the
    assignment) restricts it and is stated on the page; ``Sizes.of([{...}, ...])`` lists the
    assignments. An empty range or an empty list is refused.
    """

    def __init__(self, ranges: Mapping, where: Callable[..., bool] | None = None,
                 where_text: str = ""):
        if not ranges:
            raise ValueError("Sizes: no size symbol given")
        self.ranges = {sp.sympify(k): tuple(int(v) for v in vs) for k, vs in ranges.items()}
        for k, vs in self.ranges.items():
            if not vs:
                raise ValueError(f"Sizes: the range of {k} is empty: a size loop over an empty "
                                 "range checks nothing")
            if any(v < 0 for v in vs):
                raise ValueError(f"Sizes: negative size for {k}")
        if where is not None and not where_text:
            raise ValueError("Sizes: a restriction `where` needs its statement `where_text`")
        self.where, self.where_text = where, where_text
        keys = list(self.ranges)
        self.assignments = [dict(zip(keys, combo)) for combo in itertools.product(*self.ranges.values())
                            if where is None or where(**{str(k): v for k, v in zip(keys, combo)})]
        if not self.assignments:
            raise ValueError("Sizes: the restriction leaves no size: a size loop over nothing "
                             "checks nothing")

    @classmethod
    def of(cls, assignments: Sequence[Mapping]) -> "Sizes":
        assignments = [dict(a) for a in assignments]
        if not assignments:
            raise ValueError("Sizes.of: empty list of sizes")
        keys = set(assignments[0])
        obj = cls.__new__(cls)
        obj.ranges = {sp.sympify(k): tuple(sorted({a[k] for a in assignments})) for k in keys}
        obj.where, obj.where_text = None, ""
        obj.assignments = [{sp.sympify(k): int(v) for k, v in a.items()} for a in assignments]
        obj._listed = True
        return obj

    def text(self) -> str:
        if getattr(self, "_listed", False):
            return "; ".join(", ".join(f"{k} = {v}" for k, v in a.items()) for a in self.assignments)
        parts = []
        for k, vs in self.ranges.items():
            if len(vs) > 2 and vs == tuple(range(vs[0], vs[-1] + 1)):
                parts.append(f"{k} ∈ {{{vs[0]}, …, {vs[-1]}}}" if len(vs) > 3 else
                             f"{k} ∈ {{{', '.join(map(str, vs))}}}")
            else:
                parts.append(f"{k} ∈ {{{', '.join(map(str, vs))}}}")
        out = ", ".join(parts)
        if self.where_text:
            out += f" with {self.where_text}"
        return out + f" ({len(self.assignments)} size{'s' if len(self.assignments) != 1 else ''})"


@dataclasses.dataclass(frozen=True)
class Algebra:
    """Tier ``A``: the link holds by the axioms of matrix algebra, the laws of finite sums or
    exact scalar canonicalisation -- at general dimension, no size fixed."""

    tier = "A"


@dataclasses.dataclass(frozen=True)
class Entrywise:
    """Tier ``A``: every entry of both sides at general dimension (finite sums with symbolic
    bounds; Kronecker and vec rows indexed by pairs through the index bijection).

    ``values(ent) -> {symbol: entry}`` instantiates structural symbols *at general dimension*:
    a scalar ``Symbol`` by a SymPy expression, a ``MatrixSymbol`` by a callable ``(i, j) ->
    expression`` of its 0-based flat indices; both are written in the entries
    ``ent.base(X)[i, j]`` of the other matrix symbols and finite ``Sum``\\ s whose bounds
    are symbolic sizes (the categorical log-pmf at general ``K``:
    ``Sum(y[j, 0] * eta[j, 0], (j, 0, K - 1)) - log(Sum(exp(eta[j, 0]), (j, 0, K - 1)))``).
    ``operators`` give ``Expect(M, over=name)`` its entry-wise meaning, ``op(ent, poly) ->
    poly`` on the finite-sum form of an entry (e.g.
    :func:`fisherlab.symbolic.toolkit.one_hot_expectation`). Either needs ``describe``: what
    the instantiation is, printed with the link. Values stay generic (see :class:`Explicit`):
    a value of a symbol the link uses carries a symbol, a matrix entry or an undefined function
    of its own, unless ``defines`` lists the symbol as a quantity the instantiation defines
    (the log-pmf at general ``K``); ``a -> 0`` is refused.
    """

    values: Callable[[Any], Mapping] | None = None
    operators: Mapping = dataclasses.field(default_factory=dict)
    describe: str = ""
    defines: Collection = ()
    tier = "A"

    def __post_init__(self):
        if (self.values is not None or self.operators) and not self.describe:
            raise ValueError("Entrywise: values and operators instantiate the symbols; say what "
                             "they are (describe=...)")
        _check_defines(self, "Entrywise")


@dataclasses.dataclass(frozen=True)
class Explicit:
    """Tier ``B``: both sides instantiated at every size of ``sizes`` with fully symbolic
    entries (generic matrices shaped by the hypotheses) and compared exactly.

    ``values(sizes) -> {symbol: explicit value}`` overrides the generic instance of some
    structural symbols at each size (e.g. a matrix with a prescribed eigenpair); ``describe``
    must then say what they are -- it is printed with the link, since a special value (a zero
    matrix) would make a check vacuous. ``operators`` (``{name: h -> E[h]}``, or a callable
    ``sizes -> {name: ...}`` when the operator depends on the sizes) give ``Expect(M, over=name)``
    its meaning.

    A value must stay *generic*: it carries a free symbol (or an undefined function) of its own,
    one the link's expressions do not use, it uses no entry of a generic instance the checker
    made, no two symbols of the link get the same value, and a free matrix symbol's value has as
    many free directions of its own as its class (the Jacobian rank in its own symbols, exact at
    rational points) -- ``A -> 0``, ``A -> I``, ``A -> a I``, ``A -> g(t) I``, a diagonal ``A``
    or ``B -> (A's value)`` would make the check one about a special instance (``A B = B A``
    holds there). A value special at every size checked is refused; one special at some sizes
    only (a ``1 x 1`` matrix with eigenvalue ``lambda`` is ``lambda``) is shown on the page at
    those sizes. A quantity the instantiation *defines* -- not a free variable: a selection
    matrix ``P_mu = [I 0]``, ``Phi(0)`` of a model, a Hessian ``Lambda`` given by its formula --
    is listed in ``defines``; the page shows it. Not detected: a value that is a function of
    other values (``B -> 2 (A's value)``); it is read as a derived quantity, which ``describe``
    states. A value must also satisfy its symbol's hypotheses (matrix properties exactly, see
    :func:`._instantiate.check_value`; a scalar's assumptions and the side relations it
    determines), and each operator must be an expectation of something random: ``E[c] = c``
    for a constant (``h -> 0`` is refused), some probe changed (``h -> h`` is refused), and a
    link that uses one states it (``describe``).

    ``coordinates(sizes) -> (change, domain)``: an exact change of variables applied to both
    evaluated sides before they are compared -- ``change`` maps symbols to expressions in new
    ones (``eta_k -> log z_k``), ``domain`` lists the relations that carve out the new
    variables' range (``s > z_1 + z_2``; witnesses respect them). It must be a bijection onto
    the old variables' range, which ``describe`` states: an identity then holds in the old
    variables exactly when it holds in the new ones (softmax identities in ``z_k = e^{eta_k}``,
    ``s = sum_j e^{eta_j}`` reduce by ``expand``; in ``e^{eta_k}`` they need slow ``cancel``).
    """

    sizes: Sizes
    values: Callable[[dict], Mapping] | None = None
    operators: Mapping | Callable[[dict], Mapping] = dataclasses.field(default_factory=dict)
    describe: str = ""
    coordinates: Callable[[dict], tuple] | None = None
    defines: Collection = ()
    tier = "B"

    def __post_init__(self):
        if not isinstance(self.sizes, Sizes):
            raise TypeError(f"Explicit: sizes must be a Sizes, got {self.sizes!r}")
        if self.values is not None and not self.describe:
            raise ValueError("Explicit: values replace generic instances; say what they are "
                             "(describe=...)")
        _check_defines(self, "Explicit")
        if self.coordinates is not None and not self.describe:
            raise ValueError("Explicit: a change of variables must be stated (describe=...)")


@dataclasses.dataclass(frozen=True)
class Model:
    """Tier ``A-model``: both sides instantiated with a generic model -- ``values(sizes)``
    maps structural symbols to explicit values built from *undefined functions* -- at each of
    the stated ``sizes``; ``operators`` give ``Expect(M, over=name)`` its meaning (an axiom
    named on the page; a callable ``sizes -> {name: ...}`` when it depends on the sizes);
    ``describe`` says in words what the instantiation is. Values stay generic and the
    quantities the instantiation defines are listed in ``defines``, as for :class:`Explicit`."""

    sizes: Sizes
    values: Callable[[dict], Mapping]
    describe: str
    operators: Mapping | Callable[[dict], Mapping] = dataclasses.field(default_factory=dict)
    defines: Collection = ()
    tier = "A-model"

    def __post_init__(self):
        if not isinstance(self.sizes, Sizes):
            raise TypeError(f"Model: sizes must be a Sizes, got {self.sizes!r}")
        if not self.describe:
            raise ValueError("Model: say what the generic model is (describe=...)")
        _check_defines(self, "Model")


def _check_defines(by, who):
    defines = tuple(by.defines)
    if defines and by.values is None:
        raise ValueError(f"{who}: defines={list(defines)} names quantities the values define, "
                         "but there are no values")
    for s in defines:
        if not isinstance(s, (sp.Symbol, sp.MatrixSymbol)):
            raise TypeError(f"{who}: defines lists symbols, got {s!r}")
    object.__setattr__(by, "defines", frozenset(defines))


@dataclasses.dataclass(frozen=True)
class Given:
    """Rewrite by one of the derivation's own hypotheses (``relation`` must be among them):
    an occurrence of one side is replaced by the other."""

    relation: Any
    tier = "A"


@dataclasses.dataclass(frozen=True)
class Axiom:
    """A fact supplied by hand, stated as a relation over its own symbols (``det(X Y) =
    det(X) det(Y)``), instantiated by ``subs`` and applied like a lemma; listed on the page."""

    name: str
    relation: Any
    subs: Mapping = dataclasses.field(default_factory=dict)
    tier = "A"

    def __post_init__(self):
        if not self.name:
            raise ValueError("Axiom: name the fact")
        validate_relation(self.relation, f"axiom {self.name!r}")



def validate_relation(rel, who):
    if isinstance(rel, sp.logic.boolalg.BooleanAtom) or rel in (True, False):
        raise ValueError(f"{who}: SymPy evaluated the relation to {rel}; write it unevaluated "
                         "(sympy.Eq(lhs, rhs, evaluate=False)) -- a conclusion that is trivially "
                         "true proves nothing")
    if not isinstance(rel, (sp.Equality, sp.GreaterThan)):
        raise TypeError(f"{who}: a conclusion is sympy.Eq(lhs, rhs) or sympy.Ge(lhs, rhs), got "
                        f"{type(rel).__name__}: {rel!r}")
    for side in (rel.lhs, rel.rhs):
        validate(side, who)
        if isinstance(side, sp.MatrixBase) or (isinstance(side, sp.Basic) and side.atoms(sp.MatrixBase)):
            raise ValueError(f"{who}: explicit matrices in a conclusion; state it structurally "
                             "(MatrixSymbols) and instantiate in the links")
    if rel.lhs == rel.rhs:
        raise ValueError(f"{who}: both sides are the same expression ({rel.lhs}); a conclusion "
                         "that is trivially true proves nothing")
    if isinstance(rel, sp.GreaterThan) and any(
            getattr(x, "shape", (1, 1)) != (1, 1) for x in (rel.lhs, rel.rhs)):
        raise ValueError(f"{who}: '>=' between matrices is ambiguous (entry-wise or positive "
                         "semidefinite order); compare scalars, e.g. u^T (X - Y) u >= 0")
    if not same_shape(rel.lhs, rel.rhs):
        raise ValueError(f"{who}: the two sides have different shapes: "
                         f"{getattr(rel.lhs, 'shape', 'scalar')} vs {getattr(rel.rhs, 'shape', 'scalar')}")
