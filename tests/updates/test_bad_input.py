"""Every bad input to fl.updates raises a clear ValueError/TypeError naming the argument."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from update_problems import linear, logistic_problem

import fisherlab as fl


@pytest.fixture(scope="module")
def P():
    return logistic_problem(seed=11, N=6, D=2)


def args(P):
    return (linear, P["params"], P["X"], P["y"], fl.Bernoulli())


DENSE = [fl.updates.natural_gradient, fl.updates.empirical_fisher_update, fl.updates.newton,
         fl.updates.gauss_newton]


@pytest.mark.parametrize("fn", DENSE + [fl.updates.hessian_free, fl.updates.diagonal_update])
@pytest.mark.parametrize("lr,exc,msg", [(0.0, ValueError, "lr must be a finite number > 0"),
                                        (-1.0, ValueError, "lr must be"),
                                        (math.nan, ValueError, "lr must be"),
                                        ("0.1", TypeError, "lr must be a real number")])
def test_bad_learning_rate(P, fn, lr, exc, msg):
    with pytest.raises(exc, match=msg):
        fn(*args(P), lr=lr, damping=0.1)


@pytest.mark.parametrize("fn", DENSE + [fl.updates.hessian_free, fl.updates.diagonal_update])
@pytest.mark.parametrize("damping", [-1e-3, math.inf])
def test_bad_damping(P, fn, damping):
    with pytest.raises(ValueError, match="damping must be a finite number >= 0"):
        fn(*args(P), lr=0.1, damping=damping)


def test_kfac_and_diagonal_bad_scalars(P):
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    with pytest.raises(ValueError, match="lr must be"):
        fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=0.0,
                               damping=0.1)
    with pytest.raises(ValueError, match="damping must be"):
        fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=0.1,
                               damping=-1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=0.1,
                               damping=0.1, method="diagonal")
    with pytest.raises(ValueError, match="decay must be in"):
        fl.updates.diagonal_update(*args(P), lr=0.1, damping=0.1, decay=1.0)
    with pytest.raises(ValueError, match="estimator must be one of"):
        fl.updates.diagonal_update(*args(P), lr=0.1, damping=0.1, estimator="adam")
    with pytest.raises(TypeError, match="state must be a DiagonalState"):
        fl.updates.diagonal_update(*args(P), lr=0.1, damping=0.1, state=(0, 1))
    bad_state = fl.updates.DiagonalState(jnp.zeros(5), jnp.asarray(0))
    with pytest.raises(ValueError, match=r"state.second_moment must have shape \(3,\)"):
        fl.updates.diagonal_update(*args(P), lr=0.1, damping=0.1, state=bad_state)


def test_diagonal_zero_damping_singular(P):
    # a parameter the curvature does not see: x with a zero feature column
    X = np.asarray(P["X"]).copy()
    X[:, 1] = 0.0
    with pytest.raises(ValueError, match="entry 1 is 0 .*pass damping > 0"):
        fl.updates.diagonal_update(linear, P["params"], jnp.asarray(X), P["y"], fl.Bernoulli(),
                                   lr=0.1, damping=0.0)


def test_diagonal_zero_damping_numerically_singular(P):
    # a feature 1e-9 of the others: its Fisher diagonal entry is ~1e-18 of the largest, zero at
    # float64 precision relative to the others, so it is rejected like an exact zero
    X = np.asarray(P["X"]).copy()
    X[:, 1] *= 1e-9
    with pytest.raises(ValueError, match="entry 1 is .*pass damping > 0"):
        fl.updates.diagonal_update(linear, P["params"], jnp.asarray(X), P["y"], fl.Bernoulli(),
                                   lr=0.1, damping=0.0)
    # a relative size of 1e-4 (a ~1e-8 diagonal entry) is a usable preconditioner
    X = np.asarray(P["X"]).copy()
    X[:, 1] *= 1e-4
    delta, _ = fl.updates.diagonal_update(linear, P["params"], jnp.asarray(X), P["y"],
                                          fl.Bernoulli(), lr=0.1, damping=0.0)
    assert np.all(np.isfinite(np.asarray(delta[0][0])))

@pytest.mark.parametrize("scale", [1e-4, 1e4])
def test_diagonal_singularity_is_relative_to_the_largest_entry(P, scale):
    # Gaussian: the Fisher diagonal is mean(x_j^2) for the weights and 1 for the bias, so scaling
    # every feature moves the largest entry by scale^2 but not the relative size of a feature
    # shrunk by 1e-9, which stays numerically zero
    X = np.asarray(P["X"]) * scale
    X[:, 1] *= 1e-9
    with pytest.raises(ValueError, match="entry 1 is .*pass damping > 0"):
        fl.updates.diagonal_update(linear, P["params"], jnp.asarray(X), P["y"], fl.Gaussian(),
                                   lr=0.1, damping=0.0)

def test_singular_curvature_with_zero_damping(P):
    # more parameters than the Fisher's rank: N = 2 examples, d = 3
    with pytest.raises(ValueError, match=r"the Fisher \+ damping \* I is singular.*pass damping"):
        fl.updates.natural_gradient(linear, P["params"], P["X"][:2], P["y"][:2], fl.Bernoulli(),
                                    lr=0.1, damping=0.0)
    # with damping it is fine
    fl.updates.natural_gradient(linear, P["params"], P["X"][:2], P["y"][:2], fl.Bernoulli(),
                                lr=0.1, damping=1e-3)


def test_precondition_checks():
    g = jnp.asarray([1.0, 2.0])
    with pytest.raises(ValueError, match=r"smallest eigenvalue -0.3 < 0"):
        fl.updates.precondition(jnp.asarray([[1.0, 0.0], [0.0, -0.3]]), g, damping=0.0)
    with pytest.raises(ValueError, match=r"has shape \(3, 3\) but the gradient has 2 entries"):
        fl.updates.precondition(jnp.eye(3), g, damping=0.1)
    with pytest.raises(ValueError, match=r"square \(d, d\) matrix, got shape \(2, 3\)"):
        fl.updates.precondition(jnp.ones((2, 3)), g, damping=0.1)
    with pytest.raises(ValueError, match="must be symmetric"):
        fl.updates.precondition(jnp.asarray([[1.0, 0.5], [0.0, 1.0]]), g, damping=0.1)
    with pytest.raises(ValueError, match="singular"):
        fl.updates.precondition(jnp.asarray([[1.0, 1.0], [1.0, 1.0]]), g, damping=0.0)
    with pytest.raises(ValueError, match="must be finite"):
        fl.updates.precondition(jnp.asarray([[1.0, math.nan], [math.nan, 1.0]]), g, damping=0.1)
    with pytest.raises(ValueError, match="damping must be"):
        fl.updates.precondition(jnp.eye(2), g, damping=-0.5)
    with pytest.raises(ValueError, match=r"map a \(2,\) vector to a \(2,\) vector"):
        fl.updates.precondition(lambda v: jnp.ones(3), g, damping=0.1)
    with pytest.raises(ValueError, match="not positive definite"):
        fl.updates.precondition(lambda v: -v, g, damping=0.1)
    with pytest.raises(ValueError, match="did not reach relative residual"):
        fl.updates.precondition(lambda v: jnp.asarray([1.0, 100.0]) * v, g, damping=0.0,
                                maxiter=1)
    # newton's indefinite solve still rejects singular matrices
    with pytest.raises(ValueError, match="singular"):
        fl.updates.precondition(jnp.asarray([[1.0, 0.0], [0.0, -1.0]]), g, damping=1.0,
                                psd=False)


def test_hessian_free_bad_options(P):
    with pytest.raises(ValueError, match="curvature must be one of"):
        fl.updates.hessian_free(*args(P), lr=0.1, damping=0.1, curvature="kfac")
    with pytest.raises(ValueError, match="maxiter must be >= 1"):
        fl.updates.hessian_free(*args(P), lr=0.1, damping=0.1, maxiter=0)
    with pytest.raises(ValueError, match="tol must be"):
        fl.updates.hessian_free(*args(P), lr=0.1, damping=0.1, tol=0.0)
    with pytest.raises(ValueError, match="x0 must have 3 entries"):
        fl.updates.hessian_free(*args(P), lr=0.1, damping=0.1, x0=jnp.zeros(4))


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(damping=0.0, actual=-1.0, predicted=-1.0), ValueError, "damping must be"),
    (dict(damping=1.0, actual=-1.0, predicted=0.0), ValueError, "predicted must be < 0"),
    (dict(damping=1.0, actual=-1.0, predicted=0.5), ValueError, "predicted must be < 0"),
    (dict(damping=1.0, actual=math.nan, predicted=-1.0), ValueError, "actual must be finite"),
    (dict(damping=1.0, actual="x", predicted=-1.0), TypeError, "actual must be a real"),
    (dict(damping=1.0, actual=-1.0, predicted=-1.0, decay=1.5), ValueError, "decay must be"),
    (dict(damping=1.0, actual=-1.0, predicted=-1.0, interval=0), ValueError, "interval"),
    (dict(damping=1.0, actual=-1.0, predicted=-1.0, min_damping=2.0, max_damping=1.0),
     ValueError, "max_damping"),
])
def test_adaptive_damping_bad_input(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fl.updates.adaptive_damping(**kwargs)


def test_predicted_change_shape_mismatch():
    with pytest.raises(ValueError, match="delta has 3 entries but grads has 2"):
        fl.updates.predicted_change(jnp.ones(2), jnp.eye(2), jnp.ones(3))
    with pytest.raises(ValueError, match=r"must have shape \(2, 2\), got \(3, 3\)"):
        fl.updates.predicted_change(jnp.ones(2), jnp.eye(3), jnp.ones(2))
    with pytest.raises(ValueError, match=r"map a \(2,\) vector to a \(2,\) vector, got output "
                                         r"shape \(3,\)"):
        fl.updates.predicted_change(jnp.ones(2), lambda v: jnp.ones(3), jnp.ones(2))


def test_fisher_type_options(P):
    with pytest.raises(ValueError, match="fisher_type must be one of"):
        fl.updates.natural_gradient(*args(P), lr=0.1, damping=0.1, fisher_type="empirical")
    with pytest.raises(ValueError, match="key"):
        fl.updates.natural_gradient(*args(P), lr=0.1, damping=0.1, fisher_type="mc")


def test_precondition_matvec_requires_psd():
    with pytest.raises(ValueError, match="psd=False needs a dense matrix"):
        fl.updates.precondition(lambda v: v, jnp.ones(2), damping=0.1, psd=False)


@pytest.mark.parametrize("grads, dtype", [(np.array([1.0 + 1.0j, 2.0]), "complex128"),
                                          (np.array([True, False]), "bool")])
def test_grads_and_delta_must_be_real(grads, dtype):
    with pytest.raises(TypeError, match=f"grads must hold real arrays, got dtype {dtype}"):
        fl.updates.precondition(jnp.eye(2), grads, damping=0.0)
    with pytest.raises(TypeError, match=f"delta must hold real arrays, got dtype {dtype}"):
        fl.updates.predicted_change(jnp.ones(2), jnp.eye(2), grads)


def test_grads_with_a_single_non_finite_entry_are_rejected():
    with pytest.raises(ValueError, match="grads must be finite, got a non-finite entry"):
        fl.updates.precondition(jnp.eye(3), np.array([1.0, np.nan, 2.0]), damping=0.0)


def test_float32_params_give_the_float64_step_of_the_same_values(P):
    # a reference step is computed in float64 whatever the params' dtype: rounding the values
    # to float32 first, the step equals the float64-params step of those rounded values
    p32 = [tuple(np.asarray(a, np.float32) for a in layer) for layer in P["params"]]
    p64 = [tuple(np.asarray(a, np.float64) for a in layer) for layer in p32]
    for fn in (fl.updates.natural_gradient, fl.updates.diagonal_update):
        d32 = fn(linear, p32, P["X"], P["y"], fl.Bernoulli(), lr=0.1, damping=0.1)
        d64 = fn(linear, p64, P["X"], P["y"], fl.Bernoulli(), lr=0.1, damping=0.1)
        if fn is fl.updates.diagonal_update:
            d32, d64 = d32[0], d64[0]
        for a, b in zip(jax.tree_util.tree_leaves(d32), jax.tree_util.tree_leaves(d64)):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


@pytest.mark.parametrize("num_samples, exc, msg", [
    (0, ValueError, "num_samples must be >= 1, got 0"),
    (1.5, TypeError, "num_samples must be an int, got 1.5"),
    (True, TypeError, "num_samples must be an int, got True")])
def test_monte_carlo_fisher_num_samples_is_checked(P, num_samples, exc, msg):
    with pytest.raises(exc, match=msg):
        fl.updates.natural_gradient(*args(P), lr=0.1, damping=0.1, fisher_type="mc",
                                    key=jax.random.key(0), num_samples=num_samples)
