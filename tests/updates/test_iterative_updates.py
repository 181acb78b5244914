"""hessian_free (truncated CG), diagonal_update (EMA), kfac_update and adaptive_damping."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from update_problems import flat, linear, logistic_problem, rel

import fisherlab as fl


@pytest.fixture(scope="module")
def logistic():
    return logistic_problem(seed=5, N=15, D=4)


def _args(P):
    return (linear, P["params"], P["X"], P["y"], fl.Bernoulli())


# ----------------------------------------------------------------------------- Hessian-free


@pytest.mark.parametrize("curvature", ["ggn", "fisher", "hessian"])
def test_hessian_free_converged_equals_direct_damped_solve(logistic, curvature):
    """Enough CG iterations reproduce -lr (M + lambda I)^{-1} g (closed form, M = F = H = G)."""
    P = logistic
    delta, info = fl.updates.hessian_free(*_args(P), lr=0.4, damping=1e-3,
                                          curvature=curvature, maxiter=50, tol=1e-13,
                                          return_info=True)
    expected = -0.4 * np.linalg.solve(P["F"] + 1e-3 * np.eye(5), P["grad"])
    assert rel(flat(delta), expected) < 1e-9
    assert bool(info.converged) and not bool(info.negative_curvature)
    assert 1 <= int(info.iterations) <= 5 + 1  # CG terminates in <= d steps (+ rounding)
    assert float(info.residual_norm) <= 1e-13


def test_hessian_free_one_iteration_is_the_cauchy_step(logistic):
    """One CG step from 0 is x = (g^T g / g^T A g) g, A = F + lambda I (closed form)."""
    P = logistic
    A = P["F"] + 0.05 * np.eye(5)
    g = P["grad"]
    delta, info = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.05, maxiter=1,
                                          return_info=True)
    assert rel(flat(delta), -(g @ g) / (g @ A @ g) * g) < 1e-12
    assert int(info.iterations) == 1 and not bool(info.converged)
    r = g - A @ ((g @ g) / (g @ A @ g) * g)
    assert abs(float(info.residual_norm) - np.linalg.norm(r) / np.linalg.norm(g)) < 1e-12


def test_hessian_free_warm_start_at_solution_takes_no_iteration(logistic):
    P = logistic
    sol = np.linalg.solve(P["F"] + 0.1 * np.eye(5), P["grad"])
    delta, info = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, maxiter=10,
                                          tol=1e-8, x0=jnp.asarray(sol), return_info=True)
    assert int(info.iterations) == 0 and bool(info.converged)
    assert rel(flat(delta), -sol) < 1e-12


def test_hessian_free_stops_on_negative_curvature():
    def f(params, x):
        (w,) = params
        return jnp.stack([jnp.sin(w[0] * x[0]) + w[1] * w[0]])

    params = (jnp.asarray([1.3, -0.8]),)
    X = jnp.asarray([[0.5], [1.5], [-2.0]])
    Y = jnp.asarray([[0.2], [-1.0], [0.7]])
    H = np.asarray(fl.hessian(f, params, X, Y, fl.Gaussian()))
    g = np.asarray(fl.gradient(f, params, X, Y, fl.Gaussian()))
    assert np.linalg.eigvalsh(H)[0] < 0
    delta, info = fl.updates.hessian_free(f, params, X, Y, fl.Gaussian(), lr=1.0, damping=0.0,
                                          curvature="hessian", maxiter=10, return_info=True)
    assert g @ H @ g < 0, "test needs negative curvature along the first CG direction g"
    # Martens (2010): stop at non-positive curvature and keep the previous iterate (here 0)
    assert bool(info.negative_curvature) and int(info.iterations) == 0
    assert not bool(info.converged)
    assert np.all(flat(delta) == 0.0)


# ----------------------------------------------------------------------------- diagonal


def test_diagonal_update_exact_estimator_and_ema(logistic):
    P = logistic
    beta, lam, lr = 0.9, 1e-3, 0.2
    d1 = np.diag(P["F"])
    delta1, state1 = fl.updates.diagonal_update(*_args(P), lr=lr, damping=lam, decay=beta)
    assert rel(flat(delta1), -lr * P["grad"] / (d1 + lam)) < 1e-12   # bias-corrected s_1 = d_1
    assert int(state1.count) == 1
    assert rel(state1.second_moment, (1 - beta) * d1) < 1e-12
    # second step on another point: s_2 = beta (1 - beta) d_1 + (1 - beta) d_2
    params2 = jax.tree_util.tree_map(lambda a, b: a + b, P["params"], delta1)
    theta2 = flat(params2)
    cf2 = __import__("update_problems").logistic_closed_form(theta2, np.asarray(P["X"]),
                                                              np.asarray(P["y"])[:, 0])
    d2 = np.diag(cf2["F"])
    delta2, state2 = fl.updates.diagonal_update(linear, params2, P["X"], P["y"], fl.Bernoulli(),
                                                lr=lr, damping=lam, decay=beta, state=state1)
    s2 = beta * (1 - beta) * d1 + (1 - beta) * d2
    assert rel(state2.second_moment, s2) < 1e-12
    assert rel(flat(delta2), -lr * cf2["grad"] / (s2 / (1 - beta ** 2) + lam)) < 1e-12


def test_diagonal_update_without_bias_correction_and_empirical(logistic):
    P = logistic
    delta, _ = fl.updates.diagonal_update(*_args(P), lr=1.0, damping=0.01, decay=0.5,
                                          bias_correction=False, estimator="empirical")
    assert rel(flat(delta), -P["grad"] / (0.5 * np.diag(P["E"]) + 0.01)) < 1e-12


def test_diagonal_update_mc_estimator_needs_a_key(logistic):
    with pytest.raises(ValueError, match="key"):
        fl.updates.diagonal_update(*_args(logistic), lr=1.0, damping=0.1, estimator="mc")
    delta, _ = fl.updates.diagonal_update(*_args(logistic), lr=1.0, damping=0.1,
                                          estimator="mc", key=jax.random.key(0),
                                          num_samples=4)
    assert np.all(np.isfinite(flat(delta)))


# ----------------------------------------------------------------------------- K-FAC


def test_kfac_update_single_example_equals_natural_gradient():
    """CONVENTIONS § K-FAC: for N = 1 the K-FAC block equals the exact Fisher block, so for a
    one-layer network the K-FAC step is the natural-gradient step (closed form, numpy)."""
    rng = np.random.default_rng(7)
    model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    params = model.init(jax.random.key(1))
    x = rng.normal(size=(1, 3))
    y = np.array([1])
    W, b = (np.asarray(a) for a in params[0])
    z = W @ x[0] + b
    p = np.exp(z - z.max()); p /= p.sum()
    J = np.hstack([np.kron(np.eye(2), x[0][None, :]), np.eye(2)])
    F = J.T @ (np.diag(p) - np.outer(p, p)) @ J
    g = J.T @ (p - np.eye(2)[1])
    delta = fl.updates.kfac_update(model, params, jnp.asarray(x), jnp.asarray(y),
                                   fl.Categorical(), lr=0.5, damping=0.3)
    assert rel(flat(delta), -0.5 * np.linalg.solve(F + 0.3 * np.eye(8), g)) < 1e-10


def test_kfac_update_factored_matches_dense_pi_damping():
    """method="factored": ((G + sqrt(l)/pi I) (x) (A + pi sqrt(l) I))^{-1} in [W b] row-major
    order, permuted to parameter order (W row-major, then b) -- built with numpy.kron."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 3)])
    params = model.init(jax.random.key(2))
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=(6, 2)))
    y = jnp.asarray(rng.integers(0, 3, size=6))
    (A, G), = [(np.asarray(f.A), np.asarray(f.G)) for f in
               fl.kfac.factors(model, params, x, y, fl.Categorical())]
    lam = 0.2
    pi = math.sqrt((np.trace(A) / 3) / (np.trace(G) / 3))
    K = np.kron(G + math.sqrt(lam) / pi * np.eye(3), A + pi * math.sqrt(lam) * np.eye(3))
    # row-major [W b] index (i, j) -> param index: W[i, j] -> 2 i + j, b[i] -> 6 + i
    perm = [2 * i + j if j < 2 else 6 + i for i in range(3) for j in range(3)]
    g = np.asarray(fl.gradient(model, params, x, y, fl.Categorical()))
    step_rm = -0.7 * np.linalg.solve(K, g[perm])
    expected = np.empty(9)
    expected[perm] = step_rm
    delta = fl.updates.kfac_update(model, params, x, y, fl.Categorical(), lr=0.7, damping=lam,
                                   method="factored")
    assert rel(flat(delta), expected) < 1e-10


# ----------------------------------------------------------------------------- adaptive damping


OMEGA = (19 / 20) ** 5


@pytest.mark.parametrize("actual,predicted,factor", [
    (-0.9, -1.0, OMEGA),          # rho = 0.9 > 3/4: decrease
    (-0.1, -1.0, 1 / OMEGA),      # rho = 0.1 < 1/4: increase
    (0.3, -1.0, 1 / OMEGA),       # loss went up (rho < 0): increase
    (-0.5, -1.0, 1.0),            # rho = 0.5: unchanged
    (-0.75, -1.0, 1.0),           # boundary 3/4 is not "> 3/4"
    (-0.25, -1.0, 1.0),           # boundary 1/4 is not "< 1/4"
])
def test_adaptive_damping_levenberg_marquardt_rule(actual, predicted, factor):
    lam, rho = fl.updates.adaptive_damping(2.0, actual, predicted, return_ratio=True)
    assert rho == pytest.approx(actual / predicted, rel=1e-15)
    assert lam == pytest.approx(2.0 * factor, rel=1e-15)


def test_adaptive_damping_clipping_and_interval():
    assert fl.updates.adaptive_damping(1e-3, -1.0, -1.0, min_damping=1e-3) == 1e-3
    assert fl.updates.adaptive_damping(10.0, 0.0, -1.0, max_damping=10.0) == 10.0
    assert fl.updates.adaptive_damping(1.0, -1.0, -1.0, interval=1) == pytest.approx(0.95)


def test_adaptive_damping_exact_quadratic_gives_rho_one():
    """On a quadratic loss the model is exact: rho = 1 (least squares, Newton step)."""
    rng = np.random.default_rng(9)
    X = jnp.asarray(rng.normal(size=(8, 2)))
    Y = jnp.asarray(rng.normal(size=(8, 1)))
    params = [(jnp.asarray([[0.1, -0.2]]), jnp.asarray([0.05]))]
    lam = 0.5
    delta = fl.updates.gauss_newton(linear, params, X, Y, fl.Gaussian(), lr=1.0, damping=lam)
    G = fl.ggn(linear, params, X, Y, fl.Gaussian())
    g = fl.gradient(linear, params, X, Y, fl.Gaussian())
    pred = fl.updates.predicted_change(g, G, delta)   # undamped model = exact quadratic
    loss = lambda p: float(jnp.mean(fl.Gaussian().nll(jax.vmap(lambda xi: linear(p, xi))(X), Y)))
    new = jax.tree_util.tree_map(lambda a, b: a + b, params, delta)
    new_lam, rho = fl.updates.adaptive_damping(lam, loss(new) - loss(params), float(pred),
                                               return_ratio=True)
    assert rho == pytest.approx(1.0, rel=1e-10) and new_lam == pytest.approx(lam * OMEGA)


def test_hessian_free_and_diagonal_under_jit(logistic):
    P = logistic
    hf = jax.jit(lambda p: fl.updates.hessian_free(linear, p, P["X"], P["y"], fl.Bernoulli(),
                                                   lr=1.0, damping=0.1, maxiter=20, tol=1e-12))
    assert rel(flat(hf(P["params"])), -np.linalg.solve(P["F"] + 0.1 * np.eye(5), P["grad"])) \
        < 1e-9
    diag = jax.jit(lambda p: fl.updates.diagonal_update(linear, p, P["X"], P["y"],
                                                        fl.Bernoulli(), lr=1.0, damping=0.1)[0])
    assert rel(flat(diag(P["params"])), -P["grad"] / (np.diag(P["F"]) + 0.1)) < 1e-12


def test_natural_gradient_monte_carlo_fisher_converges_to_exact(logistic):
    """fisher_type="mc" with many samples approaches the exact step. Deterministic (fixed key 0,
    so it cannot fail at random); over keys 0..7 the measured relative error was 0.002-0.008
    (mean 0.006) for S = 4000, so the bound 0.05 leaves an ~8x margin."""
    P = logistic
    exact = -np.linalg.solve(P["F"] + 0.1 * np.eye(5), P["grad"])
    mc = fl.updates.natural_gradient(*_args(P), lr=1.0, damping=0.1, fisher_type="mc",
                                     key=jax.random.key(0), num_samples=4000)
    assert rel(flat(mc), exact) < 0.05


def test_kfac_update_accepts_precomputed_factors():
    model = fl.nn.Sequential([fl.nn.Dense(2, 3)])
    params = model.init(jax.random.key(2))
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=(6, 2)))
    y = jnp.asarray(rng.integers(0, 3, size=6))
    facs = fl.kfac.factors(model, params, x[:3], y[:3], fl.Categorical())
    a = fl.updates.kfac_update(model, params, x, y, fl.Categorical(), lr=1.0, damping=0.1,
                               factors=facs)
    g = fl.gradient(model, params, x, y, fl.Categorical())
    _, unravel = __import__("jax.flatten_util").flatten_util.ravel_pytree(params)
    b = fl.kfac.solve(facs, unravel(g), 0.1)
    assert rel(flat(a), -flat(b)) < 1e-14


def test_kfac_update_per_token_outputs_flatten():
    """tokens="flatten" (the mean over the N R tokens) for the gradient and the factors:
    ``-lr (K/R + damping I)^{-1} g`` with ``K`` the tokens="sum" K-FAC matrix and ``g`` the
    gradient of the token mean (jax.grad of the loss written out)."""
    nn = fl.nn
    model = nn.Sequential([nn.Embedding(5, 3), nn.Tanh(), nn.Dense(3, 4)])
    params = model.init(jax.random.key(0))
    x = np.array([[0, 1, 2], [3, 4, 0]])
    y = np.array([[0, 1, 3], [2, 1, 0]])
    R = x.shape[1]
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def token_mean_loss(t):
        out = jax.vmap(lambda xn: model(unravel(t), xn))(x)  # (N, R, C)
        logp = jax.nn.log_softmax(out, -1)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], -1))

    g = np.asarray(jax.grad(token_mean_loss)(flat))
    K = np.asarray(fl.kfac.matrix(fl.kfac.factors(model, params, x, y, fl.Categorical()), model))
    want = -0.5 * np.linalg.solve(K / R + 0.1 * np.eye(len(g)), g)
    step = fl.updates.kfac_update(model, params, x, y, fl.Categorical(), lr=0.5, damping=0.1,
                                  tokens="flatten")
    got = np.asarray(jax.flatten_util.ravel_pytree(step)[0])
    assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want)
