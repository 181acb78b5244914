r"""The empirical Fisher is not the Fisher: linear least squares (Kunstner et al., 2019).

For linear regression ``f(theta, x) = theta^T x`` (data matrix ``X`` with rows ``x_n^T``) with
Gaussian noise of variance ``sigma^2`` and mean reduction (CONVENTIONS.md), with the residuals
``r = y - X theta`` and ``R = diag(r)``:

.. math::
    H = F = \frac{X^\top X}{N\sigma^2}, \qquad
    \mathrm{EF} = \frac{X^\top R^2 X}{N\sigma^4}.

The Fisher (and the Hessian) do not depend on the labels; the empirical Fisher is weighted by
the squared residuals, so it vanishes as the model interpolates the data (``R = 0``) while
``F = H`` stays fixed. It equals the Fisher only in expectation over labels drawn from the
model, ``E_{y ~ p}[EF] = F`` (the axiom ``E[R^2] = sigma^2 I``: independent residuals of
variance ``sigma^2``).

Tier A: general ``N`` and ``D``; gradients and the Hessian entry-wise, the rest by matrix
algebra, linearity of expectation and the stated moment axiom.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Axiom, Chain, Control, Derivation, Entrywise, Link
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import At, Expect, Grad, Hess, Scalar

__all__ = ["DERIVATIONS"]

N, D = sp.symbols("N D", integer=True, positive=True)
sigma2 = sp.Symbol(r"\sigma^{2}", positive=True)
X, y = sp.MatrixSymbol("X", N, D), sp.MatrixSymbol("y", N, 1)
theta = sp.MatrixSymbol(r"\theta", D, 1)
x_n, y_n = sp.MatrixSymbol("x_n", D, 1), sp.MatrixSymbol("y_n", 1, 1)
R = sp.MatrixSymbol("R", N, N)
G = sp.MatrixSymbol("G", N, D)
H, F, EF = sp.MatrixSymbol("H", D, D), sp.MatrixSymbol("F", D, D), sp.MatrixSymbol(r"\mathrm{EF}", D, D)
ell_n, Loss = sp.Symbol(r"\ell_n"), sp.Symbol("L")
I_N = sp.Identity(N)

_r_n = y_n - x_n.T * theta
_r = y - X * theta
_EF_FORM = sp.MatMul(1 / (N * sigma2 ** 2), X.T, R, R, X)
_GRAM = sp.MatMul(1 / (N * sigma2), X.T, X)
_MOMENT = Axiom("squared residuals under the model",
                sp.Eq(Expect(R * R, "y"), sigma2 * I_N, evaluate=False))


def _proof():
    return [
        Chain(Grad(ell_n, theta), [Link(sp.MatMul(-1 / sigma2, x_n, _r_n), Entrywise(),
                                        label="example_gradient",
                                        why="∂/∂θ_k of (y_n − x_nᵀθ)²/(2σ²)")]),
        Chain(Hess(Loss, theta), [Link(_GRAM, Entrywise(), label="hessian",
                                       why="the mean loss is quadratic in θ")], part=1),
        Chain(EF, [
            Link(sp.MatMul(1 / N, G.T, G), Algebra(), why="EF = (1/N)Σ_n g_n g_nᵀ = GᵀG/N"),
            Link(_EF_FORM, Algebra(), label="residual_weights",
                 why="G = −RX/σ² (part 1 row by row), R diagonal hence symmetric"),
        ], part=2),
        Chain(At(EF, R, sp.ZeroMatrix(N, N)), [
            Link(sp.ZeroMatrix(D, D), Algebra(), label="interpolation",
                 why="every residual zero: R = 0"),
        ], part=3),
        Chain(F, [
            Link(Expect(_EF_FORM, "y"), Algebra(),
                 why="the Fisher is the empirical Fisher averaged over labels drawn from the model"),
            Link(sp.MatMul(1 / (N * sigma2 ** 2), X.T, Expect(R * R, "y"), X),
                 tk.expectation_linearity(R * R, "y", left=X.T / (N * sigma2 ** 2), right=X),
                 why="X does not depend on the labels"),
            Link(sp.MatMul(1 / (N * sigma2 ** 2), X.T, sigma2 * I_N, X), _MOMENT,
                 label="moment", why="E[r_n²] = σ², E[r_n r_m] = 0 (n ≠ m)"),
            Link(_GRAM, Algebra(), why="σ²/σ⁴ = 1/σ²"),
            Link(H, Algebra(), why="the Hessian (part 2), which no label enters"),
        ], part=4),
    ]


LINEAR_REGRESSION = Derivation(
    name="empirical_fisher_failure.linear_regression",
    title="The empirical Fisher vanishes at interpolation while F = H does not "
          "(linear least squares)",
    conclusion=(sp.Eq(Grad(ell_n, theta), sp.MatMul(-1 / sigma2, x_n, _r_n), evaluate=False),
                sp.Eq(Hess(Loss, theta), _GRAM, evaluate=False),
                sp.Eq(EF, _EF_FORM, evaluate=False),
                sp.Eq(At(EF, R, sp.ZeroMatrix(N, N)), sp.ZeroMatrix(D, D), evaluate=False),
                sp.Eq(F, H, evaluate=False)),
    definitions={ell_n: Scalar(sp.MatMul(sp.Transpose(_r_n), _r_n)) / (2 * sigma2),
                 Loss: Scalar(sp.MatMul(sp.Transpose(_r), _r)) / (2 * N * sigma2),
                 G: sp.MatMul(-1 / sigma2, R, X), EF: sp.MatMul(1 / N, G.T, G),
                 F: Expect(EF, "y"), H: _GRAM},
    hypotheses=[sp.Q.diagonal(R), sp.Q.symmetric(R)],
    proof=_proof,
    tier="A",
    scope="general N examples and D inputs: gradients and the Hessian entry-wise, the empirical "
          "Fisher and its expectation by matrix algebra, linearity of expectation and the "
          "moment axiom",
    controls=[
        Control("empirical_fisher_is_fisher", target="residual_weights", replace=(_EF_FORM, _GRAM),
                why="the empirical Fisher taken for the Fisher XᵀX/(Nσ²), as if the squared "
                    "residuals were their expectation σ²"),
        Control("wrong_variance_power", target="residual_weights",
                replace=(_EF_FORM, sp.MatMul(1 / (N * sigma2), X.T, R, R, X)),
                why="each gradient carries 1/σ², the outer product 1/σ⁴: written with 1/σ²"),
        Control("gradient_sign", target="example_gradient",
                replace=(sp.MatMul(-1 / sigma2, x_n, _r_n), sp.MatMul(1 / sigma2, x_n, _r_n)),
                why="the per-example gradient with the residual's sign flipped"),
    ],
    assumptions=[r"linear model $f(\theta, x) = \theta^\top x$, Gaussian likelihood with fixed "
                 r"variance $\sigma^2 > 0$, mean reduction: $\ell_n = (y_n - x_n^\top\theta)^2 / "
                 r"(2\sigma^2)$, $L = \|y - X\theta\|^2 / (2N\sigma^2)$",
                 r"$R = \mathrm{diag}(y - X\theta)$, the residuals; the per-example gradients "
                 r"are the rows of $G = -RX/\sigma^2$ (part 1)",
                 r"for $F$: labels drawn independently from the model, "
                 r"$y_n\sim\mathcal N(\theta^\top x_n, \sigma^2)$"],
    axioms={"squared residuals under the model":
            r"$\mathbb E_y[R^2] = \sigma^2 I$: for $y_n = \theta^\top x_n + \sigma u_n$ with "
            r"independent standard normal $u_n$, $\mathbb E[r_n^2] = \sigma^2$",
            "linearity of expectation": tk.STRUCTURAL_AXIOMS["linearity of expectation"]},
    references=[tk.REF_KUNSTNER_2019 + ", §3 and Fig. 1 (linear regression)",
                tk.REF_JOHNSON_2017 + ", §7 (the Fisher: an expectation under the model)",
                tk.REF_MARTENS_2020 + ", §11"],
    numeric=["fisherlab.empirical_fisher", "fisherlab.fisher", "fisherlab.hessian"],
    tested_by=["tests/proofs/test_empirical_fisher_failure.py::"
               "test_numeric_references_match_the_closed_forms"],
)

DERIVATIONS = [LINEAR_REGRESSION]
