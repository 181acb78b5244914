r"""The likelihood families as SymPy data: the single symbolic source of truth.

Every family is defined **once** here, as a SymPy log-density in its output parameters
(natural parameters for the exponential families), with its support, log-partition,
sufficient statistic and an *exact* expectation operator ``E_{y ~ p(.|eta)}[h(y)]``:

.. math::
    \log p(y\mid\eta) = \langle \eta, t(y)\rangle - A(\eta) + \log h(y)
    \qquad (\text{natural families}),

``Categorical`` (logits, one-hot targets), ``Gaussian`` (mean, fixed variance), ``Bernoulli``
(logits), ``Poisson`` (log-rates) and ``GaussianMeanVariance`` (mean, log-variance: *not*
natural parameters). The derivations in ``proofs/`` start from these objects, the numeric
likelihoods' ``symbolic(C)`` method returns them (``fl.Categorical().symbolic(3)``), and the
numeric JAX methods are tested against their lambdified forms. Target representation: one
SymPy symbol per target component; the categorical target is one-hot (``y_1..y_K``, exactly one
equal to 1), so its log-density is ``sum_k y_k eta_k - log sum_k exp(eta_k)`` (``t(y) = y``).
Output order and target formats: docs/CONVENTIONS.md.

References:
  M. Johnson, 'Natural gradients and K-FAC' (note, 2017), §7 and App. A (exponential
  families in their natural parameters).

>>> import sympy as sp
>>> from fisherlab.likelihoods import symbolic
>>> L = symbolic.bernoulli(1)
>>> L.outputs, L.targets
((eta_1,), (y_1,))
>>> sp.simplify(L.fisher_definition()[0, 0] - sp.diff(L.log_partition, L.outputs[0], 2))
0
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Mapping

import sympy as sp

__all__ = ["SymbolicLikelihood", "categorical", "gaussian", "bernoulli", "poisson",
           "gaussian_mean_variance", "normal_moment"]


@dataclasses.dataclass(frozen=True)
class SymbolicLikelihood:
    """A likelihood family as SymPy data.

    Attributes:
      name: family name.
      outputs: the output parameters ``eta`` (``C`` symbols), in output order.
      targets: the target components ``y`` (symbols).
      log_density: ``log p(y | eta)`` in ``outputs`` and ``targets``.
      support: the support of ``y``, in words.
      log_partition: ``A(eta)`` for exponential families in natural form, else ``None``.
      sufficient_statistic: ``t(y)`` (one entry per output) when ``log_partition`` is set.
      natural: whether ``outputs`` are natural parameters (then Fisher = GGN).
      expectation: ``h -> E_{y ~ p(.|eta)}[h]`` computed exactly; ``h`` is an
        expression in ``targets`` (and anything else).
      axioms: the facts the expectation operator relies on (shown on proof pages).
    """

    name: str
    outputs: tuple[sp.Symbol, ...]
    targets: tuple[sp.Symbol, ...]
    log_density: sp.Expr
    support: str
    log_partition: sp.Expr | None
    sufficient_statistic: tuple[sp.Expr, ...] | None
    natural: bool
    expectation: Callable[[sp.Expr], sp.Expr]
    axioms: Mapping[str, str]

    @property
    def nll(self) -> sp.Expr:
        """The per-example negative log-likelihood ``-log p(y | eta)``."""
        return -self.log_density

    def score(self) -> sp.Matrix:
        """``grad_eta log p(y | eta)`` as a column vector."""
        return sp.Matrix([sp.diff(self.log_density, e) for e in self.outputs])

    def hessian_nll(self) -> sp.Matrix:
        """``grad^2_eta (-log p(y | eta))``: the output-space Hessian of the NLL."""
        return sp.hessian(-self.log_density, self.outputs)

    def fisher_definition(self) -> sp.Matrix:
        """``E[score score^T]`` computed entry-wise with the exact expectation."""
        s = self.score()
        C = len(self.outputs)
        return sp.Matrix(C, C, lambda i, j: self.expectation(sp.expand(s[i] * s[j])))


# ---------------------------------------------------------------- expectation operators


def normal_moment(k: int) -> sp.Integer:
    """``E[u^k]`` for ``u ~ N(0, 1)``: 0 for odd k, (k-1)!! for even k."""
    return sp.Integer(0) if k % 2 else sp.factorial2(k - 1) if k else sp.Integer(1)


def _gaussian_expectation(targets, means, stds):
    us = sp.symbols(f"u_1:{len(targets) + 1}", real=True)

    def expectation(h: sp.Expr) -> sp.Expr:
        h = sp.expand(sp.sympify(h).subs({y: m + s * u for y, m, s, u in zip(targets, means, stds, us)}))
        poly = sp.Poly(h, *us)
        total = sp.Integer(0)
        for monom, coeff in poly.terms():
            w = coeff
            for k in monom:
                w *= normal_moment(k)
            total += w
        return sp.expand(total)

    return expectation


def _finite_expectation(targets, outcomes_probs):
    """E[h] for a finite distribution given as [(assignment dict, probability), ...]."""

    def expectation(h: sp.Expr) -> sp.Expr:
        h = sp.sympify(h)
        return sp.Add(*[p * h.subs(assign) for assign, p in outcomes_probs])

    return expectation


# ---------------------------------------------------------------- families


def categorical(num_classes: int) -> SymbolicLikelihood:
    """Softmax categorical in its logits ``eta_1..eta_K`` (natural parameters).

    Args:
      num_classes: ``K >= 2``.
    Returns:
      The :class:`SymbolicLikelihood` with one-hot targets ``y_1..y_K`` and the exact
      expectation ``E[h] = sum_k p_k h(e_k)``, ``p = softmax(eta)``.
    """
    K = _check_size(num_classes, "num_classes", minimum=2)
    eta = sp.symbols(f"eta_1:{K + 1}", real=True)
    y = sp.symbols(f"y_1:{K + 1}", nonnegative=True)
    Z = sp.Add(*[sp.exp(e) for e in eta])
    A = sp.log(Z)
    logp = sp.Add(*[yk * ek for yk, ek in zip(y, eta)]) - A
    probs = [sp.exp(e) / Z for e in eta]
    outcomes = [({y[j]: int(j == k) for j in range(K)}, probs[k]) for k in range(K)]
    return SymbolicLikelihood(
        name="Categorical", outputs=eta, targets=y, log_density=logp,
        support=f"one-hot vectors of length {K} (class k <-> y_k = 1)",
        log_partition=A, sufficient_statistic=y, natural=True,
        expectation=_finite_expectation(y, outcomes),
        axioms={"categorical pmf": r"P(y = e_k) = e^{\eta_k} / \sum_j e^{\eta_j}"},
    )


def gaussian(num_outputs: int, variance=1) -> SymbolicLikelihood:
    """Independent Gaussians with mean ``mu`` (the outputs) and fixed variance.

    Args:
      num_outputs: ``C >= 1``.
      variance: the fixed variance ``sigma^2`` (a number, made exact, or a positive SymPy symbol).
    Returns:
      The :class:`SymbolicLikelihood`; its expectation substitutes ``y = mu + sigma u`` and
      uses the standard-normal moments.
    """
    C = _check_size(num_outputs, "num_outputs")
    var = sp.nsimplify(variance) if not isinstance(variance, sp.Basic) else variance
    mu = sp.symbols(f"mu_1:{C + 1}", real=True)
    y = sp.symbols(f"y_1:{C + 1}", real=True)
    logp = sp.Add(*[-(yc - m) ** 2 / (2 * var) for yc, m in zip(y, mu)]) \
        - sp.Rational(C, 2) * sp.log(2 * sp.pi * var)
    return SymbolicLikelihood(
        name="Gaussian", outputs=mu, targets=y, log_density=logp,
        support=f"R^{C}",
        log_partition=sp.Add(*[m ** 2 / (2 * var) for m in mu]),
        sufficient_statistic=tuple(yc / var for yc in y), natural=True,
        expectation=_gaussian_expectation(y, mu, [sp.sqrt(var)] * C),
        axioms={"standard normal moments":
                r"y = \mu + \sigma u,\ u \sim \mathcal N(0,1),\ "
                r"\mathbb E[u^k] = (k-1)!!\ (k\text{ even}),\ 0\ (k\text{ odd})"},
    )


def bernoulli(num_outputs: int) -> SymbolicLikelihood:
    """Independent Bernoullis in their logits (natural parameters).

    Args:
      num_outputs: ``C >= 1``.
    Returns:
      The :class:`SymbolicLikelihood`; its expectation sums over the ``2^C`` outcomes.
    """
    C = _check_size(num_outputs, "num_outputs")
    eta = sp.symbols(f"eta_1:{C + 1}", real=True)
    y = sp.symbols(f"y_1:{C + 1}", nonnegative=True)
    A = sp.Add(*[sp.log(1 + sp.exp(e)) for e in eta])
    logp = sp.Add(*[yc * e for yc, e in zip(y, eta)]) - A
    p1 = [sp.exp(e) / (1 + sp.exp(e)) for e in eta]
    outcomes = []
    for bits in itertools.product((0, 1), repeat=C):
        prob = sp.Mul(*[p if b else 1 - p for p, b in zip(p1, bits)])
        outcomes.append(({yc: b for yc, b in zip(y, bits)}, prob))
    return SymbolicLikelihood(
        name="Bernoulli", outputs=eta, targets=y, log_density=logp,
        support=f"{{0, 1}}^{C}", log_partition=A, sufficient_statistic=y, natural=True,
        expectation=_finite_expectation(y, outcomes),
        axioms={"Bernoulli pmf": r"P(y_c = 1) = \sigma(\eta_c) = e^{\eta_c}/(1 + e^{\eta_c})"},
    )


def poisson(num_outputs: int) -> SymbolicLikelihood:
    """Independent Poissons in their log-rates (natural parameters).

    Args:
      num_outputs: ``C >= 1``.
    Returns:
      The :class:`SymbolicLikelihood`; its expectation uses the raw moments
      ``E[y^k] = e^{-lam} sum_n n^k lam^n / n!`` (SymPy's summation, ``lam = e^eta``).
    """
    C = _check_size(num_outputs, "num_outputs")
    eta = sp.symbols(f"eta_1:{C + 1}", real=True)
    y = sp.symbols(f"y_1:{C + 1}", integer=True, nonnegative=True)
    A = sp.Add(*[sp.exp(e) for e in eta])
    logp = sp.Add(*[yc * e - sp.loggamma(yc + 1) for yc, e in zip(y, eta)]) - A

    def expectation(h: sp.Expr) -> sp.Expr:
        # Polynomial in the counts (scores, score products): expand into monomials and use
        # independence, E[prod_c y_c^k_c] = prod_c E[y_c^k_c], with the raw moments
        # E[y^k] = e^{-lam} sum_n n^k lam^n / n! summed by SymPy (cached per k).
        h = sp.expand(sp.sympify(h))
        if h.has(*y) and h.is_polynomial(*y):
            poly = sp.Poly(h, *y)
            total = sp.Integer(0)
            for monom, coeff in poly.terms():
                w = coeff
                for k, e in zip(monom, eta):
                    w *= _poisson_raw_moment(k).subs(_LAM, sp.exp(e))
                total += w
            return sp.expand(total)
        # General h: sum over y_c = 0..oo with a positive rate symbol, then lam = e^eta.
        for yc, e in zip(y, eta):
            if not h.has(yc):
                continue
            lam = sp.Symbol("lam", positive=True)
            n = sp.Symbol("n", integer=True, nonnegative=True)
            term = h.subs(yc, n).subs(sp.exp(e), lam) * lam ** n / sp.factorial(n)
            s = sp.summation(sp.expand(term), (n, 0, sp.oo))
            h = sp.expand(sp.simplify(s * sp.exp(-lam)).subs(lam, sp.exp(e)))
        return h

    return SymbolicLikelihood(
        name="Poisson", outputs=eta, targets=y, log_density=logp,
        support=f"N^{C} (non-negative integers)", log_partition=A,
        sufficient_statistic=y, natural=True, expectation=expectation,
        axioms={"Poisson pmf": r"P(y = n) = \lambda^n e^{-\lambda} / n!,\ \lambda = e^{\eta}",
                "series": r"\sum_{n\ge0} n^k \lambda^n / n! \text{ evaluated by SymPy's summation}",
                "independence": r"p(y \mid \eta) = \prod_c p(y_c \mid \eta_c) \Rightarrow "
                                r"\mathbb E[\prod_c y_c^{k_c}] = \prod_c \mathbb E[y_c^{k_c}]"},
    )


_LAM = sp.Symbol("lam", positive=True)


@functools.lru_cache(maxsize=None)
def _poisson_raw_moment(k: int) -> sp.Expr:
    """``E[y^k]`` for ``y ~ Poisson(lam)``: ``e^{-lam} sum_{n>=0} n^k lam^n / n!`` by SymPy."""
    n = sp.Symbol("n", integer=True, nonnegative=True)
    s = sp.summation(n ** k * _LAM ** n / sp.factorial(n), (n, 0, sp.oo))
    return sp.expand(s * sp.exp(-_LAM))


def gaussian_mean_variance(num_targets: int) -> SymbolicLikelihood:
    """Independent Gaussians with outputs ``(mu_1..mu_D, s_1..s_D)``, ``s = log sigma^2``.

    Not natural parameters: the library's counterexample to Fisher = GGN.

    Args:
      num_targets: ``D >= 1`` (``2 D`` outputs, the means first).
    Returns:
      The :class:`SymbolicLikelihood`; its expectation substitutes ``y = mu + e^{s/2} u``.
    """
    D = _check_size(num_targets, "num_targets")
    mu = sp.symbols(f"mu_1:{D + 1}", real=True)
    s = sp.symbols(f"s_1:{D + 1}", real=True)
    y = sp.symbols(f"y_1:{D + 1}", real=True)
    logp = sp.Add(*[-(yc - m) ** 2 * sp.exp(-sc) / 2 - sc / 2 - sp.log(2 * sp.pi) / 2
                    for yc, m, sc in zip(y, mu, s)])
    return SymbolicLikelihood(
        name="GaussianMeanVariance", outputs=tuple(mu) + tuple(s), targets=y,
        log_density=logp, support=f"R^{D}", log_partition=None,
        sufficient_statistic=None, natural=False,
        expectation=_gaussian_expectation(y, mu, [sp.exp(sc / 2) for sc in s]),
        axioms={"standard normal moments":
                r"y = \mu + e^{s/2} u,\ u \sim \mathcal N(0,1),\ "
                r"\mathbb E[u^k] = (k-1)!!\ (k\text{ even}),\ 0\ (k\text{ odd})"},
    )


def _check_size(value, name, minimum=1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def __dir__():
    return list(__all__)
