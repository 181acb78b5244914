r"""Kronecker-product algebra used by K-FAC, proved entry by entry.

Every Kronecker product here is built **entry-wise** from explicit symbolic
entries with the definition (seed 003_377ac27c40267f84.txt eq. (30); Van Loan 2000)

.. math:: (A \otimes B)_{i p + k,\ j q + l} = A_{ij} B_{kl}
          \qquad (A \in \mathbb R^{m\times n},\ B \in \mathbb R^{p \times q}),

never by SymPy's ``KroneckerProduct``/``MatrixSymbol`` rewrite rules (those
restate the identities instead of proving them). Tier B chains check every
size pair up to the stated bound with fully symbolic entries; the tier A
chains work on one generic entry in general dimension with ``IndexedBase``
and record the index bookkeeping (the bijection ``r = i p + k``, exchanging
finite sums) as axioms.

Vectorisations: ``vec`` stacks columns (column-major, the seeds' convention);
``rvec`` stacks rows (row-major, what ``jax.flatten_util.ravel_pytree`` and
``jnp.reshape`` do, hence the convention of fisherlab's parameter order).

The helpers (``kron``, ``vec``, ``rvec``, ``sym_matrix``, ``cayley_orthogonal``,
...) are shared by the other K-FAC proof modules.
"""

from __future__ import annotations

import itertools

import sympy as sp

from fisherlab.symbolic import Derivation, NegativeControl, Step, Tier

__all__ = ["DERIVATIONS", "kron", "vec", "rvec", "sym_matrix", "sym_symmetric",
           "lower_triangular", "cayley_orthogonal", "cayley_parts", "SIZES"]

#: Square factor sizes checked exhaustively by the tier-B chains: every pair (n, m), n, m <= 3.
SIZES = tuple(itertools.product((1, 2, 3), repeat=2))

REF_SEED_003 = ("seed 003_377ac27c40267f84.txt (M. Johnson, 'Natural gradients and K-FAC', 2017) "
                "§8, eqs. (29)-(38)")
REF_SEED_004 = ("seed 004_bb4f7e8c8840a6b5.txt (R. Grosse, CSC2541 Lecture 4, 2022), "
                "slides 'K-FAC: Kronecker Product'")
REF_VAN_LOAN = ("C. F. Van Loan, 'The ubiquitous Kronecker product', J. Comput. Appl. Math. "
                "123 (2000) 85-100")
REF_MG2015 = ("J. Martens and R. Grosse, 'Optimizing neural networks with Kronecker-factored "
              "approximate curvature', ICML 2015")


# --------------------------------------------------------------------------- shared helpers


def sym_matrix(name: str, rows: int, cols: int) -> sp.Matrix:
    """A ``rows x cols`` matrix of independent symbols ``name_ij`` (1-based)."""
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def sym_symmetric(name: str, n: int) -> sp.Matrix:
    """A symmetric ``n x n`` matrix with independent symbols on and above the diagonal."""
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{min(i, j) + 1}{max(i, j) + 1}", real=True))


def lower_triangular(name: str, n: int) -> sp.Matrix:
    """A lower-triangular ``n x n`` matrix of independent symbols (a Cholesky factor)."""
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True) if j <= i else 0)


def kron(A: sp.Matrix, B: sp.Matrix) -> sp.Matrix:
    r"""``A (x) B`` built entry by entry: ``(A (x) B)[i p + k, j q + l] = A[i, j] B[k, l]``."""
    p, q = B.shape
    return sp.Matrix(A.rows * p, A.cols * q, lambda r, c: A[r // p, c // q] * B[r % p, c % q])


def vec(X: sp.Matrix) -> sp.Matrix:
    """Column-major vectorisation (stack the columns): ``vec(X)[j rows + i] = X[i, j]``."""
    return sp.Matrix(X.rows * X.cols, 1, lambda r, _: X[r % X.rows, r // X.rows])


def rvec(X: sp.Matrix) -> sp.Matrix:
    """Row-major vectorisation (stack the rows): ``rvec(X)[i cols + j] = X[i, j]``."""
    return sp.Matrix(X.rows * X.cols, 1, lambda r, _: X[r // X.cols, r % X.cols])


def cayley_parts(n: int, name: str = "t") -> tuple[sp.Matrix, sp.Expr, tuple[sp.Symbol, ...]]:
    r"""Numerator and denominator of the Cayley transform ``Q = N / d``.

    ``S`` is skew-symmetric with free entries ``name_1, ...`` above the diagonal,
    ``N = (I - S) adj(I + S)`` (polynomial entries) and ``d = det(I + S)``
    (``1 + sum t^2`` for ``n <= 3``, positive). ``Q^T Q = I`` is the polynomial
    identity ``N^T N = d^2 I``. Returns ``(N, d, parameters)``.
    """
    params = []
    S = sp.zeros(n, n)
    for i in range(n):
        for j in range(i + 1, n):
            t = sp.Symbol(f"{name}_{len(params) + 1}", real=True)
            params.append(t)
            S[i, j], S[j, i] = t, -t
    I = sp.eye(n)
    N = ((I - S) * (I + S).adjugate()).applyfunc(sp.expand)
    return N, sp.expand((I + S).det()), tuple(params)


def cayley_orthogonal(n: int, name: str = "t") -> tuple[sp.Matrix, tuple[sp.Symbol, ...]]:
    r"""An orthogonal ``n x n`` matrix with rational entries, by the Cayley transform.

    ``Q = (I - S)(I + S)^{-1}`` for the skew-symmetric ``S`` with free entries
    ``name_1, ...`` above the diagonal; ``Q`` has rational entries (no square
    roots) and ``Q^T Q = I`` holds identically (checked where it is used, via
    :func:`cayley_parts`). It parametrises every orthogonal matrix without
    eigenvalue -1. Returns ``(Q, parameters)``.
    """
    N, d, params = cayley_parts(n, name)
    return N / d, params


def _sizes_text(sizes=SIZES) -> str:
    return ", ".join(f"{n}x{n} (x) {m}x{m}" for n, m in sizes)


# --------------------------------------------------------------------------- mixed product


def _mixed_product_steps():
    steps = []
    # Tier A: one generic entry, general dimension.
    A, B, C, D = (sp.IndexedBase(s) for s in "ABCD")
    i, j, k, l, s, t = sp.symbols("i j k l s t", integer=True, nonnegative=True)
    n, q = sp.symbols("n q", integer=True, positive=True)
    # Entry ((i,k),(j,l)) of (A(x)B)(C(x)D): sum over the middle index r = s q + t of
    # (A(x)B)[(i,k),(s,t)] (C(x)D)[(s,t),(j,l)], each factor by the entry definition.
    summand_lhs = (A[i, s] * B[k, t]) * (C[s, j] * D[t, l])
    summand_rhs = (A[i, s] * C[s, j]) * (B[k, t] * D[t, l])
    steps.append(Step.equal(
        "General dimension, one generic entry: the summand of ((A⊗B)(C⊗D))[(i,k),(j,l)] over the "
        "middle index r = s q + t equals the summand of (AC)[i,j] (BD)[k,l] over (s, t)",
        summand_lhs, summand_rhs,
        justification="entry definition (A⊗B)[(i,k),(s,t)] = A[i,s] B[k,t]; the sum over r = s q + t "
                      "is the double sum over (s, t) (axiom 'index bijection'), and a product of "
                      "two finite sums is the double sum of products (axiom 'distributivity')",
        display=r"\sum_{r=0}^{nq-1}(A\otimes B)_{(i,k),r}(C\otimes D)_{r,(j,l)}"
                r"=\sum_{s=0}^{n-1}\sum_{t=0}^{q-1}A_{is}B_{kt}C_{sj}D_{tl}"
                r"=\Big(\sum_s A_{is}C_{sj}\Big)\Big(\sum_t B_{kt}D_{tl}\Big)"
                r"=(AC)_{ij}(BD)_{kl}=(AC\otimes BD)_{(i,k),(j,l)}"))
    # Tier B: every square size pair up to 3x3 (x) 3x3 with fully symbolic entries.
    for nn, mm in SIZES:
        A_, C_ = sym_matrix("a", nn, nn), sym_matrix("c", nn, nn)
        B_, D_ = sym_matrix("b", mm, mm), sym_matrix("d", mm, mm)
        steps.append(Step.equal(
            f"{nn}x{nn} ⊗ {mm}x{mm}, every entry symbolic: (A⊗B)(C⊗D) = (AC)⊗(BD)",
            kron(A_, B_) * kron(C_, D_), kron(A_ * C_, B_ * D_),
            justification="entry-wise Kronecker products of explicit matrices, expanded",
            display=rf"(A\otimes B)(C\otimes D)=(AC)\otimes(BD),\quad A,C\in\mathbb R^{{{nn}\times{nn}}},"
                    rf"\ B,D\in\mathbb R^{{{mm}\times{mm}}}"))
    return steps


def _mixed_product_swapped():
    A, C = sym_matrix("a", 2, 2), sym_matrix("c", 2, 2)
    B, D = sym_matrix("b", 2, 2), sym_matrix("d", 2, 2)
    return Step.equal("(A⊗B)(C⊗D) = (CA)⊗(DB) (products taken in the wrong order)",
                      kron(A, B) * kron(C, D), kron(C * A, D * B),
                      justification="false variant")


MIXED_PRODUCT = Derivation(
    name="kronecker.mixed_product",
    title="Kronecker mixed-product rule",
    statement=r"(A\otimes B)(C\otimes D) = (AC)\otimes(BD)",
    tier=Tier.AB,
    scope="A: one generic entry in general dimension (IndexedBase, index axioms); "
          "B: every square size pair n, m ∈ {1, 2, 3} (A, C n×n; B, D m×m), all entries symbolic",
    build=_mixed_product_steps,
    negative_controls=[NegativeControl(
        "order_swapped", "the products inside the factors taken in the wrong order: (CA)⊗(DB)",
        _mixed_product_swapped)],
    assumptions=[r"$A, C \in \mathbb R^{n\times n}$, $B, D \in \mathbb R^{m\times m}$ "
                 r"(tier A: $A\in\mathbb R^{m\times n}$, $C\in\mathbb R^{n\times k}$, "
                 r"$B\in\mathbb R^{p\times q}$, $D\in\mathbb R^{q\times l}$)"],
    axioms={"index bijection": r"$r \leftrightarrow (s, t)$ with $r = s q + t$, $0\le s<n$, $0\le t<q$, "
                               r"is a bijection onto $0 \le r < nq$, so $\sum_{r=0}^{nq-1} h(r) "
                               r"= \sum_{s=0}^{n-1}\sum_{t=0}^{q-1} h(sq+t)$",
            "distributivity": r"$(\sum_s x_s)(\sum_t y_t) = \sum_s\sum_t x_s y_t$ for finite sums"},
    references=[REF_SEED_004 + " ('Matrix multiplication')", REF_SEED_003, REF_VAN_LOAN],
    numeric=["fisherlab.kfac.solve", "fisherlab.kfac.matrix"],
)


# --------------------------------------------------------------------------- transpose


def _transpose_steps():
    lhs, rhs = [], []
    for m, n, p, q in itertools.product((1, 2, 3), repeat=4):
        A, B = sym_matrix("a", m, n), sym_matrix("b", p, q)
        lhs.append(kron(A, B).T)
        rhs.append(kron(A.T, B.T))
    return [
        Step.equal("Every shape A m×n, B p×q with m, n, p, q ∈ {1, 2, 3} (81 shape pairs), all entries "
                   "symbolic: (A⊗B)ᵀ = Aᵀ⊗Bᵀ", lhs, rhs,
                   justification="entry-wise Kronecker products, compared entry by entry",
                   display=r"(A\otimes B)^\top = A^\top\otimes B^\top"),
    ]


def _transpose_swapped():
    A, B = sym_matrix("a", 2, 2), sym_matrix("b", 2, 2)
    return Step.equal("(A⊗B)ᵀ = Bᵀ⊗Aᵀ (the ordinary-product rule)", kron(A, B).T, kron(B.T, A.T),
                      justification="false variant")


TRANSPOSE = Derivation(
    name="kronecker.transpose",
    title="Transpose of a Kronecker product",
    statement=r"(A\otimes B)^\top = A^\top \otimes B^\top",
    tier=Tier.B,
    scope="every shape A m×n, B p×q with m, n, p, q ∈ {1, 2, 3} (81 shape pairs), all entries symbolic",
    build=_transpose_steps,
    negative_controls=[NegativeControl(
        "order_reversed", "order reversed as for ordinary products: (A⊗B)ᵀ = Bᵀ⊗Aᵀ", _transpose_swapped)],
    assumptions=[r"$A\in\mathbb R^{m\times n}$, $B\in\mathbb R^{p\times q}$"],
    references=[REF_SEED_004 + " ('Matrix transpose')", REF_VAN_LOAN],
    numeric=["fisherlab.kfac.matrix"],
)


# --------------------------------------------------------------------------- inverse


def _inverse_steps():
    steps = []
    for n in (1, 2, 3):
        A = sym_matrix("a", n, n)
        steps.append(Step.equal(
            f"{n}x{n}: A · (adj A / det A) = I, so A⁻¹ := adj(A)/det(A) is the inverse (det A ≠ 0)",
            A * (A.adjugate() / A.det()), sp.eye(n),
            justification="cofactor expansion (explicit adjugate), rational entries cancelled",
            display=r"A\,\frac{\operatorname{adj}A}{\det A}=I_{%d}" % n))
    for n, m in SIZES:
        A, B = sym_matrix("a", n, n), sym_matrix("b", m, m)
        dA, dB = A.det(), B.det()
        if n * m <= 6:
            steps.append(Step.equal(
                f"{n}x{n} ⊗ {m}x{m}: (A⊗B)(adj A ⊗ adj B) = det(A) det(B) I (a polynomial identity; "
                "no inverse is formed)",
                kron(A, B) * kron(A.adjugate(), B.adjugate()), dA * dB * sp.eye(n * m),
                justification="entry-wise Kronecker products of explicit matrices, expanded",
                display=r"(A\otimes B)(\operatorname{adj}A\otimes\operatorname{adj}B)"
                        r"=\det A\,\det B\;I_{%d}" % (n * m)))
        else:  # 3x3 (x) 3x3: the 9x9 product expanded directly takes 1.5-3 s; use the mixed product
            steps.append(Step.equal(
                f"{n}x{n} ⊗ {m}x{m}: (A⊗B)(adj A ⊗ adj B) = (A adj A)⊗(B adj B) (mixed-product rule, "
                "kronecker.mixed_product, verified at 3x3⊗3x3 for general C, D) = det(A) det(B) I",
                kron(A * A.adjugate(), B * B.adjugate()), dA * dB * sp.eye(n * m),
                justification="kronecker.mixed_product with C = adj A, D = adj B; then the "
                              "Kronecker product of A adj A and B adj B, entry-wise, expanded",
                display=r"(A\otimes B)(\operatorname{adj}A\otimes\operatorname{adj}B)"
                        r"=(A\operatorname{adj}A)\otimes(B\operatorname{adj}B)"
                        r"=\det A\,\det B\;I_{%d}" % (n * m)))
        steps.append(Step.equal(
            f"{n}x{n} ⊗ {m}x{m}: A⁻¹⊗B⁻¹ = (adj A ⊗ adj B)/(det A det B), hence "
            "(A⊗B)(A⁻¹⊗B⁻¹) = I and, the matrices being square, (A⊗B)⁻¹ = A⁻¹⊗B⁻¹",
            kron(A.adjugate() / dA, B.adjugate() / dB), kron(A.adjugate(), B.adjugate()) / (dA * dB),
            justification="entry-wise: (adj A/det A)[i,j] (adj B/det B)[k,l] = "
                          "adj A[i,j] adj B[k,l]/(det A det B); "
                          "with the previous step the product is det A det B I/(det A det B) = I",
            display=r"A^{-1}\otimes B^{-1}=\frac{\operatorname{adj}A"
                    r"\otimes\operatorname{adj}B}{\det A\,\det B}"
                    r"\ \Rightarrow\ (A\otimes B)(A^{-1}\otimes B^{-1})=I"))
    # The rational form checked directly (cancel) at the smaller sizes.
    for n, m in ((2, 2),):
        A, B = sym_matrix("a", n, n), sym_matrix("b", m, m)
        steps.append(Step.equal(
            f"{n}x{n} ⊗ {m}x{m}, directly with rational entries: (A⊗B)(A⁻¹⊗B⁻¹) = I",
            kron(A, B) * kron(A.adjugate() / A.det(), B.adjugate() / B.det()), sp.eye(n * m),
            justification="entry-wise product, each entry cancelled to exactly 0 or 1",
            display=r"(A\otimes B)(A^{-1}\otimes B^{-1}) = I_{%d}" % (n * m)))
    return steps


def _inverse_swapped():
    A, B = sym_matrix("a", 2, 2), sym_matrix("b", 2, 2)
    return Step.equal("(A⊗B)(B⁻¹⊗A⁻¹) = I (factors of the inverse swapped)",
                      kron(A, B) * kron(B.adjugate() / B.det(), A.adjugate() / A.det()), sp.eye(4),
                      justification="false variant")


INVERSE = Derivation(
    name="kronecker.inverse",
    title="Inverse of a Kronecker product",
    statement=r"(A\otimes B)^{-1} = A^{-1}\otimes B^{-1}\qquad(\det A\neq0,\ \det B\neq0)",
    tier=Tier.B,
    scope="every square size pair n, m ∈ {1, 2, 3}, all entries symbolic (inverse checked as a "
          "product equal to I, never by an inverse rewrite rule; 3x3⊗3x3 through "
          "kronecker.mixed_product)",
    build=_inverse_steps,
    negative_controls=[NegativeControl(
        "factors_swapped", "the inverse's factors swapped: (A⊗B)⁻¹ = B⁻¹⊗A⁻¹", _inverse_swapped)],
    assumptions=[r"$A\in\mathbb R^{n\times n}$, $B\in\mathbb R^{m\times m}$ invertible"],
    references=[REF_SEED_003 + " eq. (38)", REF_SEED_004 + " ('Matrix inversion')", REF_VAN_LOAN],
    numeric=["fisherlab.kfac.solve"],
    notes="The identity is checked without forming any inverse of the Kronecker product: the "
          "polynomial identity $(A\\otimes B)(\\operatorname{adj}A\\otimes\\operatorname{adj}B) = "
          "\\det A\\det B\\,I$ is expanded to zero at every size pair (at 3x3⊗3x3 through the "
          "mixed-product rule, proved in kronecker.mixed_product), and the rational form "
          "$(A\\otimes B)(A^{-1}\\otimes B^{-1}) = I$ is additionally cancelled to $I$ directly at "
          "2x2⊗2x2 (directly cancelling 3x3⊗3x3 takes ~9 s, the polynomial "
          "form 1.5-3 s on 2 shared cores).",
)


# --------------------------------------------------------------------------- vec identities


def _vec_steps():
    steps = []
    A, B, X = sp.IndexedBase("A"), sp.IndexedBase("B"), sp.IndexedBase("X")
    i, j, k, l = sp.symbols("i j k l", integer=True, nonnegative=True)
    # Tier A, column-major: row r = i p + k of (A⊗B) vec(X), column index c = j q + l,
    # vec(X)[j q + l] = X[l, j]; vec(B X A^T)[i p + k] = (B X A^T)[k, i] = sum_l sum_j B[k,l] X[l,j] A[i,j].
    steps.append(Step.equal(
        "General dimension, column-major (A m×n, B p×q, X q×n): the summand over c = j q + l of "
        "((A⊗B) vec X)[i p + k] equals the summand over (l, j) of (B X Aᵀ)[k, i] = vec(B X Aᵀ)[i p + k]",
        (A[i, j] * B[k, l]) * X[l, j], B[k, l] * (X[l, j] * A[i, j]),
        justification="entry definitions (A⊗B)[(i,k),(j,l)] = A[i,j] B[k,l], vec(X)[j q + l] = X[l, j], "
                      "(B X Aᵀ)[k,i] = Σ_l B[k,l] Σ_j X[l,j] A[i,j]; axioms 'index bijection' and "
                      "'finite sums commute'",
        display=r"\big((A\otimes B)\operatorname{vec}X\big)_{ip+k}=\sum_{j,l}A_{ij}B_{kl}X_{lj}"
                r"=\sum_l B_{kl}\sum_j X_{lj}A_{ij}=(BXA^\top)_{ki}=\operatorname{vec}(BXA^\top)_{ip+k}"))
    steps.append(Step.equal(
        "General dimension, row-major (A m×n, B p×q, X n×q): the summand over c = j q + l of "
        "((A⊗B) rvec X)[i p + k] equals the summand over (j, l) of (A X Bᵀ)[i, k] = rvec(A X Bᵀ)[i p + k]",
        (A[i, j] * B[k, l]) * X[j, l], A[i, j] * (X[j, l] * B[k, l]),
        justification="entry definitions, rvec(X)[j q + l] = X[j, l]; axioms 'index bijection' and "
                      "'finite sums commute'",
        display=r"\big((A\otimes B)\operatorname{rvec}X\big)_{ip+k}=\sum_{j,l}A_{ij}B_{kl}X_{jl}"
                r"=\sum_j A_{ij}\sum_l X_{jl}B_{kl}=(AXB^\top)_{ik}=\operatorname{rvec}(AXB^\top)_{ip+k}"))
    lc, rc, lr, rr = [], [], [], []
    for m, n, p, q in itertools.product((1, 2, 3), repeat=4):
        A_, B_ = sym_matrix("a", m, n), sym_matrix("b", p, q)
        Xc, Xr = sym_matrix("x", q, n), sym_matrix("x", n, q)
        lc.append(kron(A_, B_) * vec(Xc))
        rc.append(vec(B_ * Xc * A_.T))
        lr.append(kron(A_, B_) * rvec(Xr))
        rr.append(rvec(A_ * Xr * B_.T))
    steps.append(Step.equal(
        "Column-major, every shape with m, n, p, q ∈ {1, 2, 3} (81 shapes), all entries symbolic: "
        "(A⊗B) vec(X) = vec(B X Aᵀ)", lc, rc,
        justification="entry-wise Kronecker product and column-stacking, expanded",
        display=r"(A\otimes B)\operatorname{vec}(X)=\operatorname{vec}(BXA^\top)"))
    steps.append(Step.equal(
        "Row-major, every shape with m, n, p, q ∈ {1, 2, 3} (81 shapes), all entries symbolic: "
        "(A⊗B) rvec(X) = rvec(A X Bᵀ)", lr, rr,
        justification="entry-wise Kronecker product and row-stacking, expanded",
        display=r"(A\otimes B)\operatorname{rvec}(X)=\operatorname{rvec}(AXB^\top)"))
    # The form used by the seeds for an outer product: vec(u v^T) = v (x) u, rvec(u v^T) = u (x) v.
    lo, ro = [], []
    for a, b in itertools.product((1, 2, 3), repeat=2):
        u, v = sym_matrix("u", a, 1), sym_matrix("v", b, 1)
        lo += [vec(u * v.T), rvec(u * v.T)]
        ro += [kron(v, u), kron(u, v)]
    steps.append(Step.equal(
        "Outer products, lengths 1..3: vec(u vᵀ) = v⊗u and rvec(u vᵀ) = u⊗v", lo, ro,
        justification="entry-wise",
        display=r"\operatorname{vec}(uv^\top)=v\otimes u,\qquad\operatorname{rvec}(uv^\top)=u\otimes v"))
    return steps


def _vec_classic_swap():
    A, B, X = sym_matrix("a", 2, 2), sym_matrix("b", 2, 2), sym_matrix("x", 2, 2)
    return Step.equal("(A⊗B) vec(X) = vec(A X Bᵀ) with column-major vec (the classic swap)",
                      kron(A, B) * vec(X), vec(A * X * B.T), justification="false variant")


def _rvec_swap():
    A, B, X = sym_matrix("a", 2, 2), sym_matrix("b", 2, 2), sym_matrix("x", 2, 2)
    return Step.equal("(A⊗B) rvec(X) = rvec(B X Aᵀ) with row-major vec",
                      kron(A, B) * rvec(X), rvec(B * X * A.T), justification="false variant")


VEC = Derivation(
    name="kronecker.vec",
    title="Kronecker products acting on vectorised matrices (column- and row-major)",
    statement=r"(A\otimes B)\operatorname{vec}(X)=\operatorname{vec}(BXA^\top),\qquad "
              r"(A\otimes B)\operatorname{rvec}(X)=\operatorname{rvec}(AXB^\top)",
    tier=Tier.AB,
    scope="A: one generic entry in general dimension (IndexedBase, index axioms); "
          "B: every shape with m, n, p, q ∈ {1, 2, 3} (81 shapes), all entries symbolic, both orders",
    build=_vec_steps,
    negative_controls=[
        NegativeControl("cvec_classic_swap",
                        "column-major vec with the row-major formula: (A⊗B) vec X = vec(A X Bᵀ)",
                        _vec_classic_swap),
        NegativeControl("rvec_swap", "row-major vec with the column-major formula: "
                        "(A⊗B) rvec X = rvec(B X Aᵀ)", _rvec_swap),
    ],
    assumptions=[r"$A\in\mathbb R^{m\times n}$, $B\in\mathbb R^{p\times q}$; $X\in\mathbb R^{q\times n}$ "
                 r"for vec, $X\in\mathbb R^{n\times q}$ for rvec",
                 r"$\operatorname{vec}$ stacks columns, $\operatorname{rvec}$ stacks rows "
                 r"($\operatorname{rvec}(X) = \operatorname{vec}(X^\top)$, the order of "
                 r"`ravel_pytree`)"],
    axioms={"index bijection": r"$c \leftrightarrow (j, l)$, $c = jq + l$, $0\le j<n$, $0\le l<q$, is a "
                               r"bijection onto $0\le c<nq$ (likewise $r = ip + k$)",
            "finite sums commute": r"$\sum_j\sum_l h_{jl} = \sum_l\sum_j h_{jl}$ and constants move "
                                   r"into finite sums"},
    references=[REF_SEED_003 + " eq. (38) (written there for the row-major convention)",
                REF_SEED_004 + " ('vec(AXB) = (Bᵀ⊗A) vec(X)', 'vec(u vᵀ) = v⊗u')", REF_VAN_LOAN],
    numeric=["fisherlab.kfac.solve"],
    notes="Seed 003 eq. (38) states $(A\\otimes B)\\operatorname{vec}(C)=\\operatorname{vec}(ACB^\\top)$: "
          "that is the **row-major** identity; with column-stacking vec it is the classic swap that "
          "the control `cvec_classic_swap` rejects. fisherlab flattens parameters row-major, so a "
          "K-FAC block $G\\otimes A$ acts on $\\operatorname{rvec}(V)$ as $\\operatorname{rvec}(G V A)$ "
          "(symmetric factors).",
)


# --------------------------------------------------------------------------- eigenpairs


def _eigen_matrix(name: str, n: int, u: sp.Matrix, lam: sp.Symbol) -> sp.Matrix:
    """A general n x n matrix with ``M u = lam u``: its first column solved from the hypothesis.

    Requires ``u[0] != 0`` (any eigenvector has a nonzero entry; permute it first).
    """
    M = sym_matrix(name, n, n)
    rest = sum((M[:, j] * u[j] for j in range(1, n)), sp.zeros(n, 1))
    col0 = (lam * u - rest) / u[0]
    return sp.Matrix.hstack(col0, M[:, 1:])


def _eigen_steps():
    lam, mu = sp.symbols("lambda mu")
    hyp_l, hyp_r, kl, kr = [], [], [], []
    for n, m in SIZES:
        u, v = sym_matrix("u", n, 1), sym_matrix("v", m, 1)
        A, B = _eigen_matrix("a", n, u, lam), _eigen_matrix("b", m, v, mu)
        hyp_l += [A * u, B * v]
        hyp_r += [lam * u, mu * v]
        kl.append(kron(A, B) * kron(u, v))
        kr.append(lam * mu * kron(u, v))
    return [
        Step.equal("Hypotheses hold for the parametrised factors: A u = λ u and B v = μ v "
                   "(every n, m ∈ {1, 2, 3})", hyp_l, hyp_r,
                   justification="the first column of A is solved from A u = λ u (u₁ ≠ 0); all other "
                                 "entries stay free symbols, so A is the general matrix with eigenpair "
                                 "(λ, u); likewise B",
                   display=r"A u=\lambda u,\qquad Bv=\mu v"),
        Step.equal("Every square size pair n, m ∈ {1, 2, 3}: (A⊗B)(u⊗v) = λμ (u⊗v)", kl, kr,
                   justification="entry-wise Kronecker products, rational entries cancelled",
                   display=r"(A\otimes B)(u\otimes v)=(Au)\otimes(Bv)=\lambda\mu\,(u\otimes v)"),
    ]


def _eigen_sum():
    lam, mu = sp.symbols("lambda mu")
    u, v = sym_matrix("u", 2, 1), sym_matrix("v", 2, 1)
    A, B = _eigen_matrix("a", 2, u, lam), _eigen_matrix("b", 2, v, mu)
    return Step.equal("(A⊗B)(u⊗v) = (λ + μ)(u⊗v) (the Kronecker-sum eigenvalue)",
                      kron(A, B) * kron(u, v), (lam + mu) * kron(u, v), justification="false variant")


EIGEN = Derivation(
    name="kronecker.eigenpairs",
    title="Eigenpairs of a Kronecker product",
    statement=r"Au=\lambda u,\ Bv=\mu v\ \Longrightarrow\ (A\otimes B)(u\otimes v)=\lambda\mu\,(u\otimes v)",
    tier=Tier.B,
    scope="every square size pair n, m ∈ {1, 2, 3}; A, B general matrices with the given eigenpair "
          "(all entries but one column free symbols), u, v, λ, μ symbolic",
    build=_eigen_steps,
    negative_controls=[NegativeControl(
        "kronecker_sum_eigenvalue", "eigenvalue λ + μ (that of the Kronecker sum A⊗I + I⊗B)", _eigen_sum)],
    assumptions=[r"$Au = \lambda u$ and $Bv = \mu v$ with $u_1 \ne 0$, $v_1\ne0$ (reorder coordinates "
                 r"otherwise)"],
    references=[REF_SEED_004 + " (eigenvalues λᵢνⱼ, eigenvectors rᵢ⊗sⱼ)", REF_VAN_LOAN],
    numeric=["fisherlab.kfac.solve", "fisherlab.kfac.ekfac"],
)


# --------------------------------------------------------------------------- trace, det, Frobenius


def _ddet(M: sp.Matrix) -> sp.Expr:
    """Exact determinant by fraction-free elimination over the polynomial ring."""
    from sympy.polys.matrices import DomainMatrix

    dm = DomainMatrix.from_Matrix(M)
    return dm.domain.to_sympy(dm.det())


def _tdf_steps():
    tl, tr, fl, fr = [], [], [], []
    for n, m in SIZES:
        A, B = sym_matrix("a", n, n), sym_matrix("b", m, m)
        K = kron(A, B)
        tl.append(K.trace())
        tr.append(A.trace() * B.trace())
        fl.append(sum(e ** 2 for e in K))
        fr.append(sum(e ** 2 for e in A) * sum(e ** 2 for e in B))
    steps = [
        Step.equal("Every n, m ∈ {1, 2, 3}: tr(A⊗B) = tr(A) tr(B)", tl, tr,
                   justification="entry-wise diagonal of the explicit Kronecker product",
                   display=r"\operatorname{tr}(A\otimes B)=\operatorname{tr}A\,\operatorname{tr}B"),
        Step.equal("Every n, m ∈ {1, 2, 3}: ‖A⊗B‖_F² = ‖A‖_F² ‖B‖_F²", fl, fr,
                   justification="sum of squared entries, expanded",
                   display=r"\|A\otimes B\|_F^2=\|A\|_F^2\,\|B\|_F^2"),
    ]
    fac_l, fac_r, dl, dr = [], [], [], []
    for n, m in SIZES:
        A, B = sym_matrix("a", n, n), sym_matrix("b", m, m)
        fac_l.append(kron(A, B))
        fac_r.append(kron(A, sp.eye(m)) * kron(sp.eye(n), B))
        dl += [_ddet(kron(A, sp.eye(m))), _ddet(kron(sp.eye(n), B))]
        dr += [A.det() ** m, B.det() ** n]
    steps += [
        Step.equal("Every n, m ∈ {1, 2, 3}: A⊗B = (A⊗I_m)(I_n⊗B)", fac_l, fac_r,
                   justification="entry-wise product of explicit matrices",
                   display=r"A\otimes B=(A\otimes I_m)(I_n\otimes B)"),
        Step.equal("Every n, m ∈ {1, 2, 3}: det(A⊗I_m) = det(A)^m and det(I_n⊗B) = det(B)^n; with "
                   "det(XY) = det X det Y (axiom) this gives det(A⊗B) = det(A)^m det(B)^n", dl, dr,
                   justification="exact fraction-free determinants of the explicit nm×nm matrices "
                                 "(polynomial ring), expanded; then the axiom 'determinant is "
                                 "multiplicative' applied to the previous step",
                   display=r"\det(A\otimes B)=\det(A\otimes I_m)\det(I_n\otimes B)=(\det A)^m(\det B)^n"),
    ]
    # Directly, without the multiplicativity axiom, where the nm x nm determinant is cheap.
    direct = [(n, m) for n, m in SIZES if n * m <= 6]
    dl2, dr2 = [], []
    for n, m in direct:
        A, B = sym_matrix("a", n, n), sym_matrix("b", m, m)
        dl2.append(_ddet(kron(A, B)))
        dr2.append(A.det() ** m * B.det() ** n)
    steps.append(Step.equal(
        "Directly, every pair with n m ≤ 6 (all but 3x3⊗3x3): det(A⊗B) = det(A)^m det(B)^n",
        dl2, dr2, justification="exact fraction-free determinant of the explicit Kronecker product "
                                "(no axiom used); 3x3⊗3x3 directly takes ~40 s, so it rests on the "
                                "factorised form above",
        display=r"\det(A\otimes B)=(\det A)^m(\det B)^n"))
    return steps


def _det_naive():
    A, B = sym_matrix("a", 2, 2), sym_matrix("b", 2, 2)
    return Step.equal("det(A⊗B) = det(A) det(B)", _ddet(kron(A, B)), A.det() * B.det(),
                      justification="false variant")


def _det_exponents_swapped():
    A, B = sym_matrix("a", 2, 2), sym_matrix("b", 3, 3)
    return Step.equal("det(A⊗B) = det(A)^n det(B)^m for A n×n, B m×m (exponents swapped)",
                      _ddet(kron(A, B)), A.det() ** 2 * B.det() ** 3, justification="false variant")


def _trace_sum():
    A, B = sym_matrix("a", 2, 2), sym_matrix("b", 2, 2)
    return Step.equal("tr(A⊗B) = tr(A) + tr(B)", kron(A, B).trace(), A.trace() + B.trace(),
                      justification="false variant")


TRACE_DET_FROBENIUS = Derivation(
    name="kronecker.trace_det_frobenius",
    title="Trace, determinant and Frobenius norm of a Kronecker product",
    statement=r"\operatorname{tr}(A\otimes B)=\operatorname{tr}A\operatorname{tr}B,\quad "
              r"\det(A\otimes B)=(\det A)^m(\det B)^n,\quad \|A\otimes B\|_F=\|A\|_F\|B\|_F",
    tier=Tier.B,
    scope="every square size pair n, m ∈ {1, 2, 3}, all entries symbolic (det directly for nm ≤ 6; "
          "3x3⊗3x3 through A⊗B = (A⊗I)(I⊗B) and the multiplicativity axiom)",
    build=_tdf_steps,
    negative_controls=[
        NegativeControl("det_without_powers", "det(A⊗B) = det A det B (powers forgotten)", _det_naive),
        NegativeControl("det_exponents_swapped", "det(A⊗B) = det(A)^n det(B)^m with A n×n (2x2), "
                        "B m×m (3x3)", _det_exponents_swapped),
        NegativeControl("trace_additive", "tr(A⊗B) = tr A + tr B", _trace_sum),
    ],
    assumptions=[r"$A\in\mathbb R^{n\times n}$, $B\in\mathbb R^{m\times m}$"],
    axioms={"determinant is multiplicative": r"$\det(XY)=\det X\det Y$ (used only for 3x3⊗3x3; "
                                              r"the smaller pairs are also checked directly)"},
    references=[REF_SEED_004 + " (eigenvalues of A⊗B are the products λᵢνⱼ, whose sum and product "
                "give the trace and determinant)", REF_VAN_LOAN,
                REF_MG2015 + " §6.3 (traces of the factors in the π-damping rule)"],
    numeric=["fisherlab.kfac.solve"],
)


# --------------------------------------------------------------------------- PSD


def _psd_steps():
    fl, fr, ql, qr = [], [], [], []
    for n, m in SIZES:
        L, M = lower_triangular("l", n), lower_triangular("m", m)
        A, B = L * L.T, M * M.T
        K = kron(L, M)
        fl.append(kron(A, B))
        fr.append(K * K.T)
    steps = [Step.equal(
        "Every n, m ∈ {1, 2, 3}: with A = L Lᵀ and B = M Mᵀ, A⊗B = (L⊗M)(L⊗M)ᵀ", fl, fr,
        justification="entry-wise (mixed-product and transpose rules, here checked directly)",
        display=r"LL^\top\otimes MM^\top=(L\otimes M)(L\otimes M)^\top")]
    for n, m in SIZES:
        L, M = lower_triangular("l", n), lower_triangular("m", m)
        x = sym_matrix("x", n * m, 1)
        K = kron(L, M)
        y = K.T * x
        quad = (x.T * kron(L * L.T, M * M.T) * x)[0, 0]
        cert = sum((sp.expand(e)) ** 2 for e in y)
        steps.append(Step.nonnegative(
            f"{n}x{n} ⊗ {m}x{m}: xᵀ(A⊗B)x = ‖(L⊗M)ᵀx‖² ≥ 0 for every x", quad, cert,
            justification="sum-of-squares certificate: the squared entries of (L⊗M)ᵀx",
            display=r"x^\top(A\otimes B)x=\|(L\otimes M)^\top x\|^2\ \ge\ 0"))
    return steps


def _psd_symmetric_only():
    A, B = sym_symmetric("a", 2), sym_symmetric("b", 2)
    x = sym_matrix("x", 4, 1)
    quad = (x.T * kron(A, B) * x)[0, 0]
    return Step.nonnegative("xᵀ(A⊗B)x ≥ 0 for merely symmetric A, B", quad, quad,
                            justification="false variant")


def _psd_one_factor():
    L = lower_triangular("l", 2)
    B = sym_symmetric("b", 2)
    x = sym_matrix("x", 4, 1)
    quad = (x.T * kron(L * L.T, B) * x)[0, 0]
    return Step.nonnegative("xᵀ(A⊗B)x ≥ 0 when only A = L Lᵀ is PSD (B symmetric)", quad, quad,
                            justification="false variant")


PSD = Derivation(
    name="kronecker.psd",
    title="Kronecker products of PSD matrices are PSD",
    statement=r"A=LL^\top,\ B=MM^\top\ \Longrightarrow\ A\otimes B=(L\otimes M)(L\otimes M)^\top\succeq 0",
    tier=Tier.B,
    scope="every square size pair n, m ∈ {1, 2, 3}; L, M lower-triangular (Cholesky) with symbolic "
          "entries, x symbolic",
    build=_psd_steps,
    negative_controls=[
        NegativeControl("symmetric_factors", "PSD claimed for merely symmetric factors", _psd_symmetric_only),
        NegativeControl("one_psd_factor", "PSD claimed when only one factor is PSD", _psd_one_factor),
    ],
    assumptions=[r"$A = LL^\top$, $B = MM^\top$ (every PSD matrix has such a factor)"],
    references=[REF_SEED_004 + " ('if A and B are positive (semi)definite, then so is A⊗B')",
                REF_VAN_LOAN],
    numeric=["fisherlab.kfac.matrix"],
)


DERIVATIONS = [MIXED_PRODUCT, TRANSPOSE, INVERSE, VEC, EIGEN, TRACE_DET_FROBENIUS, PSD]
