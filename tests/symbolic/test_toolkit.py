"""The proof toolkit: the explicit builders mean what their names say, checked against
independent definitions (NumPy's kron and Fortran/C-order reshapes, exact orthogonality,
SPD by Cholesky), and the structural nodes are inert (SymPy applies no rewrite to them)."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fisherlab.symbolic import toolkit as tk


def _num(M, subs):
    return np.array(M.subs(subs).tolist(), dtype=np.float64)


@settings(max_examples=25, deadline=None)
@given(shape=st.tuples(*[st.integers(1, 3)] * 4), seed=st.integers(0, 2**16))
def test_kron_vec_rvec_match_numpy(shape, seed):
    m, n, p, q = shape
    rng = np.random.default_rng(seed)
    A, B = tk.matrix("a", m, n), tk.matrix("b", p, q)
    X = tk.matrix("x", q, n)
    syms = sorted(A.free_symbols | B.free_symbols | X.free_symbols, key=str)
    subs = {s: float(v) for s, v in zip(syms, rng.normal(size=len(syms)))}
    An, Bn, Xn = _num(A, subs), _num(B, subs), _num(X, subs)
    np.testing.assert_array_equal(_num(tk.kron(A, B), subs), np.kron(An, Bn))
    np.testing.assert_array_equal(_num(tk.vec(X), subs).ravel(), Xn.reshape(-1, order="F"))
    np.testing.assert_array_equal(_num(tk.rvec(X), subs).ravel(), Xn.reshape(-1))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_cayley_factor_is_orthogonal_with_rational_entries(n):
    Q, params = tk.cayley_orthogonal("t", n)
    N, d, same = tk.cayley_parts("t", n)
    assert params == same and sp.expand(N.T * N - d ** 2 * sp.eye(n)) == sp.zeros(n, n)
    rng = np.random.default_rng(n)
    for _ in range(3):
        subs = {t: sp.Rational(int(rng.integers(-9, 10)), int(rng.integers(1, 7))) for t in params}
        Qs = Q.subs(subs)
        assert Qs.T * Qs == sp.eye(n) and all(e.is_Rational for e in Qs)


def test_builders_share_one_naming_and_argument_order():
    assert tk.matrix("a", 2, 3)[1, 2] == sp.Symbol("a_23", real=True)
    assert tk.vector("g", 3)[2] == sp.Symbol("g_3", real=True)
    S = tk.symmetric("s", 3)
    assert S == S.T and S[0, 2] == sp.Symbol("s_13", real=True)
    L = tk.lower_cholesky("l", 3)
    assert L[1, 1].is_positive and L[0, 1] == 0 and L[2, 0].is_real
    assert tk.spd("l", 2) == L[:2, :2] * L[:2, :2].T
    Li = tk.lower_inverse(L)
    assert (L * Li).applyfunc(sp.cancel) == sp.eye(3)
    assert tk.diagonal("d", 2) == sp.diag(sp.Symbol("d_1", real=True), sp.Symbol("d_2", real=True))


def test_structural_nodes_are_inert():
    n, m = sp.symbols("n m", integer=True, positive=True)
    A, B = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("B", m, m)
    K = tk.Kron(A, B)
    assert K.T == sp.Transpose(K) and K.shape == (n * m, n * m)
    assert K.I == sp.Inverse(K)          # no (A (x) B)^-1 -> A^-1 (x) B^-1 rewrite
    C, D = sp.MatrixSymbol("C", n, n), sp.MatrixSymbol("D", m, m)
    assert (K * tk.Kron(C, D)).args == (K, tk.Kron(C, D))   # no mixed-product rewrite
    assert sp.latex(K) == r"A \otimes B"
    with pytest.raises(ValueError, match="1 x 1"):
        tk.Scalar(A)
    with pytest.raises(TypeError, match="column-vector MatrixSymbol"):
        tk.Grad(sp.Symbol("f"), A)


def test_expfam_expectation_is_the_moment_axiom():
    eta = sp.symbols("eta_1:3", real=True)
    t = sp.symbols("t_1:3", real=True)
    A = sp.Function("A")
    E = tk.expfam_expectation(A, eta, t)
    assert sp.simplify(E(t[0]) - sp.diff(A(*eta), eta[0])) == 0
    cov = E(t[0] * t[1]) - E(t[0]) * E(t[1])
    assert sp.simplify(cov - sp.diff(A(*eta), eta[0], eta[1])) == 0


def test_general_categorical_never_captures_a_free_index():
    g = tk.general_categorical()
    j, K = g["j"], g["K"]
    c = sp.Symbol("c", integer=True, positive=True)
    eta = g["eta"]
    with pytest.raises(ValueError, match="capture"):
        g["finish"](sp.Sum(eta[c] * eta[j], (c, 1, K)))


def test_sample_average_is_the_mean_over_the_points_and_the_structural_axioms_instantiate():
    s1, s2 = sp.symbols("s_1 s_2", real=True)
    E = tk.sample_average({s1: (1, 0, 1), s2: (0, 2, 1)})
    assert E(s1 * s2) == sp.Rational(1, 3) and E(s2 ** 2) == sp.Rational(5, 3) and E(sp.Integer(4)) == 4
    with pytest.raises(ValueError, match="same, nonzero number"):
        tk.sample_average({s1: (1, 2), s2: (0,)})
    n = sp.Symbol("n", integer=True, positive=True)
    X, Y = sp.MatrixSymbol("X", n, n), sp.MatrixSymbol("Y", n, n)
    ax = tk.inverse_of_product(X.T, X + Y)
    assert ax.name == "inverse of a product" and set(ax.subs.values()) >= {X.T, X + Y}
    with pytest.raises(ValueError, match="at least two"):
        tk.inverse_of_product(X)
    with pytest.raises(ValueError, match="left or a right"):
        tk.expectation_linearity(X)
    assert tk.expectation_linearity((X, Y)).relation.rhs.args[0].func is tk.Expect
