r"""The checker's two evaluators of structural expressions.

:class:`Explicit` turns a structural expression (``MatrixSymbol``\ s, the nodes of
:mod:`._nodes`) into an explicit SymPy matrix or scalar at stated integer sizes: every
``MatrixSymbol`` becomes a matrix of symbols (shaped by the derivation's hypotheses: a
symmetric ``S`` shares its symbols, a positive-definite ``F`` is ``L L^T``, an orthogonal
``Q`` a Cayley transform) unless the instantiation supplies its value; ``X^{-1}`` becomes
``adj X / det X`` and records the condition ``det X != 0``. This is the substitution that
links the page (structural) to what is checked (explicit), tiers ``B`` and ``A-model``.

:class:`Entries` gives the ``(r, c)`` entry of a structural expression at *general*
dimension as a :class:`~._sums.SumPoly` over ``IndexedBase`` entries with symbolic bounds
(tier ``A``). Rows of ``A \otimes B`` are indexed by pairs ``(i, k)``; a pair addresses a
plain dimension of size ``p q`` through ``r = i q + k`` (the index-bijection axiom).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import sympy as sp
from sympy.assumptions.assume import AppliedPredicate
from sympy.matrices.expressions.matexpr import MatrixElement, MatrixExpr
from sympy.polys.matrices import DomainMatrix

from . import _builders as b
from ._check import CheckError, is_zero, validate
from ._nodes import At, Diag, Expect, Grad, Hess, Kron, RVec, Scalar, Vec
from ._sums import SumPoly, Term, from_sympy

__all__ = ["Explicit", "Entries", "matrix_properties", "unfold", "MATRIX_PREDICATES", "lazy",
           "check_expectation", "check_value", "sizes_text"]

#: The matrix hypotheses the checker understands, and how each shapes a generic instance.
MATRIX_PREDICATES = ("symmetric", "positive_definite", "orthogonal", "invertible", "diagonal",
                     "lower_triangular")


def matrix_properties(hypotheses) -> dict:
    """``{MatrixSymbol: {property names}}`` from ``sympy.Q.<property>(X)`` hypotheses."""
    out: dict = {}
    for h in hypotheses:
        if isinstance(h, AppliedPredicate):
            name = h.function.name if hasattr(h.function, "name") else str(h.function)
            name = str(name).replace("Q.", "")
            if name not in MATRIX_PREDICATES:
                raise CheckError(f"hypothesis {h}: unknown matrix property {name!r}; known: "
                                 + ", ".join(MATRIX_PREDICATES))
            (X,) = h.arguments
            out.setdefault(X, set()).add(name)
    return out


def _positive(e) -> bool:
    """``e`` is positive by SymPy's assumptions as written, or once cancelled and factored
    (``l_11**2 * l_22**2`` with positive ``l``); never by evaluating it at points."""
    if sp.sympify(e).is_positive is True:
        return True
    return sp.factor(sp.cancel(e)).is_positive is True


def generic_symmetric(M) -> bool:
    """``M`` is the general symmetric matrix: its entries on and above the diagonal are distinct
    symbols without a sign assumption, mirrored below (every symmetric matrix is an instance)."""
    r, c = M.shape
    upper = [M[i, j] for i in range(r) for j in range(i, c)]
    return (r == c and all(isinstance(e, sp.Symbol) and e.is_nonnegative is None
                           and e.is_nonpositive is None for e in upper)
            and len(set(upper)) == len(upper)
            and all(M[i, j] == M[j, i] for i in range(r) for j in range(i)))


def check_value(X, v, props, who: str, cover: bool = False) -> None:
    """A value given for ``X`` satisfies ``X``'s matrix hypotheses ``props``, exactly.

    Symmetric (also implied by positive definite and diagonal): ``v == v^T`` entry by entry;
    diagonal and lower triangular: the zero pattern; orthogonal: ``v^T v = I``; invertible
    (also implied by positive definite and orthogonal): ``det v`` not identically zero;
    positive definite: symmetric with every leading principal minor positive by SymPy's
    assumptions (Sylvester's criterion) -- a value built as ``L L^T`` from a lower triangular
    ``L`` with a positive diagonal qualifies. With ``cover`` (a link's check, which must hold
    for *every* value of the instance's free symbols), the general symmetric matrix is accepted
    too: it covers every positive definite matrix, so an identity (or a manifestly nonnegative
    difference) checked for it holds for each of them. A witness (``cover`` false) must be
    positive definite itself."""
    if not props or not isinstance(v, sp.MatrixBase):
        return
    M = sp.Matrix(v)
    r, c = M.shape

    def fail(why, prop):
        raise CheckError(f"{who} {why}, but the hypothesis Q.{prop}({X}) says it is")

    def zero(e):
        e = e if isinstance(e, list) else [e]
        return not e or is_zero(e)[0]   # no entry to compare (a 1 x 1 pattern): nothing fails

    if props & {"symmetric", "positive_definite", "diagonal", "orthogonal", "invertible",
                "lower_triangular"} and r != c:
        raise CheckError(f"{who} is not square ({r} x {c})")
    if "diagonal" in props and not zero([M[i, j] for i in range(r) for j in range(c) if i != j]):
        fail("is not diagonal", "diagonal")
    if props & {"symmetric", "positive_definite"} and not zero(list(M - M.T)):
        fail("is not symmetric", sorted(props & {"symmetric", "positive_definite"})[0])
    if "lower_triangular" in props and not zero([M[i, j] for i in range(r) for j in range(c) if j > i]):
        fail("is not lower triangular", "lower_triangular")
    if "orthogonal" in props and not zero(list((M.T * M - sp.eye(r)).applyfunc(sp.cancel))):
        fail("is not orthogonal", "orthogonal")
    if "positive_definite" in props and not (cover and generic_symmetric(M)):
        for k in range(1, r + 1):
            if not _positive(_det(M[:k, :k])):
                raise CheckError(f"{who} is not shown positive definite, which the hypothesis "
                                 f"Q.positive_definite({X}) requires: its leading principal minor "
                                 f"of order {k} is not positive by the symbols' assumptions "
                                 "(Sylvester's criterion); build it as L L^T with L lower "
                                 "triangular with a positive diagonal"
                                 + ("" if cover else " (a witness must itself be positive definite)"))
    if props & {"invertible", "orthogonal"} and zero(sp.expand(_det(M))):
        fail("is singular (det = 0 identically)", sorted(props & {"invertible", "orthogonal"})[0])


def unfold(expr, definitions: Mapping, _seen=()):
    """``expr`` with every defined symbol replaced by its definition, recursively."""
    if not definitions:
        return expr
    hit = {s for s in definitions if isinstance(expr, sp.Basic) and expr.has(s)}
    if not hit:
        return expr
    repl = {}
    for s in hit:
        if s in _seen:
            raise CheckError(f"definition of {s} refers to itself")
        # each definition is unfolded along its own path: two abbreviations may share a third
        repl[s] = unfold(definitions[s], definitions, _seen + (s,))
    return expr.xreplace(repl)


def lazy(v) -> bool:
    """A value given as a zero-argument callable, computed on first use."""
    return callable(v) and not isinstance(v, (sp.Basic, sp.MatrixBase))


def _as_int(n, where):
    n = sp.sympify(n)
    if not n.is_Integer:
        raise CheckError(f"{where}: size {n} is not a number here; give every size symbol a value")
    return int(n)


class Explicit:
    """Evaluate structural expressions at explicit sizes.

    Args:
      sizes: size symbol -> int.
      values: structural symbol (``MatrixSymbol`` or scalar ``Symbol``) -> explicit value at
        these sizes (a SymPy matrix or scalar, or a zero-argument callable computing it on first
        use); unspecified matrices get generic instances.
      definitions: symbol -> structural definition (unfolded before evaluation).
      properties: ``{MatrixSymbol: {"symmetric", ...}}`` (see :func:`matrix_properties`).
      operators: ``{name: callable}`` giving the meaning of ``Expect(M, over=name)`` entrywise.
      change: an exact change of variables ``{symbol: expression}`` applied to every evaluated
        result (``eta_k -> log z_k``); domain: the relations its new variables satisfy.
    """

    def __init__(self, sizes: Mapping, values: Mapping | None = None,
                 definitions: Mapping | None = None, properties: Mapping | None = None,
                 operators: Mapping | None = None, change: Mapping | None = None,
                 domain=(), on_value=None):
        self.sizes = {sp.sympify(k): sp.Integer(v) for k, v in sizes.items()}
        # called with (symbol, value) when a lazily given value is computed
        self.on_value = on_value
        # shared, not copied: a lazily computed value is computed once for every evaluator
        self.values = values if isinstance(values, dict) else dict(values or {})
        self.definitions = dict(definitions or {})
        self.properties = dict(properties or {})
        self.operators = dict(operators or {})
        self.change = dict(change or {})
        self._new = set().union(*[sp.sympify(v).free_symbols for v in self.change.values()]) \
            if self.change else set()
        self.domain = tuple(domain)
        self.conditions: list = []   # structural expressions that must not vanish
        self.applied: dict = {}      # operator name -> the entries it was applied to
        self.generated: dict = {}    # MatrixSymbol -> explicit generic instance
        self._memo: dict = {}

    # ---------------------------------------------------------------- generic instances
    def value(self, s):
        """The supplied value of ``s`` (a lazy one computed now)."""
        v = self.values[s]
        if lazy(v):
            v = v()
            if self.on_value is not None:
                self.on_value(s, v)
            self.values[s] = v
        return v

    def matrix_value(self, X: sp.MatrixSymbol) -> sp.Matrix:
        if X in self.values:
            v = self.value(X)
            v = sp.ImmutableMatrix(v) if isinstance(v, sp.MatrixBase) else v
        elif X in self.generated:
            v = self.generated[X]
        else:
            r = _as_int(X.shape[0].xreplace(self.sizes), str(X))
            c = _as_int(X.shape[1].xreplace(self.sizes), str(X))
            props = self.properties.get(X, set())
            name = X.name
            if "orthogonal" in props:
                v = b.cayley_orthogonal(name.lower() + "_t", r)[0]
            elif "positive_definite" in props:
                v = b.spd(name.lower() + "_l", r)
            elif "diagonal" in props:
                v = b.diagonal(name, r)
            elif "symmetric" in props:
                v = b.symmetric(name, r)
            elif "lower_triangular" in props:
                v = b.lower_triangular(name, r)
            elif c == 1:
                v = b.vector(name, r)
            else:
                v = b.matrix(name, r, c)
            v = sp.ImmutableMatrix(v)
            self.generated[X] = v
        want = tuple(_as_int(s.xreplace(self.sizes), str(X)) for s in X.shape)
        if not isinstance(v, sp.MatrixBase) or tuple(v.shape) != want:
            raise CheckError(f"the value given for {X} has shape "
                             f"{getattr(v, 'shape', 'scalar')}, expected {want} at {self._sizes_text()}")
        return v

    def _sizes_text(self):
        return sizes_text(self.sizes) or "these sizes"

    # ---------------------------------------------------------------- evaluation
    def __call__(self, expr):
        out = self.ev(unfold(sp.sympify(expr), self.definitions))
        if self.change and isinstance(out, sp.Basic):
            clash = (out.free_symbols & self._new) - set(self.change)
            if clash:
                raise CheckError(f"the change of variables {self.change} introduces "
                                 f"{sorted(map(str, clash))}, which the expression already uses "
                                 "(two variables would become one)")
            out = out.xreplace(self.change)
        return out

    def ev(self, e):
        key = e
        if key in self._memo:
            return self._memo[key]
        out = self._ev(e)
        self._memo[key] = out
        return out

    def _ev(self, e):
        if isinstance(e, sp.MatrixBase):
            return sp.ImmutableMatrix(e.shape[0], e.shape[1], [self.ev(x) for x in e])
        if isinstance(e, sp.MatrixSymbol):
            return self.matrix_value(e)
        if isinstance(e, MatrixExpr):
            return self._ev_matrix(e)
        if isinstance(e, Scalar):
            M = self.ev(e.args[0])
            return M[0, 0]
        if isinstance(e, sp.Trace):
            return self.ev(e.args[0]).trace()
        if isinstance(e, sp.Determinant):
            return _det(self.ev(e.args[0]))
        if isinstance(e, MatrixElement):
            M = self.ev(e.args[0])
            return M[_as_int(self.ev(e.args[1]), str(e)), _as_int(self.ev(e.args[2]), str(e))]
        if isinstance(e, sp.Symbol):
            if e in self.values:
                return self.value(e)
            if e in self.sizes:
                return self.sizes[e]
            return e
        if not e.args:
            return e
        if isinstance(e, (sp.Sum, sp.Product)):
            return e.xreplace(self.sizes)
        return e.func(*[self.ev(a) for a in e.args])

    def _ev_matrix(self, e):
        if isinstance(e, sp.Identity):
            return sp.ImmutableMatrix(sp.eye(_as_int(self.ev(e.rows), str(e))))
        if isinstance(e, sp.ZeroMatrix):
            return sp.ImmutableMatrix(sp.zeros(_as_int(self.ev(e.rows), str(e)),
                                               _as_int(self.ev(e.cols), str(e))))
        if isinstance(e, sp.OneMatrix):
            return sp.ImmutableMatrix(sp.ones(_as_int(self.ev(e.rows), str(e)),
                                              _as_int(self.ev(e.cols), str(e))))
        if isinstance(e, sp.MatMul):
            scalar, mats = sp.Integer(1), []
            for a in e.args:
                v = self.ev(a)
                if isinstance(v, sp.MatrixBase):
                    mats.append(v)
                else:
                    scalar *= v
            if not mats:
                raise CheckError(f"{e}: a matrix product without a matrix")
            out = mats[0]
            for m in mats[1:]:
                if out.shape[1] != m.shape[0]:
                    raise CheckError(f"{e}: factor shapes {out.shape} and {m.shape} do not chain")
                out = out * m
            return sp.ImmutableMatrix(out * scalar) if scalar != 1 else sp.ImmutableMatrix(out)
        if isinstance(e, sp.MatAdd):
            vals = [self.ev(a) for a in e.args]
            out = vals[0]
            for v in vals[1:]:
                if v.shape != out.shape:
                    raise CheckError(f"{e}: adding shapes {out.shape} and {v.shape}")
                out = out + v
            return sp.ImmutableMatrix(out)
        if isinstance(e, sp.Transpose):
            return sp.ImmutableMatrix(self.ev(e.args[0]).T)
        if isinstance(e, sp.Inverse):
            return self._inverse(e)
        if isinstance(e, sp.MatPow):
            base, k = e.args
            k = _as_int(self.ev(k), str(e))
            M = self.ev(base)
            if k < 0:
                M, k = self._inverse(sp.Inverse(base)), -k
            out = sp.eye(M.shape[0])
            for _ in range(k):
                out = out * M
            return sp.ImmutableMatrix(out)
        if isinstance(e, Kron):
            return sp.ImmutableMatrix(b.kron(self.ev(e.args[0]), self.ev(e.args[1])))
        if isinstance(e, Vec):
            return sp.ImmutableMatrix(b.vec(self.ev(e.args[0])))
        if isinstance(e, RVec):
            return sp.ImmutableMatrix(b.rvec(self.ev(e.args[0])))
        if isinstance(e, Diag):
            return sp.ImmutableMatrix(sp.diag(*self.ev(e.args[0])))
        if isinstance(e, Grad):
            f, x = e.args
            xs = self._variable(x)
            fe = self.ev(f)
            return sp.ImmutableMatrix([sp.diff(fe, xi) for xi in xs])
        if isinstance(e, Hess):
            f, x = e.args
            xs = self._variable(x)
            fe = self.ev(f)
            return sp.ImmutableMatrix(len(xs), len(xs), lambda i, j: sp.diff(fe, xs[i], xs[j]))
        if isinstance(e, At):
            M, x, v = e.args
            xs = self._variable(x)
            Me, ve = self.ev(M), self.ev(v)
            return sp.ImmutableMatrix(Me.xreplace(dict(zip(xs, ve))))
        if isinstance(e, Expect):
            M, over = e.args
            if over.name not in self.operators:
                raise CheckError(f"{e}: the instantiation gives no expectation operator over "
                                 f"{over.name!r}")
            op = self.operators[over.name]
            inner = self.ev(M)
            self.applied.setdefault(over.name, []).extend(inner)
            return sp.ImmutableMatrix(inner.applyfunc(op))
        raise CheckError(f"no explicit meaning for {type(e).__name__} ({e})")

    def _variable(self, x):
        xs = list(self.ev(x))
        if not all(isinstance(s, sp.Symbol) for s in xs) or len(set(xs)) != len(xs):
            raise CheckError(f"{x} is differentiated or substituted, so its explicit value must "
                             f"be distinct symbols, got {xs}")
        return xs

    def _inverse(self, e):
        M = self.ev(e.args[0])
        if M.shape[0] != M.shape[1]:
            raise CheckError(f"{e}: inverse of a non-square {M.shape} matrix")
        det = _det(M)
        if sp.expand(det) == 0:
            raise CheckError(f"{e}: the matrix is singular (det = 0 identically)")
        cond = sp.Determinant(e.args[0])
        if cond not in self.conditions:
            self.conditions.append(cond)
        adj = M.adjugate()
        return sp.ImmutableMatrix(adj / det)


def _det(M):
    if M.shape == (0, 0):
        return sp.Integer(1)
    try:
        dm = DomainMatrix.from_Matrix(sp.Matrix(M))
        return dm.domain.to_sympy(dm.det())
    except Exception:  # noqa: BLE001 - a domain SymPy cannot build: the plain determinant
        return sp.Matrix(M).det(method="berkowitz")


# =============================================================================== entries

# An index structure: ("atom", size) or ("pair", outer, inner); an index value mirrors it:
# ("atom", size, expr) or ("pair", outer_index, inner_index).


def _size(d):
    return d[1] if d[0] == "atom" else sp.expand(_size(d[1]) * _size(d[2]))


def _eq(a, b):
    return sp.expand(a - b) == 0


def check_expectation(name, apply) -> None:
    """The operator over ``name`` is an expectation: ``apply(c)``, its image of a constant
    ``c``, is ``c`` (``h -> 0`` or ``h -> 1`` would make any identity between expectations
    hold)."""
    c = sp.Dummy("c")
    got = sp.sympify(apply(c))
    if sp.expand(got - c) != 0:
        raise CheckError(f"the operator over {name!r} is not an expectation: it maps the "
                         f"constant c to {got}, not to c")


def sizes_text(sizes) -> str:
    """``n = 2, m = 3`` for one assignment of sizes."""
    return ", ".join(f"{k} = {v}" for k, v in sizes.items())


class Entries:
    """Entries of structural expressions at general dimension (tier ``A``).

    Args:
      definitions: symbol -> structural definition (unfolded first).
      properties: ``{MatrixSymbol: {...}}``; ``symmetric`` makes ``X_{ab} = X_{ba}`` known.
      values: ``values(self) -> {symbol: entry}``, the general instantiation of some symbols
        (see :class:`fisherlab.symbolic.Entrywise`): a scalar ``Symbol`` -> expression, a
        ``MatrixSymbol`` -> ``(i, j) -> expression``, written in ``self.base(X)[i, j]``.
      operators: ``{name: op}`` giving ``Expect(M, over=name)`` its meaning,
        ``op(self, SumPoly) -> SumPoly``.
    """

    def __init__(self, definitions: Mapping | None = None, properties: Mapping | None = None,
                 values=None, operators: Mapping | None = None):
        self.definitions = dict(definitions or {})
        self.properties = dict(properties or {})
        self.operators = dict(operators or {})
        self.ranges: dict = {}
        self._bases: dict = {}
        self._count = itertools.count()
        given = dict(values(self)) if values is not None else {}
        self.scalar_values = {k: sp.sympify(v) for k, v in given.items() if isinstance(k, sp.Symbol)}
        self.matrix_values = {k: v for k, v in given.items() if isinstance(k, sp.MatrixSymbol)}
        other = set(given) - set(self.scalar_values) - set(self.matrix_values)
        if other:
            raise CheckError(f"entry-wise values instantiate Symbols and MatrixSymbols, got {other}")
        for X, v in self.matrix_values.items():
            if not callable(v):
                raise CheckError(f"the entry-wise value of {X} must be a callable (i, j) -> entry")
            for p in sorted(self.properties.get(X, ())):
                # symmetry, definiteness, ... of a value at general dimension is not decided
                # here: the check would be about a matrix the hypotheses may not describe
                raise CheckError(f"the entry-wise value of {X}: {X} has the hypothesis "
                                 f"Q.{p}({X}), which an entry-wise value is not checked against; "
                                 "give this value at explicit sizes (Explicit), where it is")
        for name, op in self.operators.items():
            check_expectation(name, lambda c, op=op: op(self, SumPoly.const(c)).to_sympy(self.ranges))
        for s, v in self.scalar_values.items():
            self._check_value(v, f"the entry-wise value of {s}")

    def _check_value(self, v, who):
        """A value addresses matrix entries only as ``base(X)[i, j]`` of the bases this evaluator
        made (a stray ``IndexedBase`` would be a constant to every derivative), and a finite sum
        over a matrix index runs over exactly that index's range."""
        validate(v, who)
        owner = {b: X for X, b in self._bases.items()}
        for ix in v.atoms(sp.Indexed):
            if ix.base not in owner:
                raise CheckError(f"{who}: {ix} is not an entry ent.base(X)[i, j] of a matrix symbol")
            if len(ix.indices) != 2:
                raise CheckError(f"{who}: {ix} needs two indices [i, j] (0-based)")
        for s in v.atoms(sp.Sum):
            for lim in s.limits:
                if len(lim) != 3:
                    raise CheckError(f"{who}: the sum {s} needs explicit bounds")
                d, lo, hi = lim
                for ix in s.function.atoms(sp.Indexed):
                    X = owner[ix.base]
                    for pos, i in enumerate(ix.indices):
                        if i == d and not (_eq(lo, 0) and _eq(hi, X.shape[pos] - 1)):
                            raise CheckError(f"{who}: the sum over {d} runs over [{lo}, {hi}], but it "
                                             f"indexes dimension {pos} of {X}, which is "
                                             f"[0, {X.shape[pos] - 1}]")

    @property
    def symmetric_bases(self) -> frozenset:
        return frozenset(self.base(X) for X, p in self.properties.items()
                         if p & {"symmetric", "positive_definite", "diagonal"})

    def base(self, X: sp.MatrixSymbol) -> sp.IndexedBase:
        if X not in self._bases:
            self._bases[X] = sp.IndexedBase(X.name, real=True)
        return self._bases[X]

    # ---------------------------------------------------------------- structure
    def dims(self, e):
        if isinstance(e, sp.MatrixSymbol):
            return ("atom", e.shape[0]), ("atom", e.shape[1])
        if isinstance(e, (sp.Identity, sp.ZeroMatrix, sp.OneMatrix)):
            return ("atom", e.shape[0]), ("atom", e.shape[1])
        if isinstance(e, sp.MatMul):
            mats = [a for a in e.args if isinstance(a, MatrixExpr)]
            return self.dims(mats[0])[0], self.dims(mats[-1])[1]
        if isinstance(e, sp.MatAdd):
            ds = [self.dims(a) for a in e.args]
            r, c = ds[0]
            for r2, c2 in ds[1:]:
                r, c = self.finest(r, r2), self.finest(c, c2)
            return r, c
        if isinstance(e, sp.Transpose):
            r, c = self.dims(e.args[0])
            return c, r
        if isinstance(e, Kron):
            (ra, ca), (rb, cb) = self.dims(e.args[0]), self.dims(e.args[1])
            return ("pair", ra, rb), ("pair", ca, cb)
        if isinstance(e, Vec):
            r, c = self.dims(e.args[0])
            return ("pair", c, r), ("atom", sp.Integer(1))
        if isinstance(e, RVec):
            r, c = self.dims(e.args[0])
            return ("pair", r, c), ("atom", sp.Integer(1))
        if isinstance(e, Diag):
            r, _ = self.dims(e.args[0])
            return r, r
        if isinstance(e, Grad):
            return self.dims(e.args[1])
        if isinstance(e, Hess):
            r, _ = self.dims(e.args[1])
            return r, r
        if isinstance(e, (At, Expect)):
            return self.dims(e.args[0])
        if isinstance(e, sp.MatPow):
            r, c = self.dims(e.args[0])
            f = self.finest(r, c)
            return f, f
        raise CheckError(f"no entry-wise meaning at general dimension for {type(e).__name__} "
                         f"({e}); check this link with the matrix-algebra axioms or at explicit sizes")

    def finest(self, d1, d2):
        if not _eq(_size(d1), _size(d2)):
            raise CheckError(f"dimensions of sizes {_size(d1)} and {_size(d2)} do not match")
        if d1 == d2:
            return d1
        if d1[0] == "atom":
            return d2
        if d2[0] == "atom":
            return d1
        if _eq(_size(d1[1]), _size(d2[1])) and _eq(_size(d1[2]), _size(d2[2])):
            return ("pair", self.finest(d1[1], d2[1]), self.finest(d1[2], d2[2]))
        raise CheckError(f"incompatible index structures {d1} and {d2} (two different pairings "
                         "of the same range)")

    def fresh(self, d, name="i"):
        """A fresh index (free or summation) of structure ``d``; its range is recorded."""
        if d[0] == "atom":
            s = sp.Symbol(f"_{name}{next(self._count)}", integer=True, nonnegative=True)
            self.ranges[s] = (sp.Integer(0), d[1] - 1)
            return ("atom", d[1], s)
        return ("pair", self.fresh(d[1], name), self.fresh(d[2], name))

    @staticmethod
    def symbols_of(idx):
        if idx[0] == "atom":
            return [idx[2]] if isinstance(idx[2], sp.Symbol) else []
        return Entries.symbols_of(idx[1]) + Entries.symbols_of(idx[2])

    @staticmethod
    def flat(idx):
        if idx[0] == "atom":
            return idx[2]
        return Entries.flat(idx[1]) * _size(Entries._dim(idx[2])) + Entries.flat(idx[2])

    @staticmethod
    def _dim(idx):
        if idx[0] == "atom":
            return ("atom", idx[1])
        return ("pair", Entries._dim(idx[1]), Entries._dim(idx[2]))

    @staticmethod
    def _pair(idx, who):
        if idx[0] != "pair":
            raise CheckError(f"{who}: a Kronecker-structured dimension addressed by a plain index "
                             "(the checker cannot split it)")
        return idx[1], idx[2]

    def delta(self, a, b):
        if a[0] == "pair" and b[0] == "pair" and _eq(_size(self._dim(a[2])), _size(self._dim(b[2]))):
            return self.delta(a[1], b[1]) * self.delta(a[2], b[2])
        return sp.KroneckerDelta(self.flat(a), self.flat(b))

    # ---------------------------------------------------------------- entries
    def entry(self, e, r, c) -> SumPoly:
        e = unfold(e, self.definitions)
        if isinstance(e, sp.MatrixSymbol):
            if e in self.matrix_values:
                v = sp.sympify(self.matrix_values[e](self.flat(r), self.flat(c)))
                self._check_value(v, f"the entry-wise value of {e}")
                return from_sympy(v, self.ranges)
            return SumPoly.const(self.base(e)[self.flat(r), self.flat(c)])
        if isinstance(e, sp.Identity):
            return SumPoly.const(self.delta(r, c))
        if isinstance(e, sp.ZeroMatrix):
            return SumPoly.zero()
        if isinstance(e, sp.OneMatrix):
            return SumPoly.const(1)
        if isinstance(e, sp.MatAdd):
            out = SumPoly.zero()
            for a in e.args:
                out = out + self.entry(a, r, c)
            return out
        if isinstance(e, sp.MatMul):
            scal = [a for a in e.args if not isinstance(a, MatrixExpr)]
            mats = [a for a in e.args if isinstance(a, MatrixExpr)]
            out = self.scalar(sp.Mul(*scal)) if scal else SumPoly.const(1)
            row, dummies = r, []
            for k, M in enumerate(mats):
                if k == len(mats) - 1:
                    col = c
                else:
                    inner = self.finest(self.dims(M)[1], self.dims(mats[k + 1])[0])
                    col = self.fresh(inner, "s")
                    dummies += self.symbols_of(col)
                out = out * self.entry(M, row, col)
                row = col
            for d in dummies:
                out = out.summed(d)
            return out
        if isinstance(e, sp.Transpose):
            return self.entry(e.args[0], c, r)
        if isinstance(e, Kron):
            (r1, r2), (c1, c2) = self._pair(r, str(e)), self._pair(c, str(e))
            return self.entry(e.args[0], r1, c1) * self.entry(e.args[1], r2, c2)
        if isinstance(e, Vec):
            j, i = self._pair(r, str(e))
            return self.entry(e.args[0], i, j)
        if isinstance(e, RVec):
            i, j = self._pair(r, str(e))
            return self.entry(e.args[0], i, j)
        if isinstance(e, Diag):
            zero = ("atom", sp.Integer(1), sp.Integer(0))
            return SumPoly.const(self.delta(r, c)) * self.entry(e.args[0], r, zero)
        if isinstance(e, Grad):
            f, x = e.args
            var = self.base(x)[self.flat(r), 0]
            return self._flatten(self.scalar(f).map_bodies(lambda body: sp.diff(body, var)))
        if isinstance(e, Hess):
            f, x = e.args
            vr, vc = self.base(x)[self.flat(r), 0], self.base(x)[self.flat(c), 0]
            return self._flatten(self.scalar(f).map_bodies(lambda body: sp.diff(body, vr, vc)))
        if isinstance(e, At):
            M, x, v = e.args
            return self._substitute(self.entry(M, r, c), x, v)
        if isinstance(e, Expect):
            M, over = e.args
            if over.name not in self.operators:
                raise CheckError(f"{e}: the entry-wise instantiation gives no expectation operator "
                                 f"over {over.name!r}")
            return self.operators[over.name](self, self.entry(M, r, c))
        if isinstance(e, sp.MatPow):
            base, k = e.args
            if not (k.is_Integer and k > 0):
                raise CheckError(f"{e}: only positive integer powers have entries at general dimension")
            return self.entry(sp.MatMul(*([base] * int(k))), r, c)
        self.dims(e)  # raises the explanatory error
        raise CheckError(f"no entry-wise meaning for {e}")

    def _flatten(self, poly: SumPoly) -> SumPoly:
        """Finite sums that differentiation left inside a term's body (``d/d eta_k`` of
        ``log sum_j e^{eta_j}`` is ``sum_j delta_jk e^{eta_j} / sum_j e^{eta_j}``) become
        summation terms, so that the canonical form can eliminate their deltas."""
        out = []
        for t in poly.terms:
            if not t.body.has(sp.Sum):
                out.append(t)
                continue
            for u in from_sympy(t.body, self.ranges).terms:
                out.append(Term(t.dummies + u.dummies, u.body))
        return SumPoly(tuple(out))

    def scalar(self, e) -> SumPoly:
        e = unfold(sp.sympify(e), self.definitions)
        if self.scalar_values and e.has(*self.scalar_values):
            e = e.xreplace(self.scalar_values)
        one = ("atom", sp.Integer(1), sp.Integer(0))
        if isinstance(e, Scalar):
            return self.entry(e.args[0], one, one)
        if isinstance(e, sp.Trace):
            r, c = self.dims(e.args[0])
            d = self.fresh(self.finest(r, c), "s")
            out = self.entry(e.args[0], d, d)
            for s in self.symbols_of(d):
                out = out.summed(s)
            return out
        if isinstance(e, MatrixExpr):
            raise CheckError(f"{e} is a matrix where a scalar was expected")
        if not e.has(Scalar, sp.Trace, sp.MatrixSymbol):
            return from_sympy(e, self.ranges)
        if isinstance(e, sp.Add):
            out = SumPoly.zero()
            for a in e.args:
                out = out + self.scalar(a)
            return out
        if isinstance(e, sp.Mul):
            out = SumPoly.const(1)
            for a in e.args:
                out = out * self.scalar(a)
            return out
        if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
            out = SumPoly.const(1)
            for _ in range(int(e.exp)):
                out = out * self.scalar(e.base)
            return out
        # a function of matrix quantities: their entries as SymPy sums, inside an opaque atom
        return SumPoly.const(e.func(*[self.scalar(a).to_sympy(self.ranges) for a in e.args]))

    def _substitute(self, poly: SumPoly, x, v) -> SumPoly:
        base = self.base(x)
        if isinstance(v, sp.MatrixSymbol):
            # x set to another matrix symbol of its shape: every entry x_ij renamed v_ij, which
            # is valid inside any function (log, exp, an opaque sum), not only polynomially
            new = self.base(v)
            return poly.map_bodies(lambda body: body.xreplace({base: new}))
        out = SumPoly.zero()
        for t in poly.terms:
            for mono in sp.Add.make_args(sp.expand(t.body)):
                acc = SumPoly.const(1)
                rest = []
                for f in sp.Mul.make_args(mono):
                    bse, k = (f.base, int(f.exp)) if (f.is_Pow and f.exp.is_Integer and f.exp > 0) \
                        else (f, 1)
                    if isinstance(bse, sp.Indexed) and bse.base == base:
                        ri = ("atom", x.shape[0], bse.indices[0])
                        ci = ("atom", x.shape[1], bse.indices[1])
                        for _ in range(k):
                            acc = acc * self.entry(v, ri, ci)
                    elif f.has(base):
                        raise CheckError(f"{x} occurs inside {f}: substitute it before a nonlinear function")
                    else:
                        rest.append(f)
                piece = acc.scale(sp.Mul(*rest))
                for d in t.dummies:
                    piece = piece.summed(d)
                out = out + piece
        return out
