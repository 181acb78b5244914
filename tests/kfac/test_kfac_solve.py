"""Damped K-FAC solves against dense linear algebra (numpy.linalg.solve)."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab.testing.references.kfac import kron_block_by_loops, mlp, rel_err, targets_for

seed_st = st.integers(0, 2**31 - 1)
damping_st = st.sampled_from([1e-3, 0.1, 1.0, 7.5])


def _problem(seed, bias="augmented", N=6):
    model = mlp([3, 4, 2], fl.nn.Tanh)
    lik = fl.Categorical()
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    params = model.init(k1)
    x = jax.random.normal(k2, (N, 3), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    f = fl.kfac.factors(model, params, x, y, lik, bias=bias)
    grads = jax.tree_util.tree_map(lambda p: jax.random.normal(k4, p.shape, jnp.float64), params)
    return model, params, f, grads


def _dense_pi_damped_block(A, G, damping, out, inp, separate):
    """Entry-wise construction of (G + sqrt(l)/pi I) (x) (A + pi sqrt(l) I) in parameter order."""
    A, G = np.asarray(A), np.asarray(G)
    pi = np.sqrt((np.trace(A) / A.shape[0]) / (np.trace(G) / G.shape[0]))
    s = np.sqrt(damping)
    Ad = A + pi * s * np.eye(A.shape[0])
    Gd = G + s / pi * np.eye(G.shape[0])
    if not separate:
        return kron_block_by_loops(Ad, Gd, out, inp)
    W = kron_block_by_loops(np.pad(Ad, ((0, 1), (0, 1))), Gd, out, inp, separate=True)
    pib = np.sqrt(1.0 / (np.trace(G) / G.shape[0]))  # bias block: A = [1]
    Gb = (1 + pib * s) * (G + s / pib * np.eye(G.shape[0]))
    W[out * inp:, out * inp:] = Gb
    return W


@given(seed=seed_st, damping=damping_st, bias=st.sampled_from(["augmented", "separate"]))
def test_exact_solve_matches_dense_solve(seed, damping, bias):
    model, params, f, grads = _problem(seed, bias)
    K = np.asarray(fl.kfac.matrix(f, model))
    g, unravel = ravel_pytree(grads)
    expected = np.linalg.solve(K + damping * np.eye(K.shape[0]), np.asarray(g))
    out = fl.kfac.solve(f, grads, damping, method="exact")
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(
        [tuple(p) for p in grads])
    assert rel_err(ravel_pytree(out)[0], expected) < 1e-10


@given(seed=seed_st, damping=damping_st, bias=st.sampled_from(["augmented", "separate"]))
def test_factored_solve_matches_its_closed_form(seed, damping, bias):
    model, params, f, grads = _problem(seed, bias)
    blocks = []
    for (W, b), fk in zip(params, f):
        out, inp = W.shape
        blocks.append(_dense_pi_damped_block(fk.A, fk.G, damping, out, inp, bias == "separate"))
    D = jax.scipy.linalg.block_diag(*blocks)
    g, _ = ravel_pytree(grads)
    expected = np.linalg.solve(np.asarray(D), np.asarray(g))
    out = fl.kfac.solve(f, grads, damping, method="factored")
    assert rel_err(ravel_pytree(out)[0], expected) < 1e-10


@given(seed=seed_st, damping=damping_st)
def test_factored_damping_is_exact_damping_plus_the_cross_term(seed, damping):
    """(G + s/pi I)(x)(A + pi s I) = G(x)A + l I + s (pi G(x)I + I(x)A/pi), s = sqrt(l)
    (Martens & Grosse 2015, §6.3): the factored step solves that dense system exactly."""
    model, params, f, grads = _problem(seed)
    K = np.asarray(fl.kfac.matrix(f, model))
    s = np.sqrt(damping)
    extra = []
    for fk in f:
        A, G = np.asarray(fk.A), np.asarray(fk.G)
        pi = np.sqrt((np.trace(A) / A.shape[0]) / (np.trace(G) / G.shape[0]))
        cross = [fl.kfac.KFACFactors(np.eye(A.shape[0]), pi * G),
                 fl.kfac.KFACFactors(A / pi, np.eye(G.shape[0]))]
        extra.append(cross)
    C = sum(np.asarray(fl.kfac.matrix([e[i] for e in extra], model)) for i in range(2))
    D = K + damping * np.eye(K.shape[0]) + s * C
    x = ravel_pytree(fl.kfac.solve(f, grads, damping, method="factored"))[0]
    g = ravel_pytree(grads)[0]
    assert rel_err(D @ np.asarray(x), g) < 1e-10


def test_zero_damping_inverts_nonsingular_factors():
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    A = jnp.asarray([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 1.5]])
    G = jnp.asarray([[1.0, 0.3], [0.3, 2.0]])
    f = [fl.kfac.KFACFactors(A, G)]
    grads = [(jnp.asarray([[1.0, 2.0], [3.0, 4.0]]), jnp.asarray([5.0, 6.0]))]
    K = np.asarray(fl.kfac.matrix(f, model))
    expected = np.linalg.solve(K, ravel_pytree(grads)[0])
    for method in ("exact", "factored"):
        out = fl.kfac.solve(f, grads, 0.0, method=method)
        assert rel_err(ravel_pytree(out)[0], expected) < 1e-12


@pytest.mark.parametrize("method", ["exact", "factored"])
def test_singular_factors_with_zero_damping_raise(method):
    A = jnp.asarray([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # rank 2
    G = jnp.eye(2)
    grads = [(jnp.ones((2, 2)), jnp.ones((2,)))]
    with pytest.raises(ValueError, match="singular"):
        fl.kfac.solve([fl.kfac.KFACFactors(A, G)], grads, 0.0, method=method)
    out = fl.kfac.solve([fl.kfac.KFACFactors(A, G)], grads, 0.1, method=method)
    assert all(np.isfinite(np.asarray(t)).all() for t in jax.tree_util.tree_leaves(out))


@pytest.mark.parametrize("damping, exc", [(-1.0, ValueError), (float("nan"), ValueError),
                                          (float("inf"), ValueError), ("1", TypeError),
                                          (np.ones(2), TypeError)])
def test_bad_damping_raises(damping, exc):
    model, params, f, grads = _problem(0)
    with pytest.raises(exc, match="damping"):
        fl.kfac.solve(f, grads, damping)


def test_bad_method_and_mismatched_grads_raise():
    model, params, f, grads = _problem(0)
    with pytest.raises(ValueError, match="method"):
        fl.kfac.solve(f, grads, 0.1, method="inverse")
    with pytest.raises(ValueError, match="grads"):
        fl.kfac.solve(f, grads[:1], 0.1)
    with pytest.raises(ValueError, match="grads"):
        fl.kfac.solve(f, [grads[1], grads[0]], 0.1)
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        fl.kfac.solve(f, [(grads[0][0],), grads[1]], 0.1)


def test_solve_under_jit_matches_eager():
    model, params, f, grads = _problem(3)
    eager = fl.kfac.solve(f, grads, 0.2)
    jitted = jax.jit(lambda ff, gg, d: fl.kfac.solve(ff, gg, d))(f, grads, 0.2)
    assert rel_err(ravel_pytree(jitted)[0], ravel_pytree(eager)[0]) < 1e-13


# ------------------------------------------------------------------ token models: exact blocks
V, D, C = 5, 4, 3


def _token_problem(seed, N=3, R=2):
    """Embedding, a pre-LN attention block, RMSNorm and a head: every kind of K-FAC block."""
    nn = fl.nn
    model = nn.Sequential([
        nn.Embedding(V, D),
        nn.Residual(nn.Sequential([nn.LayerNorm(D), nn.MultiHeadAttention(D, 2)])),
        nn.RMSNorm(D), nn.Dense(D, C)])
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    params = model.init(k1)
    # move the norms off their initial values so their blocks are generic
    params = jax.tree_util.tree_map(
        lambda p: p + 0.3 * jax.random.normal(k4, p.shape, p.dtype), params)
    x = jax.random.randint(k2, (N, R), 0, V)
    y = jax.random.randint(k3, (N, R), 0, C)
    return model, params, x, y


def _dense_solve(K, v, damping):
    g, unravel = ravel_pytree(v)
    return np.linalg.solve(np.asarray(K) + damping * np.eye(K.shape[0]), np.asarray(g))


@given(seed=seed_st, damping=damping_st)
def test_exact_solve_of_a_token_model_matches_dense_solve(seed, damping):
    """Exact blocks (LayerNorm, RMSNorm), the embedding and the attention projections: the
    solve is ``(K + lambda I)^{-1} v`` with ``K`` the block-diagonal K-FAC matrix."""
    model, params, x, y = _token_problem(seed)
    f = fl.kfac.factors(model, params, x, y, fl.Categorical())
    assert [type(e) is fl.kfac.ExactBlock for e in f] == [False, True, False, False, True, False]
    v = jax.tree_util.tree_map(lambda p: jax.random.normal(jax.random.key(seed + 9), p.shape,
                                                           jnp.float64), params)
    out = fl.kfac.solve(f, v, damping, model=model)
    assert jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(v)
    expected = _dense_solve(fl.kfac.matrix(f, model), v, damping)
    assert rel_err(ravel_pytree(out)[0], expected) < 1e-10


@pytest.mark.parametrize("method", ["exact", "factored"])
def test_exact_blocks_are_damped_whole_by_either_method(method):
    """Without a model, one gradient entry per factor; an ``ExactBlock`` is solved as
    ``(B + lambda I)^{-1} v`` whatever the method (the embedding and Dense entries are covered
    above and by the MLP tests)."""
    nn = fl.nn
    model = nn.Sequential([nn.Embedding(V, D), nn.LayerNorm(D), nn.RMSNorm(D), nn.Dense(D, C)])
    params = model.init(jax.random.key(3))
    params = jax.tree_util.tree_map(
        lambda p: p + 0.3 * jax.random.normal(jax.random.key(4), p.shape, p.dtype), params)
    x = jax.random.randint(jax.random.key(5), (4, 3), 0, V)
    y = jax.random.randint(jax.random.key(6), (4, 3), 0, C)
    f = fl.kfac.factors(model, params, x, y, fl.Categorical())
    out = fl.kfac.solve(f, params, 0.3, method=method)  # params: one entry per factor here
    K = np.asarray(fl.kfac.matrix(f, model))
    starts = np.cumsum([0, V * D, 2 * D, D, C * (D + 1)])
    g = np.asarray(ravel_pytree(params)[0])
    for k in (1, 2):
        s = slice(starts[k], starts[k + 1])
        expected = np.linalg.solve(K[s, s] + 0.3 * np.eye(K[s, s].shape[0]), g[s])
        assert rel_err(ravel_pytree(out[k])[0], expected) < 1e-10
        assert [t.shape for t in out[k]] == [t.shape for t in params[k]]
    if method == "exact":
        assert rel_err(ravel_pytree(out)[0], _dense_solve(K, params, 0.3)) < 1e-10


def test_kfac_update_of_a_token_model():
    """The step is ``-lr (K + lambda I)^{-1} grad`` with the gradient of the mean over examples
    of the summed token losses, written out with ``log_softmax``."""
    model, params, x, y = _token_problem(11)

    def loss(p):
        logits = jax.vmap(lambda xn: model(p, xn))(x)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.sum(jnp.take_along_axis(logp, y[..., None], -1), axis=(1, 2)))

    grad = jax.grad(loss)(params)
    step = fl.updates.kfac_update(model, params, x, y, fl.Categorical(), lr=0.5, damping=0.2)
    f = fl.kfac.factors(model, params, x, y, fl.Categorical())
    expected = -0.5 * _dense_solve(fl.kfac.matrix(f, model), grad, 0.2)
    assert rel_err(ravel_pytree(step)[0], expected) < 1e-10


def test_bad_exact_block_raises():
    model, params, x, y = _token_problem(2)
    f = fl.kfac.factors(model, params, x, y, fl.Categorical())
    B = np.asarray(f[1].B)
    nan = B.copy()
    nan[0, 1] = np.nan
    for bad, match in ((nan, r"factors\[1\]\.B must be finite, got nan at index \(0, 1\)"),
                       (B - 2 * np.linalg.norm(B) * np.eye(len(B)), "positive semi-definite"),
                       (B + np.triu(np.ones_like(B), 1), "symmetric")):
        g = list(f)
        g[1] = fl.kfac.ExactBlock(bad)
        with pytest.raises(ValueError, match=match):
            fl.kfac.solve(g, params, 0.1, model=model)
    # the LayerNorm's own entry, without a model
    with pytest.raises(ValueError, match=r"factors\[0\]: B \+ damping I is singular"):
        fl.kfac.solve([fl.kfac.ExactBlock(np.zeros_like(B))], [params[1][0]], 0.0)
    with pytest.raises(ValueError, match=r"grads\[1\] .* does not match factors\[1\]\.B"):
        fl.kfac.solve(f[:2], [params[0], (params[1][0][0],)], 0.1)
    with pytest.raises(ValueError, match=r"grads must have the structure of the model's params"):
        fl.kfac.solve(f, params[:3], 0.1, model=model)


def test_grads_in_the_params_structure_without_model_names_the_model_option(
        nested_token_problem):
    """A token model's params nest (Residual, MultiHeadAttention's four arrays): grads in that
    structure without ``model=`` are refused with the option named; with it, the step is
    ``(K + lambda I)^{-1} g`` of the dense K-FAC matrix."""
    model, params, x, y = nested_token_problem
    facs = fl.kfac.factors(model, params, x, y, fl.Categorical())
    g = fl.gradient(model, params, x, y, fl.Categorical())
    _, unravel = jax.flatten_util.ravel_pytree(params)
    with pytest.raises(ValueError, match=r"pass model="):
        fl.kfac.solve(facs, unravel(g), 0.1)
    K = np.asarray(fl.kfac.matrix(facs, model))
    got = jax.flatten_util.ravel_pytree(fl.kfac.solve(facs, unravel(g), 0.1, model=model))[0]
    want = np.linalg.solve(K + 0.1 * np.eye(len(g)), np.asarray(g))
    assert np.linalg.norm(got - want) <= 1e-10 * np.linalg.norm(want)
