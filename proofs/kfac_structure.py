r"""The Kronecker structure of a dense layer's curvature block (K-FAC's starting point).

For a dense layer ``s = W a + b = Wbar abar`` (``Wbar = [W b]``, ``abar = [a; 1]``)
followed by *any* downstream loss ``l = L(s)`` (an undefined SymPy ``Function``
of the pre-activations: the rest of the network, the likelihood and the target),
the chain rule gives (seed 003_377ac27c40267f84.txt §8 eq. (28); seed
004_bb4f7e8c8840a6b5.txt 'Backprop computations')

.. math:: \nabla_{\bar W}\ell = g\,\bar a^\top,\qquad g = \nabla_s \ell,

so ``rvec(grad) = g (x) abar`` (row-major, fisherlab's parameter order) and
``vec(grad) = abar (x) g`` (column-major, the seeds' order), and the per-example
gradient outer product is ``(g g^T) (x) (abar abar^T)`` in row-major order. If the
activations and the pre-activation gradients are independent, the expectation
factorises into ``G (x) A`` (K-FAC; seed 003 §8 eqs. (35)-(37)).
"""

from __future__ import annotations

import itertools

import sympy as sp

from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

from fisherlab.symbolic.toolkit import (
    REF_GROSSE_2022,
    REF_JOHNSON_2017,
    REF_MARTENS_GROSSE_2015,
    kron,
    matrix,
    rvec,
    vec,
)

__all__ = ["DERIVATIONS", "dense_layer"]

#: (in, out) sizes of the dense layer checked exhaustively.
LAYER_SIZES = tuple(itertools.product((1, 2, 3), repeat=2))

L = sp.Function("L")


def dense_layer(n_in: int, n_out: int):
    """A dense layer with symbolic entries and a generic downstream loss.

    Returns ``(Wbar, abar, s, loss, g)``: ``Wbar = [W b]`` (n_out x (n_in+1)) with
    entries ``w_ij`` (the bias in the last column), ``abar = [a_1..a_in, 1]``,
    ``s = Wbar abar``, ``loss = L(s_1, ..., s_out)`` with ``L`` undefined, and
    ``g = grad_s L`` evaluated at ``s`` (``Subs`` of the partial derivatives).
    """
    W = matrix("w", n_out, n_in + 1)
    abar = sp.Matrix([sp.Symbol(f"a_{j + 1}") for j in range(n_in)] + [1])
    s = W * abar
    u = sp.symbols(f"u_1:{n_out + 1}")
    loss = L(*s)
    g = sp.Matrix([sp.Subs(sp.Derivative(L(*u), ui), u, tuple(s)) for ui in u])
    return W, abar, s, loss, g


def _grad(loss, W):
    return sp.Matrix(W.rows, W.cols, lambda i, j: sp.diff(loss, W[i, j]))


def _structure_steps():
    gl, gr, vl, vr, cl, cr, ol, orr, oc, ocr = ([] for _ in range(10))
    for n_in, n_out in LAYER_SIZES:
        W, abar, s, loss, g = dense_layer(n_in, n_out)
        grad = _grad(loss, W)
        gl.append(grad)
        gr.append(g * abar.T)
        vl.append(rvec(grad))
        vr.append(kron(g, abar))
        cl.append(vec(grad))
        cr.append(kron(abar, g))
        # For the outer products g is an arbitrary vector (plain symbols; the previous steps
        # identify it with grad_s L): this keeps the check fast.
        gv = matrix("g", n_out, 1)
        rg, cg = kron(gv, abar), kron(abar, gv)
        ol.append(rg * rg.T)
        orr.append(kron(gv * gv.T, abar * abar.T))
        oc.append(cg * cg.T)
        ocr.append(kron(abar * abar.T, gv * gv.T))
    sizes = "every (in, out) ∈ {1, 2, 3}²"
    return [
        Step.equal(f"{sizes}: differentiating the generic loss L(W̄ā) entry by entry gives "
                   "∇_W̄ ℓ = g āᵀ with g = ∇_s ℓ", gl, gr,
                   justification="SymPy chain rule through the undefined function L of the explicit "
                                 "pre-activations s = W̄ā",
                   display=r"\frac{\partial L(\bar W\bar a)}{\partial \bar W_{ij}}=g_i\,\bar a_j,\qquad "
                           r"\nabla_{\bar W}\ell=g\,\bar a^\top"),
        Step.equal(f"{sizes}: row-major rvec(∇_W̄ ℓ) = g ⊗ ā", vl, vr,
                   justification="row-stacking of the gradient matrix, entry-wise",
                   display=r"\operatorname{rvec}(\nabla_{\bar W}\ell)=g\otimes\bar a"),
        Step.equal(f"{sizes}: column-major vec(∇_W̄ ℓ) = ā ⊗ g", cl, cr,
                   justification="column-stacking of the gradient matrix, entry-wise",
                   display=r"\operatorname{vec}(\nabla_{\bar W}\ell)=\bar a\otimes g"),
        Step.equal(f"{sizes}: the per-example gradient outer product in [W b] row-major order, "
                   "rvec(∇)rvec(∇)ᵀ = (g⊗ā)(g⊗ā)ᵀ, is (g gᵀ) ⊗ (ā āᵀ)", ol, orr,
                   justification="entry-wise product of the explicit gradient vectors",
                   display=r"\operatorname{rvec}(\nabla_{\bar W}\ell)"
                           r"\operatorname{rvec}(\nabla_{\bar W}\ell)^\top"
                           r"=(gg^\top)\otimes(\bar a\bar a^\top)"),
        Step.equal(f"{sizes}: in column-major order, (ā⊗g)(ā⊗g)ᵀ = (ā āᵀ) ⊗ (g gᵀ) (seed 003 eq. (34))",
                   oc, ocr,
                   justification="entry-wise",
                   display=r"\operatorname{vec}(\nabla_{\bar W}\ell)"
                           r"\operatorname{vec}(\nabla_{\bar W}\ell)^\top"
                           r"=(\bar a\bar a^\top)\otimes(gg^\top)"),
    ]


def _take_branch(expr, allowed):
    """Replace each ``Piecewise`` by its first branch, whose condition must be an index-range fact
    listed in ``allowed`` (recorded as the axiom 'index ranges'); anything else is an error."""
    def first(p):
        cond = p.args[0].cond
        if cond not in allowed:
            raise ValueError(f"unexpected Piecewise condition {cond}")
        return p.args[0].expr
    return expr.replace(lambda e: isinstance(e, sp.Piecewise), first)


def _general_dimension_steps():
    """Tier A: one generic entry of the gradient and of the outer product, general (in, out)."""
    Wb, ab, g = sp.IndexedBase("Wbar"), sp.IndexedBase("abar"), sp.IndexedBase("g")
    i, j, k, l, r, t = sp.symbols("i j k l r t", integer=True, nonnegative=True)
    n, m = sp.symbols("n m", integer=True, positive=True)  # abar has n + 1 entries, s has m
    s_k = sp.Sum(Wb[k, j] * ab[j], (j, 0, n))
    ds = _take_branch(sp.diff(s_k, Wb[i, l]).doit(), {l <= n})
    chain = sp.Sum(g[k] * ds, (k, 0, m - 1)).doit()
    grad_il = _take_branch(chain, {i <= m - 1, sp.And(i >= 0, i <= m - 1)})
    return [
        Step.equal("General dimension (in = n, out = m), one generic entry: ∂s_k/∂W̄_il = δ_ik ā_l "
                   "for s_k = Σ_{j=0}^{n} W̄_kj ā_j", ds, sp.KroneckerDelta(i, k) * ab[l],
                   justification="SymPy differentiation of the Sum with respect to an Indexed entry "
                                 "(KroneckerDelta), branch 0 ≤ l ≤ n of the result (axiom 'index ranges')",
                   display=r"\frac{\partial s_k}{\partial\bar W_{il}}=\frac{\partial}{\partial\bar W_{il}}"
                           r"\sum_{j=0}^{n}\bar W_{kj}\bar a_j=\delta_{ik}\,\bar a_l"),
        Step.equal("General dimension: ∂ℓ/∂W̄_il = Σ_k g_k ∂s_k/∂W̄_il = g_i ā_l, i.e. ∇_W̄ℓ = g āᵀ",
                   grad_il, g[i] * ab[l],
                   justification="chain rule (axiom 'chain rule'), the KroneckerDelta sum evaluated by "
                                 "SymPy, branch 0 ≤ i ≤ m − 1 (axiom 'index ranges')",
                   display=r"\frac{\partial\ell}{\partial\bar W_{il}}=\sum_{k=0}^{m-1}g_k\,\delta_{ik}\,"
                           r"\bar a_l=g_i\,\bar a_l"),
        Step.equal("General dimension: entry ((i,k),(j,l)) of rvec(∇)rvec(∇)ᵀ, with rvec(∇)[i(n+1)+k] = "
                   "g_i ā_k, is (g gᵀ)_ij (ā āᵀ)_kl = ((g gᵀ)⊗(ā āᵀ))[(i,k),(j,l)]",
                   (g[i] * ab[k]) * (g[j] * ab[l]), (g[i] * g[j]) * (ab[k] * ab[l]),
                   justification="entry definitions of rvec and ⊗ (index bijection r = i(n+1)+k)",
                   display=r"\big(\operatorname{rvec}\nabla\operatorname{rvec}\nabla^\top\big)_{(i,k),(j,l)}"
                           r"=g_i\bar a_k\,g_j\bar a_l"
                           r"=\big((gg^\top)\otimes(\bar a\bar a^\top)\big)_{(i,k),(j,l)}"),
    ]


def _independence_steps():
    """E[(g g^T) (x) (abar abar^T)] = G (x) A when abar and g are independent (finite supports)."""
    p, q = sp.symbols("p q")
    steps_l, steps_r = [], []
    for n_in, n_out in LAYER_SIZES:
        abars = [sp.Matrix([sp.Symbol(f"a{k}_{j + 1}") for j in range(n_in)] + [1]) for k in (1, 2)]
        gs = [matrix(f"g{k}", n_out, 1) for k in (1, 2)]
        pa, pg = (p, 1 - p), (q, 1 - q)
        joint = sp.zeros(n_out * (n_in + 1), n_out * (n_in + 1))
        for (ka, a_), (kg, g_) in itertools.product(enumerate(abars), enumerate(gs)):
            joint += pa[ka] * pg[kg] * kron(g_ * g_.T, a_ * a_.T)
        A = sum((pa[k] * abars[k] * abars[k].T for k in range(2)), sp.zeros(n_in + 1, n_in + 1))
        G = sum((pg[k] * gs[k] * gs[k].T for k in range(2)), sp.zeros(n_out, n_out))
        steps_l.append(joint)
        steps_r.append(kron(G, A))
    return steps_l, steps_r


def _parameter_order_steps():
    """Block of the augmented weight in fisherlab's parameter order (W row-major, then b)."""
    lhs, rhs = [], []
    for n_in, n_out in LAYER_SIZES:
        A = sp.Matrix(n_in + 1, n_in + 1,
                      lambda i, j: sp.Symbol(f"A_{min(i, j) + 1}{max(i, j) + 1}"))
        G = sp.Matrix(n_out, n_out, lambda i, j: sp.Symbol(f"G_{min(i, j) + 1}{max(i, j) + 1}"))
        # permutation: parameter index of W[i, j] is i*n_in + j, of b[i] is n_out*n_in + i;
        # [W b] row-major index of (i, j) is i*(n_in+1) + j.
        d = n_out * (n_in + 1)
        P = sp.zeros(d, d)
        for i in range(n_out):
            for j in range(n_in):
                P[i * n_in + j, i * (n_in + 1) + j] = 1
            P[n_out * n_in + i, i * (n_in + 1) + n_in] = 1
        block = P * kron(G, A) * P.T
        Aaa, Aa1, A11 = A[:n_in, :n_in], A[:n_in, n_in], A[n_in, n_in]
        expected = sp.Matrix(sp.BlockMatrix([[kron(G, Aaa), kron(G, Aa1)],
                                             [kron(G, Aa1.T), G * A11]]).as_explicit())
        lhs.append(block)
        rhs.append(expected)
    return lhs, rhs


def _steps():
    steps = _general_dimension_steps() + _structure_steps()
    jl, jr = _independence_steps()
    steps.append(Step.equal(
        "every (in, out) ∈ {1, 2, 3}²: if ā and g are independent (here: each takes two symbolic "
        "values, with probabilities (p, 1−p) and (q, 1−q)), E[(g gᵀ) ⊗ (ā āᵀ)] = G ⊗ A with "
        "G = E[g gᵀ], A = E[ā āᵀ]",
        jl, jr, justification="bilinearity of ⊗ and the product form of the joint probabilities, "
                              "expanded (seed 003 eqs. (35)-(37))",
        display=r"\mathbb E\big[(gg^\top)\otimes(\bar a\bar a^\top)\big]"
                r"=\sum_{k,l}p_k q_l\,(g^{(l)}g^{(l)\top})\otimes(\bar a^{(k)}\bar a^{(k)\top})"
                r"=\mathbb E[gg^\top]\otimes\mathbb E[\bar a\bar a^\top]=G\otimes A"))
    # N = 1: abar does not depend on the target y, so any expectation over y factorises exactly.
    pi1, pi2 = sp.symbols("pi_1 pi_2")
    probs = (pi1, pi2, 1 - pi1 - pi2)
    nl, nr = [], []
    for n_in, n_out in LAYER_SIZES:
        abar = sp.Matrix([sp.Symbol(f"a_{j + 1}") for j in range(n_in)] + [1])
        gy = [matrix(f"g{y}", n_out, 1) for y in (1, 2, 3)]
        exact_block = sum((pr * kron(g_ * g_.T, abar * abar.T) for pr, g_ in zip(probs, gy)),
                          sp.zeros(n_out * (n_in + 1), n_out * (n_in + 1)))
        G = sum((pr * g_ * g_.T for pr, g_ in zip(probs, gy)), sp.zeros(n_out, n_out))
        nl.append(exact_block)
        nr.append(kron(G, abar * abar.T))
    steps.append(Step.equal(
        "N = 1, every (in, out) ∈ {1, 2, 3}²: ā does not depend on the target y (here three outcomes "
        "with probabilities π₁, π₂, 1−π₁−π₂, the pre-activation gradient g⁽ʸ⁾ arbitrary), so the exact "
        "block E_y[(g gᵀ) ⊗ (ā āᵀ)] equals the K-FAC block G ⊗ A with A = ā āᵀ, G = E_y[g gᵀ] — "
        "for any G-type: exact, Monte-Carlo or empirical (a point mass on the label)",
        nl, nr, justification="linearity of the expectation in y, entry-wise",
        display=r"\mathbb E_y\big[(g_yg_y^\top)\otimes(\bar a\bar a^\top)\big]"
                r"=\mathbb E_y[g_yg_y^\top]\otimes\bar a\bar a^\top=G\otimes A\quad(N=1)"))
    pl, pr_ = _parameter_order_steps()
    steps.append(Step.equal(
        "every (in, out) ∈ {1, 2, 3}²: permuted from [W b] row-major order to fisherlab's parameter "
        "order (W row-major, then b), the block G ⊗ A with A = [[A_aa, A_a1], [A_1a, A_11]] is "
        "[[G⊗A_aa, G⊗A_a1], [G⊗A_1a, A_11 G]]", pl, pr_,
        justification="explicit permutation matrix applied entry-wise",
        display=r"P\,(G\otimes A)\,P^\top=\begin{pmatrix}G\otimes A_{aa}&G\otimes A_{a1}\\"
                r"G\otimes A_{1a}&A_{11}\,G\end{pmatrix}"))
    return steps


def _witness_L():
    u = sp.symbols("u_1:3")
    return {L: sp.Lambda(u, u[0] ** 3 + 2 * u[0] * u[1] ** 2 + u[1])}


def _swapped_order():
    W, abar, s, loss, g = dense_layer(2, 2)
    rg = rvec(_grad(loss, W))
    return Step.equal("in [W b] row-major order the gradient outer product is (ā āᵀ) ⊗ (g gᵀ) "
                      "(factors swapped: A ⊗ G)", rg * rg.T, kron(abar * abar.T, g * g.T),
                      justification="false variant")


def _dependent_factorisation():
    p = sp.Symbol("p")
    abars = [sp.Matrix([sp.Symbol(f"a{k}_1"), 1]) for k in (1, 2)]
    gs = [matrix(f"g{k}", 1, 1) for k in (1, 2)]
    pr = (p, 1 - p)
    joint = sum((pr[k] * kron(gs[k] * gs[k].T, abars[k] * abars[k].T) for k in range(2)), sp.zeros(2, 2))
    A = sum((pr[k] * abars[k] * abars[k].T for k in range(2)), sp.zeros(2, 2))
    G = sum((pr[k] * gs[k] * gs[k].T for k in range(2)), sp.zeros(1, 1))
    return Step.equal("E[(g gᵀ) ⊗ (ā āᵀ)] = E[g gᵀ] ⊗ E[ā āᵀ] when ā and g are dependent "
                      "(g⁽ᵏ⁾ always occurs with ā⁽ᵏ⁾)", joint, kron(G, A), justification="false variant")


STRUCTURE = LegacyDerivation(
    name="kfac_structure.dense_layer",
    title="Kronecker structure of a dense layer's gradient and curvature block",
    statement=r"\nabla_{\bar W}\ell=g\,\bar a^\top,\quad "
              r"\operatorname{rvec}(\nabla_{\bar W}\ell)=g\otimes\bar a,"
              r"\quad \operatorname{vec}(\nabla_{\bar W}\ell)=\bar a\otimes g,\quad "
              r"\mathbb E[(gg^\top)\otimes(\bar a\bar a^\top)]\overset{\text{indep.}}{=}G\otimes A",
    tier=Tier.AB,
    scope="A: one generic entry in general dimension (IndexedBase/Sum, index-range and chain-rule "
          "axioms); B: every layer size (in, out) ∈ {1, 2, 3}², all weights and inputs symbolic; "
          "the downstream "
          "loss L is a generic (undefined) function of the pre-activations; finite-support "
          "distributions (two values each) for the independence step",
    build=_steps,
    negative_controls=[
        NegativeControl("kronecker_order_swapped",
                        "row-major block with the factors swapped (A ⊗ G instead of G ⊗ A)",
                        _swapped_order, witness=_witness_L),
        NegativeControl("independence_dropped",
                        "the K-FAC factorisation claimed exact when ā and g are dependent",
                        _dependent_factorisation),
    ],
    assumptions=[r"dense layer $s = Wa + b = \bar W\bar a$, $\bar W=[W\ b]$, $\bar a = [a;1]$",
                 r"$\ell = L(s)$ for an arbitrary differentiable $L$ (the downstream network, the "
                 r"likelihood and the target)",
                 r"for $G\otimes A$ at $N > 1$: $\bar a$ independent of $g$ (K-FAC's assumption)"],
    axioms={"index ranges": r"$0\le i\le m-1$ and $0\le l\le n$ for an entry $\bar W_{il}$ of the "
                            r"$m\times(n+1)$ augmented weight (selects the Piecewise branch SymPy returns)",
            "chain rule": r"$\partial L(s_0,\dots,s_{m-1})/\partial\bar W_{il} = \sum_k g_k\,"
                          r"\partial s_k/\partial\bar W_{il}$ with $g_k = \partial L/\partial s_k$ "
                          r"(general $m$; at fixed sizes SymPy applies it itself, tier B)"},
    references=[REF_JOHNSON_2017 + " and eqs. (28), (34)-(37)",
                REF_GROSSE_2022 + "; slides 'K-FAC: Modeling the Pseudo-Gradients'", REF_MARTENS_GROSSE_2015 + " §3"],
    numeric=["fisherlab.kfac.factors", "fisherlab.kfac.matrix"],
    notes="Seed 003 eq. (28) writes the gradient as $\\bar a_k g_k^\\top$ (the transpose of "
          "$\\nabla_{\\bar W}\\ell$ for $s = \\bar W\\bar a$); its eq. (29) "
          "$\\operatorname{vec}(\\nabla)=\\bar a\\otimes g$ is right for the column-major vec of "
          "$g\\bar a^\\top$, as checked above. fisherlab flattens row-major, hence its blocks are "
          "$G\\otimes A$ (CONVENTIONS.md § K-FAC); the `kronecker_order_swapped` control is the "
          "column-major order used in row-major coordinates.",
)

DERIVATIONS = [STRUCTURE]
