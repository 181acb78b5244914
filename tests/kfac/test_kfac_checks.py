"""No silent inf/NaN, no silently repaired factors, and the Monte-Carlo labels of ``fisher_mc``.

* Non-finite ``params`` / ``x`` are rejected by name; a factor (or EKFAC eigenvalue, or solve
  result) that overflows float64 raises a ``ValueError`` naming the layer and what overflowed.
  Ground truth for the overflow threshold: the Poisson output Fisher is ``exp(eta)`` and
  ``exp(710) > 1.797e308`` (float64 max) while ``exp(700)`` is finite -- at ``eta = 700`` the
  factors are checked against their closed form instead.
* ``fl.kfac.solve`` rejects non-symmetric and indefinite factors (it used to symmetrise
  silently / accept them), and says *why* a damped system is singular.
* ``fisher_type="mc"`` draws exactly ``likelihood.sample(key, outputs, S)``, the labels of
  ``fl.fisher_mc`` with the same key: for ``N = 1`` the K-FAC mc block equals the ``fisher_mc``
  block (K-FAC is exact for one example), and for any ``N`` with ``S = 1`` the mc factors equal
  the empirical factors at those sampled labels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab.testing.references.kfac import block_diagonal_part, mlp, rel_err

F64 = jnp.float64


def _leaves_finite(tree):
    return all(np.all(np.isfinite(np.asarray(t))) for t in jax.tree_util.tree_leaves(tree))


# ----------------------------------------------------------------------------- non-finite inputs
@pytest.fixture(scope="module")
def mlp_problem():
    model = mlp([3, 4, 2], fl.nn.Tanh)
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 3), F64)
    return model, params, x, fl.Categorical()


@pytest.mark.parametrize("layer, which", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("fn", ["factors", "ekfac"])
def test_nonfinite_params_are_rejected_by_name(mlp_problem, layer, which, bad, fn):
    model, params, x, lik = mlp_problem
    p = [list(t) for t in params]
    p[layer][which] = jnp.asarray(p[layer][which]).reshape(-1).at[0].set(bad).reshape(
        np.shape(p[layer][which]))
    p = [tuple(t) for t in p]
    with pytest.raises(ValueError, match=rf"params\[{layer}\]\[{which}\] must be finite"):
        getattr(fl.kfac, fn)(model, p, x, None, lik)


def test_infinite_x_is_rejected(mlp_problem):
    model, params, x, lik = mlp_problem
    with pytest.raises(ValueError, match="x must be finite"):
        fl.kfac.factors(model, params, x.at[1, 2].set(-jnp.inf), None, lik)


# ----------------------------------------------------------------------------- overflow
_XP = np.array([[1.0, 0.5], [0.3, -1.0]])


def _poisson_layer(log_rate):
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    return model, [(np.zeros((1, 2)), np.array([log_rate]))]


def test_poisson_factors_match_closed_form_just_below_overflow():
    """W = 0, b = eta: G = (1/N) sum_n exp(eta) = exp(eta), A = (1/N) sum_n abar abar^T."""
    model, params = _poisson_layer(700.0)
    (f,) = fl.kfac.factors(model, params, _XP, None, fl.Poisson())
    abar = np.concatenate([_XP, np.ones((2, 1))], axis=1)
    assert f.G.shape == (1, 1) and abs(float(f.G[0, 0]) / np.exp(700.0) - 1.0) < 1e-12
    assert rel_err(f.A, abar.T @ abar / 2) < 1e-14


def test_poisson_output_fisher_overflow_raises_for_every_fisher_type():
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(np.float64(710.0)))  # the ground truth of the overflow
    model, params = _poisson_layer(710.0)
    lik = fl.Poisson()
    with pytest.raises(ValueError, match=r"G factor of layer 0 is not finite.*output Fisher "
                                         r"F_out overflowed at model outputs\[0\] = \[710\.\]"):
        fl.kfac.factors(model, params, _XP, None, lik)
    with pytest.raises(ValueError, match=r"G factor of layer 0 is not finite.*output gradient "
                                         r".*data labels.*outputs\[0\]"):
        fl.kfac.factors(model, params, _XP, np.array([[1.0], [2.0]]), lik,
                        fisher_type="empirical")
    with pytest.raises(ValueError, match=r"G factor of layer 0 is not finite.*outputs\[0\]"):
        fl.kfac.factors(model, params, _XP, None, lik, fisher_type="mc", key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"G factor of layer 0 is not finite.*output Fisher"):
        fl.kfac.ekfac(model, params, _XP, None, lik)


def test_ekfac_eigenvalue_overflow_with_given_factors_raises():
    """A finite eigenbasis given, but the projected second moments exp(710) overflow."""
    model, params = _poisson_layer(710.0)
    facs = [fl.kfac.KFACFactors(np.eye(3), np.eye(1))]
    with pytest.raises(ValueError, match=r"EKFAC eigenvalues S of layer 0 are not finite.*"
                                         r"output Fisher F_out overflowed"):
        fl.kfac.ekfac(model, params, _XP, None, fl.Poisson(), factors=facs)


def test_input_factor_overflow_names_the_inputs():
    """Inputs 1e200: finite, but A = mean a a^T has entries 1e400 > float64 max."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = [(np.zeros((2, 2)), np.array([0.3, -0.2]))]
    x = np.array([[1e200, 1.0], [2.0, -1.0]])
    with pytest.raises(ValueError, match=r"A factor of layer 0 is not finite.*inputs of layer 0 "
                                         r"are finite \(largest magnitude 1\.000e\+200\) but "
                                         r"their second moments"):
        fl.kfac.factors(model, params, x, None, fl.Categorical())


def test_large_but_finite_factors_are_returned():
    """x = 1e154: A_00 = (1e154^2 + 1) / 2 ~ 5e307 is finite but above a quarter of the largest
    float64, where finiteness is no longer read off the diagonal; the full check finds every
    entry finite and the factors are returned (closed form A = abar^T abar / N)."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = [(np.zeros((2, 2)), np.array([0.3, -0.2]))]
    x = np.array([[1e154, 1.0], [1.0, -1.0]])
    (f,) = fl.kfac.factors(model, params, x, None, fl.Categorical())
    abar = np.concatenate([x, np.ones((2, 1))], axis=1)
    assert float(f.A[0, 0]) > np.finfo(np.float64).max / 8 and _leaves_finite(f)
    # compared after scaling by 1e-300 (the Frobenius norm of A itself overflows)
    assert rel_err(np.asarray(f.A) * 1e-300, (abar.T @ abar / 2) * 1e-300) < 1e-15


def test_hidden_activation_overflow_names_the_layer():
    """Layer 0 maps 1e150 to 1e150 * 1e200 = inf (A_0 = 1e300 is still finite); Tanh(inf) = 1
    keeps the outputs finite, but the inputs of layer 1 are inf."""
    model = fl.nn.Sequential([fl.nn.Dense(1, 1), fl.nn.Identity(), fl.nn.Dense(1, 1),
                              fl.nn.Tanh(), fl.nn.Dense(1, 2)])
    params = [(np.array([[1e200]]), np.zeros(1)), (np.ones((1, 1)), np.zeros(1)),
              (np.array([[1.0], [-1.0]]), np.zeros(2))]
    x = np.array([[1e150], [1.0]])
    with pytest.raises(ValueError, match=r"A factor of layer 1 is not finite.*inputs of layer 1 "
                                         r"\(the activations of the layers before it\) "
                                         r"overflowed \(example 0\)"):
        fl.kfac.factors(model, params, x, None, fl.Categorical())


def test_overflowing_model_outputs_are_named():
    """Finite params and x, but the logits W x = 1e200 * 1e200 overflow to inf: the model
    outputs are rejected by name (checked where they are computed, in the compiled pass)."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = [(np.array([[1e200, 0.0], [0.0, 1.0]]), np.zeros(2))]
    x = np.array([[1e200, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"model outputs must be finite, got inf at index \(0, 0\)"):
        fl.kfac.factors(model, params, x, None, fl.Categorical())
    with pytest.raises(ValueError, match=r"model outputs must be finite"):
        fl.kfac.ekfac(model, params, x, None, fl.Categorical())


def test_backpropagated_gradient_second_moments_overflow():
    """Tanh(0) = 0 keeps the outputs finite; G_0 = W2^T F_out W2 ~ 1e400 overflows."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Tanh(), fl.nn.Dense(2, 2)])
    params = [(np.zeros((2, 2)), np.zeros(2)), (np.full((2, 2), 1e200), np.array([0.0, 1.0]))]
    with pytest.raises(ValueError, match=r"G factor of layer 0 is not finite.*pre-activation "
                                         r"gradients of layer 0 are finite"):
        fl.kfac.factors(model, params, _XP, None, fl.Categorical())


# ----------------------------------------------------------------------------- solve
def _spd(rng, n, cond=10.0):
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return Q @ np.diag(np.geomspace(1, cond, n)) @ Q.T


def _solve_problem(seed=4):
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    facs = [fl.kfac.KFACFactors(_spd(rng, 4), _spd(rng, 4, 100.0)),
            fl.kfac.KFACFactors(_spd(rng, 5, 1e3), _spd(rng, 2))]
    grads = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
             (rng.normal(size=(2, 4)), rng.normal(size=2))]
    return rng, model, facs, grads


def _replace(facs, k, nm, M):
    out = list(facs)
    out[k] = out[k]._replace(**{nm: M})
    return out


@pytest.mark.parametrize("method", ["exact", "factored"])
@pytest.mark.parametrize("k, nm", [(0, "A"), (1, "G")])
def test_nonsymmetric_factor_is_rejected(method, k, nm):
    rng, model, facs, grads = _solve_problem()
    M = np.asarray(getattr(facs[k], nm))
    bad = M + 0.3 * np.triu(rng.normal(size=M.shape), 1)
    with pytest.raises(ValueError, match=rf"factors\[{k}\]\.{nm} \(the .* factor of layer {k}\) "
                                         r"must be symmetric.*relative asymmetry"):
        fl.kfac.solve(_replace(facs, k, nm, bad), grads, 0.1, method=method)


def test_rounding_level_asymmetry_is_accepted_and_solves_the_dense_system():
    rng, model, facs, grads = _solve_problem()
    A = np.asarray(facs[0].A)
    A_eps = A + 1e-13 * np.linalg.norm(A) * np.triu(rng.normal(size=A.shape), 1)
    facs = _replace(facs, 0, "A", A_eps)
    K = np.asarray(fl.kfac.matrix(facs, model))
    g = np.asarray(ravel_pytree(grads)[0])
    want = np.linalg.solve((K + K.T) / 2 + 0.1 * np.eye(len(g)), g)
    got = ravel_pytree(fl.kfac.solve(facs, grads, 0.1))[0]
    assert rel_err(got, want) < 1e-10


@pytest.mark.parametrize("method", ["exact", "factored"])
@pytest.mark.parametrize("damping", [0.0, 5.0])
def test_indefinite_factor_is_rejected_naming_the_eigenvalue(method, damping):
    """A = diag(2, 1, 3, -0.5): the old exact path said 'singular ... use a damping > 0' even
    at damping 5, the factored path accepted it."""
    _, model, facs, grads = _solve_problem()
    A = np.diag([2.0, 1.0, 3.0, -0.5])
    with pytest.raises(ValueError, match=r"factors\[0\]\.A \(the input factor of layer 0\) must "
                                         r"be positive semi-definite.*smallest eigenvalue is -0\.5"):
        fl.kfac.solve(_replace(facs, 0, "A", A), grads, damping, method=method)


@pytest.mark.parametrize("method", ["exact", "factored"])
def test_negative_definite_pair_is_rejected_even_though_the_product_is_pd(method):
    rng, model, facs, grads = _solve_problem()
    bad = fl.kfac.KFACFactors(-np.asarray(facs[0].A), -np.asarray(facs[0].G))
    with pytest.raises(ValueError, match=r"factors\[0\]\.A .*positive semi-definite"):
        fl.kfac.solve([bad, facs[1]], grads, 0.1, method=method)


def test_rank_deficient_psd_factors_are_accepted_in_float64_and_float32():
    """A = a a^T + e e^T built from outer products (computed eigenvalue ~ -1e-16 relative)."""
    rng, model, facs, grads = _solve_problem()
    a = rng.normal(size=(2, 4))
    A = a.T @ a  # rank 2 of 4
    assert np.linalg.eigvalsh(A)[0] < 1e-12 * np.linalg.eigvalsh(A)[-1]
    facs64 = _replace(facs, 0, "A", A)
    K = np.asarray(fl.kfac.matrix(facs64, model))
    g = np.asarray(ravel_pytree(grads)[0])
    want = np.linalg.solve(K + 0.3 * np.eye(len(g)), g)
    assert rel_err(ravel_pytree(fl.kfac.solve(facs64, grads, 0.3))[0], want) < 1e-10
    a32 = a.astype(np.float32)
    facs32 = [fl.kfac.KFACFactors(a32.T @ a32, np.asarray(facs[0].G, np.float32)), facs[1]]
    out = fl.kfac.solve(facs32, grads, 0.3, method="factored")
    assert _leaves_finite(out)


def test_singular_messages_say_why():
    A = np.asarray([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # rank 2, PSD
    grads = [(np.ones((2, 2)), np.ones(2))]
    f = [fl.kfac.KFACFactors(A, np.eye(2))]
    with pytest.raises(ValueError, match=r"singular \(smallest eigenvalue .*with damping = 0 "
                                         r"the factors must be nonsingular; use a damping > 0"):
        fl.kfac.solve(f, grads, 0.0)
    with pytest.raises(ValueError, match=r"singular.*damping = 1e-30 is negligible.*larger "
                                         r"damping"):
        fl.kfac.solve(f, grads, 1e-30)


@pytest.mark.parametrize("method", ["exact", "factored"])
def test_solve_overflow_raises(method):
    """A = G = 1e-150 I: G (x) A = 1e-300 I (nonsingular relative to itself), so the step
    g / 1e-300 with g = 1e10 is 1e310 > float64 max."""
    f = [fl.kfac.KFACFactors(1e-150 * np.eye(3), 1e-150 * np.eye(2))]
    grads = [(np.full((2, 2), 1e10), np.full(2, 1e10))]
    with pytest.raises(ValueError, match=r"solve result of layer 0 .* is not finite"):
        fl.kfac.solve(f, grads, 0.0, method=method)


def test_ekfac_rejects_nonsymmetric_or_nonfinite_given_factors(mlp_problem):
    model, params, x, lik = mlp_problem
    f = fl.kfac.factors(model, params, x, None, lik)
    A = np.asarray(f[0].A).copy()
    A[0, 1] += 1.0
    with pytest.raises(ValueError, match=r"factors\[0\]\.A \(layer 0\) must be symmetric"):
        fl.kfac.ekfac(model, params, x, None, lik, factors=[f[0]._replace(A=A), f[1]])
    G = np.asarray(f[1].G).copy()
    G[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"factors\[1\]\.G must be finite"):
        fl.kfac.ekfac(model, params, x, None, lik, factors=[f[0], f[1]._replace(G=G)])


# ----------------------------------------------------------------------------- Monte-Carlo labels
@pytest.mark.parametrize("lik, S", [(fl.Categorical(), 1), (fl.Gaussian(), 3),
                                    (fl.Bernoulli(), 2), (fl.Poisson(), 1)],
                         ids=["categorical-S1", "gaussian-S3", "bernoulli-S2", "poisson-S1"])
def test_mc_kfac_equals_fisher_mc_block_for_one_example(lik, S):
    """K-FAC is exact for N = 1, and mc draws fisher_mc's labels: the blocks agree exactly."""
    rng = np.random.default_rng(15)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
              (0.3 * rng.normal(size=(3, 4)), 0.3 * rng.normal(size=3))]
    X = rng.normal(size=(1, 3))
    key = jax.random.key(3)
    Fmc = block_diagonal_part(fl.fisher_mc(model, params, X, lik, key, S), model)
    K = fl.kfac.matrix(fl.kfac.factors(model, params, X, None, lik, fisher_type="mc", key=key,
                                       num_samples=S), model)
    assert rel_err(K, Fmc) < 1e-12
    E = fl.kfac.matrix(fl.kfac.ekfac(model, params, X, None, lik, fisher_type="mc", key=key,
                                     num_samples=S), model)
    assert rel_err(E, Fmc) < 1e-12


@pytest.mark.parametrize("lik", [fl.Categorical(), fl.Gaussian()], ids=lambda l: type(l).__name__)
def test_mc_labels_are_likelihood_sample_for_any_batch(lik):
    """S = 1: the mc factors are the empirical factors at y = likelihood.sample(key, outputs, 1)[0]."""
    model = mlp([3, 4, 3], fl.nn.Tanh)
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 3), F64)
    key = jax.random.key(9)
    outs = jax.vmap(lambda xn: model(params, xn))(x)
    y = lik.sample(key, outs, 1)[0]
    mc = fl.kfac.factors(model, params, x, None, lik, fisher_type="mc", key=key)
    emp = fl.kfac.factors(model, params, x, y, lik, fisher_type="empirical")
    for a, b in zip(mc, emp):
        assert rel_err(a.G, b.G) < 1e-13 and rel_err(a.A, b.A) == 0.0


def test_mc_labels_with_output_positions_split_the_example_key():
    """Q = 2 output positions: example n draws likelihood.sample(split(key, N)[n], f_n, 1)."""
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = model.init(jax.random.key(0))
    lik = fl.Categorical()
    x = jax.random.normal(jax.random.key(1), (3, 2, 3), F64)  # (N, T, in): P = Q = 2
    key = jax.random.key(5)
    outs = jax.vmap(lambda xn: model(params, xn))(x)  # (N, 2, C)
    keys = jax.random.split(key, x.shape[0])
    y = jnp.stack([lik.sample(k, o, 1)[0] for k, o in zip(keys, outs)])  # (N, 2)
    mc = fl.kfac.factors(model, params, x, None, lik, fisher_type="mc", key=key)
    emp = fl.kfac.factors(model, params, x, y, lik, fisher_type="empirical")
    for a, b in zip(mc, emp):
        assert rel_err(a.G, b.G) < 1e-13
