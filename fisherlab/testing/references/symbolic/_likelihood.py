"""The likelihood's output-space calculus, symbolic in ``(eta, y)`` and cached per family.

From the single symbolic source (``likelihood.symbolic(C)``, :mod:`fisherlab.likelihoods._symbolic`):
the gradient ``r = grad_eta (-log p)``, the Hessian ``Lambda = grad^2_eta (-log p)`` and the output
Fisher ``E_{y ~ p(.|eta)}[score score^T]`` by the family's exact expectation operator.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from fisherlab.likelihoods._symbolic import SymbolicLikelihood

__all__ = ["OutputCalculus", "calculus_key", "output_calculus", "output_fisher",
           "symbolic_likelihood"]


@dataclasses.dataclass(frozen=True)
class OutputCalculus:
    """The likelihood's output-space quantities, symbolic in ``(eta, y)``."""

    sym: object                       # SymbolicLikelihood
    grad: tuple[sp.Expr, ...]         # r = grad_eta (-log p)
    hess: sp.Matrix                   # Lambda = grad^2_eta (-log p)


def symbolic_likelihood(likelihood, num_outputs: int):
    """The SymPy definition of ``likelihood`` on ``num_outputs`` natural parameters."""
    if isinstance(likelihood, SymbolicLikelihood):
        sym = likelihood
    else:
        if not callable(getattr(likelihood, "symbolic", None)):
            raise TypeError(
                "likelihood must be a fisherlab likelihood (with a .symbolic(num_outputs) "
                f"method) or a SymbolicLikelihood, got {type(likelihood).__name__}")
        sym = likelihood.symbolic(num_outputs)
    if len(sym.outputs) != num_outputs:
        raise ValueError(
            f"the model has {num_outputs} outputs but likelihood {sym.name} takes "
            f"{len(sym.outputs)} output parameters ({', '.join(map(str, sym.outputs))})")
    return sym


_CALCULUS: dict = {}
_FISHER: dict = {}


def calculus_key(sym):
    # SymbolicLikelihood holds a callable and a dict (unhashable): key the caches on its
    # defining SymPy data.
    return (sym.name, tuple(sym.outputs), tuple(sym.targets), sym.log_density)


def output_calculus(sym) -> OutputCalculus:
    """``r = grad_eta l`` and ``Lambda = grad^2_eta l`` (cached per family)."""
    k = calculus_key(sym)
    if k not in _CALCULUS:
        nll = -sym.log_density
        _CALCULUS[k] = OutputCalculus(sym, tuple(sp.diff(nll, e) for e in sym.outputs),
                                      sp.hessian(nll, sym.outputs))
    return _CALCULUS[k]


def output_fisher(sym) -> sp.Matrix:
    """``E_{y ~ p(.|eta)}[score score^T]`` by the family's exact expectation operator (cached)."""
    k = calculus_key(sym)
    if k not in _FISHER:
        _FISHER[k] = sym.fisher_definition()
    return _FISHER[k]

