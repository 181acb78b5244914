"""The Riemannian gradient in coordinates: ``grad f = G^{-1} nabla f``.

Seed 000 (000_0f033ede0c3e061f.txt): for a metric ``g`` with musical map
``g_hat(X)(Y) = g(X, Y)``, the gradient is the vector field with
``<grad f, X>_g = X f = df(X)`` for every ``X``, hence ``grad f = g_hat^{-1}(df)``;
in coordinates, with the metric matrix ``G`` (the Fisher matrix for natural
gradient descent), ``grad f = G^{-1} nabla f`` -- the "new gradient" of natural
gradient descent (``fl.updates.natural_gradient`` uses ``G = F``).

Tier B: ``d = 2, 3`` with every entry symbolic; ``G = L L^T`` with ``L`` lower
triangular and a positive diagonal (SPD by construction), ``nabla f`` and the
test vector ``X`` fully symbolic.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic.toolkit import lower_cholesky, lower_inverse, vector
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

_DIMS = (2, 3)


def _setup(d):
    L = lower_cholesky("l", d)
    G = L * L.T
    grad = vector("p", d)          # the coordinates of df = nabla f
    X = vector("X", d)             # an arbitrary tangent vector
    Linv = lower_inverse(L)
    Ginv = Linv.T * Linv           # G^{-1} = L^{-T} L^{-1}
    return L, G, grad, X, Linv, Ginv


def _steps():
    steps = []
    for d in _DIMS:
        L, G, grad, X, Linv, Ginv = _setup(d)
        steps.append(Step.equal(
            f"d = {d}: L^{{-1}} computed by forward substitution is the inverse of L, so "
            "G^{-1} = L^{-T} L^{-1} inverts G = L L^T",
            Ginv * G, sp.eye(d),
            justification="exact product of the triangular inverse with L; G = L L^T is SPD "
                          "because diag(L) > 0",
            display=r"(L^{-\top} L^{-1})(L L^\top) = I"))
        v = Ginv * grad
        steps.append(Step.equal(
            f"d = {d}: <G^{{-1}} nabla f, X>_G = df(X) for every X (X fully symbolic)",
            (v.T * G * X)[0, 0], (grad.T * X)[0, 0],
            justification="seed 000: defining property <grad f, X>_g = X f = df(X)",
            display=r"\langle G^{-1}\nabla f, X\rangle_G = (G^{-1}\nabla f)^\top G X"
                    r" = \nabla f^\top X = \mathrm{d}f(X)"))
        # Uniqueness: any w with <w, X>_G = df(X) for all X satisfies G w = nabla f
        # (coefficient of X_i), and G is invertible: det G = prod l_ii^2 > 0.
        w = vector("w", d)
        pairing = sp.expand((w.T * G * X)[0, 0] - (grad.T * X)[0, 0])
        coeffs = sp.Matrix([sp.diff(pairing, xi) for xi in X])
        steps.append(Step.equal(
            f"d = {d}: the coefficient of X_i in <w, X>_G - df(X) is (G w - nabla f)_i, so the "
            "defining property for all X is the linear system G w = nabla f",
            coeffs, G * w - grad,
            justification="a linear form vanishing for every X has zero coefficients",
            display=r"\frac{\partial}{\partial X}\big(\langle w, X\rangle_G - \mathrm{d}f(X)\big)"
                    r" = G w - \nabla f"))
        steps.append(Step.nonnegative(
            f"d = {d}: det G = prod_i l_ii^2 > 0, so G w = nabla f has the unique solution "
            "w = G^{-1} nabla f",
            G.det(), sp.Mul(*[L[i, i] ** 2 for i in range(d)]),
            justification="det(L L^T) = det(L)^2, L triangular with positive diagonal",
            display=r"\det G = \det(L)^2 = \prod_i \ell_{ii}^2 > 0"))
    return steps


def _control_metric_times_gradient():
    L, G, grad, X, _, _ = _setup(2)
    v = G * grad
    return Step.equal("<G nabla f, X>_G = df(X)", (v.T * G * X)[0, 0], (grad.T * X)[0, 0],
                      justification="false: multiplies by the metric instead of its inverse")


def _control_half_whitened():
    L, G, grad, X, Linv, _ = _setup(2)
    v = Linv * grad
    return Step.equal("<L^{-1} nabla f, X>_G = df(X)", (v.T * G * X)[0, 0],
                      (grad.T * X)[0, 0],
                      justification="false: only half of the inverse metric (a whitening map)")


DERIVATIONS = [
    LegacyDerivation(
        name="riemannian_gradient.coordinates",
        title="The Riemannian gradient in coordinates is G^{-1} times the Euclidean gradient",
        statement=r"\langle \operatorname{grad} f, X\rangle_G = \mathrm{d}f(X)\ \ \forall X"
                  r"\iff \operatorname{grad} f = \hat g^{-1}(\mathrm{d}f) = G^{-1}\nabla f",
        assumptions=[r"$G$ symmetric positive definite, built as $G = L L^\top$ with $L$ lower "
                     r"triangular and $\ell_{ii} > 0$ (SymPy cannot state SPD on entries)",
                     r"$\nabla f$ and the test vector $X$ have independent symbolic entries"],
        tier=Tier.B,
        scope="d = 2, 3, every entry of L, nabla f and X symbolic",
        build=_steps,
        negative_controls=[
            NegativeControl("metric_instead_of_inverse",
                            "G nabla f in place of G^{-1} nabla f (d = 2)",
                            _control_metric_times_gradient),
            NegativeControl("half_whitened_gradient",
                            "L^{-1} nabla f (a Cholesky whitening) in place of G^{-1} nabla f",
                            _control_half_whitened),
        ],
        references=["seed 000_0f033ede0c3e061f.txt (grad f = g_hat^{-1}(df); "
                    "g^{-1} nabla f as the new gradient)",
                    "seed 003_377ac27c40267f84.txt §3-4 (the Fisher metric, natural gradient)",
                    "S. Amari, Natural gradient works efficiently in learning, Neural "
                    "Computation 10(2), 1998"],
        numeric=["fisherlab.updates.natural_gradient", "fisherlab.updates.precondition"],
    ),
]
