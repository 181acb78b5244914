"""Invariance of second-order updates to affine reparameterisation (seed 003 App. B).

Under ``theta = A theta' + b`` (``A`` invertible):

* ``natural_gradient`` -- the chain rule gives ``nabla l' = A^T nabla l`` and
  ``F' = A^T F A`` (seed 003 eq. (49)); the natural-gradient step maps exactly,
  ``theta'_new = A^{-1}(theta_new - b)`` (eqs. (50)-(52)). Negative controls: plain gradient
  descent does *not* map (``A A^T != I``), and Tikhonov damping breaks the invariance
  (``(A^T F A + lambda I)`` is not ``A^T (F + lambda I) A``).
* ``damped_orthogonal`` -- damped natural gradient is invariant exactly when the
  reparameterisation is orthogonal (Cayley-parameterised ``Q``), the Euclidean proximity term
  being rotation-invariant (seed 004 "Invariance": damping uses a Euclidean term that depends
  on the coordinate system). Control: a general ``A``.
* ``newton`` -- ``H' = A^T H A`` for the Hessian of any loss (2-jet argument) and the Newton
  step maps; the same algebra covers the GGN (``J' = J A``). Control: ``H' = A H A^T``.
* ``kfac_layer`` -- K-FAC is invariant to invertible affine maps of a layer's input
  activations ``abar' = Phi abar`` and pre-activations ``s = Psi s'`` (``W = Psi W' Phi``):
  ``A' = Phi A Phi^T``, ``G' = Psi^T G Psi`` and the K-FAC step maps,
  ``Psi dW' Phi = dW`` (seed 003 App. B; Martens & Grosse 2015 §10). Controls: factors
  transformed on the wrong side; damped factors.

Candidates are *substituted and checked*, never solved for (SYMBOLIC.md): the step in the new
coordinates ``delta'`` is a free symbol vector, ``delta = A delta'``, and the gradient is
parameterised by the step it produces, ``g = -(1/alpha) F delta`` -- equivalent to
``delta = -alpha F^{-1} g`` whenever ``F`` is invertible (``det F' = det(A)^2 det F``, also
checked) -- so every identity is polynomial.

Tier B: ``d = 2, 3`` with every entry of ``A``, ``F``/``H``, ``delta'`` symbolic; the gradient
chain rule for a generic (undefined) loss; the Hessian transformation for a general 2-jet.
K-FAC: ``out = 2``, ``in + 1 = 2, 3``.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic.toolkit import cayley_parts, matrix, symmetric, vector
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier


_DIMS = (2, 3)
_alpha = sp.Symbol("alpha", positive=True)
_lam = sp.Symbol("lambda", positive=True)


def _chain_rule_gradient_step(d):
    """grad of l(A u + c) at u = 0 is A^T grad l(c), for an undefined l (c = A theta' + b)."""
    A = matrix("A", d, d)
    c = sp.symbols(f"c_1:{d + 1}", real=True)
    u = sp.symbols(f"u_1:{d + 1}", real=True)
    ell = sp.Function("ell")
    psi = ell(*(A * sp.Matrix(u) + sp.Matrix(c)))
    lhs = sp.Matrix([sp.diff(psi, ui).subs({v: 0 for v in u}).doit() for ui in u])
    grad = sp.Matrix([sp.diff(ell(*c), ci) for ci in c])
    return Step.equal(
        f"d = {d}: chain rule for a generic loss l: the gradient of l'(theta' + u) = "
        "l(A u + c) at u = 0 (c = A theta' + b) is A^T grad l(c)",
        lhs, A.T * grad,
        justification="chain rule (undefined function l); l'(theta' + u) = l(c + A u) "
                      "because A(theta' + u) + b = c + A u",
        display=r"\nabla_{\theta'}\ell(A\theta' + b) = A^\top\nabla\ell(\theta)")


def _ng_steps():
    steps = []
    for d in _DIMS:
        steps.append(_chain_rule_gradient_step(d))
        A = matrix("A", d, d)
        F = symmetric("F", d)
        s = vector("s", d)
        steps.append(Step.equal(
            f"d = {d}: the score transforms like the gradient, so per sample "
            "(A^T s)(A^T s)^T = A^T (s s^T) A and, by linearity of the expectation, "
            "F' = A^T F A (seed 003 eq. 49)",
            (A.T * s) * (A.T * s).T, A.T * (s * s.T) * A,
            justification="chain rule for log p (as above) and linearity of E over y",
            display=r"F' = \mathbb{E}[A^\top s s^\top A] = A^\top F A"))
        steps.append(Step.equal(
            f"d = {d}: det F' = det(A)^2 det F, so F' is invertible iff F is (A invertible)",
            (A.T * F * A).det(), A.det() ** 2 * F.det(),
            justification="multiplicativity of det, computed entry-wise",
            display=r"\det(A^\top F A) = \det(A)^2\det F"))
        dp = vector("delta'", d)
        delta = A * dp
        g = -F * delta / _alpha          # i.e. delta = -alpha F^{-1} g
        steps.append(Step.equal(
            f"d = {d}: delta' = A^{{-1}} delta solves the natural-gradient system in the new "
            "coordinates, F' delta' = -alpha g' with g' = A^T g, when delta = -alpha F^{-1} g",
            (A.T * F * A) * dp + _alpha * (A.T * g), sp.zeros(d, 1),
            justification="substitution (g parameterised by the step it produces); unique "
                          "since F' is invertible",
            display=r"F'\,A^{-1}\delta = A^\top F A A^{-1}(-\alpha F^{-1} g) = "
                    r"-\alpha A^\top g = -\alpha g'"))
        tp = vector("theta'", d)
        b = vector("b", d)
        steps.append(Step.equal(
            f"d = {d}: hence the updates agree (seed 003 eq. 52): "
            "A(theta' + delta') + b = (A theta' + b) + delta",
            A * (tp + dp) + b, (A * tp + b) + delta,
            justification="linearity", display=r"A(\theta' + \delta') + b = \theta + \delta"))
    return steps


def _control_gd():
    d = 2
    A = matrix("A", d, d)
    g = vector("g", d)
    return Step.equal("gradient descent maps: A(-alpha A^T g) = -alpha g",
                      A * (-_alpha * A.T * g), -_alpha * g,
                      justification="false: A A^T != I for a general A")


def _control_damped():
    d = 2
    A = matrix("A", d, d)
    F = symmetric("F", d)
    dp = vector("delta'", d)
    g = -(F + _lam * sp.eye(d)) * (A * dp) / _alpha
    return Step.equal("damped NG maps: (A^T F A + lambda I) A^{-1} delta = -alpha A^T g",
                      (A.T * F * A + _lam * sp.eye(d)) * dp + _alpha * A.T * g,
                      sp.zeros(d, 1),
                      justification="false: the residual is lambda (I - A^T A) delta'")



def _orthogonal_steps():
    steps = []
    for d in _DIMS:
        N, den = cayley_parts("k", d)[:2]
        steps.append(Step.equal(
            f"d = {d}: the Cayley transform Q = (I - K)(I + K)^{{-1}} = N / det(I + K) of a skew "
            "K is orthogonal: N^T N = det(I + K)^2 I",
            N.T * N, den ** 2 * sp.eye(d), justification="exact polynomial identity",
            display=r"Q^\top Q = I"))
        F = symmetric("F", d)
        dp = vector("delta'", d)
        g_scaled = -(F + _lam * sp.eye(d)) * (N * dp) / _alpha   # = det(I + K) * g
        steps.append(Step.equal(
            f"d = {d}: damped natural gradient maps under theta = Q theta' + b: "
            "(Q^T F Q + lambda I) delta' = -alpha Q^T g for delta = Q delta' = "
            "-alpha (F + lambda I)^{-1} g (checked multiplied by det(I + K)^2 > 0)",
            (N.T * F * N + _lam * den ** 2 * sp.eye(d)) * dp + _alpha * (N.T * g_scaled),
            sp.zeros(d, 1),
            justification="Q^T (F + lambda I) Q = Q^T F Q + lambda I because Q^T Q = I",
            display=r"(Q^\top F Q + \lambda I)\,Q^\top\delta = Q^\top(F + \lambda I)\delta = "
                    r"-\alpha Q^\top g"))
    return steps


def _control_damped_general():
    d = 2
    A = matrix("A", d, d)
    F = symmetric("F", d)
    dp = vector("delta'", d)
    g = -(F + _lam * sp.eye(d)) * (A * dp) / _alpha
    return Step.equal("damped NG maps for a general invertible A",
                      (A.T * F * A + _lam * sp.eye(d)) * dp + _alpha * A.T * g,
                      sp.zeros(d, 1), justification="false unless A^T A = I")


def _newton_steps():
    steps = []
    for d in _DIMS:
        A = matrix("A", d, d)
        u = vector("u", d)
        ell0 = sp.Symbol("ell_0", real=True)
        p = vector("p", d)
        H = symmetric("H", d)
        # the general 2-jet of l at c = A theta' + b, l(c + z) = ell_0 + p^T z + z^T H z / 2,
        # evaluated at z = A u
        z = A * u
        psi = ell0 + (p.T * z)[0, 0] + (z.T * H * z)[0, 0] / 2
        grad = sp.Matrix([sp.diff(psi, ui) for ui in u]).subs({ui: 0 for ui in u})
        hess = sp.hessian(psi, list(u)).subs({ui: 0 for ui in u})
        steps.append(Step.equal(
            f"d = {d}: for the general 2-jet of l at c = A theta' + b (value ell_0, gradient p, "
            "Hessian H), l'(theta' + u) = l(c + A u) has gradient A^T p and Hessian A^T H A "
            "at u = 0",
            sp.Matrix.vstack(grad, hess.reshape(d * d, 1)),
            sp.Matrix.vstack(A.T * p, (A.T * H * A).reshape(d * d, 1)),
            justification="the gradient and Hessian at a point depend only on the 2-jet "
                          "(axiom: Taylor's theorem); chain rule",
            display=r"\nabla^2_{\theta'}\ell(A\theta'+b) = A^\top \nabla^2\ell(\theta) A"))
        dp = vector("delta'", d)
        g = -H * (A * dp) / _alpha
        steps.append(Step.equal(
            f"d = {d}: the Newton step maps: H' A^{{-1}} delta = -alpha g' for "
            "delta = -alpha H^{-1} g (H' = A^T H A, g' = A^T g)",
            (A.T * H * A) * dp + _alpha * (A.T * g), sp.zeros(d, 1),
            justification="substitution; unique as det H' = det(A)^2 det H",
            display=r"A^\top H A\,A^{-1}\delta = -\alpha A^\top g"))
        J = matrix("J", 2, d)
        Lam = symmetric("Lambda", 2)
        steps.append(Step.equal(
            f"d = {d}: the GGN transforms the same way: with J' = J A (chain rule), "
            "J'^T Lambda J' = A^T (J^T Lambda J) A, so the Gauss-Newton step maps too",
            (J * A).T * Lam * (J * A), A.T * (J.T * Lam * J) * A,
            justification="associativity, entry-wise", display=r"G' = A^\top G A"))
    return steps


def _control_newton_wrong_side():
    d = 2
    A = matrix("A", d, d)
    c, u = vector("c", d), vector("u", d)
    p, H = vector("p", d), symmetric("H", d)
    psi = (p.T * (A * u))[0, 0] + ((A * u).T * H * (A * u))[0, 0] / 2
    hess = sp.hessian(psi, list(u))
    return Step.equal("H' = A H A^T", hess, A * H * A.T,
                      justification="false: the Hessian is a (0,2)-tensor, H' = A^T H A")


def _kfac_steps():
    steps = []
    out = 2
    for inp in (2, 3):
        Psi = matrix("Psi", out, out)
        Phi = matrix("Phi", inp, inp)
        Wp = matrix("Wp", out, inp)
        abar = vector("a", inp)
        s_fn = sp.Function("ell")
        W = Psi * Wp * Phi
        svec = W * abar
        loss = s_fn(*svec)
        # gradient wrt W' of l(Psi W' Phi abar), generic loss of the pre-activations
        z = sp.symbols(f"z_1:{out + 1}", real=True)
        gs = sp.Matrix([sp.diff(s_fn(*z), zi) for zi in z]).subs(dict(zip(z, svec)))
        lhs = sp.Matrix(out, inp, lambda i, j: sp.diff(loss, Wp[i, j]).doit())
        rhs = Psi.T * gs * (Phi * abar).T
        steps.append(Step.equal(
            f"out = {out}, in+1 = {inp}: with W = Psi W' Phi (abar' = Phi abar, s = Psi s'), "
            "the per-example gradient is grad_W' l = g' abar'^T with g' = Psi^T g "
            "(g = grad_s l): the K-FAC statistics transform as abar' = Phi abar, g' = Psi^T g",
            lhs.applyfunc(lambda e: e.doit()), rhs.applyfunc(lambda e: e.doit()),
            justification="chain rule for a generic loss l of the pre-activations",
            display=r"\nabla_{W'}\ell = \Psi^\top g\,(\Phi\bar a)^\top"))
        a = vector("a", inp)
        g = vector("g", out)
        steps.append(Step.equal(
            f"out = {out}, in+1 = {inp}: per example abar' abar'^T = Phi (abar abar^T) Phi^T and "
            "g' g'^T = Psi^T (g g^T) Psi; averaging: A' = Phi A Phi^T, G' = Psi^T G Psi",
            sp.Matrix.vstack(((Phi * a) * (Phi * a).T).reshape(inp * inp, 1),
                             ((Psi.T * g) * (Psi.T * g).T).reshape(out * out, 1)),
            sp.Matrix.vstack((Phi * (a * a.T) * Phi.T).reshape(inp * inp, 1),
                             (Psi.T * (g * g.T) * Psi).reshape(out * out, 1)),
            justification="entry-wise; the average over examples (and over y) is linear",
            display=r"A' = \Phi A\Phi^\top,\quad G' = \Psi^\top G\Psi"))
        Af = symmetric("A", inp)
        Gf = symmetric("G", out)
        dWp = matrix("dWp", out, inp)
        dW = Psi * dWp * Phi
        gradW = -Gf * dW * Af / _alpha        # i.e. dW = -alpha G^{-1} grad_W A^{-1}
        gradWp = Psi.T * gradW * Phi.T
        steps.append(Step.equal(
            f"out = {out}, in+1 = {inp}: the K-FAC step maps: with dW = -alpha G^{{-1}} "
            "(grad_W L) A^{-1}, dW' = Psi^{-1} dW Phi^{-1} satisfies "
            "G' dW' A' = -alpha grad_W' L, i.e. dW' is the K-FAC step in the new coordinates",
            (Psi.T * Gf * Psi) * dWp * (Phi * Af * Phi.T) + _alpha * gradWp,
            sp.zeros(out, inp),
            justification="substitution (grad parameterised by the step it produces); "
                          "unique when A, G are invertible (Psi, Phi invertible)",
            display=r"G'\,\Psi^{-1}\Delta W\Phi^{-1}\,A' = \Psi^\top G\,\Delta W\,A\,\Phi^\top "
                    r"= -\alpha\,\Psi^\top\nabla_W L\,\Phi^\top = -\alpha\nabla_{W'}L"))
    return steps


def _control_kfac_wrong_side():
    out, inp = 2, 2
    Psi, Phi = matrix("Psi", out, out), matrix("Phi", inp, inp)
    Af, Gf = symmetric("A", inp), symmetric("G", out)
    dWp = matrix("dWp", out, inp)
    gradW = -Gf * (Psi * dWp * Phi) * Af / _alpha
    return Step.equal("with A' = Phi^T A Phi the K-FAC step maps",
                      (Psi.T * Gf * Psi) * dWp * (Phi.T * Af * Phi)
                      + _alpha * Psi.T * gradW * Phi.T,
                      sp.zeros(out, inp), justification="false: A' = Phi A Phi^T")


def _control_kfac_damped():
    out, inp = 2, 2
    Psi, Phi = matrix("Psi", out, out), matrix("Phi", inp, inp)
    Af, Gf = symmetric("A", inp), symmetric("G", out)
    dWp = matrix("dWp", out, inp)
    gam = sp.Symbol("gamma", positive=True)
    I2 = sp.eye(2)
    gradW = -(Gf + gam * I2) * (Psi * dWp * Phi) * (Af + gam * I2) / _alpha
    return Step.equal("K-FAC with damped factors (A + gamma I), (G + gamma I) maps",
                      (Psi.T * Gf * Psi + gam * I2) * dWp * (Phi * Af * Phi.T + gam * I2)
                      + _alpha * Psi.T * gradW * Phi.T, sp.zeros(out, inp),
                      justification="false: factor damping is not transformed")


_REFS = ["seed 003_377ac27c40267f84.txt App. B, eqs. (49)-(52)",
         "seed 004_bb4f7e8c8840a6b5.txt (\"Invariance\": Newton, Gauss-Newton and natural "
         "gradient are affine invariant; only the undamped algorithms)"]

DERIVATIONS = [
    LegacyDerivation(
        name="invariance.natural_gradient",
        title="The natural-gradient step is invariant to affine reparameterisation",
        statement=r"\theta = A\theta' + b:\ \ \nabla\ell' = A^\top\nabla\ell,\ F' = A^\top F A,"
                  r"\ \ A\big(\theta' - \alpha F'^{-1}\nabla\ell'\big) + b = "
                  r"\theta - \alpha F^{-1}\nabla\ell",
        assumptions=[r"$A$ invertible, $F$ invertible (symmetric)",
                     r"the step is parameterised by $\nabla\ell = -F\delta/\alpha$, "
                     r"equivalent to $\delta = -\alpha F^{-1}\nabla\ell$"],
        axioms={"linearity of expectation": r"$\mathbb{E}_y[A^\top s s^\top A] = "
                                            r"A^\top\mathbb{E}_y[s s^\top]A$ ($A$ constant)"},
        tier=Tier.B, scope="d = 2, 3; generic loss for the chain rule, every entry symbolic",
        build=_ng_steps,
        negative_controls=[
            NegativeControl("gradient_descent_not_invariant",
                            "plain gradient descent maps under A (counterexample)", _control_gd),
            NegativeControl("tikhonov_damping_breaks_invariance",
                            "damped natural gradient maps under a general A (counterexample)",
                            _control_damped),
        ],
        references=_REFS + ["Amari (1998); Martens (2020) §12"],
        numeric=["fisherlab.updates.natural_gradient"],
    ),
    LegacyDerivation(
        name="invariance.damped_orthogonal",
        title="Damped natural gradient is invariant to orthogonal reparameterisations only",
        statement=r"\theta = Q\theta' + b,\ Q^\top Q = I:\ \ Q\big(-\alpha(F' + \lambda I)^{-1}"
                  r"\nabla\ell'\big) = -\alpha(F + \lambda I)^{-1}\nabla\ell",
        assumptions=[r"$Q$ orthogonal, parameterised by the Cayley transform of a skew matrix",
                     r"$F + \lambda I$ invertible"],
        tier=Tier.B, scope="d = 2, 3, every entry symbolic",
        build=_orthogonal_steps,
        negative_controls=[NegativeControl(
            "general_A", "the damped step maps under a general (non-orthogonal) A",
            _control_damped_general)],
        references=_REFS,
        numeric=["fisherlab.updates.natural_gradient"],
    ),
    LegacyDerivation(
        name="invariance.newton",
        title="Newton and Gauss-Newton steps are invariant to affine reparameterisation",
        statement=r"H' = A^\top H A,\ G' = A^\top G A\ \Rightarrow\ "
                  r"A\big(-\alpha H'^{-1}\nabla\ell'\big) = -\alpha H^{-1}\nabla\ell",
        assumptions=[r"$A$ invertible; $H$ (resp. $G$) invertible"],
        axioms={"2-jet": "the gradient and Hessian of a C^2 function at a point depend only on "
                         "its second-order Taylor polynomial there"},
        tier=Tier.B, scope="d = 2, 3, every entry symbolic (2-jet of a general loss)",
        build=_newton_steps,
        negative_controls=[NegativeControl("hessian_wrong_side", "H' = A H A^T",
                                           _control_newton_wrong_side)],
        references=_REFS,
        numeric=["fisherlab.updates.newton", "fisherlab.updates.gauss_newton"],
    ),
    LegacyDerivation(
        name="invariance.kfac_layer",
        title="K-FAC is invariant to affine maps of each layer's activations",
        statement=r"W = \Psi W'\Phi:\ A' = \Phi A\Phi^\top,\ G' = \Psi^\top G\Psi,\ "
                  r"\Psi\big(-\alpha G'^{-1}\nabla_{W'}L\,A'^{-1}\big)\Phi = "
                  r"-\alpha G^{-1}\nabla_W L\,A^{-1}",
        assumptions=[r"$\Phi$ ((in+1)x(in+1)) and $\Psi$ (out x out) invertible; "
                     r"$\Phi = \begin{pmatrix}M & c\\ 0 & 1\end{pmatrix}$ is an affine map "
                     r"$a' = M a + c$ of the input activations (the proof holds for every "
                     r"invertible $\Phi$)",
                     r"$A$, $G$ invertible (undamped K-FAC)"],
        tier=Tier.B, scope="out = 2, in + 1 = 2, 3; every entry symbolic, generic loss",
        build=_kfac_steps,
        negative_controls=[
            NegativeControl("factor_wrong_side", "A' = Phi^T A Phi", _control_kfac_wrong_side),
            NegativeControl("damped_factors", "damped factors keep the invariance",
                            _control_kfac_damped),
        ],
        references=_REFS + ["Martens & Grosse, ICML 2015, §10 (invariance of K-FAC)"],
        numeric=["fisherlab.updates.kfac_update"],
    ),
]
