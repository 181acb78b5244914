"""kronecker.*: the entry-wise Kronecker algebra verifies, its controls are rejected with
witnesses, and the proof helpers (kron, vec, rvec, Cayley) agree with NumPy's independent
definitions (np.kron, Fortran/C-order reshape) -- so the symbolic statements are about the
same objects the numeric code uses."""

import itertools

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from _kfac_proof_helpers import check_metadata, family
from fisherlab import proofs

proofs.modules()  # registers fisherlab._theorems
from fisherlab._theorems import kronecker as K  # noqa: E402

NAMES = family("kronecker")


def test_family_is_complete():
    assert set(NAMES) == {"kronecker.mixed_product", "kronecker.transpose", "kronecker.inverse",
                          "kronecker.vec", "kronecker.eigenpairs", "kronecker.trace_det_frobenius",
                          "kronecker.psd"}



@pytest.mark.parametrize("name, tier, words", [
    ("kronecker.mixed_product", "A+B", ("general dimension", "{1, 2, 3}")),
    ("kronecker.transpose", "B", ("{1, 2, 3}",)),
    ("kronecker.inverse", "B", ("{1, 2, 3}", "never by an inverse rewrite")),
    ("kronecker.vec", "A+B", ("general dimension", "81 shapes", "both orders")),
    ("kronecker.eigenpairs", "B", ("{1, 2, 3}",)),
    ("kronecker.trace_det_frobenius", "B", ("{1, 2, 3}", "multiplicativity")),
    ("kronecker.psd", "B", ("{1, 2, 3}",)),
])
def test_metadata(name, tier, words):
    check_metadata(name, tier, words)


def test_general_dimension_chains_record_their_index_axioms():
    for name in ("kronecker.mixed_product", "kronecker.vec"):
        axioms = proofs.get(name).axioms
        assert "index bijection" in axioms and "r = " in axioms["index bijection"].replace("c = ", "r = ")


def test_vec_control_is_the_classic_swap():
    names = {c.name for c in proofs.get("kronecker.vec").negative_controls}
    assert {"cvec_classic_swap", "rvec_swap"} <= names


# ---------------------------------------------------------------- helpers vs NumPy (independent)


def _num(M, subs):
    return np.array(M.subs(subs).tolist(), dtype=np.float64)


@given(shape=st.tuples(*[st.integers(1, 3)] * 4), seed=st.integers(0, 2**16))
def test_kron_vec_rvec_helpers_match_numpy(shape, seed):
    m, n, p, q = shape
    rng = np.random.default_rng(seed)
    A, B = K.sym_matrix("a", m, n), K.sym_matrix("b", p, q)
    X = K.sym_matrix("x", q, n)
    subs = {s: float(v) for s, v in zip(sorted(A.free_symbols | B.free_symbols | X.free_symbols,
                                               key=str), rng.normal(size=m * n + p * q + q * n))}
    An, Bn, Xn = _num(A, subs), _num(B, subs), _num(X, subs)
    np.testing.assert_array_equal(_num(K.kron(A, B), subs), np.kron(An, Bn))
    np.testing.assert_array_equal(_num(K.vec(X), subs).ravel(), Xn.reshape(-1, order="F"))
    np.testing.assert_array_equal(_num(K.rvec(X), subs).ravel(), Xn.reshape(-1))
    # the two statements proved, numerically, with NumPy's own kron/reshape
    np.testing.assert_allclose(np.kron(An, Bn) @ Xn.reshape(-1, order="F"),
                               (Bn @ Xn @ An.T).reshape(-1, order="F"), rtol=1e-12, atol=1e-12)
    Xr = rng.normal(size=(n, q))
    np.testing.assert_allclose(np.kron(An, Bn) @ Xr.reshape(-1), (An @ Xr @ Bn.T).reshape(-1),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_cayley_factor_is_orthogonal_at_random_rational_points(n):
    Q, params = K.cayley_orthogonal(n, "t")
    rng = np.random.default_rng(n)
    for _ in range(3):
        subs = {t: sp.Rational(int(rng.integers(-9, 10)), int(rng.integers(1, 7))) for t in params}
        Qs = Q.subs(subs)
        assert Qs.T * Qs == sp.eye(n)  # exact rational arithmetic
        assert all(e.is_Rational for e in Qs)


def test_det_control_numbers_are_right():
    """det(A (x) B) = det(A)^m det(B)^n, checked on random integer matrices with NumPy."""
    rng = np.random.default_rng(0)
    for n, m in itertools.product((1, 2, 3), repeat=2):
        A, B = rng.integers(-3, 4, size=(n, n)), rng.integers(-3, 4, size=(m, m))
        lhs = round(np.linalg.det(np.kron(A, B)))
        assert lhs == round(np.linalg.det(A)) ** m * round(np.linalg.det(B)) ** n
