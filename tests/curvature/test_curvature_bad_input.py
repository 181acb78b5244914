"""Bad input raises a clear ValueError/TypeError naming the argument (never a silent NaN)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from curvature_cases import make_problem

F, PARAMS, X, Y, LIK = make_problem("categorical", seed=0, n=4, in_features=3, outputs=3)


WITH_Y = {
    "hessian": fl.hessian,
    "ggn": fl.ggn,
    "empirical_fisher": fl.empirical_fisher,
    "gradient_covariance": fl.gradient_covariance,
    "gradient": fl.gradient,
    "hvp": fl.hvp,
    "ggn_vp": fl.ggn_vp,
    "empirical_fisher_vp": fl.empirical_fisher_vp,
}
WITHOUT_Y = {
    "fisher": fl.fisher,
    "fisher_vp": fl.fisher_vp,
    "fisher_mc": lambda f, p, x, lik, **kw: fl.fisher_mc(f, p, x, lik, jax.random.key(0), 2,
                                                         **kw),
    "fisher_mc_vp": lambda f, p, x, lik, **kw: fl.fisher_mc_vp(f, p, x, lik,
                                                               jax.random.key(0), 2, **kw),
}
ALL = sorted(WITH_Y) + sorted(WITHOUT_Y)


def call(name, f=F, params=PARAMS, x=X, y=Y, lik=LIK, **kw):
    if name in WITH_Y:
        return WITH_Y[name](f, params, x, y, lik, **kw)
    return WITHOUT_Y[name](f, params, x, lik, **kw)


@pytest.mark.parametrize("name", sorted(WITH_Y))
def test_mismatched_batch_sizes(name):
    with pytest.raises(ValueError, match=r"batch sizes differ: x has 4 .* y has 3"):
        call(name, y=Y[:3])


@pytest.mark.parametrize("name", ALL)
def test_outputs_that_do_not_fit_the_likelihood(name):
    # GaussianMeanVariance needs an even number of outputs (mean, log-variance); 3 is odd.
    f, params, x, _, _ = make_problem("gaussian", seed=0, n=4, outputs=3)
    y = jnp.zeros((4, 1), jnp.float64)
    with pytest.raises(ValueError, match=r"f\(params, x\) outputs"):
        call(name, f=f, params=params, x=x, y=y, lik=fl.GaussianMeanVariance())


def test_categorical_with_a_single_output_is_rejected():
    f, params, x, _, _ = make_problem("gaussian", seed=0, n=4, outputs=1)
    with pytest.raises(ValueError, match=r"f\(params, x\) outputs"):
        fl.fisher(f, params, x, fl.Categorical())


def test_model_returning_a_scalar_per_example():
    with pytest.raises(ValueError, match=r"shape \(C,\)"):
        fl.ggn(lambda p, x: jnp.sum(F(p, x)), PARAMS, X, Y, LIK)


def test_targets_of_the_wrong_kind():
    with pytest.raises(TypeError, match=r"\by\b.*integer"):
        fl.ggn(F, PARAMS, X, jnp.zeros((4,), jnp.float64), LIK)
    with pytest.raises(ValueError, match=r"\by\b.*\[0, 3\)"):
        fl.ggn(F, PARAMS, X, jnp.asarray([0, 1, 2, 7]), LIK)
    with pytest.raises(ValueError, match=r"\by\b"):
        fl.empirical_fisher(F, PARAMS, X, None, LIK)


@pytest.mark.parametrize("name", ALL)
def test_integer_params(name):
    bad = [(jnp.asarray(np.ones((4, 3), np.int64)), PARAMS[0][1])] + list(PARAMS[1:])
    with pytest.raises(TypeError, match=r"params\[0\]\[0\] must be a floating-point array.*int"):
        call(name, params=bad)


@pytest.mark.parametrize("bad", [{"w": "abc"}, {"w": np.array(["a", "b"])}, {"w": True},
                                 {"w": np.ones(2, complex)}, {}])
def test_params_not_a_pytree_of_float_arrays(bad):
    with pytest.raises((TypeError, ValueError), match=r"params"):
        fl.ggn(lambda p, x: x, bad, X, Y, LIK)


@pytest.mark.parametrize("name", ALL)
def test_nan_in_params(name):
    W, b = PARAMS[0]
    bad = [(W.at[1, 2].set(jnp.nan), b)] + list(PARAMS[1:])
    with pytest.raises(ValueError, match=r"params\[0\]\[0\] must be finite.*nan.*\(1, 2\)"):
        call(name, params=bad)


@pytest.mark.parametrize("name", ALL)
def test_nan_or_inf_in_x(name):
    with pytest.raises(ValueError, match=r"x must be finite"):
        call(name, x=X.at[2, 0].set(jnp.nan))
    with pytest.raises(ValueError, match=r"x must be finite"):
        call(name, x=X.at[0, 1].set(jnp.inf))


@pytest.mark.parametrize("name", ALL)
def test_x_with_the_wrong_feature_size_names_x(name):
    # the model's own error (a dot_general shape mismatch) is kept, behind a sentence naming x
    with pytest.raises((TypeError, ValueError), match=r"x has shape \(4, 5\).*one example \(5,\)"):
        call(name, x=np.ones((4, 5)))


def test_x_not_numeric_or_without_batch_axis():
    with pytest.raises(TypeError, match=r"\bx\b"):
        fl.ggn(F, PARAMS, np.array([["a", "b", "c"]] * 4), Y, LIK)
    with pytest.raises(ValueError, match=r"\bx\b.*at least 1 dimension"):
        fl.ggn(F, PARAMS, jnp.asarray(1.0), Y, LIK)


@pytest.mark.parametrize("name", ALL)
def test_unknown_reduction(name):
    with pytest.raises(ValueError, match=r"reduction must be one of \['mean', 'sum'\], got 'avg'"):
        call(name, reduction="avg")


@pytest.mark.parametrize("name", ["hessian", "ggn", "fisher", "fisher_mc", "empirical_fisher",
                                  "gradient_covariance", "gradient"])
@pytest.mark.parametrize("chunk_size,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                            ("4", TypeError)])
def test_bad_chunk_size(name, chunk_size, exc):
    with pytest.raises(exc, match=r"chunk_size"):
        call(name, chunk_size=chunk_size)


def test_bad_jacobian_mode():
    with pytest.raises(ValueError, match=r"jacobian must be one of"):
        fl.ggn(F, PARAMS, X, Y, LIK, jacobian="sideways")


@pytest.mark.parametrize("num_samples,exc", [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                             (True, TypeError)])
def test_num_samples_must_be_a_positive_int(num_samples, exc):
    with pytest.raises(exc, match=r"num_samples"):
        fl.fisher_mc(F, PARAMS, X, LIK, jax.random.key(0), num_samples)


def test_missing_or_bad_prng_key():
    with pytest.raises(ValueError, match=r"key is required"):
        fl.fisher_mc(F, PARAMS, X, LIK)
    with pytest.raises(ValueError, match=r"key is required"):
        fl.fisher_mc(F, PARAMS, X, LIK, None, 4)
    with pytest.raises(TypeError, match=r"key must be a jax.random key"):
        fl.fisher_mc(F, PARAMS, X, LIK, 42, 4)


def test_not_a_model_or_not_a_likelihood():
    with pytest.raises(TypeError, match=r"f must be a callable"):
        fl.ggn("model", PARAMS, X, Y, LIK)
    with pytest.raises(TypeError, match=r"likelihood must be a fisherlab likelihood"):
        fl.ggn(F, PARAMS, X, Y, "categorical")


@pytest.mark.parametrize("name", ["hvp", "ggn_vp", "fisher_vp", "empirical_fisher_vp"])
def test_matvec_vector_of_the_wrong_shape(name):
    mv = call(name)
    d = mv.num_params
    with pytest.raises(ValueError, match=rf"v must be a flat vector of shape \({d},\).*\({d + 1},\)"):
        mv(jnp.ones(d + 1))
    with pytest.raises(ValueError, match=rf"v must be a flat vector of shape \({d},\).*\({d}, 1\)"):
        mv(jnp.ones((d, 1)))
    with pytest.raises(ValueError, match=r"v must be finite"):
        mv(jnp.full(d, jnp.nan))
    with pytest.raises(TypeError, match=r"\bv\b"):
        mv(np.array(["a"] * d))
    with pytest.raises(ValueError, match=r"v must be a flat vector"):
        jax.jit(mv)(jnp.ones(d - 1))


def test_bad_method():
    with pytest.raises(ValueError, match=r"method must be one of"):
        fl.ggn(F, PARAMS, X, Y, LIK, method="fast")
    f, params, x, y, lik = make_problem("categorical", seed=0, n=4, model="dict")
    with pytest.raises(ValueError, match=r"method='layerwise' needs f to be a fisherlab.nn"):
        fl.fisher(f, params, x, lik, method="layerwise")


@pytest.mark.parametrize("name", ALL)
def test_likelihood_class_instead_of_an_instance(name):
    """``fl.Categorical`` (the class) is named as such, not reported as bad outputs."""
    with pytest.raises(TypeError, match=r"likelihood must be .*instance.*fl\.Categorical\(\)"):
        call(name, lik=fl.Categorical)


@pytest.mark.parametrize("name", ALL)
def test_params_that_do_not_fit_a_sequential_model(name):
    """A ``fl.nn.Sequential`` checks its parameter list first: a missing layer, a dict or a
    transposed weight is named, not an IndexError/KeyError from inside the model."""
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = model.init(jax.random.key(0))
    bad = [params[:1], {"0": params[0], "1": params[1]},
           [(params[0][0].T, params[0][1]), params[1]]]
    for p in bad:
        with pytest.raises(ValueError, match=r"params"):
            call(name, f=model, params=p)


@pytest.mark.parametrize("name", ["ggn", "fisher"])
def test_plain_model_failing_on_params_is_put_in_context(name):
    """An IndexError/KeyError raised by a plain ``f`` on the given params or inputs comes with
    the shapes and the hint to check x and params."""
    def f(params, x):
        return params["layer"][0] @ x

    with pytest.raises(KeyError, match=r"f\(params, x\) failed on the inputs"):
        call(name, f=f, params={"other": jnp.ones((3, 3))})
    with pytest.raises(IndexError, match=r"f\(params, x\) failed on the inputs"):
        call(name, f=lambda p, x: p[2] @ x, params=[jnp.ones((3, 3))])


@pytest.mark.parametrize("name", ALL)
def test_model_returning_the_whole_batch(name):
    """A model that ignores its example and returns the batch's (N, C) outputs is refused --
    without targets (the Fisher) it would otherwise be read as N tokens per example."""
    def whole_batch(params, x_n):
        return jax.vmap(lambda a: F(params, a))(X)

    with pytest.raises(ValueError, match=r"whole batch"):
        call(name, f=whole_batch)


@pytest.mark.parametrize("name", ALL)
def test_token_ids_out_of_range_or_ragged_for_a_sequential_model(name):
    """A ``fl.nn.Sequential`` checks the batch itself: token ids out of range are named (not
    read as NaN outputs), a list of sequences of different lengths gets the ragged hint."""
    model = fl.nn.Sequential([fl.nn.Embedding(5, 2), fl.nn.Dense(2, 3)])
    params = model.init(jax.random.key(0))
    x = np.array([[0, 1, 2], [3, 4, 0]])
    y = np.array([[0, 1, 2], [2, 1, 0]])
    with pytest.raises(ValueError, match=r"x must lie in 0\.\.4 .*got \[5, 6, 7\]"):
        call(name, f=model, params=params, x=x + 3, y=y)
    with pytest.raises(ValueError, match=r"sequence length changes within the batch"):
        call(name, f=model, params=params, x=[[0, 1, 2], [3, 4]], y=y)


def test_constant_token_outputs_are_not_taken_for_the_whole_batch():
    """A token model with a zero-initialised read-out gives the same outputs for every token
    and example; with R = N it is still a token model, not refused."""
    model = fl.nn.Sequential([fl.nn.Embedding(5, 2), fl.nn.Dense(2, 3)])
    (E,), (W, b) = model.init(jax.random.key(0))
    params = [(E,), (jnp.zeros_like(W), jnp.zeros_like(b))]
    x = np.array([[0, 1, 2], [3, 4, 0], [1, 1, 2]])  # N = R = 3
    y = np.array([[0, 1, 2], [2, 1, 0], [1, 1, 1]])
    assert fl.fisher(model, params, x, fl.Categorical()).shape == (19, 19)
    assert fl.ggn(model, params, x, y, fl.Categorical()).shape == (19, 19)
