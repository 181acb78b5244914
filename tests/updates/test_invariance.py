"""Numerical affine invariance (Johnson 2017, App. B; proofs/invariance.py) on Hypothesis-drawn A.

A tiny nonlinear model ``f(theta, x)`` with flat parameters ``theta`` (d = 4) is
reparameterised as ``f'(phi, x) = f(A phi + b, x)``. At ``phi = A^{-1}(theta - b)``:

* the undamped natural-gradient, Newton and Gauss-Newton steps satisfy
  ``A delta_phi = delta_theta`` to 1e-10 (relative);
* gradient descent does not (unless ``A A^T = I``), nor does Tikhonov-damped natural gradient
  (unless ``A^T A = I``): asserted to differ.
K-FAC: invariance to an affine map of the network input (the first layer's activations).
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree
from update_problems import flat, linear, logistic_problem, rel

import fisherlab as fl
from fisherlab.testing import strategies as fls

D = 4
X = jnp.asarray(np.random.default_rng(0).normal(size=(8, 2)))
Y = jnp.asarray(np.random.default_rng(1).normal(size=(8, 2)))
THETA = jnp.asarray([0.7, -0.4, 0.3, 1.1])


def f(params, x):
    (t,) = params
    W = t.reshape(2, 2)
    return jnp.tanh(W @ x) + 0.5 * W @ x


def f_reparam(params, xab):
    """f(A phi + b, x); (A, b) ride along with every example so that one function object
    (hence one compiled kernel) serves every drawn reparameterisation."""
    (phi,) = params
    return f((xab["A"] @ phi + xab["b"],), xab["x"])


def batch(A, b):
    N = X.shape[0]
    return {"x": X, "A": jnp.broadcast_to(jnp.asarray(A), (N, D, D)),
            "b": jnp.broadcast_to(jnp.asarray(b), (N, D))}


def steps(fn, A, b, **kw):
    phi = jnp.asarray(np.linalg.solve(A, np.asarray(THETA) - b))
    d_theta = flat(fn(f, (THETA,), X, Y, fl.Gaussian(), **kw))
    d_phi = flat(fn(f_reparam, (phi,), batch(A, b), Y, fl.Gaussian(), **kw))
    return d_theta, np.asarray(A) @ d_phi


AFFINE = fls.affine_reparameterizations(dim=D, max_condition=10.0)


@given(AFFINE)
def test_natural_gradient_and_newton_are_invariant(Ab):
    A, b = Ab
    for fn in (fl.updates.natural_gradient, fl.updates.newton, fl.updates.gauss_newton):
        d_theta, mapped = steps(fn, A, b, lr=0.5, damping=0.0)
        assert rel(mapped, d_theta) < 1e-10, fn.__name__


@given(AFFINE)
def test_gradient_descent_and_damped_natural_gradient_are_not(Ab):
    A, b = Ab
    assume(np.linalg.norm(A @ A.T - np.eye(D)) > 0.1)
    phi = jnp.asarray(np.linalg.solve(A, np.asarray(THETA) - b))
    g = np.asarray(fl.gradient(f, (THETA,), X, Y, fl.Gaussian()))
    g_phi = np.asarray(fl.gradient(f_reparam, (phi,), batch(A, b), Y, fl.Gaussian()))
    assert rel(g_phi, A.T @ g) < 1e-10                      # chain rule, eq. (49)
    # GD: A (-lr A^T g) vs -lr g differ by (A A^T - I) g
    assert rel(A @ (-0.5 * g_phi), -0.5 * g) > 1e-6
    assume(np.linalg.norm(A.T @ A - np.eye(D)) > 0.1)
    d_theta, mapped = steps(fl.updates.natural_gradient, A, b, lr=0.5, damping=1.0)
    assert rel(mapped, d_theta) > 1e-6


@given(st.integers(0, 2 ** 16))
def test_damped_natural_gradient_invariant_under_orthogonal_maps(seed):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(D, D)))
    d_theta, mapped = steps(fl.updates.natural_gradient, Q, np.zeros(D), lr=0.5, damping=0.3)
    assert rel(mapped, d_theta) < 1e-10


@given(AFFINE)
def test_fisher_transforms_as_congruence(Ab):
    A, b = Ab
    phi = jnp.asarray(np.linalg.solve(A, np.asarray(THETA) - b))
    F = np.asarray(fl.fisher(f, (THETA,), X, fl.Gaussian()))
    F_phi = np.asarray(fl.fisher(f_reparam, (phi,), batch(A, b), fl.Gaussian()))
    assert rel(F_phi, A.T @ F @ A) < 1e-10                  # eq. (49)


MLP = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])


@given(st.integers(0, 2 ** 16))
def test_kfac_invariant_to_affine_input_transform(seed):
    """x' = M x + c with first-layer weights W1' = W1 M^{-1}, b1' = b1 - W1 M^{-1} c gives the
    same network; the undamped K-FAC steps map as [dW1 db1] = [dW1' db1'] Phi with
    Phi = [[M, c], [0, 1]] (proofs invariance.kfac_layer), other layers unchanged."""
    rng = np.random.default_rng(seed)
    M = rng.normal(size=(2, 2)) + 2 * np.eye(2)
    assume(abs(np.linalg.det(M)) > 0.5)
    c = rng.normal(size=2)
    model = MLP
    params = model.init(jax.random.key(seed))
    x = rng.normal(size=(30, 2))
    y = rng.normal(size=(30, 2))
    (W1, b1), second = params
    Minv = np.linalg.inv(M)
    params2 = [(jnp.asarray(np.asarray(W1) @ Minv), jnp.asarray(np.asarray(b1)
                                                              - np.asarray(W1) @ Minv @ c)),
               second]
    x2 = x @ M.T + c
    lik = fl.Gaussian()
    kw = dict(lr=1.0, damping=0.0)
    d1 = fl.updates.kfac_update(model, params, jnp.asarray(x), jnp.asarray(y), lik, **kw)
    d2 = fl.updates.kfac_update(model, params2, jnp.asarray(x2), jnp.asarray(y), lik, **kw)
    Phi = np.block([[M, c[:, None]], [np.zeros((1, 2)), np.ones((1, 1))]])
    aug1 = np.hstack([np.asarray(d1[0][0]), np.asarray(d1[0][1])[:, None]])
    aug2 = np.hstack([np.asarray(d2[0][0]), np.asarray(d2[0][1])[:, None]])
    assert rel(aug2 @ Phi, aug1) < 1e-8
    assert rel(flat(d2[1]), flat(d1[1])) < 1e-8
    # plain gradient descent is not invariant to the same map: grad' = grad Phi^T
    _, unravel = ravel_pytree(params)
    g1 = unravel(fl.gradient(model, params, jnp.asarray(x), jnp.asarray(y), lik))
    g2 = unravel(fl.gradient(model, params2, jnp.asarray(x2), jnp.asarray(y), lik))
    G1 = np.hstack([np.asarray(g1[0][0]), np.asarray(g1[0][1])[:, None]])
    G2 = np.hstack([np.asarray(g2[0][0]), np.asarray(g2[0][1])[:, None]])
    assert rel(G2, G1 @ Phi.T) < 1e-10
    assert rel(-G2 @ Phi, -G1) > 1e-6


# ------------------------------------------------------------------ empirical-Fisher update
# Ground truth: the closed-form gradient and empirical Fisher E of logistic regression in the
# original coordinates (update_problems.logistic_closed_form); the update is computed in the
# reparameterised coordinates theta = A phi + b and mapped back by A.

LOGISTIC = logistic_problem(seed=3)
_THETA_LR, _UNRAVEL_LR = ravel_pytree(LOGISTIC["params"])
_N_LR = LOGISTIC["X"].shape[0]


def _linear_reparam(params, xab):
    (phi,) = params
    return linear(_UNRAVEL_LR(xab["A"] @ phi + xab["b"]), xab["x"])


def _ef_step_mapped(A, b, damping):
    phi = jnp.asarray(np.linalg.solve(A, np.asarray(_THETA_LR) - b))
    xab = {"x": LOGISTIC["X"], "A": jnp.broadcast_to(jnp.asarray(A), (_N_LR, 4, 4)),
           "b": jnp.broadcast_to(jnp.asarray(b), (_N_LR, 4))}
    d_phi = flat(fl.updates.empirical_fisher_update(_linear_reparam, (phi,), xab, LOGISTIC["y"],
                                                    fl.Bernoulli(), lr=0.5, damping=damping))
    return np.asarray(A) @ d_phi


@given(fls.affine_reparameterizations(dim=4, max_condition=10.0), st.floats(0.05, 2.0),
       st.integers(0, 2 ** 16))
def test_empirical_fisher_update_undamped_affine_invariant_damped_only_orthogonal(Ab, lam, seed):
    A, b = (np.asarray(t) for t in Ab)
    E, g = LOGISTIC["E"], LOGISTIC["grad"]
    # undamped: A delta' = -lr E^{-1} g, the step computed in theta
    assert rel(_ef_step_mapped(A, b, 0.0), -0.5 * np.linalg.solve(E, g)) < 1e-9
    # damped: the damping lam I in phi is lam (A A^T)^{-1} in theta ...
    damped = -0.5 * np.linalg.solve(E + lam * np.linalg.inv(A @ A.T), g)
    assert rel(_ef_step_mapped(A, b, lam), damped) < 1e-9
    # ... which differs from the damped step in theta unless A A^T = I
    assume(np.linalg.norm(A @ A.T - np.eye(4)) > 0.1)
    assert rel(damped, -0.5 * np.linalg.solve(E + lam * np.eye(4), g)) > 1e-6
    # an orthogonal map keeps the damped step
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(4, 4)))
    assert rel(_ef_step_mapped(Q, b, lam), -0.5 * np.linalg.solve(E + lam * np.eye(4), g)) < 1e-9
