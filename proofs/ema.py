r"""Exponential moving averages of the K-FAC factors.

K-FAC keeps running estimates ``\hat A_k = \eta\hat A_{k-1} + (1 - \eta) A_k`` from
``\hat A_0 = 0`` (``\eta`` the decay, the weight of the old estimate: Martens & Grosse 2015 §5;
Grosse, Lecture 4), and the same for ``G``. Unrolled, ``\hat A_k = \sum_{j=1}^k
(1 - \eta)\eta^{k-j} A_j``:

* the weights sum to ``1 - \eta^k`` (the recursion for the total weight,
  ``W_k = \eta W_{k-1} + (1 - \eta)``, keeps ``W_k = 1 - \eta^k`` -- the induction step at
  general ``k`` -- and the sum itself at every ``k <= 8``);
* hence the bias-corrected estimate ``\hat A_k / (1 - \eta^k)`` of a stationary factor
  (``E[A_j] = A`` for every ``j``) is unbiased;
* the timescale: the undiscounted count ``c_k = \eta c_{k-1} + 1`` has the fixed point
  ``1/(1 - \eta)``, the effective number of steps averaged;
* the running Kronecker product is not the Kronecker product of the running factors
  (the control): K-FAC averages ``A`` and ``G`` separately, an approximation of the average of
  ``A_j \otimes G_j``.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Explicit, Lemma, Link,
                                Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect, Kron

__all__ = ["DERIVATIONS"]

k = sp.Symbol("k", integer=True, positive=True)
j = sp.Symbol("j", integer=True, positive=True)
eta = sp.Symbol("eta", positive=True)
n, m = sp.symbols("n m", integer=True, positive=True)
A = sp.MatrixSymbol("A", n, n)
Ahat = sp.MatrixSymbol(r"\hat A_k", n, n)
A1, A2 = sp.MatrixSymbol("A_1", n, n), sp.MatrixSymbol("A_2", n, n)
G1, G2 = sp.MatrixSymbol("G_1", m, m), sp.MatrixSymbol("G_2", m, m)
cstar = sp.Symbol("c^{*}", positive=True)

_W = sp.Sum((1 - eta) * eta ** (k - j), (j, 1, k))
_BIAS = 1 - eta ** k
_STEP_L = eta * (1 - eta ** (k - 1)) + (1 - eta)
_UNB_L, _UNB_R = Expect(Ahat, "t") / _BIAS, A
_FIX_L = eta * cstar + 1
_NM = sp.Identity(n * m)
_TWO_L = sp.MatAdd(sp.MatMul(eta, sp.MatAdd(sp.MatMul(eta, sp.ZeroMatrix(n * m, n * m)),
                                            sp.MatMul(1 - eta, Kron(A1, G1)))),
                   sp.MatMul(1 - eta, Kron(A2, G2)))
_TWO_R = sp.MatAdd(sp.MatMul(eta * (1 - eta), Kron(A1, G1)), sp.MatMul(1 - eta, Kron(A2, G2)))
_PRODUCT_OF_EMAS = Kron(eta * (1 - eta) * A1 + (1 - eta) * A2, eta * (1 - eta) * G1 + (1 - eta) * G2)

_UNROLLED = Axiom(
    "the unrolled average of a stationary factor",
    sp.Eq(Expect(Ahat, "t"), sp.MatMul(_W, A), evaluate=False))


def _proof(self):
    return [
        Chain(_W, [Link(_BIAS, Explicit(Sizes({k: range(1, 9)})), label="weights",
                        why="the finite geometric sum at each k")], title="every k ≤ 8"),
        Chain(_STEP_L, [Link(_BIAS, Algebra(), label="induction_step",
                             why="η − η^k + 1 − η (η·η^(k−1) = η^k for integer k)")],
              part=1, title="general k"),
        Chain(_UNB_L, [
            Link(sp.MatMul(_W / _BIAS, A), _UNROLLED, why="linearity of expectation and E[A_j] = A for every j"),
            Link(sp.MatMul(sp.Mul(_BIAS, 1 / _BIAS, evaluate=False), A), Lemma(self, {}, part=0), why="part 1: the weights sum to 1 − η^k"),
            Link(_UNB_R, Algebra(), why="1 − η^k ≠ 0 for 0 < η < 1"),
        ], part=2, title="every k ≤ 8, citing part 1"),
        Chain(_FIX_L, [Link(cstar, Algebra(), label="fixed_point",
                            why="η/(1 − η) + 1 = 1/(1 − η)")], part=3, title="general η"),
        Chain(_TWO_L, [Link(_TWO_R, Algebra(), label="two_steps",
                            why="the recursion from 0, two steps, applied to A_j ⊗ G_j")],
              part=4, title="general n, m"),
    ]


def _build():
    return _proof(FACTOR_ESTIMATES)


FACTOR_ESTIMATES = Derivation(
    name="ema.factor_estimates",
    title="Exponential moving averages of the K-FAC factors: weights, bias correction, timescale",
    conclusion=(sp.Eq(_W, _BIAS, evaluate=False), sp.Eq(_STEP_L, _BIAS, evaluate=False),
                sp.Eq(_UNB_L, _UNB_R, evaluate=False), sp.Eq(_FIX_L, cstar, evaluate=False),
                sp.Eq(_TWO_L, _TWO_R, evaluate=False)),
    hypotheses=[sp.Lt(eta, 1)],
    definitions={cstar: 1 / (1 - eta)},
    proof=_build,
    tier="B",
    scope="the weight sum at every k ≤ 8 (and the induction step W_k = ηW_{k−1} + (1 − η) at "
          "general k); the bias correction citing it; the fixed point for every 0 < η < 1; the "
          "two-step average of Kronecker products at general n, m",
    controls=[
        Control("weights_sum_to_one", target="weights", replace=(_BIAS, sp.Integer(1)),
                why="the uncorrected EMA taken as an average (weights summing to 1) from the start"),
        Control("timescale_eta", target="fixed_point", replace=(cstar, 1 / eta),
                why="the timescale taken as 1/η instead of 1/(1 − η)"),
        Control("ema_of_kron_is_kron_of_emas", target="two_steps", replace=(_TWO_R, _PRODUCT_OF_EMAS),
                why="the running average of A_j⊗G_j taken as the Kronecker product of the running "
                    "averages of A and G (what K-FAC stores: an approximation)"),
    ],
    assumptions=[r"decay $0 < \eta < 1$ (the weight of the old estimate); $\hat A_0 = 0$",
                 r"part 3: $\mathbb E[A_j] = A$ for every step $j$ (a stationary factor), "
                 r"$\hat A_k = \sum_{j=1}^k(1-\eta)\eta^{k-j}A_j$ (the recursion unrolled)",
                 r"part 2 is the induction step for $W_k = \eta W_{k-1} + (1-\eta)$, $W_0 = 0$: "
                 r"if $W_{k-1} = 1 - \eta^{k-1}$ then $W_k = 1 - \eta^k$"],
    axioms={"the unrolled average of a stationary factor":
            r"$\mathbb E_t[\hat A_k] = \sum_{j=1}^k(1-\eta)\eta^{k-j}\,\mathbb E_t[A_j] = "
            r"\big(\sum_{j=1}^k(1-\eta)\eta^{k-j}\big)A$ (linearity of expectation)"},
    references=[tk.REF_MARTENS_GROSSE_2015 + " §5 ('exponentially decaying averages')",
                tk.REF_GROSSE_2022 + " (exponential moving averages of the K-FAC statistics)"],
    numeric=["fisherlab.kfac.ema"],
    tested_by=["tests/proofs/test_ema.py::test_ema_weights_and_bias_correction_numerically",
               "tests/proofs/test_ema.py::test_running_kronecker_product_is_not_the_product_of_running_factors",
               "tests/kfac/test_kfac_ema_and_inputs.py::test_ema_closed_form"],
)

DERIVATIONS = [FACTOR_ESTIMATES]
