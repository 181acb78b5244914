r"""Damping a Kronecker-factored block: factored (π) damping and exact damping.

K-FAC needs ``(A (x) G + lambda I)^{-1} v``. Two ways (CONVENTIONS.md § Damping;
Martens & Grosse 2015 §6.3):

* **factored** Tikhonov damping replaces ``A (x) G + lambda I`` by
  ``(A + pi sqrt(lambda) I) (x) (G + sqrt(lambda)/pi I)``, whose residual is
  ``sqrt(lambda) (A (x) I / pi + pi I (x) G)``; minimising the triangle-inequality
  bound of its trace norm gives ``pi = sqrt((tr A / dim A) / (tr G / dim G))``
  (for PSD factors the bound is attained: the residual is PSD and its trace
  norm is its trace);
* **exact** damping through the eigendecompositions ``A = U_A D_A U_A^T``,
  ``G = U_G D_G U_G^T``:
  ``(A (x) G + lambda I)^{-1} = (U_A (x) U_G) diag(1/(a_i g_j + lambda)) (U_A (x) U_G)^T``.

Factor order: these statements use ``A (x) G`` (column-major ``vec`` of
``[W b]``); fisherlab's row-major blocks are ``G (x) A`` and the same identities
hold with the factors' roles kept (``A`` always receives ``pi sqrt(lambda)``).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

from fisherlab.symbolic.toolkit import (
    KRON_SIZES,
    REF_GROSSE_2022,
    REF_MARTENS_GROSSE_2015,
    cayley_parts,
    kron,
    lower_triangular,
    matrix,
)

__all__ = ["DERIVATIONS"]

lam = sp.Symbol("lambda", positive=True)
pi_ = sp.Symbol("pi", positive=True)  # the damping split, not the constant π

REF_TF_KFAC = ("tensorflow/kfac, fisher_blocks.py `_compute_pi_tracenorm`: "
               "pi = sqrt((trace(A)/dim(A)) / (trace(B)/dim(B))), 'see section 6.3'")


# ------------------------------------------------------------------ factored damping residual


def _residual_steps():
    cl, cr, rl, rr = [], [], [], []
    r = sp.sqrt(lam)
    for n, m in KRON_SIZES:
        A, G = matrix("a", n, n), matrix("g", m, m)
        In, Im = sp.eye(n), sp.eye(m)
        cl.append(kron(A + pi_ * r * In, G + r / pi_ * Im) - (kron(A, G) + lam * sp.eye(n * m)))
        cr.append(r * (kron(A, Im) / pi_ + pi_ * kron(In, G)))
        rl.append(kron(G + r / pi_ * Im, A + pi_ * r * In) - (kron(G, A) + lam * sp.eye(n * m)))
        rr.append(r * (pi_ * kron(G, In) + kron(Im, A) / pi_))
    return [
        Step.equal("Every n, m ∈ {1, 2, 3}, A (n×n) and G (m×m) general symbolic matrices: "
                   "(A + π√λ I)⊗(G + √λ/π I) − (A⊗G + λI) = √λ (A⊗I/π + π I⊗G)", cl, cr,
                   justification="entry-wise Kronecker products, expanded (√λ·√λ = λ for λ > 0)",
                   display=r"(A+\pi\sqrt\lambda I)\otimes(G+\tfrac{"
                           r"\sqrt\lambda}{\pi}I)-(A\otimes G+\lambda I)"
                           r"=\sqrt\lambda\big(\tfrac1\pi A\otimes I+\pi\,I\otimes G\big)"),
        Step.equal("The same in fisherlab's row-major order G⊗A: (G + √λ/π I)⊗(A + π√λ I) − "
                   "(G⊗A + λI) = √λ (π G⊗I + I⊗A/π)", rl, rr,
                   justification="entry-wise, expanded",
                   display=r"(G+\tfrac{\sqrt\lambda}{\pi}I)\otimes(A+"
                           r"\pi\sqrt\lambda I)-(G\otimes A+\lambda I)"
                           r"=\sqrt\lambda\big(\pi\,G\otimes I+\tfrac1\pi I\otimes A\big)"),
    ]


def _damping_each_factor():
    A, G = matrix("a", 2, 2), matrix("g", 2, 2)
    return Step.equal("(A + λI)⊗(G + λI) = A⊗G + λI", kron(A + lam * sp.eye(2), G + lam * sp.eye(2)),
                      kron(A, G) + lam * sp.eye(4), justification="false variant")


def _sqrt_each_factor():
    A, G = matrix("a", 2, 2), matrix("g", 2, 2)
    r = sp.sqrt(lam)
    return Step.equal("(A + √λI)⊗(G + √λI) = A⊗G + λI (cross terms forgotten)",
                      kron(A + r * sp.eye(2), G + r * sp.eye(2)), kron(A, G) + lam * sp.eye(4),
                      justification="false variant")


RESIDUAL = LegacyDerivation(
    name="kfac_damping.factored_residual",
    title="Factored (π) Tikhonov damping: the exact residual",
    statement=r"(A+\pi\sqrt\lambda I)\otimes(G+\tfrac{\sqrt\lambda}{\pi}I)=A\otimes G+\lambda I"
              r"+\sqrt\lambda\big(\tfrac1\pi A\otimes I+\pi\,I\otimes G\big)",
    tier=Tier.B,
    scope="every square size pair n, m ∈ {1, 2, 3}, A and G general (all entries symbolic), "
          "λ > 0 and π > 0 symbolic; both factor orders",
    build=_residual_steps,
    negative_controls=[
        NegativeControl("damping_in_each_factor", "λ added to each factor: (A+λI)⊗(G+λI) = A⊗G+λI",
                        _damping_each_factor),
        NegativeControl("sqrt_damping_no_cross_terms", "√λ added to each factor claimed exact "
                        "(the cross terms √λ(A⊗I + I⊗G) forgotten)", _sqrt_each_factor),
    ],
    assumptions=[r"$\lambda > 0$, $\pi > 0$"],
    references=[REF_MARTENS_GROSSE_2015 + " §6.3 ('factored Tikhonov regularization')", REF_GROSSE_2022 +
                " ('this update rule needs to be modified to approximate the damped update')"],
    numeric=["fisherlab.kfac.solve"],
)


# ------------------------------------------------------------------ the choice of pi


def _pi_steps():
    steps = []
    r = sp.sqrt(lam)
    ql, qc, tl, tr = [], [], [], []
    for n, m in KRON_SIZES:
        L, M = lower_triangular("l", n), lower_triangular("m", m)
        A, G = L * L.T, M * M.T
        In, Im = sp.eye(n), sp.eye(m)
        R = r * (kron(A, Im) / pi_ + pi_ * kron(In, G))
        x = matrix("x", n * m, 1)
        y1, y2 = kron(L, Im).T * x, kron(In, M).T * x
        ql.append((x.T * R * x)[0, 0])
        qc.append(sp.Add(*[r / pi_ * sp.expand(e) ** 2 for e in y1])
                  + sp.Add(*[r * pi_ * sp.expand(e) ** 2 for e in y2]))
        tl.append(R.trace())
        tr.append(r * (m * A.trace() / pi_ + pi_ * n * G.trace()))
    steps.append(Step.nonnegative(
        "Every n, m ∈ {1, 2, 3}, A = LLᵀ, G = MMᵀ: the residual R(π) = √λ(A⊗I/π + π I⊗G) is PSD: "
        "xᵀRx = (√λ/π)‖(L⊗I)ᵀx‖² + √λπ‖(I⊗M)ᵀx‖² ≥ 0",
        ql, qc, justification="sum-of-squares certificate (λ, π > 0); hence its trace norm is its "
                              "trace (axiom 'trace norm of a PSD matrix')",
        display=r"x^\top R(\pi)x=\tfrac{\sqrt\lambda}{\pi}\|(L\otimes I)^\top x\|^2"
                r"+\sqrt\lambda\,\pi\|(I\otimes M)^\top x\|^2\ge0"))
    steps.append(Step.equal(
        "Every n, m ∈ {1, 2, 3}: ‖R(π)‖_tr = tr R(π) = √λ (m·tr A/π + π·n·tr G) — the triangle-"
        "inequality bound √λ(‖A⊗I‖_tr/π + π‖I⊗G‖_tr) of Martens & Grosse §6.3 is attained",
        tl, tr, justification="entry-wise trace of the explicit Kronecker products (tr(A⊗I_m) = m tr A, "
                              "tr(I_n⊗G) = n tr G)",
        display=r"\|R(\pi)\|_{\mathrm{tr}}=\operatorname{tr}R(\pi)="
                r"\sqrt\lambda\Big(\frac{m\operatorname{tr}A}{\pi}"
                r"+\pi\,n\operatorname{tr}G\Big)"))
    # Tier A: general dimension, traces as positive symbols.
    n, m, tA, tG = sp.symbols("n m t_A t_G", positive=True)
    f = r * (m * tA / pi_ + pi_ * n * tG)
    pistar = sp.sqrt((tA / n) / (tG / m))
    fp = sp.diff(f, pi_)
    fpp = sp.diff(f, pi_, 2)
    steps += [
        Step.equal("General dimension (dim A = n, dim G = m, t_A = tr A > 0, t_G = tr G > 0): the bound "
                   "f(π) = √λ(m t_A/π + π n t_G) has f'(π*) = 0 at π* = √((t_A/n)/(t_G/m))",
                   fp.subs(pi_, pistar), 0, justification="differentiation, then substitution",
                   display=r"f'(\pi^*)=\sqrt\lambda\Big(n\,t_G-\frac{m\,t_A}{\pi^{*2}}\Big)=0,\qquad "
                           r"\pi^*=\sqrt{\frac{t_A/n}{t_G/m}}"),
        Step.nonnegative("f''(π) = 2√λ m t_A/π³ ≥ 0 for π > 0: f is convex on π > 0",
                         fpp, 2 * r * m * tA / pi_ ** 3,
                         justification="differentiation; a product of positive symbols",
                         display=r"f''(\pi)=\frac{2\sqrt\lambda\,m\,t_A}{\pi^3}\ge0"),
        Step.nonnegative("π* is the global minimiser: f(π) − f(π*) = (√λ/π)(π√(n t_G) − √(m t_A))² ≥ 0",
                         f - f.subs(pi_, pistar),
                         r / pi_ * (pi_ * sp.sqrt(n * tG) - sp.sqrt(m * tA)) ** 2,
                         justification="completing the square; sum-of-squares certificate",
                         display=r"f(\pi)-f(\pi^*)=\frac{\sqrt\lambda}{\pi}\big(\pi\sqrt{n\,t_G}"
                                 r"-\sqrt{m\,t_A}\big)^2\ge0"),
        Step.equal("The minimum value is f(π*) = 2√λ √(n m t_A t_G)", f.subs(pi_, pistar),
                   2 * r * sp.sqrt(n * m * tA * tG), justification="substitution",
                   display=r"f(\pi^*)=2\sqrt{\lambda\,n\,m\,t_A\,t_G}"),
    ]
    return steps


def _pi_inverted():
    n, m, tA, tG = sp.symbols("n m t_A t_G", positive=True)
    f = sp.sqrt(lam) * (m * tA / pi_ + pi_ * n * tG)
    return Step.equal("f'(1/π*) = 0 (π inverted)", sp.diff(f, pi_).subs(pi_, sp.sqrt((tG / m) / (tA / n))), 0,
                      justification="false variant")


def _pi_unnormalised():
    n, m, tA, tG = sp.symbols("n m t_A t_G", positive=True)
    f = sp.sqrt(lam) * (m * tA / pi_ + pi_ * n * tG)
    return Step.equal("f'(√(t_A/t_G)) = 0 (traces not divided by the dimensions)",
                      sp.diff(f, pi_).subs(pi_, sp.sqrt(tA / tG)), 0, justification="false variant")


PI_CHOICE = LegacyDerivation(
    name="kfac_damping.pi_trace_norm",
    title="The π of factored damping minimises the trace-norm bound of the residual",
    statement=r"\pi^*=\operatorname*{arg\,min}_{\pi>0}\sqrt\lambda"
              r"\Big(\frac{\|A\otimes I\|_{\mathrm{tr}}}{\pi}"
              r"+\pi\|I\otimes G\|_{\mathrm{tr}}\Big)=\sqrt{\frac{\operatorname{tr}A/\dim A}"
              r"{\operatorname{tr}G/\dim G}}",
    tier=Tier.AB,
    scope="A: general dimensions n, m with traces t_A, t_G > 0 as positive symbols (the scalar "
          "minimisation); B: the trace-norm identity for every n, m ∈ {1, 2, 3} with A = LLᵀ, G = MMᵀ "
          "symbolic",
    build=_pi_steps,
    negative_controls=[
        NegativeControl("pi_inverted", "π inverted: √((t_G/m)/(t_A/n)) claimed stationary", _pi_inverted),
        NegativeControl("pi_unnormalised", "π = √(tr A / tr G) without the dimensions claimed stationary",
                        _pi_unnormalised, witness={sp.Symbol("n", positive=True): 2,
                                                   sp.Symbol("m", positive=True): 3}),
    ],
    assumptions=[r"$A \succeq 0$, $G\succeq 0$ with $\operatorname{tr}A > 0$, $\operatorname{tr}G>0$; "
                 r"$\lambda>0$, $\pi>0$"],
    axioms={"trace norm of a PSD matrix": r"$\|R\|_{\mathrm{tr}} = \sum_i|\sigma_i(R)| = \operatorname{tr}R$ "
                                          r"for $R\succeq0$"},
    references=[REF_MARTENS_GROSSE_2015 + " §6.3", REF_GROSSE_2022 + " ('K-FAC: Efficient Computation': the damped "
                "update needs modification)", REF_TF_KFAC],
    numeric=["fisherlab.kfac.solve"],
    notes="Martens & Grosse bound the residual's norm by the triangle inequality and minimise "
          "$\\|A\\otimes I\\|/\\pi + \\pi\\|I\\otimes G\\|$; with the trace norm and PSD factors "
          "the residual is itself PSD (step 1) so the bound equals its trace norm exactly "
          "(step 2). Dividing each trace by the factor's dimension is what makes "
          "$\\pi$ dimension-consistent; the control `pi_unnormalised` shows the unnormalised "
          "ratio is not stationary (n = 2, m = 3).",
)


# ------------------------------------------------------------------ exact damping

EXACT_SIZES = tuple((n, m) for n, m in KRON_SIZES if n * m <= 6)


def _exact_steps():
    steps = []
    # Tier A: one generic entry of the spectral factorisation.
    U, W = sp.IndexedBase("U"), sp.IndexedBase("W")
    a, g = sp.IndexedBase("alpha"), sp.IndexedBase("gamma")
    i, j, k, l, p, q = sp.symbols("i j k l p q", integer=True, nonnegative=True)
    steps.append(Step.equal(
        "General dimension, one generic entry: the summand over (p, q) of "
        "(A⊗G)[(i,k),(j,l)] = (Σ_p U_ip α_p U_jp)(Σ_q W_kq γ_q W_lq) equals that of "
        "((U⊗W)(D_A⊗D_G)(U⊗W)ᵀ)[(i,k),(j,l)]",
        (U[i, p] * a[p] * U[j, p]) * (W[k, q] * g[q] * W[l, q]),
        (U[i, p] * W[k, q]) * (a[p] * g[q]) * (U[j, p] * W[l, q]),
        justification="entry definitions of ⊗ and of the diagonal D_A⊗D_G; axioms 'index bijection' "
                      "and 'distributivity' (kronecker.mixed_product)",
        display=r"A\otimes G=(U_A D_AU_A^\top)\otimes(U_GD_GU_G^\top)=(U_A\otimes U_G)(D_A\otimes D_G)"
                r"(U_A\otimes U_G)^\top"))
    # Tier B.
    ol, orr = [], []
    for n in (1, 2, 3):
        N, d, _ = cayley_parts("s", n)
        ol += [N.T * N, N * N.T]
        orr += [d ** 2 * sp.eye(n), d ** 2 * sp.eye(n)]
    steps.append(Step.equal("n ∈ {1, 2, 3}: the Cayley factors U = (I−S)(I+S)⁻¹ = N/d (S skew, "
                            "N = (I−S)adj(I+S), d = det(I+S) = 1 + Σt² > 0) are orthogonal: "
                            "NᵀN = NNᵀ = d² I, i.e. UᵀU = UUᵀ = I", ol, orr,
                            justification="explicit polynomial entries, expanded",
                            display=r"N^\top N=NN^\top=d^2I\iff U^\top U=UU^\top=I"))
    vl, vr, sl, sr = [], [], [], []
    for n, m in EXACT_SIZES:
        UA, UG = matrix("u", n, n), matrix("w", m, m)
        V = kron(UA, UG)
        vl += [V.T * V, V * V.T]
        vr += [kron(UA.T * UA, UG.T * UG), kron(UA * UA.T, UG * UG.T)]
        al, gl = sp.symbols(f"alpha_1:{n + 1}", real=True), sp.symbols(f"gamma_1:{m + 1}", real=True)
        DA, DG = sp.diag(*al), sp.diag(*gl)
        sl.append(kron(UA * DA * UA.T, UG * DG * UG.T))
        sr.append(V * kron(DA, DG) * V.T)
    sizes = "every n, m ≤ 3 with nm ≤ 6"
    steps += [
        Step.equal(f"{sizes}, U_A, U_G general: (U_A⊗U_G)ᵀ(U_A⊗U_G) = (U_AᵀU_A)⊗(U_GᵀU_G) and "
                   "(U_A⊗U_G)(U_A⊗U_G)ᵀ = (U_AU_Aᵀ)⊗(U_GU_Gᵀ); with the previous step V = U_A⊗U_G is "
                   "orthogonal (I⊗I = I)", vl, vr, justification="entry-wise, expanded",
                   display=r"V^\top V=(U_A^\top U_A)\otimes(U_G^\top U_G)=I,\quad VV^\top=I"),
        Step.equal(f"{sizes}, U_A, U_G general: (U_A D_A U_Aᵀ)⊗(U_G D_G U_Gᵀ) = V (D_A⊗D_G) Vᵀ; "
                   "hence A⊗G + λI = V (D_A⊗D_G + λI) Vᵀ using VVᵀ = I", sl, sr,
                   justification="entry-wise, expanded",
                   display=r"A\otimes G+\lambda I=V(D_A\otimes D_G+\lambda I)V^\top"),
    ]
    dl, dr = [], []
    for n, m in KRON_SIZES:
        al, gl = sp.symbols(f"alpha_1:{n + 1}", real=True), sp.symbols(f"gamma_1:{m + 1}", real=True)
        D = kron(sp.diag(*al), sp.diag(*gl)) + lam * sp.eye(n * m)
        Dinv = sp.diag(*[1 / (x * y + lam) for x in al for y in gl])
        dl.append(D * Dinv)
        dr.append(sp.eye(n * m))
    steps.append(Step.equal(
        "every n, m ∈ {1, 2, 3}: (D_A⊗D_G + λI) diag(1/(α_iγ_j + λ)) = I, with the eigenvalue of "
        "index i m + j equal to α_iγ_j (so the diagonal is ordered like V's columns)", dl, dr,
        justification="entry-wise, cancelled; then (A⊗G+λI)·V diag(1/(α_iγ_j+λ)) Vᵀ = "
                      "V (D+λI) VᵀV (D+λI)⁻¹ Vᵀ = VVᵀ = I",
        display=r"(A\otimes G+\lambda I)^{-1}=(U_A\otimes U_G)\,"
                r"\operatorname{diag}\Big(\frac1{\alpha_i\gamma_j"
                r"+\lambda}\Big)(U_A\otimes U_G)^\top"))
    return steps


def _factored_as_exact():
    al, gl = sp.symbols("alpha_1:3", real=True), sp.symbols("gamma_1:3", real=True)
    D = kron(sp.diag(*al), sp.diag(*gl)) + lam * sp.eye(4)
    r = sp.sqrt(lam)
    Dinv = sp.diag(*[1 / ((x + r) * (y + r)) for x in al for y in gl])
    return Step.equal("the factored inverse with π = 1, diag(1/((α_i+√λ)(γ_j+√λ))), claimed to invert "
                      "D_A⊗D_G + λI", D * Dinv, sp.eye(4), justification="false variant")


def _eigen_sum():
    al, gl = sp.symbols("alpha_1:3"), sp.symbols("gamma_1:3")
    D = kron(sp.diag(*al), sp.diag(*gl)) + lam * sp.eye(4)
    Dinv = sp.diag(*[1 / (x + y + lam) for x in al for y in gl])
    return Step.equal("eigenvalues α_i + γ_j + λ (a Kronecker sum) in the damped inverse",
                      D * Dinv, sp.eye(4), justification="false variant")


EXACT = LegacyDerivation(
    name="kfac_damping.exact_eigendecomposition",
    title="Exact damping of a Kronecker product through the factors' eigendecompositions",
    statement=r"A=U_AD_AU_A^\top,\ G=U_GD_GU_G^\top\ \Longrightarrow\ (A\otimes G+\lambda I)^{-1}"
              r"=(U_A\otimes U_G)\operatorname{diag}\Big(\frac{1}{\alpha_i\gamma_j+\lambda}\Big)"
              r"(U_A\otimes U_G)^\top",
    tier=Tier.AB,
    scope="A: one generic entry of the spectral factorisation in general dimension; B: orthogonality "
          "of Cayley eigenbases n ≤ 3, Kronecker steps for every n, m ≤ 3 with nm ≤ 6 (3x3⊗3x3 "
          "by kronecker.mixed_product), the diagonal inverse for every n, m ≤ 3",
    build=_exact_steps,
    negative_controls=[
        NegativeControl("factored_is_not_exact", "the π = 1 factored inverse claimed exact",
                        _factored_as_exact),
        NegativeControl("kronecker_sum_eigenvalues", "eigenvalues α_i + γ_j (a Kronecker sum) "
                        "instead of α_iγ_j", _eigen_sum),
    ],
    assumptions=[r"$U_A$, $U_G$ orthogonal (tier B: Cayley-parametrised, $U=(I-S)(I+S)^{-1}$, every "
                 r"orthogonal matrix without eigenvalue $-1$); $\lambda > 0$, "
                 r"$\alpha_i\gamma_j+\lambda\ne0$"],
    axioms={"index bijection": r"$(i,k)\leftrightarrow ip+k$ as in kronecker.mixed_product",
            "distributivity": r"$(\sum_p x_p)(\sum_q y_q) = \sum_{p,q}x_py_q$"},
    references=[REF_MARTENS_GROSSE_2015 + " §6.3 and App. (exact inversion via eigendecompositions)",
                REF_GROSSE_2022 + " ('Spectral decomposition … eigenvalues λ_iν_j')",
                "T. George et al., 'Fast approximate natural gradient descent in a Kronecker-factored "
                "eigenbasis', NeurIPS 2018"],
    numeric=["fisherlab.kfac.solve"],
    notes="Cancelling the end-to-end rational identity directly is slow in SymPy 1.14 (7 s for "
          "2x2⊗1x1 and 1x1⊗2x2, minutes for 2x2⊗2x2 with Cayley eigenbases); the proof is "
          "therefore the chain: Cayley factors orthogonal → V = U_A⊗U_G orthogonal → spectral "
          "factorisation A⊗G + λI = V(D_A⊗D_G + λI)Vᵀ → inverse of the diagonal, each checked "
          "exactly; the last implication, $V(D+\\lambda I)V^\\top\\cdot V(D+\\lambda I)^{-1}V^\\top = "
          "VV^\\top = I$, uses associativity and $V^\\top V = I$.",
)

DERIVATIONS = [RESIDUAL, PI_CHOICE, EXACT]
