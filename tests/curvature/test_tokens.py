"""Per-token outputs ``(R, C)``: every reference equals the explicitly written token loss.

Ground truth (tests/curvature/token_cases.py) is computed from each family's negative
log-likelihood written out in closed form, summed over tokens, without fisherlab's likelihood
kernels: ``jax.hessian`` of the summed loss, per-example Jacobians with the explicit output
Hessian and closed-form output Fisher, and per-sequence or per-token gradients.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from token_cases import (FAMILIES, N, R, attention_model, attention_params, embedding_model,
                         embedding_params, likelihood_for, problem, truth)

RTOL = 1e-10


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


DENSE_WITH_Y = {"hessian": fl.hessian, "ggn": fl.ggn, "empirical_fisher": fl.empirical_fisher,
                "gradient_covariance": fl.gradient_covariance, "gradient": fl.gradient}
PRODUCTS = {"hvp": ("hessian", fl.hvp), "ggn_vp": ("ggn", fl.ggn_vp),
            "empirical_fisher_vp": ("empirical_fisher", fl.empirical_fisher_vp)}
MODES = [("mean", "sum"), ("sum", "sum"), ("mean", "flatten"), ("sum", "flatten")]


@pytest.mark.parametrize("reduction,tokens", MODES)
@pytest.mark.parametrize("family", FAMILIES)
def test_dense_references_equal_the_explicit_token_loss(family, reduction, tokens):
    f, params, x, y, lik = problem(family)
    t = truth(family)
    kw = dict(reduction=reduction, tokens=tokens)
    names = DENSE_WITH_Y if family in ("categorical", "gaussian_mean_variance") else (
        "ggn", "empirical_fisher")  # the other families: the two kinds of output-space term
    for name in names:
        fn = DENSE_WITH_Y[name]
        assert rel(fn(f, params, x, y, lik, **kw), t.reference(name, reduction, tokens)) < RTOL, name
    assert rel(fl.fisher(f, params, x, lik, **kw), t.reference("fisher", reduction, tokens)) < RTOL


@pytest.mark.parametrize("reduction,tokens", MODES)
@pytest.mark.parametrize("family", ["categorical", "gaussian_mean_variance"])
def test_products_equal_the_explicit_matrices(family, reduction, tokens):
    f, params, x, y, lik = problem(family)
    t = truth(family)
    v = jnp.asarray(np.random.default_rng(1).normal(size=t.theta.shape[0]))
    kw = dict(reduction=reduction, tokens=tokens)
    for name, (dense, fn) in PRODUCTS.items():
        assert rel(fn(f, params, x, y, lik, **kw)(v), t.reference(dense, reduction, tokens) @ v) \
            < RTOL, name
    assert rel(fl.fisher_vp(f, params, x, lik, **kw)(v),
               t.reference("fisher", reduction, tokens) @ v) < RTOL


def test_flatten_scales_linear_quantities_but_changes_the_empirical_fisher():
    """Mean over N R tokens: H, GGN, F, gradient are the per-sequence mean's divided by R; the
    empirical Fisher is a different matrix (per-token vs per-sequence gradient outer
    products), not a rescaling -- the control that makes the per-token tests meaningful."""
    f, params, x, y, lik = problem("categorical")
    for fn in (fl.hessian, fl.ggn, fl.gradient):
        assert rel(fn(f, params, x, y, lik, tokens="flatten") * R, fn(f, params, x, y, lik)) \
            < RTOL
    ef_tok = fl.empirical_fisher(f, params, x, y, lik, tokens="flatten")
    ef_seq = fl.empirical_fisher(f, params, x, y, lik)
    assert rel(ef_tok * R, ef_seq) > 1e-2
    # sum reduction: the linear quantities coincide exactly
    assert rel(fl.ggn(f, params, x, y, lik, reduction="sum", tokens="flatten"),
               fl.ggn(f, params, x, y, lik, reduction="sum")) < RTOL


# ----------------------------------------------------------------------------- Monte Carlo


def _explicit_fisher_mc(t, key, S, tokens, reduction):
    """Labels drawn with the documented keys (``jax.random.categorical``), gradients from the
    explicit softmax score ``p - e_y``."""
    outs = jnp.asarray(t.outputs)  # (N, R, C)
    n, r, c = outs.shape
    if tokens == "flatten":
        keys = jax.random.split(key, n * r).reshape(n, r)
    else:
        keys = jax.vmap(lambda k: jax.random.split(k, r))(jax.random.split(key, n))
    labels = jax.vmap(jax.vmap(lambda k, o: jax.random.categorical(k, o, shape=(S,))))(
        keys, outs)  # (N, R, S)
    scores = jax.nn.softmax(outs)[:, :, None, :] - jax.nn.one_hot(labels, c)  # (N, R, S, C)
    g = np.einsum("nrsc,nrcd->nrsd", np.asarray(scores), t.J)  # per-token sampled gradients
    if tokens == "sum":
        g = g.sum(axis=1, keepdims=True)  # the sequence's sampled gradient
    g = g.reshape(-1, S, g.shape[-1])
    M = np.einsum("isd,ise->de", g, g) / S
    return t.weight(reduction, tokens) * M


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_fisher_mc_is_the_documented_per_token_sample(tokens):
    f, params, x, _, lik = problem("categorical")
    t = truth("categorical")
    key, S = jax.random.key(5), 3
    expected = _explicit_fisher_mc(t, key, S, tokens, "mean")
    got = fl.fisher_mc(f, params, x, lik, key, S, tokens=tokens)
    assert rel(got, expected) < RTOL
    v = jnp.asarray(np.random.default_rng(2).normal(size=t.theta.shape[0]))
    assert rel(fl.fisher_mc_vp(f, params, x, lik, key, S, tokens=tokens)(v), expected @ v) < RTOL
    # the exact Fisher is the expectation; the estimate is not it (S = 3)
    assert rel(got, t.reference("fisher", "mean", tokens)) > 1e-3


# ----------------------------------------------------------------------------- R = 1


def _first_row(params, x):
    """A per-example model ``(C,)``: the attention model's first output row."""
    return attention_model(params, x)[0]


def _first_row_as_token(params, x):
    """The same model returning one token, ``(1, C)``."""
    return _first_row(params, x)[None, :]


ALL_NAMES = ["hessian", "ggn", "fisher", "fisher_mc", "empirical_fisher", "gradient_covariance",
             "gradient", "hvp", "ggn_vp", "fisher_vp", "empirical_fisher_vp", "fisher_mc_vp"]


def _call(name, f, params, x, y, lik, v, **kw):
    key = jax.random.key(3)
    if name in ("fisher", "fisher_vp"):
        out = getattr(fl, name)(f, params, x, lik, **kw)
    elif name in ("fisher_mc", "fisher_mc_vp"):
        out = getattr(fl, name)(f, params, x, lik, key, 2, **kw)
    else:
        out = getattr(fl, name)(f, params, x, y, lik, **kw)
    return out(v) if name.endswith("vp") else out


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_one_token_equals_the_per_example_path(tokens):
    """``(1, C)`` outputs with ``(N, 1)`` targets give exactly the ``(C,)`` model's numbers
    (Monte-Carlo included: one token draws with the example's key)."""
    _, params, x, y, lik = problem("categorical")
    v = jnp.asarray(np.random.default_rng(0).normal(size=truth("categorical").theta.shape[0]))
    for name in ALL_NAMES:
        old = _call(name, _first_row, params, x, y[:, 0], lik, v)
        new = _call(name, _first_row_as_token, params, x, y[:, :1], lik, v, tokens=tokens)
        assert rel(new, old) < 1e-13, name


# ----------------------------------------------------------------------------- models


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_integer_token_inputs(tokens):
    """Token ids as inputs (an embedding): GGN and empirical Fisher against the explicit loss."""
    from token_cases import Truth

    params = embedding_params(0, vocab=5, c=3)
    rng = np.random.default_rng(4)
    ids = jnp.asarray(rng.integers(0, 5, size=(N, 4)), jnp.int32)
    y = jnp.asarray(rng.integers(0, 3, size=(N, 4)), jnp.int64)
    lik = fl.Categorical()
    t = Truth("categorical", embedding_model, params, ids, y)
    for name in ("ggn", "empirical_fisher", "hessian"):
        got = getattr(fl, name)(embedding_model, params, ids, y, lik, tokens=tokens)
        assert rel(got, t.reference(name, "mean", tokens)) < RTOL, name


def test_sequential_token_model_uses_the_generic_path():
    """A fl.nn.Sequential of Dense layers on (R, in) inputs: exact through per-example
    Jacobians; the layer-wise fast path (single-example outputs (C,) only) is refused."""
    from token_cases import Truth

    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 3)])
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N, R, 2)))
    y = jnp.asarray(rng.integers(0, 3, size=(N, R)), jnp.int64)
    t = Truth("categorical", model, params, x, y)
    assert rel(fl.ggn(model, params, x, y, fl.Categorical()), t.reference("ggn")) < RTOL
    with pytest.raises(ValueError, match="method='layerwise' needs"):
        fl.ggn(model, params, x, y, fl.Categorical(), method="layerwise")


def test_jit_matches_eager():
    f, params, x, y, lik = problem("categorical")
    eager = fl.ggn(f, params, x, y, lik, tokens="flatten")
    jitted = jax.jit(lambda p: fl.ggn(f, p, x, y, lik, tokens="flatten"))(params)
    assert rel(jitted, eager) < 1e-13


# ----------------------------------------------------------------------------- updates


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_updates_on_token_models(tokens):
    f, params, x, y, lik = problem("categorical")
    t = truth("categorical")
    g = t.reference("gradient", "mean", tokens)
    lam = 1e-2
    for update, name in ((fl.updates.natural_gradient, "fisher"),
                         (fl.updates.empirical_fisher_update, "empirical_fisher"),
                         (fl.updates.newton, "hessian")):
        M = t.reference(name, "mean", tokens)
        expected = -0.5 * np.linalg.solve(M + lam * np.eye(M.shape[0]), g)
        step = update(f, params, x, y, lik, lr=0.5, damping=lam, tokens=tokens)
        assert rel(jax.flatten_util.ravel_pytree(step)[0], expected) < 1e-9, name
    step = fl.updates.hessian_free(f, params, x, y, lik, lr=0.5, damping=lam, maxiter=200,
                                   tol=1e-13, tokens=tokens)
    M = t.reference("ggn", "mean", tokens)
    expected = -0.5 * np.linalg.solve(M + lam * np.eye(M.shape[0]), g)
    assert rel(jax.flatten_util.ravel_pytree(step)[0], expected) < 1e-8


# ----------------------------------------------------------------------------- bad input

F, PARAMS, X, Y, LIK = problem("categorical")


def _all(name, **over):
    args = dict(f=F, params=PARAMS, x=X, y=Y, lik=LIK)
    args.update(over)
    v = jnp.zeros(jax.flatten_util.ravel_pytree(args["params"])[0].shape)
    kw = {k: args.pop(k) for k in list(args) if k == "tokens"}
    return _call(name, args["f"], args["params"], args["x"], args["y"], args["lik"], v, **kw)


WITH_Y = [n for n in ALL_NAMES if not n.startswith("fisher")]


@pytest.mark.parametrize("name", WITH_Y)
def test_targets_whose_token_axis_disagrees(name):
    y = jnp.concatenate([Y, Y[:, :1]], axis=1)  # (N, R + 1)
    with pytest.raises(ValueError, match=r"y must have shape \(N, R, \.\.\.\) = \(3, 3, \.\.\.\), "
                                         r"one target per token.*got shape \(3, 4\)"):
        _all(name, y=y)


@pytest.mark.parametrize("name", WITH_Y)
def test_non_integer_class_targets(name):
    with pytest.raises(TypeError, match=r"y \(one row per token\) for Categorical must have an "
                                        r"integer dtype.*float64"):
        _all(name, y=Y.astype(jnp.float64))


def test_class_targets_out_of_range():
    y = Y.at[1, 2].set(3)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\).*got 3"):
        fl.ggn(F, PARAMS, X, y, LIK)


def test_per_token_gaussian_targets_need_the_class_axis():
    f, params, x, y, lik = problem("gaussian")
    with pytest.raises(ValueError, match=r"y \(one row per token\) for Gaussian must have shape"):
        fl.ggn(f, params, x, y[..., 0], lik)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_sequence_length_that_changes_within_a_batch_x(name):
    """A list of sequences of different lengths is not a batch."""
    xs = [X[0], X[1, :2], X[2]]
    with pytest.raises(ValueError, match=r"x\[0\] has 3 examples but x\[1\] has 2.*sequence "
                                         r"length must not change within a batch"):
        _all(name, x=xs)


@pytest.mark.parametrize("name", WITH_Y)
def test_sequence_length_that_changes_within_a_batch_y(name):
    ys = [np.asarray(Y[0]), np.asarray(Y[1, :2]), np.asarray(Y[2])]
    with pytest.raises(ValueError, match=r"y must be one array.*list of 3 targets of different "
                                         r"shapes \(\(3,\), \(2,\), \(3,\)\).*sequence length"):
        _all(name, y=ys)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_tokens_option_is_checked(name):
    with pytest.raises(ValueError, match=r"tokens must be one of .*'flatten'.*'sum'.*'mean'"):
        _all(name, tokens="mean")


def test_zero_tokens_and_extra_axes():
    empty = lambda p, xn: attention_model(p, xn)[:0]  # noqa: E731
    with pytest.raises(ValueError, match=r"no token: batched shape \(3, 0, 3\) = \(N, R, C\) has "
                                         r"R = 0"):
        fl.fisher(empty, PARAMS, X, LIK)
    deep = lambda p, xn: attention_model(p, xn)[None]  # noqa: E731
    with pytest.raises(ValueError, match=r"\(C,\) or, per token, \(R, C\).*\(3, 1, 3, 3\)"):
        fl.fisher(deep, PARAMS, X, LIK)


def test_tokens_flatten_on_a_per_example_model_is_the_same():
    """With outputs (C,) (R = 1 implicitly) the two settings coincide."""
    a = fl.empirical_fisher(_first_row, PARAMS, X, Y[:, 0], LIK, tokens="flatten")
    b = fl.empirical_fisher(_first_row, PARAMS, X, Y[:, 0], LIK)
    assert rel(a, b) == 0.0


def test_per_token_likelihood_has_no_symbolic_face():
    from fisherlab.curvature._tokens import PerToken

    with pytest.raises(TypeError, match="no symbolic definition"):
        PerToken(fl.Categorical(), 2).symbolic(6)


def test_params_helper_is_consistent():
    """The attention test model really mixes tokens (a control for the cross-token blocks)."""
    params = attention_params(0, 3)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(R, 2)))
    J = jax.jacrev(lambda xx: attention_model(params, xx))(x)  # (R, C, R, IN)
    assert float(jnp.abs(J[0, :, 1]).max()) > 1e-3
    assert likelihood_for("categorical") == fl.Categorical()
