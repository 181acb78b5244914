r"""The likelihood families as structural objects, and the instantiations that check them.

A derivation about a likelihood family is stated over the structural symbols of
:class:`Family` -- the outputs ``eta``, the target ``y``, the log-density ``log p`` (a
scalar symbol), the log-partition ``A``, the abbreviations of the closed-form output Fisher
(``p = softmax(eta)``, ``sigma(eta)``, ``lambda = e^eta``, ...) and, for the KL divergence,
a second output ``eta'``, the log-densities at ``eta`` and ``eta'`` (``1 x 1``) and a
displacement ``delta``. Two instantiations give these symbols their meaning:

* :attr:`Family.explicit` (tier ``B``): at every size of the family's stated range, the
  library's own SymPy definition (:mod:`fisherlab.likelihoods.symbolic`) -- its outputs and
  targets as symbols, its log-density and log-partition, its exact expectation operator over
  ``y`` monomial by monomial; the categorical in the exact coordinates
  ``z_k = e^{eta_k}`` (``k < K``), ``s = sum_j e^{eta_j}`` (a bijection of ``R^K`` onto
  ``{z > 0, s > z_1 + ... + z_{K-1}}``), where every identity reduces by ``expand``;
* :attr:`Family.general` (tier ``A``, categorical only): the same symbols at general ``K``
  -- the log-pmf ``sum_j y_j eta_j - log sum_j e^{eta_j}`` in ``IndexedBase`` entries and
  the expectation over a one-hot ``y`` as the finite sum ``sum_c p_c h(e_c)``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import sympy as sp

from fisherlab.likelihoods import symbolic as lik

from ._check import CheckError
from ._checks import Entrywise, Explicit, Model, Sizes
from ._instantiate import Explicit as _Evaluator
from ._nodes import Diag, Hess
from ._sums import SumPoly, Term

__all__ = ["Family", "family", "FAMILY_NAMES", "moment_expectation", "softmax_coordinates",
           "gaussian_variance_symbol", "one_hot_expectation", "GENERAL_CATEGORICAL_AXIOMS",
           "FAMILY_SIZES", "abstract_family", "ABSTRACT_SIZES"]

FAMILY_NAMES = ("categorical", "gaussian", "bernoulli", "poisson", "gaussian_mean_variance")

#: The sizes each family's tier-B chains check exhaustively.
FAMILY_SIZES = {"categorical": (2, 3, 4, 5), "gaussian": (1, 2, 3, 4), "bernoulli": (1, 2, 3, 4),
          "poisson": (1, 2, 3, 4), "gaussian_mean_variance": (1, 2, 3)}


def moment_expectation(likelihood, normalise=None):
    """``h -> E_y[h]`` for ``h`` polynomial in the targets, by linearity over monomials.

    Each moment ``E[y^alpha]`` is computed once (cached) with the family's own exact
    ``expectation`` operator; ``h = sum_alpha c_alpha(eta) y^alpha`` then gives
    ``E[h] = sum_alpha c_alpha(eta) E[y^alpha]``. For the Poisson family this turns one
    slow series summation per entry into one per moment. ``normalise`` (e.g.
    ``sympy.factor``, an exact rewriting) is applied to each moment once: the Bernoulli
    moments are sums over ``2^C`` outcomes that factor into ``prod sigma(eta_c)``.
    """
    targets = tuple(likelihood.targets)
    cache: dict = {}

    def monomials(h):
        """``{exponents: coefficient}`` of ``h`` as a polynomial in the targets (the split
        of each expanded term into its target powers and the rest, without building a
        polynomial ring over the coefficients)."""
        out: dict = {}
        for term in sp.Add.make_args(sp.expand(h)):
            coeff, dep = term.as_independent(*targets, as_Add=False)
            powers = dep.as_powers_dict() if dep != 1 else {}
            if any(b not in targets or not (e.is_Integer and e > 0) for b, e in powers.items()):
                raise ValueError(f"{term}: not polynomial in the targets {targets}")
            key = tuple(int(powers.get(y, 0)) for y in targets)
            out[key] = out.get(key, sp.Integer(0)) + coeff
        return out

    def expectation(h):
        h = sp.sympify(h)
        if not h.has(*targets):
            return h
        total = sp.Integer(0)
        for monom, coeff in monomials(h).items():
            if monom not in cache:
                moment = likelihood.expectation(sp.Mul(*[y ** k for y, k in zip(targets, monom)]))
                cache[monom] = normalise(moment) if normalise is not None else moment
            total += coeff * cache[monom]
        return total

    return expectation


def softmax_coordinates(num_classes: int):
    """Exact coordinates for categorical identities: ``(z, s, substitution, probs)``.

    ``z_k = e^{eta_k}`` for ``k < K`` and ``s = sum_j e^{eta_j}`` (so
    ``e^{eta_K} = s - z_1 - ... - z_{K-1}``); ``substitution`` maps each ``eta_k`` of
    :func:`fisherlab.likelihoods.symbolic.categorical` to ``log`` of its coordinate and
    ``probs`` is the softmax ``p = (z_1, ..., z_{K-1}, s - sum z) / s``.
    """
    K = num_classes
    eta = lik.categorical(K).outputs
    z = sp.symbols(f"z_1:{K}", positive=True)
    s = sp.Symbol("s", positive=True)
    last = s - sp.Add(*z)
    subs = {e: sp.log(v) for e, v in zip(eta, tuple(z) + (last,))}
    probs = sp.Matrix(list(z) + [last]) / s
    return z, s, subs, probs


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
    """A likelihood family's structural symbols and the instantiations that check them.

    Attributes:
      name: ``"categorical"``, ...; size: the size symbol (``K``, ``C`` or ``D``);
        sizes: the tier-B sizes.
      eta, y: the outputs and the target (column ``MatrixSymbol``\\ s); eta2: a second output
        ``eta'``; delta: a displacement of the outputs.
      logp, A: scalar symbols for ``log p(y | eta)`` and the log-partition ``A(eta)``
        (``None`` for the mean/log-variance Gaussian, whose outputs are not natural).
      ell, ell2: ``1 x 1`` symbols for ``log p(y | eta)`` and ``log p(y | eta')`` (for the KL).
      closed: the closed-form output Fisher, structural; hessian: the output Hessian of the
        NLL, structural (the closed form for natural families; target-dependent otherwise).
      abbreviations: the symbols ``closed`` is written in, with what they stand for.
      explicit: the tier-B instantiation from the library's definition (``Explicit``);
      general: the tier-A instantiation at general size (``Entrywise``) or ``None``.
      source: ``n -> SymbolicLikelihood`` at size ``n``.
    """

    name: str
    size: sp.Symbol
    sizes: tuple
    eta: sp.MatrixSymbol
    y: sp.MatrixSymbol
    eta2: sp.MatrixSymbol
    delta: sp.MatrixSymbol
    logp: sp.Symbol
    A: Any
    ell: sp.MatrixSymbol
    ell2: sp.MatrixSymbol
    closed: Any
    hessian: Any
    abbreviations: dict
    explicit: Explicit
    general: Any
    source: Any

    def at(self, *sizes) -> Explicit:
        """The tier-B instantiation at the listed sizes only (the same values and operators,
        so their per-size results are shared with :attr:`explicit`): where a control looks for
        its witness."""
        return dataclasses.replace(self.explicit, sizes=Sizes.of([{self.size: n} for n in sizes]))

    def evaluate(self, expr, n: int):
        """``expr`` (structural, in this family's symbols) as an explicit SymPy matrix at size
        ``n``, by the evaluator the tier-B links are checked with (in the original outputs, no
        change of coordinates): the right-hand side a proof established, for comparison with
        the numeric code."""
        sizes = {self.size: n}
        by = self.explicit
        ops = by.operators(sizes) if callable(by.operators) else by.operators
        return _Evaluator(sizes, dict(by.values(sizes)), operators=ops)(expr)


def _latex_vector(name, n):
    return sp.MatrixSymbol(name, n, 1)


@functools.lru_cache(maxsize=None)
def _source(name: str, n: int):
    if name == "categorical":
        return lik.categorical(n)
    if name == "gaussian":
        return lik.gaussian(n, gaussian_variance_symbol())
    if name == "bernoulli":
        return lik.bernoulli(n)
    if name == "poisson":
        return lik.poisson(n)
    return lik.gaussian_mean_variance(n)


@functools.lru_cache(maxsize=None)
def _expectation(name: str, n: int):
    L = _source(name, n)
    return moment_expectation(L, sp.factor if name == "bernoulli" else None)


def gaussian_variance_symbol() -> sp.Symbol:
    """The fixed Gaussian variance ``sigma^2``, a positive symbol."""
    return sp.Symbol("sigma^2", positive=True)


def _primed(outputs):
    return tuple(sp.Symbol(f"{o.name}'", real=True) for o in outputs)


@functools.lru_cache(maxsize=None)
def family(name: str) -> Family:
    """The :class:`Family` called ``name`` (one of :data:`FAMILY_NAMES`), built once."""
    if name not in FAMILY_NAMES:
        raise ValueError(f"family must be one of {FAMILY_NAMES}, got {name!r}")
    n = sp.Symbol({"categorical": "K", "gaussian_mean_variance": "D"}.get(name, "C"),
                  integer=True, positive=True)
    outs = 2 * n if name == "gaussian_mean_variance" else n
    eta = sp.MatrixSymbol(r"\eta" if name != "gaussian" else r"\mu", outs, 1)
    eta2 = sp.MatrixSymbol(r"\eta'" if name != "gaussian" else r"\mu'", outs, 1)
    y = sp.MatrixSymbol("y", n, 1)
    delta = sp.MatrixSymbol(r"\delta", outs, 1)
    arg = r"\mu" if name == "gaussian" else r"\eta"
    logp = sp.Symbol(rf"\log p(y \mid {arg})")
    A = None if name == "gaussian_mean_variance" else sp.Symbol(rf"A({arg})")
    ell = sp.MatrixSymbol(rf"\log p(y \mid {arg})", 1, 1)
    ell2 = sp.MatrixSymbol(rf"\log p(y \mid {arg}')", 1, 1)
    I = sp.Identity(outs)
    abbrev: dict = {}
    selections: tuple = ()
    if name == "categorical":
        p = _latex_vector("p", n)
        abbrev[p] = r"$p = \operatorname{softmax}(\eta)$"
        closed = Diag(p) - p * p.T
        hessian = closed
    elif name == "gaussian":
        var = gaussian_variance_symbol()
        closed = I / var
        hessian = closed
    elif name == "bernoulli":
        q = _latex_vector(r"\sigma(\eta)", n)
        abbrev[q] = r"$\sigma(\eta)$ the logistic sigmoid of each logit"
        closed = Diag(q) * (I - Diag(q))
        hessian = closed
    elif name == "poisson":
        lam = _latex_vector(r"\lambda", n)
        abbrev[lam] = r"$\lambda = e^{\eta}$ the rates"
        closed = Diag(lam)
        hessian = closed
    else:
        Pm = sp.MatrixSymbol(r"P_{\mu}", n, 2 * n)
        Ps = sp.MatrixSymbol(r"P_{s}", n, 2 * n)
        selections = (Pm, Ps)   # fixed matrices the instantiation defines (shown on the page)
        prec = _latex_vector(r"e^{-s}", n)
        abbrev[Pm] = r"$P_\mu = [I_D\ 0]$ and $P_s = [0\ I_D]$ pick the means $\mu = P_\mu\eta$ " \
                     r"and the log-variances $s = P_s\eta$ from $\eta = (\mu, s)$"
        abbrev[Ps] = ""
        abbrev[prec] = r"$e^{-s}$ the precisions $1/\sigma_d^2$"
        W = Diag(prec)
        R = Diag(y - Pm * eta)
        closed = Pm.T * W * Pm + Ps.T * Ps / 2
        hessian = (Pm.T * W * Pm + Pm.T * W * R * Ps + Ps.T * W * R * Pm
                   + Ps.T * W * R * R * Ps / 2)

    def values(sizes):
        k = int(sizes[n])
        L = _source(name, k)
        out = sp.Matrix(L.outputs)
        primed = _primed(L.outputs)
        shift = dict(zip(L.outputs, primed))
        vals = {eta: out, y: sp.Matrix(L.targets), logp: L.log_density,
                eta2: sp.Matrix(primed),
                ell: sp.Matrix([[L.log_density]]),
                ell2: sp.Matrix([[L.log_density.xreplace(shift)]])}
        if A is not None:
            vals[A] = L.log_partition
        if name == "categorical":
            Z = sp.Add(*[sp.exp(e) for e in L.outputs])
            vals[p] = out.applyfunc(sp.exp) / Z
        elif name == "bernoulli":
            vals[q] = out.applyfunc(lambda e: sp.exp(e) / (1 + sp.exp(e)))
        elif name == "poisson":
            vals[lam] = out.applyfunc(sp.exp)
        elif name == "gaussian_mean_variance":
            vals[Pm] = sp.Matrix.hstack(sp.eye(k), sp.zeros(k, k))
            vals[Ps] = sp.Matrix.hstack(sp.zeros(k, k), sp.eye(k))
            vals[prec] = sp.Matrix(L.outputs[k:]).applyfunc(lambda s_: sp.exp(-s_))
        return vals

    def operators(sizes):
        return {"y": _expectation(name, int(sizes[n]))}

    coordinates = None
    text = (f"`fisherlab.likelihoods.symbolic.{name}` at each size: its outputs and targets as "
            "symbols, its log-density (and log-partition), its exact expectation over $y$")
    if name == "categorical":
        def coordinates(sizes):
            z, s, subs, _ = softmax_coordinates(int(sizes[n]))
            return subs, [sp.Gt(s, sp.Add(*z))]
        text += (r"; compared in the coordinates $z_k = e^{\eta_k}$ ($k < K$), "
                 r"$s = \sum_j e^{\eta_j}$, a bijection of $\mathbb R^K$ onto "
                 r"$\{z > 0,\ s > z_1 + \dots + z_{K-1}\}$")
    explicit = Explicit(Sizes({n: FAMILY_SIZES[name]}), values=values, operators=operators,
                        describe=text, coordinates=coordinates, defines=selections)
    general = _general_categorical(eta, eta2, y, logp, A, ell, ell2, p) if name == "categorical" else None
    return Family(name, n, FAMILY_SIZES[name], eta, y, eta2, delta, logp, A, ell, ell2, closed, hessian,
                  abbrev, explicit, general, functools.partial(_source, name))


def one_hot_expectation(y: sp.MatrixSymbol, prob):
    """The entry-wise expectation over a one-hot target ``y`` (``K x 1``) at general ``K``:
    ``E[h(y)] = sum_c P(y = e_c) h(e_c)``, for :class:`~fisherlab.symbolic.Entrywise`.

    A term polynomial in the entries ``y_a`` becomes ``sum_c prob(ent, c) h`` with every
    ``y_a^n`` (``n >= 1``) replaced by ``delta_ac`` (``y_a`` is 0 or 1, exactly one is 1); a
    term free of ``y`` is its own expectation (the probabilities sum to one -- an axiom the
    page states). ``prob(ent, c)`` is ``P(y = e_c)`` in the entries ``ent.base(X)[c, 0]``.
    ``y`` inside a nonlinear function is refused.
    """
    def op(ent, poly):
        base = ent.base(y)
        out = []
        for term in poly.terms:
            # an index that ranges over one value (the inner index of y y^T) is that value
            single = {d: ent.ranges[d][0] for d in term.dummies
                      if sp.expand(ent.ranges[d][1] - ent.ranges[d][0]) == 0}
            if single:
                term = Term(tuple(d for d in term.dummies if d not in single),
                            term.body.xreplace(single))
            for mono in sp.Add.make_args(sp.expand(term.body)):
                hit, rest = [], []
                for f in sp.Mul.make_args(mono):
                    b, k = (f.base, f.exp) if f.is_Pow else (f, sp.Integer(1))
                    if isinstance(b, sp.Indexed) and b.base == base and k.is_Integer and k > 0:
                        col = b.indices[1]
                        if col != 0 and ent.ranges.get(col) != (0, 0):
                            raise CheckError(f"{b}: {y} is a column vector")
                        hit.append(b.indices[0])
                    elif f.has(base):
                        raise CheckError(f"{f}: the one-hot expectation needs {y} polynomially")
                    else:
                        rest.append(f)
                if not hit:
                    out.append(Term(term.dummies, mono))
                    continue
                c = ent.fresh(("atom", y.shape[0]), "c")[2]
                deltas = sp.Mul(*[sp.KroneckerDelta(a, c) for a in hit])
                out.append(Term(term.dummies + (c,), sp.Mul(*rest) * deltas * prob(ent, c)))
        return SumPoly(tuple(out))

    return op


#: The facts the general-K categorical instantiation supplies by hand.
GENERAL_CATEGORICAL_AXIOMS = {
    "categorical pmf at general K":
        r"$\log p(y\mid\eta) = \sum_{j} y_j\eta_j - \log\sum_{j} e^{\eta_j}$ for a one-hot $y$, "
        r"$P(y = e_c) = p_c = e^{\eta_c}/\sum_j e^{\eta_j}$, so "
        r"$\mathbb E_y[h(y)] = \sum_{c} p_c\, h(e_c)$ and $\sum_c p_c = 1$ "
        r"(the definition of `fisherlab.likelihoods.symbolic.categorical(K)`, written for "
        r"symbolic $K$; indices run over $0, \dots, K-1$)",
}


def _general_categorical(eta, eta2, y, logp, A, ell, ell2, p):
    """The categorical at general ``K`` for the entry-wise checks (tier A)."""
    K = eta.shape[0]
    j = sp.Symbol("j", integer=True)

    def Z(ent, x):
        return sp.Sum(sp.exp(ent.base(x)[j, 0]), (j, 0, K - 1))

    def log_pmf(ent, x):
        return sp.Sum(ent.base(y)[j, 0] * ent.base(x)[j, 0], (j, 0, K - 1)) - sp.log(Z(ent, x))

    def prob(ent, c):
        return sp.exp(ent.base(eta)[c, 0]) / Z(ent, eta)

    def values(ent):
        return {logp: log_pmf(ent, eta), A: sp.log(Z(ent, eta)),
                p: lambda i, _: prob(ent, i),
                ell: lambda i, _: log_pmf(ent, eta),
                ell2: lambda i, _: log_pmf(ent, eta2)}

    return Entrywise(
        values=values, operators={"y": one_hot_expectation(y, prob)},
        defines=(logp, A, p, ell, ell2),
        describe=r"general $K$: $\log p(y\mid\eta) = \sum_{j} y_j\eta_j - \log\sum_{j} "
                 r"e^{\eta_j}$ (likewise at $\eta'$), $A(\eta) = \log\sum_j e^{\eta_j}$, "
                 r"$p_i = e^{\eta_i}/\sum_j e^{\eta_j}$, in `IndexedBase` entries with sums over "
                 r"$j = 0, \dots, K-1$; $\mathbb E_y[h] = \sum_c p_c\, h(e_c)$ over a one-hot $y$")


#: The dimensions of the natural parameter at which the abstract exponential family is checked.
ABSTRACT_SIZES = (1, 2, 3, 4)


@functools.lru_cache(maxsize=None)
def abstract_family() -> Family:
    """The exponential family ``h(y) exp(<eta, t> - A(eta))`` with an abstract log-partition:
    the same structural symbols as :func:`family` (``y`` is the sufficient statistic ``t(y)``,
    ``closed`` is ``Hess(A, eta)``), instantiated by a :class:`~fisherlab.symbolic.Model`
    (tier ``A-model``) at ``d = 1..4`` with ``A`` an undefined function and ``E_y`` the moment
    axiom ``E[t^alpha] = e^{-A} d^alpha e^A`` (:func:`~fisherlab.symbolic.toolkit.expfam_expectation`)."""
    n = sp.Symbol("d", integer=True, positive=True)
    eta, eta2 = sp.MatrixSymbol(r"\eta", n, 1), sp.MatrixSymbol(r"\eta'", n, 1)
    y, delta = sp.MatrixSymbol("t", n, 1), sp.MatrixSymbol(r"\delta", n, 1)
    logp, A = sp.Symbol(r"\log p(y \mid \eta)"), sp.Symbol(r"A(\eta)")
    ell = sp.MatrixSymbol(r"\log p(y \mid \eta)", 1, 1)
    ell2 = sp.MatrixSymbol(r"\log p(y \mid \eta')", 1, 1)
    Af = sp.Function("A")

    def symbols(k):
        return (sp.symbols(f"eta_1:{k + 1}", real=True), sp.symbols(f"t_1:{k + 1}", real=True),
                _primed(sp.symbols(f"eta_1:{k + 1}", real=True)))

    def values(sizes):
        es, ts, ps = symbols(int(sizes[n]))
        lp = sp.Add(*[e * t for e, t in zip(es, ts)]) - Af(*es)
        lp2 = sp.Add(*[e * t for e, t in zip(ps, ts)]) - Af(*ps)
        return {eta: sp.Matrix(es), eta2: sp.Matrix(ps), y: sp.Matrix(ts), logp: lp, A: Af(*es),
                ell: sp.Matrix([[lp]]), ell2: sp.Matrix([[lp2]])}

    def operators(sizes):
        es, ts, _ = symbols(int(sizes[n]))
        return {"y": _abstract_expectation(Af, es, ts)}

    model = Model(Sizes({n: ABSTRACT_SIZES}), values, operators=operators,
                  describe=r"$A$ an undefined function of $d$ natural parameters, "
                           r"$\log p = \langle\eta, t\rangle - A(\eta)$ (likewise at $\eta'$; the "
                           r"base measure $h(y)$ drops out of every $\eta$-derivative), "
                           r"$\mathbb E_y$ by the moment axiom "
                           r"$\mathbb E[t^\alpha] = e^{-A}\partial^\alpha e^{A}$")
    return Family("exponential_family", n, ABSTRACT_SIZES, eta, y, eta2, delta, logp, A, ell, ell2,
                  Hess(A, eta), Hess(A, eta), {}, model, None, None)


def _abstract_expectation(A, eta, t):
    cache: dict = {}

    def E(h):
        h = sp.expand(h)
        if not h.has(*t):
            return h
        total = sp.Integer(0)
        for monom, coeff in sp.Poly(h, *t).terms():
            if monom not in cache:
                expA = sp.exp(A(*eta))
                args = [e for e, a in zip(eta, monom) for _ in range(a)]
                cache[monom] = sp.expand(sp.exp(-A(*eta)) * (sp.diff(expA, *args) if args else expA))
            total += coeff * cache[monom]
        return total

    return E
