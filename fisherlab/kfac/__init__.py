"""K-FAC references (``fl.kfac``): Kronecker factors, their dense matrix, damped solves, EKFAC, EMA.

Conventions: CONVENTIONS.md § K-FAC. ``factors`` computes one :class:`KFACFactors` ``(A, G)``
per Dense/Conv2d layer of a :class:`fisherlab.nn.Sequential`; ``matrix`` assembles the dense
block-diagonal approximation in parameter order; ``solve`` applies ``(K + lambda I)^{-1}``
exactly (eigendecompositions) or with Martens--Grosse pi-damping; ``ekfac`` re-fits the
diagonal in the Kronecker eigenbasis (George et al., 2018); ``ema`` averages factor lists.
"""

from fisherlab.kfac._ekfac import EKFACFactors, ekfac
from fisherlab.kfac._ema import ema
from fisherlab.kfac._factors import KFACFactors, factors
from fisherlab.kfac._matrix import matrix, permutation
from fisherlab.kfac._solve import solve

__all__ = [
    "EKFACFactors",
    "KFACFactors",
    "ekfac",
    "ema",
    "factors",
    "matrix",
    "permutation",
    "solve",
]


def __dir__():
    return list(__all__)
