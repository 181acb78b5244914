"""fl.updates against independent dense constructions (closed forms + numpy.linalg.solve).

Ground truth never calls fisherlab's curvature code: logistic / softmax / least-squares
regression have closed-form gradients and curvature matrices, built here with NumPy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fisherlab as fl

from update_problems import flat, linear, rel

RTOL = 1e-10


def _data(seed, N, D, C):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    W = 0.5 * rng.normal(size=(C, D))
    b = 0.3 * rng.normal(size=(C,))
    return rng, X, [(jnp.asarray(W), jnp.asarray(b))]


def _augmented_jacobian(x, C):
    """J_n of the linear model s = W x + b in ravel order (W row-major, then b)."""
    return np.hstack([np.kron(np.eye(C), x[None, :]), np.eye(C)])


# ----------------------------------------------------------------------------- logistic regression


@pytest.fixture(scope="module")
def logistic():
    rng, X, params = _data(0, 12, 3, 1)
    logits = X @ np.asarray(params[0][0]).T + np.asarray(params[0][1])
    p = 1 / (1 + np.exp(-logits[:, 0]))
    y = (rng.uniform(size=12) < 0.5).astype(np.float64)[:, None]
    Xa = np.hstack([X, np.ones((12, 1))])
    F = Xa.T @ np.diag(p * (1 - p)) @ Xa / 12          # closed-form Fisher = Hessian = GGN
    grad = Xa.T @ (p - y[:, 0]) / 12
    E = Xa.T @ np.diag((p - y[:, 0]) ** 2) @ Xa / 12   # empirical Fisher
    return dict(params=params, X=jnp.asarray(X), y=jnp.asarray(y), F=F, grad=grad, E=E)


@pytest.mark.parametrize("damping", [0.0, 1e-3, 0.7])
def test_natural_gradient_logistic_closed_form(logistic, damping):
    L = logistic
    delta = fl.updates.natural_gradient(linear, L["params"], L["X"], L["y"], fl.Bernoulli(),
                                        lr=0.3, damping=damping)
    expected = -0.3 * np.linalg.solve(L["F"] + damping * np.eye(4), L["grad"])
    assert rel(flat(delta), expected) < RTOL
    # the pytree structure of params is kept
    assert jax.tree_util.tree_structure(delta) == jax.tree_util.tree_structure(L["params"])


def test_linear_model_newton_gauss_newton_equal_natural_gradient(logistic):
    """proofs natural_gradient_newton.residual: a linear model has H = G = F."""
    L = logistic
    args = (linear, L["params"], L["X"], L["y"], fl.Bernoulli())
    expected = -1.0 * np.linalg.solve(L["F"] + 1e-2 * np.eye(4), L["grad"])
    for fn in (fl.updates.newton, fl.updates.gauss_newton, fl.updates.natural_gradient):
        assert rel(flat(fn(*args, lr=1.0, damping=1e-2)), expected) < RTOL, fn.__name__


def test_empirical_fisher_update_closed_form(logistic):
    L = logistic
    delta = fl.updates.empirical_fisher_update(linear, L["params"], L["X"], L["y"],
                                               fl.Bernoulli(), lr=0.5, damping=0.1)
    expected = -0.5 * np.linalg.solve(L["E"] + 0.1 * np.eye(4), L["grad"])
    assert rel(flat(delta), expected) < RTOL
    # and it is NOT the natural-gradient step (Kunstner et al. 2019)
    ng = -0.5 * np.linalg.solve(L["F"] + 0.1 * np.eye(4), L["grad"])
    assert rel(flat(delta), ng) > 1e-2


def test_sum_reduction_scales_loss_and_curvature(logistic):
    L = logistic
    delta = fl.updates.natural_gradient(linear, L["params"], L["X"], L["y"], fl.Bernoulli(),
                                        lr=0.3, damping=0.5, reduction="sum")
    expected = -0.3 * np.linalg.solve(12 * L["F"] + 0.5 * np.eye(4), 12 * L["grad"])
    assert rel(flat(delta), expected) < RTOL


# ----------------------------------------------------------------------------- softmax regression


def test_natural_gradient_softmax_regression_dense():
    rng, X, params = _data(1, 9, 2, 3)
    y = rng.integers(0, 3, size=9)
    W, b = (np.asarray(a) for a in params[0])
    F = np.zeros((9, 9))
    grad = np.zeros(9)
    for xn, yn in zip(X, y):
        z = W @ xn + b
        p = np.exp(z - z.max()); p /= p.sum()
        Jn = _augmented_jacobian(xn, 3)
        F += Jn.T @ (np.diag(p) - np.outer(p, p)) @ Jn / 9
        grad += Jn.T @ (p - np.eye(3)[yn]) / 9
    delta = fl.updates.natural_gradient(linear, params, jnp.asarray(X), jnp.asarray(y),
                                        fl.Categorical(), lr=0.7, damping=1e-2)
    assert rel(flat(delta), -0.7 * np.linalg.solve(F + 1e-2 * np.eye(9), grad)) < RTOL


# ------------------------------------------------------------------------ Newton on a quadratic


def test_newton_solves_least_squares_in_one_step():
    """Gaussian NLL of a linear model is a strictly convex quadratic: one Newton step with
    lr = 1, damping = 0 lands on the least-squares solution (numpy.linalg.lstsq)."""
    rng, X, params = _data(2, 10, 3, 2)
    Y = rng.normal(size=(10, 2))
    delta = fl.updates.newton(linear, params, jnp.asarray(X), jnp.asarray(Y), fl.Gaussian(),
                              lr=1.0, damping=0.0)
    new = flat(params) + flat(delta)
    Xa = np.hstack([X, np.ones((10, 1))])
    sol, *_ = np.linalg.lstsq(Xa, Y, rcond=None)      # (4, 2): columns = outputs
    W_star, b_star = sol[:3].T, sol[3]
    assert rel(new, np.concatenate([W_star.ravel(), b_star])) < 1e-10


def test_newton_with_indefinite_hessian_is_allowed_and_exact():
    """newton() accepts an indefinite H + lambda I (LU solve); check against numpy."""
    def f(params, x):
        (w,) = params
        return jnp.stack([jnp.sin(w[0] * x[0]) + w[1] * w[0]])

    params = (jnp.asarray([1.3, -0.8]),)
    X = jnp.asarray([[0.5], [1.5], [-2.0]])
    Y = jnp.asarray([[0.2], [-1.0], [0.7]])
    H = np.asarray(jax.hessian(lambda w: jnp.mean(
        0.5 * (Y[:, 0] - (jnp.sin(w[0] * X[:, 0]) + w[1] * w[0])) ** 2))(params[0]))
    g = np.asarray(jax.grad(lambda w: jnp.mean(
        0.5 * (Y[:, 0] - (jnp.sin(w[0] * X[:, 0]) + w[1] * w[0])) ** 2))(params[0]))
    assert np.linalg.eigvalsh(H)[0] < 0 < np.linalg.eigvalsh(H)[-1], "test needs indefinite H"
    delta = fl.updates.newton(f, params, X, Y, fl.Gaussian(), lr=1.0, damping=0.0)
    assert rel(flat(delta), -np.linalg.solve(H, g)) < 1e-9
    with pytest.raises(ValueError, match="smallest eigenvalue"):
        fl.updates.precondition(H, g, damping=0.0)  # PSD required by default


# ----------------------------------------------------------------------------- precondition


def test_precondition_dense_and_matvec_agree_with_numpy():
    rng = np.random.default_rng(3)
    B = rng.normal(size=(5, 3))
    M = B @ B.T                      # PSD, rank 3
    g = rng.normal(size=5)
    expected = np.linalg.solve(M + 0.2 * np.eye(5), g)
    dense = fl.updates.precondition(jnp.asarray(M), jnp.asarray(g), damping=0.2)
    mv = fl.updates.precondition(lambda v: jnp.asarray(M) @ v, jnp.asarray(g), damping=0.2)
    assert rel(dense, expected) < 1e-12
    assert rel(mv, expected) < 1e-9
    tree = {"a": jnp.asarray(g[:2]), "b": jnp.asarray(g[2:])}
    out = fl.updates.precondition(jnp.asarray(M), tree, damping=0.2)
    assert set(out) == {"a", "b"} and rel(flat(out), expected) < 1e-12


def test_precondition_eigen_structure():
    """Grosse 2022, damping: (H + eta I)^{-1} q_j = (nu_j + eta)^{-1} q_j."""
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    nu = np.array([0.0, 0.5, 2.0, 10.0])
    H = Q @ np.diag(nu) @ Q.T
    for j in range(4):
        out = fl.updates.precondition(jnp.asarray(H), jnp.asarray(Q[:, j]), damping=0.25)
        assert rel(out, Q[:, j] / (nu[j] + 0.25)) < 1e-12


def test_predicted_change_closed_form():
    M = np.array([[2.0, 0.5], [0.5, 1.0]])
    g, d = np.array([1.0, -2.0]), np.array([0.3, 0.4])
    val = fl.updates.predicted_change(jnp.asarray(g), jnp.asarray(M), jnp.asarray(d),
                                      damping=0.1)
    assert abs(float(val) - (g @ d + 0.5 * d @ (M + 0.1 * np.eye(2)) @ d)) < 1e-14


def test_jit_compatible(logistic):
    L = logistic
    step = jax.jit(lambda p, x, y: fl.updates.natural_gradient(linear, p, x, y, fl.Bernoulli(),
                                                               lr=0.3, damping=0.1))
    expected = -0.3 * np.linalg.solve(L["F"] + 0.1 * np.eye(4), L["grad"])
    assert rel(flat(step(L["params"], L["X"], L["y"])), expected) < RTOL


def test_float32_caller_gets_float64(logistic, x32):
    L = logistic
    p32 = [(jnp.asarray(L["params"][0][0], jnp.float32), jnp.asarray(L["params"][0][1],
                                                                      jnp.float32))]
    delta = fl.updates.natural_gradient(linear, p32, np.asarray(L["X"]), np.asarray(L["y"]),
                                        fl.Bernoulli(), lr=0.3, damping=0.1)
    assert all(a.dtype == jnp.float64 for a in jax.tree_util.tree_leaves(delta))
    assert not jax.config.jax_enable_x64


# ----------------------------------------------------------------------------- steepest descent


@given(hnp.arrays(np.float64, (4,), elements=st.floats(-1, 1)))
def test_natural_gradient_is_steepest_descent_in_the_fisher_metric(logistic, v):
    """proofs steepest_descent.fisher_kkt, numerically: the normalised natural-gradient
    direction minimises g^T v over the Fisher unit ball (every other unit vector does worse)."""
    L = logistic
    if np.linalg.norm(v) < 1e-3:
        return
    delta = flat(fl.updates.natural_gradient(linear, L["params"], L["X"], L["y"],
                                             fl.Bernoulli(), lr=1.0, damping=0.0))
    v_star = delta / np.sqrt(delta @ L["F"] @ delta)      # unit Fisher norm
    v_unit = v / np.sqrt(v @ L["F"] @ v)
    assert L["grad"] @ v_star <= L["grad"] @ v_unit + 1e-12
    assert L["grad"] @ v_star == pytest.approx(-np.sqrt(L["grad"] @ np.linalg.solve(L["F"],
                                                                                   L["grad"])),
                                               rel=1e-10)
