r"""The Riemannian gradient in coordinates: ``grad f = G^{-1} nabla f``.

For a metric with matrix ``G`` (the Fisher matrix for natural gradient descent) the gradient
is the vector ``v`` with ``<v, X>_G = v^T G X = df(X) = nabla f^T X`` for every tangent vector
``X``. ``v = G^{-1} nabla f`` has this property; the property for every ``X`` says that the
gradient in ``X`` of ``<w, X>_G - df(X)``, namely ``G w - nabla f``, vanishes, and any ``w``
differs from ``G^{-1} nabla f`` by ``G^{-1}`` times that residual -- so the gradient is unique.
``fl.updates.natural_gradient`` uses ``G = F``.

Tier A: general dimension, ``G = L L^T`` with ``L`` invertible (positive definite).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Entrywise, Link
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Grad, Scalar

__all__ = ["DERIVATIONS"]

d = sp.Symbol("d", integer=True, positive=True)
L, G = sp.MatrixSymbol("L", d, d), sp.MatrixSymbol("G", d, d)
p = sp.MatrixSymbol(r"\nabla f", d, 1)
X, w = sp.MatrixSymbol("X", d, 1), sp.MatrixSymbol("w", d, 1)
v = sp.MatrixSymbol(r"\operatorname{grad} f", d, 1)
pairing = sp.Symbol(r"\phi_w")

_PAIR = Scalar(sp.MatMul(sp.Transpose(v), G, X))
_RESID = sp.MatAdd(G * w, -p)


def _proof():
    return [
        Chain(_PAIR, [
            Link(Scalar(sp.MatMul(p.T, sp.Transpose(sp.Inverse(G)), G, X)), Algebra(),
                 label="pairing", why="(G⁻¹∇f)ᵀ = ∇fᵀG⁻ᵀ"),
            Link(Scalar(p.T * X), Algebra(), why="G symmetric: G⁻ᵀG = G⁻¹G = I"),
        ]),
        Chain(Grad(pairing, X), [Link(_RESID, Entrywise(), label="coefficients",
                                      why="∂/∂X_i of wᵀGX − ∇fᵀX is (Gᵀw)_i − ∂_if, Gᵀ = G")],
              part=1),
        Chain(sp.MatAdd(w, -v), [Link(sp.MatMul(sp.Inverse(G), _RESID), Algebra(),
                                      why="w − G⁻¹∇f = G⁻¹(Gw − ∇f): zero exactly when the "
                                          "residual is, G being invertible")], part=2),
    ]


COORDINATES = Derivation(
    name="riemannian_gradient.coordinates",
    title="The Riemannian gradient in coordinates is G⁻¹ times the Euclidean gradient",
    conclusion=(sp.Eq(_PAIR, Scalar(p.T * X), evaluate=False),
                sp.Eq(Grad(pairing, X), _RESID, evaluate=False),
                sp.Eq(sp.MatAdd(w, -v), sp.MatMul(sp.Inverse(G), _RESID), evaluate=False)),
    definitions={G: L * L.T, v: sp.Inverse(G) * p,
                 pairing: Scalar(w.T * G * X) - Scalar(p.T * X)},
    hypotheses=[sp.Q.invertible(L)],
    proof=_proof,
    tier="A",
    scope="general dimension d: the defining property by matrix algebra, its coefficients "
          "entry-wise",
    controls=[
        Control("metric_instead_of_inverse", target="pairing",
                replace=(sp.Transpose(sp.Inverse(G)), G),
                why="the gradient multiplied by the metric, G∇f, instead of its inverse"),
        Control("half_whitened_gradient", target="conclusion:1", replace=(v, L.I * p),
                why="only half of the inverse metric, the Cholesky whitening L⁻¹∇f"),
    ],
    assumptions=[r"the metric $\langle a, b\rangle_G = a^\top G b$ with $G = LL^\top$, $L$ "
                 r"invertible (every positive definite $G$, e.g. the Fisher matrix, has such a "
                 r"factor); $\mathrm df(X) = \nabla f^\top X$",
                 r"$\phi_w(X) = \langle w, X\rangle_G - \mathrm df(X)$ vanishes for every $X$ "
                 r"exactly when its coefficients (part 2) vanish"],
    references=[tk.REF_AMARI_1998 + " (the steepest direction in a Riemannian space is "
                "G⁻¹∇f)", tk.REF_JOHNSON_2017 + ", §3-4 (the Fisher metric and the natural "
                "gradient)", tk.REF_MARTENS_2020 + ", §5"],
    numeric=["fisherlab.updates.natural_gradient", "fisherlab.updates.precondition"],
    tested_by=["tests/updates/test_dense_updates.py::test_natural_gradient_logistic_closed_form",
               "tests/updates/test_dense_updates.py::"
               "test_natural_gradient_is_steepest_descent_in_the_fisher_metric"],
)

DERIVATIONS = [COORDINATES]
