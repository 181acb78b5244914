"""The prepared problem: inputs and targets as the kernels receive them, and the refusals of
inputs the kernels cannot use, with their messages.

The per-token view of ``tokens="flatten"`` is checked against its direct construction (token
``r`` of sequence ``n`` is example ``n R + r``) on ``N = 2`` sequences of ``R = 3`` tokens with
``C = 4`` classes, so that no two of the sizes coincide.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.curvature._problem import prepare, reduction_weights
from curvature_cases import make_problem
from token_cases import IN, attention_model, attention_params

N, R, C = 2, 3, 4
T_PARAMS = attention_params(3, C)
T_X = jnp.asarray(np.random.default_rng(3).normal(size=(N, R, IN)))
T_Y = jnp.asarray([[0, 3, 1], [2, 2, 0]])
MLP = make_problem("categorical", seed=1, n=4, in_features=3, hidden=4, outputs=3)


def test_flatten_outer_product_problem_makes_each_token_an_example():
    p = prepare(attention_model, T_PARAMS, T_X, T_Y, fl.Categorical(), tokens="flatten")
    assert (p.num_examples, p.num_tokens, p.num_outputs) == (N, R, R * C)
    q = p.outer_product_problem()
    assert (q.num_examples, q.num_outputs, q.num_params) == (N * R, C, p.num_params)
    outs = np.asarray(jax.jit(jax.vmap(attention_model, in_axes=(None, 0)))(T_PARAMS, T_X))
    rows = np.stack([outs[n, r] for n in range(N) for r in range(R)])  # (N R, C)
    np.testing.assert_allclose(np.asarray(q.outputs), rows, rtol=1e-13)
    np.testing.assert_array_equal(np.asarray(q.y), [0, 3, 1, 2, 2, 0])
    x_rep, token = q.x
    np.testing.assert_array_equal(np.asarray(token), [0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(np.asarray(x_rep), np.asarray(T_X)[[0, 0, 0, 1, 1, 1]])
    # the token model evaluated on its examples gives the same rows
    token_outs = jax.jit(jax.vmap(q.f, in_axes=(None, 0)))(q.params, q.x)
    np.testing.assert_allclose(np.asarray(token_outs), rows, rtol=1e-13)
    assert q.example_weight("mean") == pytest.approx(1 / (N * R))
    # without targets (the Monte-Carlo Fisher) the view has none
    pf = prepare(attention_model, T_PARAMS, T_X, None, fl.Categorical(), tokens="flatten",
                 needs_targets=False)
    assert pf.outer_product_problem().y is None
    # the sequences view (tokens="sum") is its own outer-product problem
    ps = prepare(attention_model, T_PARAMS, T_X, T_Y, fl.Categorical())
    assert ps.outer_product_problem() is ps


@pytest.mark.parametrize("n", [1, 4, 7])
def test_reduction_weights_are_one_over_n_for_the_mean_and_one_for_the_sum(n):
    assert reduction_weights(n, "mean") == 1.0 / n
    assert reduction_weights(n, "sum") == 1.0


def test_floating_inputs_are_cast_to_float64_and_integer_inputs_kept():
    f, params, x, y, lik = MLP
    p = prepare(f, params, np.asarray(x, np.float32), y, lik)
    assert p.x.dtype == jnp.float64
    np.testing.assert_array_equal(np.asarray(p.x), np.asarray(x, np.float32).astype(np.float64))
    ids = jnp.asarray([[0, 2, 1], [1, 1, 0]])  # integer token ids stay integers

    def embed(params, xn):
        return params["E"][xn]

    q = prepare(embed, {"E": jnp.ones((3, 2))}, ids, jnp.asarray([[0, 1, 1], [1, 0, 0]]),
                fl.Categorical())
    assert jnp.issubdtype(q.x.dtype, jnp.integer)


def test_targets_given_as_a_list_are_the_array():
    f, params, x, y, lik = MLP
    p = prepare(f, params, x, [int(t) for t in np.asarray(y)], lik)
    np.testing.assert_array_equal(np.asarray(p.y), np.asarray(y))
    np.testing.assert_array_equal(np.asarray(fl.ggn(f, params, x, list(np.asarray(y)), lik)),
                                  np.asarray(fl.ggn(f, params, x, y, lik)))


def test_batch_sizes_of_x_and_y_must_match():
    f, params, x, y, lik = MLP  # 4 examples
    with pytest.raises(ValueError, match=r"^batch sizes differ: x has 4 examples \(leading "
                                         r"axis\), y has 3 \(shape \(3,\)\); they must match"):
        prepare(f, params, x, y[:3], lik)
    g = fl.Gaussian()
    outs = jax.vmap(f, in_axes=(None, 0))(params, x)  # (4, 3): y of shape (4, 3) matches
    assert prepare(f, params, x, jnp.zeros_like(outs), g).y.shape == (4, 3)
    with pytest.raises(ValueError, match=r"x has 4 examples \(leading axis\), y has 3 "
                                         r"\(shape \(3, 4\)\)"):
        prepare(f, params, x, jnp.zeros((3, 4)), g)


def test_x_leaves_of_different_batch_sizes_are_refused_with_the_ragged_hint():
    def two(params, xn):
        a, b = xn
        return params["W"] @ jnp.concatenate([a.sum(0), b.sum(0)])

    params = {"W": jnp.ones((2, 2))}
    seqs = [jnp.ones((3, 1)), jnp.ones((2, 1))]  # two sequences of lengths 3 and 2
    with pytest.raises(ValueError, match=r"^the leaves of x must share their leading \(batch\) "
                                         r"size: x\[0\] has 3 examples but x\[1\] has 2 \(shape "
                                         r"\(2, 1\)\)\. If x is a list of 2 sequences of lengths "
                                         r"\(3, 2\): the sequence length must not change"):
        prepare(two, params, seqs, None, fl.Categorical(), needs_targets=False)
    # leaves of different ranks are no list of sequences: the message has no hint
    with pytest.raises(ValueError, match=r"x\[1\] has 2 \(shape \(2, 1, 1\)\)$"):
        prepare(two, params, [jnp.ones((3, 1)), jnp.ones((2, 1, 1))], None, fl.Categorical(),
                needs_targets=False)


def test_empty_batch_and_empty_params_are_refused():
    f, params, x, y, lik = MLP
    with pytest.raises(ValueError, match=r"^x must contain at least one example, got shape "
                                         r"\(0, 3\)"):
        prepare(f, params, jnp.zeros((0, 3)), y[:0], lik)
    with pytest.raises(ValueError, match=r"^params must be a pytree with at least one "
                                         r"floating-point array leaf, got \[\]"):
        prepare(f, [], x, y, lik)
