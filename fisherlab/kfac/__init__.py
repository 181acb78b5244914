"""K-FAC references (``fl.kfac``): Kronecker factors, their dense matrix, damped solves, EKFAC, EMA.

:func:`factors` computes one :class:`KFACFactors` ``(A, G)`` per ``Dense``/``Conv2d`` layer of a
:class:`fisherlab.nn.Sequential` (Martens & Grosse, 2015; convolutions as in Grosse & Martens,
2016; weight sharing as in Eschenhagen et al., 2023); :func:`matrix` assembles the dense
block-diagonal approximation in parameter order; :func:`solve` applies its damped inverse
exactly or with pi-damping; :func:`ekfac` re-fits the diagonal in the Kronecker eigenbasis
(George et al., 2018); :func:`ema` averages factor lists. Conventions: ``docs/CONVENTIONS.md``,
K-FAC.
"""

from fisherlab.kfac._ekfac import ekfac
from fisherlab.kfac._ema import ema
from fisherlab.kfac._factors import factors
from fisherlab.kfac._matrix import matrix, permutation
from fisherlab.kfac._solve import solve
from fisherlab.kfac._types import EKFACFactors, KFACFactors

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
