"""Review defects 6 and 8 of fl.updates, against NumPy float64 closed forms.

* Precision: every public function of ``fl.updates`` computes in float64 even when the caller
  runs with ``jax_enable_x64`` off (fixture ``x32``). The inputs are NumPy float64 arrays (a
  ``jnp`` array created with x64 off would already be float32, which no callee can undo); the
  ground truth is the closed-form logistic-regression gradient / Fisher (= GGN = Hessian for
  the canonical link) / empirical Fisher built with NumPy. Float32 arithmetic anywhere on the
  path gives relative errors ~1e-8 (the review measured 1.04e-8 for ``predicted_change``);
  the bound here is 1e-12.
* Singularity: ``precondition`` with a matrix-free ``M`` and ``damping = 0`` raises on a
  singular ``M`` (a rank-deficient softmax-regression Fisher, closed form) instead of
  returning the pseudo-inverse solution, and equals ``numpy.linalg.solve`` on a nonsingular
  one; ``hessian_free`` (documented as unchecked) returns the pseudo-inverse solution.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from update_problems import linear, logistic_closed_form, rel

import fisherlab as fl
from fisherlab.updates._linalg import MATERIALISE_MAX_DIM

TOL64 = 1e-12


# ----------------------------------------------------------------------------- problems (NumPy)


@pytest.fixture(scope="module")
def logistic_np():
    """Logistic regression with NumPy-only inputs and closed-form curvature (N=10, D=3)."""
    rng = np.random.default_rng(21)
    N, D = 10, 3
    X = rng.normal(size=(N, D))
    W = 0.6 * rng.normal(size=(1, D))
    b = 0.3 * rng.normal(size=(1,))
    y = (rng.uniform(size=N) < 0.5).astype(np.float64)[:, None]
    cf = logistic_closed_form(np.concatenate([W.ravel(), b]), X, y[:, 0])
    return dict(params=[(W, b)], X=X, y=y, **cf)


def _softmax_regression(N, D, C, seed):
    """Closed-form Fisher and gradient of softmax regression s = W x + b (ravel order)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    W = 0.5 * rng.normal(size=(C, D))
    b = 0.3 * rng.normal(size=(C,))
    y = rng.integers(0, C, size=N)
    d = C * D + C
    F, grad = np.zeros((d, d)), np.zeros(d)
    for xn, yn in zip(X, y):
        z = W @ xn + b
        p = np.exp(z - z.max())
        p /= p.sum()
        Jn = np.hstack([np.kron(np.eye(C), xn[None, :]), np.eye(C)])
        F += Jn.T @ (np.diag(p) - np.outer(p, p)) @ Jn / N
        grad += Jn.T @ (p - np.eye(C)[yn]) / N
    return dict(params=[(W, b)], X=X, y=y, F=F, grad=grad)


def flat(tree):
    """ravel_pytree order, in NumPy float64 (jax's ravel_pytree would cast to float32 here)."""
    return np.concatenate([np.ravel(np.asarray(a)) for a in jax.tree_util.tree_leaves(tree)])


def _all_float64(tree):
    return all(jnp.asarray(a).dtype == jnp.float64 for a in jax.tree_util.tree_leaves(tree))


# ----------------------------------------------------------------------------- defect 6: x64 off


@pytest.mark.parametrize("fn,M", [(fl.updates.natural_gradient, "F"),
                                  (fl.updates.gauss_newton, "F"),
                                  (fl.updates.newton, "F"),
                                  (fl.updates.empirical_fisher_update, "E")])
@pytest.mark.parametrize("damping", [0.0, 0.05])
def test_dense_updates_float64_with_x64_off(logistic_np, x32, fn, M, damping):
    P = logistic_np
    delta = fn(linear, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=0.3, damping=damping)
    expected = -0.3 * np.linalg.solve(P[M] + damping * np.eye(4), P["grad"])
    assert not jax.config.jax_enable_x64
    assert _all_float64(delta)
    assert rel(flat(delta), expected) < TOL64


@pytest.mark.parametrize("curvature", ["ggn", "fisher", "hessian"])
def test_hessian_free_float64_with_x64_off(logistic_np, x32, curvature):
    P = logistic_np
    delta, info = fl.updates.hessian_free(linear, P["params"], P["X"], P["y"], fl.Bernoulli(),
                                          lr=0.3, damping=0.05, curvature=curvature,
                                          maxiter=40, tol=1e-14, return_info=True)
    expected = -0.3 * np.linalg.solve(P["F"] + 0.05 * np.eye(4), P["grad"])
    assert _all_float64(delta)
    assert bool(info.converged)
    assert rel(flat(delta), expected) < TOL64


def test_kfac_update_float64_with_x64_off(x32):
    """N = 1: the K-FAC block of a one-layer network is the exact Fisher (CONVENTIONS § K-FAC)."""
    rng = np.random.default_rng(4)
    model = fl.nn.Sequential([fl.nn.Dense(3, 1)])
    W, b = 0.7 * rng.normal(size=(1, 3)), 0.2 * rng.normal(size=(1,))
    x, y = rng.normal(size=(1, 3)), np.array([[1.0]])
    cf = logistic_closed_form(np.concatenate([W.ravel(), b]), x, y[:, 0])
    expected = -0.5 * np.linalg.solve(cf["F"] + 0.1 * np.eye(4), cf["grad"])
    for method in ("exact", "factored"):  # pi-damping is not F + lambda I: dtype only
        delta = fl.updates.kfac_update(model, [(W, b)], x, y, fl.Bernoulli(), lr=0.5,
                                       damping=0.1, method=method)
        assert _all_float64(delta)
        if method == "exact":
            assert rel(flat(delta), expected) < TOL64


def test_diagonal_update_float64_with_x64_off(logistic_np, x32):
    P = logistic_np
    state = fl.updates.DiagonalState.init(P["params"])
    assert state.second_moment.dtype == jnp.float64
    delta, state = fl.updates.diagonal_update(linear, P["params"], P["X"], P["y"],
                                              fl.Bernoulli(), lr=0.4, damping=0.02,
                                              state=state, decay=0.9)
    # bias correction: the first step uses d_1 = diag(F) exactly
    expected = -0.4 * P["grad"] / (np.diag(P["F"]) + 0.02)
    assert _all_float64(delta) and state.second_moment.dtype == jnp.float64
    assert rel(flat(delta), expected) < TOL64
    assert rel(state.second_moment, 0.1 * np.diag(P["F"])) < TOL64


def test_precondition_and_predicted_change_float64_with_x64_off(logistic_np, x32):
    P = logistic_np
    F, g = P["F"], P["grad"]
    g_tree = [(g[:3].reshape(1, 3), g[3:])]           # a params-like pytree of NumPy float64
    expected = np.linalg.solve(F + 0.05 * np.eye(4), g)
    dense = fl.updates.precondition(F, g_tree, damping=0.05)
    mv = fl.updates.precondition(lambda v: jnp.asarray(F) @ v, g, damping=0.0, tol=1e-14)
    assert _all_float64(dense) and _all_float64(mv)
    assert rel(flat(dense), expected) < TOL64
    assert rel(mv, np.linalg.solve(F, g)) < 1e-11     # CG, undamped (cond(F) ~ 1e1)
    delta = -0.3 * expected
    d_tree = [(delta[:3].reshape(1, 3), delta[3:])]
    exact = g @ delta + 0.5 * delta @ (F + 0.05 * np.eye(4)) @ delta
    for curv in (F, lambda v: jnp.asarray(F) @ v):
        val = fl.updates.predicted_change(g_tree, curv, d_tree, damping=0.05)
        assert val.dtype == jnp.float64
        assert abs(float(val) - exact) <= TOL64 * abs(exact)


def test_adaptive_damping_rho_with_x64_off(x32):
    lam, rho = fl.updates.adaptive_damping(0.3, -0.123456789012345, -0.2, return_ratio=True)
    assert rho == -0.123456789012345 / -0.2 and lam == 0.3


# ----------------------------------------------------------------------------- defect 8: singular


@pytest.fixture(scope="module")
def rank_deficient():
    """Softmax regression, N = 2, C = 3, D = 3: d = 12 but rank F <= N (C - 1) = 4."""
    P = _softmax_regression(2, 3, 3, seed=10)
    assert np.linalg.matrix_rank(P["F"]) == 4
    return P


def test_precondition_matvec_zero_damping_singular_raises(rank_deficient):
    P = rank_deficient
    F = P["F"]
    with pytest.raises(ValueError, match=r"singular: its smallest eigenvalue .* damping = 0\.0"):
        fl.updates.precondition(lambda v: jnp.asarray(F) @ v, P["grad"], damping=0.0)
    # the library's own matrix-free Fisher (the review's reproducer t28)
    fvp = fl.fisher_vp(linear, [tuple(jnp.asarray(a) for a in P["params"][0])],
                       jnp.asarray(P["X"]), fl.Categorical())
    with pytest.raises(ValueError, match="damping > 0"):
        fl.updates.precondition(fvp, P["grad"], damping=0.0)
    # the same message as the dense path
    with pytest.raises(ValueError, match=r"singular: its smallest eigenvalue .* damping = 0\.0"):
        fl.updates.precondition(F, P["grad"], damping=0.0)


def test_precondition_matvec_positive_damping_on_singular_fisher(rank_deficient):
    P = rank_deficient
    F = P["F"]
    out = fl.updates.precondition(lambda v: jnp.asarray(F) @ v, P["grad"], damping=1e-3,
                                  tol=1e-13)
    assert rel(out, np.linalg.solve(F + 1e-3 * np.eye(12), P["grad"])) < 1e-10


@pytest.mark.parametrize("g", [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
def test_precondition_matvec_singular_diagonal(g):
    """Consistent (g in range M) and inconsistent right-hand sides both raise ``singular``."""
    diag = jnp.asarray([2.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="singular"):
        fl.updates.precondition(lambda v: diag * v, jnp.asarray(g), damping=0.0)


def test_precondition_matvec_zero_damping_nonsingular_equals_numpy_solve():
    # softmax regression has singular F even with many examples (N = 20, d = 9): shifting
    # every class's [w_c, b_c] by the same vector leaves the softmax unchanged, so the D + 1
    # directions 1_C (x) u are null and rank F = (C - 1)(D + 1) = 6
    P = _softmax_regression(20, 2, 3, seed=3)
    F = P["F"]
    assert np.linalg.matrix_rank(F) == 6
    # full rank: logistic regression, d = 4, N = 12
    rng = np.random.default_rng(8)
    X = rng.normal(size=(12, 3))
    cf = logistic_closed_form(np.array([0.3, -0.2, 0.5, 0.1]), X,
                              (rng.uniform(size=12) < 0.5).astype(np.float64))
    out = fl.updates.precondition(lambda v: jnp.asarray(cf["F"]) @ v, cf["grad"], damping=0.0,
                                  tol=1e-14)
    assert rel(out, np.linalg.solve(cf["F"], cf["grad"])) < 1e-10
    # and the overparameterised softmax Fisher is rejected
    with pytest.raises(ValueError, match="singular"):
        fl.updates.precondition(lambda v: jnp.asarray(F) @ v, P["grad"], damping=0.0)


def test_precondition_matvec_zero_damping_checks_symmetry():
    A = jnp.asarray([[2.0, 1.0], [0.0, 2.0]])
    with pytest.raises(ValueError, match="must be symmetric"):
        fl.updates.precondition(lambda v: A @ v, jnp.ones(2), damping=0.0)


def test_precondition_matvec_zero_damping_too_large_to_check():
    d = MATERIALISE_MAX_DIM + 1
    g = jnp.ones(d)
    with pytest.raises(ValueError, match=r"damping = 0 with a matrix-free .* damping > 0"):
        fl.updates.precondition(lambda v: 2.0 * v, g, damping=0.0)
    out = fl.updates.precondition(lambda v: 2.0 * v, g, damping=0.5)
    assert np.allclose(np.asarray(out), 1.0 / 2.5, rtol=1e-14, atol=0)


def test_precondition_matvec_zero_damping_under_jit_is_unchecked_but_exact():
    """Under jax.jit the concrete checks are skipped (module docstring); nonsingular -> solve."""
    M = np.array([[3.0, 1.0], [1.0, 2.0]])
    g = np.array([1.0, -1.0])
    out = jax.jit(lambda gg: fl.updates.precondition(lambda v: jnp.asarray(M) @ v, gg,
                                                     damping=0.0, tol=1e-14))(g)
    assert rel(out, np.linalg.solve(M, g)) < 1e-13


def test_hessian_free_zero_damping_singular_returns_pseudo_inverse(rank_deficient):
    """hessian_free is documented as unchecked: on the rank-deficient Fisher it converges to
    the minimum-norm solution pinv(F) g (NumPy)."""
    P = rank_deficient
    params = [tuple(jnp.asarray(a) for a in P["params"][0])]
    delta, info = fl.updates.hessian_free(linear, params, jnp.asarray(P["X"]),
                                          jnp.asarray(P["y"]), fl.Categorical(), lr=1.0,
                                          damping=0.0, curvature="fisher", maxiter=50,
                                          tol=1e-12, return_info=True)
    assert bool(info.converged)
    assert rel(flat(delta), -np.linalg.pinv(P["F"]) @ P["grad"]) < 1e-9
