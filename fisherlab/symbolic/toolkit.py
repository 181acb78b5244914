r"""The proof toolkit: the SymPy builders, structural nodes, expectation operators and
reference constants shared by the theorem modules in ``proofs/`` (which hold only theorems).

One name and one argument order per builder -- ``builder(name, size...)``:

* explicit matrices of symbols: :func:`vector`, :func:`matrix`, :func:`symmetric`,
  :func:`diagonal`, :func:`lower_triangular`, :func:`lower_cholesky` (positive diagonal),
  :func:`spd` (``L L^T``), :func:`lower_inverse`, :func:`cayley_parts` and
  :func:`cayley_orthogonal` (exactly orthogonal, rational), :func:`sum_of_squares`;
* explicit Kronecker algebra: :func:`kron`, :func:`vec` (column-major), :func:`rvec`
  (row-major, the order of ``ravel_pytree``);
* structural (inert) nodes for conclusions and chains: :class:`Kron`, :class:`Vec`,
  :class:`RVec`, :class:`Diag`, :class:`Scalar`, :class:`Grad`, :class:`Hess`, :class:`At`,
  :class:`Expect`;
* expectations: :func:`expfam_moment`, :func:`expfam_expectation` (the exponential-family
  moment axiom, :data:`EXPFAM_AXIOMS`), :func:`moment_expectation` (a library family's exact
  operator, monomial by monomial), the categorical helpers :func:`softmax_coordinates`,
  :func:`coordinate_witness`, :func:`general_categorical` (:data:`GENERAL_K_AXIOMS`),
  :func:`gaussian_variance_symbol`, :func:`family_axioms`;
* structural axioms applied by instantiation (:func:`expectation_linearity`,
  :func:`inverse_of_product`, stated in :data:`STRUCTURAL_AXIOMS`) and :func:`sample_average`,
  an expectation over finitely many points that gives ``Expect`` a meaning in a witness;
* sizes checked by the tier-B chains (``KRON_SIZES``, ``CATEGORICAL_SIZES``, ...) and the
  references (``REF_...``) cited by author, title and year.
"""

from __future__ import annotations

import itertools

import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic._builders import (
    cayley_orthogonal,
    cayley_parts,
    diagonal,
    kron,
    lower_cholesky,
    lower_inverse,
    lower_triangular,
    matrix,
    rvec,
    spd,
    sum_of_squares,
    symmetric,
    vec,
    vector,
)
from fisherlab.symbolic._checks import Axiom
from fisherlab.symbolic._nodes import At, Diag, Expect, Grad, Hess, Kron, RVec, Scalar, Vec

__all__ = [
    # explicit builders
    "vector", "matrix", "symmetric", "diagonal", "lower_triangular", "lower_cholesky", "spd",
    "lower_inverse", "cayley_parts", "cayley_orthogonal", "sum_of_squares", "kron", "vec", "rvec",
    # structural nodes
    "Kron", "Vec", "RVec", "Diag", "Scalar", "Grad", "Hess", "At", "Expect",
    # expectations and families
    "moment_expectation", "softmax_coordinates", "coordinate_witness", "gaussian_variance_symbol",
    "family_axioms", "general_categorical", "GENERAL_K_AXIOMS", "expfam_moment",
    "expfam_expectation", "EXPFAM_AXIOMS",
    # structural axioms (facts supplied by hand, applied by instantiation) and witnesses
    "expectation_linearity", "inverse_of_product", "STRUCTURAL_AXIOMS", "sample_average",
    # sizes
    "KRON_SIZES", "CATEGORICAL_SIZES", "GAUSSIAN_SIZES", "BERNOULLI_SIZES", "POISSON_SIZES",
    "GMV_SIZES", "EXPFAM_SIZES",
    # references
    "REF_AMARI_1998", "REF_JOHNSON_2017", "REF_GROSSE_2022", "REF_GEORGE_2018",
    "REF_MARTENS_2020", "REF_MARTENS_GROSSE_2015", "REF_GROSSE_MARTENS_2016",
    "REF_KUNSTNER_2019", "REF_EKFAC_2018", "REF_EIT_2023", "REF_SCHRAUDOLPH_2002",
    "REF_VAN_LOAN_2000",
]

# ------------------------------------------------------------------------------ references

REF_AMARI_1998 = ("S. Amari, 'Natural gradient works efficiently in learning', Neural Computation "
                  "10(2), 1998")
REF_JOHNSON_2017 = "M. Johnson, 'Natural gradients and K-FAC' (note, 2017)"
REF_GROSSE_2022 = ("R. Grosse, CSC 2541 'Neural Net Training Dynamics', Lecture 4: Second-Order "
                   "Optimization (University of Toronto, 2022)")
REF_GEORGE_2018 = "T. George, 'What is the empirical Fisher?' (blog post, 2018)"
REF_MARTENS_2020 = ("J. Martens, 'New insights and perspectives on the natural gradient method', "
                    "JMLR 21(146), 2020")
REF_MARTENS_GROSSE_2015 = ("J. Martens and R. Grosse, 'Optimizing neural networks with "
                           "Kronecker-factored approximate curvature', ICML 2015")
REF_GROSSE_MARTENS_2016 = ("R. Grosse and J. Martens, 'A Kronecker-factored approximate Fisher "
                           "matrix for convolution layers', ICML 2016")
REF_KUNSTNER_2019 = ("F. Kunstner, L. Balles and P. Hennig, 'Limitations of the empirical Fisher "
                     "approximation for natural gradient descent', NeurIPS 2019")
REF_EKFAC_2018 = ("T. George, C. Laurent, X. Bouthillier, N. Ballas and P. Vincent, 'Fast "
                  "approximate natural gradient descent in a Kronecker-factored eigenbasis', "
                  "NeurIPS 2018")
REF_EIT_2023 = ("R. Eschenhagen, A. Immer, R. E. Turner, F. Schneider and P. Hennig, "
                "'Kronecker-factored approximate curvature for modern neural network "
                "architectures', NeurIPS 2023")
REF_SCHRAUDOLPH_2002 = ("N. N. Schraudolph, 'Fast curvature matrix-vector products for "
                        "second-order gradient descent', Neural Computation 14(7), 2002")
REF_VAN_LOAN_2000 = ("C. F. Van Loan, 'The ubiquitous Kronecker product', J. Comput. Appl. Math. "
                     "123, 2000")

# ------------------------------------------------------------------------------ sizes

#: Square Kronecker factor sizes checked exhaustively by tier-B chains: every pair n, m <= 3.
KRON_SIZES = tuple(itertools.product((1, 2, 3), repeat=2))
#: Sizes each likelihood family's tier-B chains check exhaustively.
CATEGORICAL_SIZES = (2, 3, 4, 5)
GAUSSIAN_SIZES = (1, 2, 3, 4)
BERNOULLI_SIZES = (1, 2, 3, 4)
POISSON_SIZES = (1, 2, 3, 4)
GMV_SIZES = (1, 2, 3)
#: Dimensions of the natural parameter for the abstract exponential family.
EXPFAM_SIZES = (1, 2, 3, 4)

# ------------------------------------------------------------------------------ expectations


def moment_expectation(likelihood: lik.SymbolicLikelihood, normalise=None):
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

    def expectation(h):
        h = sp.expand(sp.sympify(h))
        if not h.has(*targets):
            return h
        total = sp.Integer(0)
        for monom, coeff in sp.Poly(h, *targets).terms():
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
    :func:`fisherlab.likelihoods._symbolic.categorical` to ``log`` of its coordinate and
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




def coordinate_witness(num_classes: int) -> dict:
    """A point of the coordinate domain ``{z > 0, s > sum z}``: ``z_k = k``, ``s = K(K-1)/2 + 2``."""
    z, s, _, _ = softmax_coordinates(num_classes)
    return {**{v: sp.Integer(i + 1) for i, v in enumerate(z)},
            s: sp.Integer(num_classes * (num_classes - 1) // 2 + 2)}




def gaussian_variance_symbol() -> sp.Symbol:
    """The fixed Gaussian variance ``sigma^2``, a positive symbol."""
    return sp.Symbol("sigma^2", positive=True)




def family_axioms(likelihood: lik.SymbolicLikelihood) -> dict:
    """The family's own axioms (its exact expectation operator), as inline math."""
    return {name: (text if "$" in text else f"${text}$") for name, text in likelihood.axioms.items()}




def general_categorical():
    """The categorical in general ``K`` (tier A), with ``IndexedBase`` logits.

    Returns a namespace dict with the symbols, ``p(i)``, the log-pmf ``logp`` of class ``c``,
    the expectation ``E(h)`` over ``c ~ p`` and the post-processing ``finish`` that applies
    the recorded axioms (index range, canonical dummy index).
    """
    K = sp.Symbol("K", integer=True, positive=True)
    eta = sp.IndexedBase("eta", real=True)
    j, c, k, l = sp.symbols("j c k l", integer=True, positive=True)
    Z = sp.Sum(sp.exp(eta[j]), (j, 1, K))

    def p(i):
        return sp.exp(eta[i]) / Z

    logp = eta[c] - sp.log(Z)

    def in_range(expr):
        # Axiom "index range": 1 <= k, l <= K, so Piecewise((x, k <= K), (0, True)) -> x.
        def first_branch(pw):
            (val, cond), (other, always) = pw.args
            if not (other == 0 and always == sp.true and isinstance(cond, sp.GreaterThan)
                    and cond.lhs == K and cond.rhs in (k, l)):
                raise ValueError(f"unexpected Piecewise (not an index-range condition): {pw}")
            return val
        return expr.replace(lambda x: isinstance(x, sp.Piecewise), first_branch)

    def canonical(expr):
        # Axiom "canonical dummy index": rename a bound summation index to j -- only where j
        # is not free in the summand (renaming must never capture a free index).
        def rename(x):
            if j in x.function.free_symbols:
                raise ValueError(f"renaming the summation index of {x} to {j} would capture "
                                 f"the free index {j}")
            return x.xreplace({x.limits[0][0]: j})

        return expr.replace(lambda x: isinstance(x, sp.Sum) and x.limits[0][0] != j, rename)

    def finish(expr):
        return canonical(in_range(sp.expand(expr.doit())))

    def E(h):
        # E_{c ~ p}[h(c)] = sum_c p_c h(c); factors free of c are pulled out of the sum.
        total = sp.Integer(0)
        for term in sp.Add.make_args(sp.expand(p(c) * h)):
            const, dep = term.as_independent(c, as_Add=False)
            total += const * sp.Sum(dep, (c, 1, K)).doit()
        return canonical(in_range(total))

    return dict(K=K, eta=eta, j=j, c=c, k=k, l=l, Z=Z, p=p, logp=logp, E=E, finish=finish)




GENERAL_K_AXIOMS = {
    "index range": r"the free indices satisfy $1 \le k, l \le K$, so SymPy's "
                   r"$\sum_{j=1}^K \delta_{jk} x_j = \mathrm{Piecewise}((x_k, k \le K), (0, \text{True}))$ "
                   r"takes its first branch",
    "canonical dummy index": r"a bound summation index may be renamed: "
                             r"$\sum_{c=1}^K e^{\eta_c} = \sum_{j=1}^K e^{\eta_j} = Z$",
    "linearity of the finite sum": r"factors not depending on the summation index are pulled "
                                   r"out: $\sum_c a\, x_c = a \sum_c x_c$",
    "categorical pmf in general K": r"$\log p(c\mid\eta) = \eta_c - \log\sum_{j=1}^K e^{\eta_j}$, "
                                    r"$\mathbb E_c[h(c)] = \sum_{c=1}^K p_c h(c)$, "
                                    r"$p_c = e^{\eta_c}/Z$ (re-typed from "
                                    r"`categorical(K)` for symbolic $K$)",
}


def expfam_moment(A, eta, alpha):
    """The axiom ``E[t^alpha] = e^{-A(eta)} d^alpha e^{A(eta)}`` (multi-index ``alpha``)."""
    expA = sp.exp(A(*eta))
    args = [e for e, a in zip(eta, alpha) for _ in range(a)]
    return sp.expand(sp.exp(-A(*eta)) * (sp.diff(expA, *args) if args else expA))




def expfam_expectation(A, eta, t, at=None):
    """``E(h)``: the expectation of a polynomial ``h`` in the sufficient statistic ``t`` under
    ``exp(<eta, t> - A(eta))``, monomial by monomial through the moment axiom (linearity of
    expectation); each moment is evaluated at the substitution ``at`` when given (e.g.
    ``eta = g(theta)``)."""
    cache: dict = {}

    def E(h):
        h = sp.expand(h)
        if not h.has(*t):
            return h
        total = sp.Integer(0)
        for monom, coeff in sp.Poly(h, *t).terms():
            if monom not in cache:
                m = expfam_moment(A, eta, monom)
                cache[monom] = m if at is None else m.subs(at)
            total += coeff * cache[monom]
        return total

    return E




EXPFAM_AXIOMS = {
    "moments of the sufficient statistic":
        r"$\mathbb E_y[t(y)^\alpha] = e^{-A(\eta)}\,\partial^\alpha_\eta e^{A(\eta)}$ for every "
        r"multi-index $\alpha$: differentiate $\int h(y) e^{\langle\eta, t(y)\rangle}\,dy = "
        r"e^{A(\eta)}$ under the integral sign ($\eta$ in the interior of the natural parameter space)",
    "linearity of expectation": r"$\mathbb E[\sum_\alpha c_\alpha(\eta) t^\alpha] = "
                                r"\sum_\alpha c_\alpha(\eta)\,\mathbb E[t^\alpha]$",
}


# ------------------------------------------------------------------------------ structural axioms

STRUCTURAL_AXIOMS = {
    "linearity of expectation":
        r"$\mathbb E[X M Y] = X\,\mathbb E[M]\,Y$ and $\mathbb E[M + N] = \mathbb E[M] + "
        r"\mathbb E[N]$ for matrices $X, Y$ that do not depend on the random quantity",
    "inverse of a product":
        r"$(X_1 X_2\cdots X_k)^{-1} = X_k^{-1}\cdots X_2^{-1}X_1^{-1}$ for square invertible "
        r"factors, applied to a factor that is itself a sum (the matrix-algebra normal form "
        r"would distribute it first)",
}

_ROWS = sp.symbols("r_1:6", integer=True, positive=True)


def expectation_linearity(inner, over: str = "y", left=None, right=None) -> Axiom:
    """The axiom ``E[X M Y] = X E[M] Y`` instantiated at ``M = inner``, ``X = left``,
    ``Y = right`` (either may be omitted), or, when ``inner`` is a tuple of matrices,
    ``E[M_1 + ... + M_k] = E[M_1] + ... + E[M_k]``; ``over`` names the random quantity."""
    if isinstance(inner, tuple):
        r, c = _ROWS[:2]
        Ms = [sp.MatrixSymbol(f"M_{k + 1}", r, c) for k in range(len(inner))]
        if len(Ms) < 2:
            raise ValueError("expectation_linearity: a sum needs at least two terms")
        rel = sp.Eq(Expect(sp.MatAdd(*Ms), over), sp.MatAdd(*[Expect(M, over) for M in Ms]),
                    evaluate=False)
        subs = {r: inner[0].shape[0], c: inner[0].shape[1], **dict(zip(Ms, inner))}
        return Axiom("linearity of expectation", rel, subs)
    r1, r2, r3, r4 = _ROWS[:4]
    M = sp.MatrixSymbol("M", r2, r3)
    subs = {r2: inner.shape[0], r3: inner.shape[1], M: inner}
    lhs, rhs = M, Expect(M, over)
    if left is not None:
        X = sp.MatrixSymbol("X", r1, r2)
        subs.update({r1: left.shape[0], X: left})
        lhs, rhs = X * lhs, X * rhs
    if right is not None:
        Y = sp.MatrixSymbol("Y", r3, r4)
        subs.update({r4: right.shape[1], Y: right})
        lhs, rhs = lhs * Y, rhs * Y
    if left is None and right is None:
        raise ValueError("expectation_linearity: give a left or a right factor (or a sum)")
    return Axiom("linearity of expectation", sp.Eq(Expect(lhs, over), rhs, evaluate=False), subs)


def inverse_of_product(*factors) -> Axiom:
    """The axiom ``(X_1 ... X_k)^{-1} = X_k^{-1} ... X_1^{-1}`` (square factors) instantiated
    at ``X_i = factors[i]`` -- for a factor that is a sum, which the normal form would
    distribute before inverting."""
    if len(factors) < 2:
        raise ValueError("inverse_of_product: give at least two factors")
    n = _ROWS[0]
    Xs = [sp.MatrixSymbol(f"X_{k + 1}", n, n) for k in range(len(factors))]
    rel = sp.Eq(sp.Inverse(sp.MatMul(*Xs)), sp.MatMul(*[sp.Inverse(X) for X in reversed(Xs)]),
                evaluate=False)
    return Axiom("inverse of a product", rel, {n: factors[0].shape[0], **dict(zip(Xs, factors))})


def sample_average(points: dict):
    """An expectation operator for a witness: the random vector takes each of finitely many
    points with equal probability. ``points`` maps each symbol of the random quantity's
    explicit instance to its values at the points (equal-length sequences of exact numbers)."""
    counts = {len(v) for v in points.values()}
    if len(counts) != 1 or 0 in counts:
        raise ValueError("sample_average: give every symbol the same, nonzero number of points")
    (k,) = counts

    def E(h):
        h = sp.sympify(h)
        return sp.Add(*[h.xreplace({s: sp.sympify(v[i]) for s, v in points.items()})
                        for i in range(k)]) / k

    return E
