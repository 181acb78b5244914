r"""When K-FAC is exact: one example (any activation), and deep linear networks with MSE.

K-FAC replaces a layer's curvature block ``(1/N) sum_n (J_n^T Lambda_n J_n)``
by ``G (x) A`` with ``A = (1/N) sum_n abar_n abar_n^T`` and
``G = (1/N) sum_n G_n`` (CONVENTIONS.md § K-FAC, row-major order). Two cases
where nothing is lost (Martens & Grosse 2015 §3; Bernacchia et al. 2018;
Eschenhagen et al. 2023):

* ``N = 1``: the block of a layer is exactly ``G (x) A`` for any network and any
  activation (proved for a 2-layer network with a generic activation ``phi``);
* deep linear networks with a Gaussian likelihood, any ``N``: the
  pre-activation Jacobian ``J_s = d f / d s`` and the output Hessian do not
  depend on the example, so ``G_n`` is the same for all ``n`` and the average
  factorises.

The *empirical* variant (``G_n = g_n g_n^T`` with the data label) matches the
empirical-Fisher block for ``N = 1`` but **not** for deep linear networks at
``N > 1``: ``g_n`` still varies with the residual. The counterexample is a
negative control whose witness is shown on the page.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods._symbolic import bernoulli, categorical, gaussian
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

from fisherlab.symbolic.toolkit import (
    REF_GROSSE_2022,
    REF_JOHNSON_2017,
    REF_MARTENS_GROSSE_2015,
    kron,
    matrix,
    rvec,
    symmetric,
)

__all__ = ["DERIVATIONS", "two_layer_network"]

phi = sp.Function("phi")

REF_EXACT = ("R. Eschenhagen, A. Immer, R. E. Turner, F. Schneider, P. Hennig, 'Kronecker-factored "
             "approximate curvature for modern neural network architectures', NeurIPS 2023 (K-FAC "
             "exact for deep linear networks with MSE loss); the exactness cases tested by "
             "curvlinops (F. Dangel et al.)")
REF_BERNACCHIA = ("A. Bernacchia, M. Lengyel, G. Hennequin, 'Exact natural gradient in deep linear "
                  "networks and its application to the nonlinear case', NeurIPS 2018")


def _bar(v: sp.Matrix) -> sp.Matrix:
    return v.col_join(sp.Matrix([1]))


def two_layer_network(n0: int, n1: int, C: int, x: sp.Matrix, activation=None):
    r"""``f = W2 [phi(W1 [x; 1]); 1]`` with symbolic augmented weights.

    ``W1`` (``n1 x (n0+1)``, entries ``v_ij``) and ``W2`` (``C x (n1+1)``, entries
    ``w_ij``) hold the bias in their last column; ``activation`` maps a SymPy
    expression to an expression (``None``: the identity, a deep linear network).
    Returns ``(W1, W2, abar0, s1, abar1, f, J_s1)`` where ``J_s1 = df/ds1``
    is computed by differentiating the network *as a function of s1* and then
    evaluating at ``s1``.
    """
    act = activation or (lambda e: e)
    W1, W2 = matrix("v", n1, n0 + 1), matrix("w", C, n1 + 1)
    abar0 = _bar(x)
    s1 = W1 * abar0
    abar1 = _bar(s1.applyfunc(act))
    f = W2 * abar1
    sig = sp.Matrix(sp.symbols(f"sigma_1:{n1 + 1}"))
    f_of_s = W2 * _bar(sig.applyfunc(act))
    J_s1 = f_of_s.jacobian(sig).subs(dict(zip(sig, s1)))
    return W1, W2, abar0, s1, abar1, f, J_s1


# ------------------------------------------------------------------ tier A (general dimension)

_ab, _Js, _Lam, _G = (sp.IndexedBase(s) for s in ("abar", "J_s", "Lambda", "G"))
_i, _j, _k, _l, _c, _d, _n, _p = sp.symbols("i j k l c d n p", integer=True, nonnegative=True)
_C, _N = sp.symbols("C N", integer=True, positive=True)


def _ggn_entry(a_k, a_l):
    """Entry ((i,k),(j,l)) of J_theta^T Lambda J_theta with J_theta[c,(i,k)] = J_s[c,i] abar_k."""
    return sp.Sum(sp.Sum(_Js[_c, _i] * a_k * _Lam[_c, _d] * _Js[_d, _j] * a_l, (_d, 0, _C - 1)),
                  (_c, 0, _C - 1))


def _G_entry():
    return sp.Sum(sp.Sum(_Js[_c, _i] * _Lam[_c, _d] * _Js[_d, _j], (_d, 0, _C - 1)), (_c, 0, _C - 1))


def _single_general_steps():
    return [Step.equal(
        "General dimension (any C, n₀, n₁), one generic entry: with J_θ[c,(i,k)] = J_s[c,i] ā_k "
        "(the layer Jacobian, kfac_structure.dense_layer), (J_θᵀΛJ_θ)[(i,k),(j,l)] = "
        "(J_sᵀΛJ_s)_ij (ā āᵀ)_kl = (G ⊗ A)[(i,k),(j,l)]",
        _ggn_entry(_ab[_k], _ab[_l]), _G_entry() * _ab[_k] * _ab[_l],
        justification="constant factors moved out of the finite sums (SymPy's cancel); axiom "
                      "'layer Jacobian'",
        display=r"\sum_{c,d}J_{s,ci}\bar a_k\Lambda_{cd}J_{s,dj}\bar a_l"
                r"=\Big(\sum_{c,d}J_{s,ci}\Lambda_{cd}J_{s,dj}\Big)\bar a_k\bar a_l"
                r"=(G\otimes A)_{(i,k),(j,l)}")]


def _linear_general_steps():
    W2, s1 = sp.IndexedBase("W_2"), sp.IndexedBase("s_1")
    n1 = sp.Symbol("n_1", integer=True, positive=True)
    f_c = sp.Sum(W2[_c, _i] * s1[_i], (_i, 0, n1 - 1))  # + b_2[c], which does not depend on s_1
    df = sp.diff(f_c, s1[_p]).doit()
    df = df.replace(lambda e: isinstance(e, sp.Piecewise),
                    lambda e: e.args[0].expr if e.args[0].cond in
                    (_p <= n1 - 1, sp.And(_p >= 0, _p <= n1 - 1)) else e)
    mean_ggn = sp.Sum(_G[_i, _j] * _ab[_n, _k] * _ab[_n, _l], (_n, 0, _N - 1)) / _N
    return [
        Step.equal("General dimension: for a linear next layer f = W₂s₁ + b₂, J_s[c,p] = ∂f_c/∂s₁_p = "
                   "W₂[c,p], the same for every example", df, W2[_c, _p],
                   justification="SymPy differentiation of the Sum w.r.t. an Indexed entry; branch "
                                 "0 ≤ p ≤ n₁ − 1 (axiom 'index ranges')",
                   display=r"J_{s,cp}=\frac{\partial}{\partial s_{1,p}}\sum_i W_{2,ci}s_{1,i}=W_{2,cp}"),
        Step.equal("General N and dimensions: when G_n = G for every n (deep linear network, Gaussian "
                   "likelihood: G = W₂ᵀΛW₂), the mean GGN block entry (1/N)Σₙ G_ij ā_nk ā_nl equals "
                   "G_ij A_kl with A = (1/N)Σₙ āₙāₙᵀ: K-FAC is exact for any N",
                   mean_ggn, _G[_i, _j] * sp.Sum(_ab[_n, _k] * _ab[_n, _l], (_n, 0, _N - 1)) / _N,
                   justification="the n-independent factor moved out of the finite sum over examples "
                                 "(SymPy's cancel)",
                   display=r"\frac1N\sum_{n}G_{ij}\bar a_{nk}\bar a_{nl}=G_{ij}\,\frac1N\sum_n\bar a_{nk}"
                           r"\bar a_{nl}=(G\otimes A)_{(i,k),(j,l)}"),
    ]


# ------------------------------------------------------------------ N = 1, any activation

SINGLE_SIZES = ((1, 1, 1), (2, 1, 2), (1, 2, 2), (2, 2, 1), (2, 2, 2), (3, 2, 2))


def _single_steps():
    jl, jr, b1l, b1r, b2l, b2r, el, er = ([] for _ in range(8))
    for n0, n1, C in SINGLE_SIZES:
        x = matrix("x", n0, 1)
        W1, W2, abar0, s1, abar1, f, J_s = two_layer_network(n0, n1, C, x, phi)
        Lam = symmetric("h", C)
        J1 = f.jacobian(rvec(W1))
        J2 = f.jacobian(rvec(W2))
        jl.append(J1)
        jr.append(J_s * kron(sp.eye(n1), abar0.T))
        # Once J1 = J_s (I (x) abar0^T) is established, the block identity holds for ANY J_s:
        # check it with a matrix of plain symbols (faster, and it covers any downstream network).
        Jg = matrix("j", C, n1)
        J1g = Jg * kron(sp.eye(n1), abar0.T)
        b1l.append(J1g.T * Lam * J1g)
        b1r.append(kron(Jg.T * Lam * Jg, abar0 * abar0.T))
        b2l.append(J2.T * Lam * J2)
        b2r.append(kron(Lam, abar1 * abar1.T))
        # empirical variant: the per-example gradient g = J_s^T r (r = grad_f l for the label)
        r = matrix("r", C, 1)
        g1 = Jg.T * r
        grad1 = J1g.T * r
        el.append(grad1 * grad1.T)
        er.append(kron(g1 * g1.T, abar0 * abar0.T))
    sizes = "every (n0, n1, C) in " + ", ".join(str(s) for s in SINGLE_SIZES)
    liks = [gaussian(2, variance=sp.Symbol("varsigma2", positive=True)), categorical(2), bernoulli(1)]
    return _single_general_steps() + [
        Step.equal(f"{sizes}: the Jacobian of f = W₂[φ(W₁ā₀); 1] with respect to rvec(W̄₁) is "
                   "J_s (I ⊗ ā₀ᵀ), with J_s = ∂f/∂s₁ obtained by differentiating f as a function of s₁",
                   jl, jr,
                   justification="SymPy differentiation of the explicit network with an undefined "
                                 "activation φ (chain rule through Subs), entry-wise",
                   display=r"\frac{\partial f}{\partial\operatorname{rvec}\bar W_1}"
                           r"=J_{s_1}\,(I_{n_1}\otimes\bar a_0^\top)"),
        Step.equal(f"{sizes}: with any symmetric output Hessian Λ and any J_s (a C×n₁ matrix of free "
                   "symbols, so any downstream network), the exact GGN block of layer 1, "
                   "(J_s(I⊗ā₀ᵀ))ᵀ Λ (J_s(I⊗ā₀ᵀ)), is G₁ ⊗ A₀ with G₁ = J_sᵀ Λ J_s and A₀ = ā₀ā₀ᵀ "
                   "(K-FAC is exact for N = 1)",
                   b1l, b1r, justification="entry-wise products of the explicit Jacobians, expanded",
                   display=r"J_{\theta_1}^\top\Lambda J_{\theta_1}=(J_{s_1}^\top\Lambda J_{s_1})\otimes"
                           r"(\bar a_0\bar a_0^\top)=G_1\otimes A_0"),
        Step.equal(f"{sizes}: the exact GGN block of the last layer is Λ ⊗ ā₁ā₁ᵀ = G₂ ⊗ A₁", b2l, b2r,
                   justification="entry-wise",
                   display=r"J_{\theta_2}^\top\Lambda J_{\theta_2}=\Lambda\otimes\bar a_1\bar a_1^\top"),
        Step.equal("Exact-type G: for a natural-parameter likelihood E_y[∇_fℓ ∇_fℓᵀ] = ∇²_fℓ = Λ, so "
                   "G₁ = E_y[g gᵀ] = J_sᵀ E_y[∇_fℓ∇_fℓᵀ] J_s = J_sᵀ Λ J_s; checked here from the "
                   "symbolic sources of the Gaussian (C = 2, variance ς²), categorical (K = 2) and "
                   "Bernoulli likelihoods",
                   [lik.fisher_definition() for lik in liks], [lik.hessian_nll() for lik in liks],
                   justification="exact expectations over y (fisherlab.likelihoods._symbolic); J_s "
                                 "does not depend on y (linearity of E_y)",
                   display=r"\mathbb E_y[\nabla_f\ell\,\nabla_f\ell^\top]=\nabla_f^2\ell=\Lambda"),
        Step.equal(f"{sizes}: empirical variant — the per-example gradient outer product of layer 1 is "
                   "(g gᵀ) ⊗ (ā₀ā₀ᵀ) with g = J_sᵀ r, r = ∇_fℓ(y_label): empirical K-FAC = EF block "
                   "for N = 1", el, er, justification="entry-wise",
                   display=r"\nabla_{\theta_1}\ell\,\nabla_{\theta_1}\ell^\top=(gg^\top)\otimes"
                           r"(\bar a_0\bar a_0^\top)"),
    ]


def _phi_witness():
    z = sp.Symbol("z")
    return {phi: sp.Lambda(z, z ** 3 + z)}


def _full_ggn_claim():
    n0, n1, C = 1, 1, 1
    x = matrix("x", n0, 1)
    W1, W2, abar0, s1, abar1, f, J_s = two_layer_network(n0, n1, C, x, phi)
    Lam = symmetric("h", C)
    J = f.jacobian(rvec(W1).col_join(rvec(W2)))
    G1 = J_s.T * Lam * J_s
    kfac = sp.diag(kron(G1, abar0 * abar0.T), kron(Lam, abar1 * abar1.T))
    return Step.equal("N = 1: the block-diagonal K-FAC matrix equals the full GGN (cross-layer blocks "
                      "ignored)", J.T * Lam * J, kfac, justification="false variant")


SINGLE = LegacyDerivation(
    name="kfac_exactness.single_example",
    title="K-FAC is exact for a single example (any activation)",
    statement=r"N=1:\quad J_{\theta_k}^\top\Lambda J_{\theta_k} = G_k\otimes A_{k-1},\quad "
              r"A_{k-1}=\bar a_{k-1}\bar a_{k-1}^\top,\ G_k=J_{s_k}^\top\Lambda J_{s_k}"
              r"=\mathbb E_y[g_kg_k^\top]",
    tier=Tier.AB,
    scope="A: one generic entry in general dimension (any C, n₀, n₁; axiom 'layer Jacobian'); "
          "B: 2-layer network f = W₂[φ(W₁[x;1]);1] with a generic (undefined) activation φ, every "
          "(n0, n1, C) in " + ", ".join(str(s) for s in SINGLE_SIZES) + "; Λ any symmetric C×C "
          "matrix (all symbols)",
    build=_single_steps,
    negative_controls=[NegativeControl(
        "block_diagonal_only",
        "the block-diagonal K-FAC matrix claimed equal to the whole GGN (the cross-layer block is "
        "not zero even for N = 1)", _full_ggn_claim, witness=_phi_witness)],
    axioms={"layer Jacobian": r"$\partial f_c/\partial\bar W_{ik} = J_{s,ci}\,\bar a_k$ "
                              r"(chain rule with $\partial s_i/\partial\bar W_{jk}=\delta_{ij}\bar a_k$, "
                              r"kfac_structure.dense_layer; checked at every tier-B size by step 2)",
            **{name: "$" + text + "$" for lik in (gaussian(1), categorical(2), bernoulli(1))
               for name, text in lik.axioms.items()}},
    assumptions=["one example (N = 1); layer blocks in [W b] row-major order",
                 r"$\Lambda = \nabla_f^2\ell$ the output Hessian; for the exact-type G a natural-"
                 r"parameter likelihood, where $\mathbb E_y[\nabla_f\ell\nabla_f\ell^\top] = \Lambda$"],
    references=[REF_MARTENS_GROSSE_2015 + " §3", REF_JOHNSON_2017, REF_GROSSE_2022, REF_EXACT],
    numeric=["fisherlab.kfac.factors", "fisherlab.kfac.matrix"],
    notes="Only the diagonal (layer) blocks are exact: the negative control shows that the "
          "cross-layer block of the GGN is not zero, so the block-diagonal K-FAC matrix differs "
          "from the full GGN even for one example.",
)


# ------------------------------------------------------------------ deep linear, any N

LINEAR_CASES = ((2, 2, 2, 2), (1, 2, 1, 3), (2, 1, 2, 3))  # (n0, n1, C, N)


def _linear_network(n0, n1, C, N):
    xs = [matrix(f"x{n}", n0, 1) for n in range(1, N + 1)]
    nets = [two_layer_network(n0, n1, C, x) for x in xs]
    return xs, nets


def _mean(mats):
    return sum(mats[1:], mats[0]) / len(mats)


def _linear_steps():
    var = sp.Symbol("varsigma2", positive=True)
    steps = []
    js_l, js_r, b1l, b1r, b2l, b2r, gl, gr = ([] for _ in range(8))
    for n0, n1, C, N in LINEAR_CASES:
        xs, nets = _linear_network(n0, n1, C, N)
        W1, W2 = nets[0][0], nets[0][1]
        lik = gaussian(C, variance=var)
        Lam = lik.hessian_nll()
        # J_s of every example is W2[:, :n1], the same for all n.
        js_l += [net[6] for net in nets]
        js_r += [W2[:, :n1]] * N
        # exact GGN blocks (mean over the N examples)
        J1s = [net[5].jacobian(rvec(W1)) for net in nets]
        J2s = [net[5].jacobian(rvec(W2)) for net in nets]
        ggn1 = _mean([J.T * Lam * J for J in J1s])
        ggn2 = _mean([J.T * Lam * J for J in J2s])
        # K-FAC factors per CONVENTIONS: A = mean abar abar^T, G = mean of per-example G_n.
        # Exact-type G_n = E_y[g g^T], g = J_s^T grad_f l, computed with the Gaussian's moments.
        y = lik.targets
        G1_terms, G2_terms = [], []
        for net in nets:
            f, J_s = net[5], net[6]
            r = sp.Matrix([sp.diff(lik.nll, mu) for mu in lik.outputs])  # grad_f l at outputs mu
            Er = sp.Matrix(C, C, lambda i, j: lik.expectation(sp.expand(r[i] * r[j])))
            Er = Er.subs(dict(zip(lik.outputs, f)))
            G1_terms.append(J_s.T * Er * J_s)
            G2_terms.append(Er)
        G1, G2 = _mean(G1_terms), _mean(G2_terms)
        A0 = _mean([_bar(x) * _bar(x).T for x in xs])
        A1 = _mean([net[4] * net[4].T for net in nets])
        gl.append(G1)
        gr.append(W2[:, :n1].T * Lam * W2[:, :n1])
        b1l.append(ggn1)
        b1r.append(kron(G1, A0))
        b2l.append(ggn2)
        b2r.append(kron(G2, A1))
    cases = "every (n0, n1, C, N) in " + ", ".join(str(c) for c in LINEAR_CASES)
    steps += _linear_general_steps()
    steps += [
        Step.equal(f"{cases}: in a deep linear network J_s = ∂f/∂s₁ = W₂ (without its bias column) "
                   "for every example n — it does not depend on the input", js_l, js_r,
                   justification="differentiation of the explicit network",
                   display=r"J_{s_1,n}=W_2\quad\text{for all }n"),
        Step.equal(f"{cases}: exact-type G₁ = (1/N)Σₙ E_y[gₙgₙᵀ] computed from the Gaussian's exact "
                   "moments equals W₂ᵀ Λ W₂ with Λ = I/ς²", gl, gr,
                   justification="exact Gaussian moments of y ~ N(f_n, ς² I) "
                                 "(fisherlab.likelihoods._symbolic.gaussian), expanded",
                   display=r"G_1=\frac1N\sum_n\mathbb E_y[g_ng_n^\top]=W_2^\top\Lambda W_2"),
        Step.equal(f"{cases}: the exact (mean) GGN block of layer 1 equals G₁ ⊗ A₀, "
                   "A₀ = (1/N)Σₙ ā₀ₙā₀ₙᵀ — K-FAC is exact for any N", b1l, b1r,
                   justification="entry-wise; the per-example G₁ₙ is constant so the average "
                                 "of Kronecker products factorises",
                   display=r"\frac1N\sum_n J_{\theta_1,n}^\top\Lambda J_{\theta_1,n}"
                           r"=\frac1N\sum_n(W_2^\top\Lambda W_2)\otimes"
                           r"\bar a_{0n}\bar a_{0n}^\top=G_1\otimes A_0"),
        Step.equal(f"{cases}: the exact (mean) GGN block of layer 2 equals G₂ ⊗ A₁ with G₂ = Λ",
                   b2l, b2r, justification="entry-wise",
                   display=r"\frac1N\sum_n J_{\theta_2,n}^\top\Lambda J_{\theta_2,n}=\Lambda\otimes A_1"),
    ]
    return steps


def _empirical_counterexample():
    n0, n1, C, N = 1, 1, 1, 2
    var = sp.Integer(1)
    xs, nets = _linear_network(n0, n1, C, N)
    W1 = nets[0][0]
    lik = gaussian(C, variance=var)
    ys = [sp.Symbol(f"y{n}") for n in range(1, N + 1)]
    grads, gs = [], []
    for net, yn in zip(nets, ys):
        f, J_s = net[5], net[6]
        r = sp.Matrix([sp.diff(lik.nll, mu) for mu in lik.outputs]).subs(
            {**dict(zip(lik.outputs, f)), lik.targets[0]: yn})
        grads.append(net[5].jacobian(rvec(W1)).T * r)
        gs.append(J_s.T * r)
    ef_block = _mean([g * g.T for g in grads])
    G = _mean([g * g.T for g in gs])
    A = _mean([_bar(x) * _bar(x).T for x in xs])
    return Step.equal("deep linear network, MSE, N = 2: empirical K-FAC (1/N Σ gₙgₙᵀ) ⊗ (1/N Σ āₙāₙᵀ) "
                      "equals the empirical-Fisher block", ef_block, kron(G, A),
                      justification="false variant")


def _nonlinear_claim():
    n0, n1, C, N = 1, 1, 1, 2
    xs = [matrix(f"x{n}", n0, 1) for n in range(1, N + 1)]
    nets = [two_layer_network(n0, n1, C, x, phi) for x in xs]
    W1 = nets[0][0]
    Lam = sp.Matrix([[1]])
    J1s = [net[5].jacobian(rvec(W1)) for net in nets]
    ggn1 = _mean([J.T * Lam * J for J in J1s])
    G1 = _mean([net[6].T * Lam * net[6] for net in nets])
    A0 = _mean([_bar(x) * _bar(x).T for x in xs])
    return Step.equal("exactness beyond its scope: with a nonlinear activation and N = 2 the layer-1 "
                      "GGN block equals G₁ ⊗ A₀", ggn1, kron(G1, A0), justification="false variant")


DEEP_LINEAR = LegacyDerivation(
    name="kfac_exactness.deep_linear",
    title="K-FAC is exact for deep linear networks with a Gaussian likelihood (any N)",
    statement=r"f_n = W_2(W_1x_n+b_1)+b_2,\ \ell_n=\tfrac{1}{2\varsigma^2}\|y_n-f_n\|^2:\quad "
              r"\frac1N\sum_n J_{\theta_k,n}^\top\Lambda J_{\theta_k,n}=G_k\otimes A_{k-1}",
    tier=Tier.AB,
    scope="A: general N and dimensions, one generic entry (the mean of Kronecker products with an "
          "n-independent G); B: 2-layer linear network with biases, (n0, n1, C, N) in "
          + ", ".join(str(c) for c in LINEAR_CASES) + "; weights, inputs and the variance ς² symbolic",
    build=_linear_steps,
    negative_controls=[
        NegativeControl("empirical_kfac_deep_linear",
                        "empirical K-FAC claimed equal to the empirical-Fisher block for a deep linear "
                        "network at N = 2 (false: gₙ = W₂ᵀ(fₙ − yₙ) varies with n; the witness is the "
                        "counterexample)", _empirical_counterexample),
        NegativeControl("nonlinear_activation",
                        "exactness claimed for a nonlinear activation (φ(z) = z³ + z) at N = 2",
                        _nonlinear_claim, witness=_phi_witness),
    ],
    assumptions=["deep linear network (identity activations), biases included",
                 r"Gaussian likelihood $y\sim\mathcal N(f, \varsigma^2 I)$, so $\Lambda = I/\varsigma^2$ "
                 "does not depend on the example",
                 "mean reduction, factors scaled as in CONVENTIONS.md § K-FAC"],
    axioms={"standard normal moments": "$" + gaussian(1).axioms["standard normal moments"] + "$",
            "index ranges": r"$0\le p\le n_1-1$ (selects the Piecewise branch SymPy returns)"},
    references=[REF_MARTENS_GROSSE_2015 + " §3", REF_BERNACCHIA, REF_EXACT, REF_JOHNSON_2017],
    numeric=["fisherlab.kfac.factors", "fisherlab.kfac.matrix"],
    notes="The exactness rests on $G_{k,n}$ being the same for every example. For the *empirical* "
          "K-FAC, $G_n = g_ng_n^\\top$ with $g_n = W_2^\\top(f_n-y_n)/\\varsigma^2$ depends on the "
          "residual of example $n$, so the average of Kronecker products does not factorise: the "
          "control `empirical_kfac_deep_linear` exhibits an exact witness (a 1-1-1 network, N = 2). "
          "With a nonlinear activation $J_{s,n}$ depends on $x_n$ and exactness fails as well "
          "(control `nonlinear_activation`).",
)

DERIVATIONS = [SINGLE, DEEP_LINEAR]
