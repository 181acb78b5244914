"""fl.symbolic.curvature on the token layers, checked without any numeric reference.

* the layerwise (chain-rule) engine equals the composed engine (one SymPy expression per output,
  ``sympy.diff``) on MLPs, for every kind;
* on tiny models of each new layer the layerwise Hessian (and GGN, empirical Fisher) equals
  ``sympy.hessian`` (``sympy.diff``) of the fully composed loss, written here from the layers'
  published definitions -- LayerNorm (biased variance), RMSNorm, GELU (erf and tanh forms),
  Embedding lookup, multi-head attention with a causal mask, residual additions, mean pooling;
* per-token outputs: the loss of an example is the sum of its token losses; ``tokens="flatten"``
  divides by ``N R`` and sums token-gradient outer products;
* bad input is refused with a message naming the argument or the layer.
"""

import mpmath
import numpy as np
import pytest
import sympy as sp

import fisherlab as fl
from fisherlab.likelihoods import symbolic as likelihood_definitions
from fisherlab.symbolic import curvature

nn = fl.nn
RNG = np.random.default_rng(20261203)


def dyadic(shape, rng=RNG, scale=8, bound=1.5):
    """Floats that are exact dyadic rationals k / scale in [-bound, bound]."""
    k = int(bound * scale)
    return rng.integers(-k, k + 1, size=shape).astype(np.float64) / scale


def R_(v):
    return sp.Rational(float(v))


def close(a, b, digits=25):
    a, b = sp.Matrix(a), sp.Matrix(b)
    assert a.shape == b.shape
    diff = (a - b).evalf(digits + 10)
    scale = max(1, max(abs(v) for v in sp.Matrix(b).evalf(digits + 10)))
    err = max(abs(v) for v in diff) / scale
    assert err < sp.Float(10) ** (-digits), f"relative error {err}"


# --------------------------------------------------------------------------- the two engines


@pytest.mark.parametrize("kind", ["hessian", "ggn", "fisher", "empirical_fisher"])
@pytest.mark.parametrize("lik, y", [(fl.Categorical(), np.array([1, 0])),
                                    (fl.Poisson(), np.array([[0.0, 2.0], [1.0, 3.0]]))])
def test_layerwise_engine_equals_composed_engine_on_mlps(kind, lik, y):
    model = nn.Sequential([nn.Dense(2, 2), nn.Tanh(), nn.Dense(2, 2), nn.ReLU(),
                           nn.Dense(2, 2)])
    rng = np.random.default_rng(1)
    params = [(dyadic((2, 2), rng), dyadic((2,), rng)) for _ in range(3)]
    x = np.vstack([dyadic((1, 2), rng), [[0.0, 0.0]]])  # 2nd example: ReLU inputs = biases
    params[1] = (params[1][0], np.array([0.0, 0.5]))   # one ReLU exactly at its kink
    a = curvature(model, params, x, y, lik, kind, engine="composed")
    b = curvature(model, params, x, y, lik, kind, engine="layerwise")
    close(a, b, digits=28)


# --------------------------------------------------------------------------- composed losses


def _dense(W, b, a):
    return [sum(W[i][j] * a[j] for j in range(len(a))) + b[i] for i in range(len(b))]


def _layer_norm(a, w=None, b=None, eps=sp.Rational(1e-5)):
    d = len(a)
    mu = sum(a) / d
    var = sum((v - mu) ** 2 for v in a) / d   # biased, as torch.nn.LayerNorm
    y = [(v - mu) / sp.sqrt(var + eps) for v in a]
    if w is not None:
        y = [yi * wi for yi, wi in zip(y, w)]
    if b is not None:
        y = [yi + bi for yi, bi in zip(y, b)]
    return y


def _rms_norm(a, w, eps):
    den = sp.sqrt(sum(v ** 2 for v in a) / len(a) + eps)
    return [v / den * wi for v, wi in zip(a, w)]


def _gelu(z, approximate):
    if approximate == "tanh":
        return z / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (z + sp.Rational(44715, 10 ** 6) * z ** 3)))
    return z / 2 * (1 + sp.erf(z / sp.sqrt(2)))


def _attention(x, Wi, bi, Wo, bo, heads, causal):
    """torch.nn.MultiheadAttention self-attention of one sequence x (R x d)."""
    R, d = len(x), len(x[0])
    hd = d // heads
    qkv = [_dense(Wi, bi, xr) for xr in x]
    o = [[None] * d for _ in range(R)]
    for h in range(heads):
        for r in range(R):
            keys = range(r + 1) if causal else range(R)
            score = {s: sum(qkv[r][h * hd + t] * qkv[s][d + h * hd + t] for t in range(hd))
                     / sp.sqrt(hd) for s in keys}
            Z = sum(sp.exp(v) for v in score.values())
            for t in range(hd):
                o[r][h * hd + t] = sum(sp.exp(score[s]) * qkv[s][2 * d + h * hd + t]
                                       for s in keys) / Z
    return [_dense(Wo, bo, orow) for orow in o]


def _mat(prefix, rows, cols):
    return [[sp.Symbol(f"{prefix}{i}_{j}", real=True) for j in range(cols)] for i in range(rows)]


def _vec(prefix, n):
    return [sp.Symbol(f"{prefix}{i}", real=True) for i in range(n)]


def _flat(*arrays):
    out = []
    for a in arrays:
        out += [v for row in a for v in row] if isinstance(a[0], list) else list(a)
    return out


def _values(theta, params):
    leaves = []
    for p in params:
        for leaf in (p if isinstance(p, tuple) else [q for t in p for q in t]):
            leaves += list(np.ravel(leaf))
    assert len(leaves) == len(theta)
    return {t: sp.Float(R_(v), 60) for t, v in zip(theta, leaves)}  # exact: dyadic values


def _compare(model, params, x, y, lik, loss_and_theta):
    """The layerwise Hessian against sympy.diff (twice) of the composed mean loss."""
    total, theta = loss_and_theta
    vals = _values(theta, params)
    grads = [sp.diff(total, t) for t in theta]
    entries = [sp.diff(grads[i], theta[j]) for i in range(len(theta)) for j in range(i + 1)]
    fn = sp.lambdify(theta, entries, modules="mpmath", cse=True)
    with mpmath.workdps(50):
        flat = iter(fn(*[mpmath.mpf(vals[t]) for t in theta]))
        expected = sp.zeros(len(theta))
        for i in range(len(theta)):
            for j in range(i + 1):
                expected[i, j] = expected[j, i] = sp.Float(next(flat), 45)
    close(curvature(model, params, x, y, lik, "hessian", engine="layerwise"), expected)


def _gaussian_loss(outs, ys):
    return sum(sum((yv - o) ** 2 for yv, o in zip(yr, orow)) / 2
               for yr, orow in zip(ys, outs))


def test_layer_norm_hessian_equals_sympy_hessian_of_the_composed_loss():
    model = nn.Sequential([nn.LayerNorm(2, eps=0.25), nn.Dense(2, 1)])
    w, b, W, c = _vec("w", 2), _vec("b", 2), _mat("W", 1, 2), _vec("c", 1)
    params = [(dyadic(2), dyadic(2)), (dyadic((1, 2)), dyadic(1))]
    x, y = dyadic((2, 2)), dyadic((2, 1))
    outs = [_dense(W, c, _layer_norm([R_(v) for v in xn], w, b, sp.Rational(1, 4))) for xn in x]
    loss = _gaussian_loss(outs, [[R_(v) for v in yn] for yn in y]) / 2
    _compare(model, params, x, y, fl.Gaussian(), (loss, w + b + _flat(W, c)))


def test_rms_norm_with_default_eps_hessian_equals_the_composed_loss():
    model = nn.Sequential([nn.RMSNorm(2), nn.Dense(2, 1)])
    w, W, c = _vec("w", 2), _mat("W", 1, 2), _vec("c", 1)
    params = [(dyadic(2),), (dyadic((1, 2)), dyadic(1))]
    x, y = dyadic((1, 2)), dyadic((1, 1))
    eps = sp.Rational(2) ** -52  # torch's default: finfo(float64).eps
    outs = [_dense(W, c, _rms_norm([R_(v) for v in xn], w, eps)) for xn in x]
    loss = _gaussian_loss(outs, [[R_(v) for v in yn] for yn in y])
    _compare(model, params, x, y, fl.Gaussian(), (loss, w + _flat(W, c)))


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_residual_hessian_equals_the_composed_loss(approximate):
    model = nn.Sequential([nn.Residual(nn.Sequential([nn.Dense(1, 1), nn.GELU(approximate)])),
                           nn.Dense(1, 1)])
    W1, c1, W2, c2 = _mat("A", 1, 1), _vec("a", 1), _mat("B", 1, 1), _vec("b", 1)
    params = [[(dyadic((1, 1)), dyadic(1))], (dyadic((1, 1)), dyadic(1))]
    x, y = dyadic((2, 1)), dyadic((2, 1))
    outs = []
    for xn in x:
        a = [R_(xn[0])]
        h = [a[0] + _gelu(_dense(W1, c1, a)[0], approximate)]
        outs.append(_dense(W2, c2, h))
    loss = _gaussian_loss(outs, [[R_(v) for v in yn] for yn in y]) / 2
    _compare(model, params, x, y, fl.Gaussian(), (loss, _flat(W1, c1, W2, c2)))


def test_embedding_meanpool_categorical_hessian_equals_the_composed_loss():
    model = nn.Sequential([nn.Embedding(3, 2), nn.MeanPool(), nn.Dense(2, 2)])
    E, W, c = _mat("E", 3, 2), _mat("W", 2, 2), _vec("c", 2)
    params = [(dyadic((3, 2)),), (dyadic((2, 2)), dyadic(2))]
    x, y = np.array([[0, 2], [2, 2]]), np.array([1, 0])
    sym = likelihood_definitions.categorical(2)
    loss = 0
    for tokens, label in zip(x, y):
        pooled = [sum(E[t][j] for t in tokens) / len(tokens) for j in range(2)]
        logits = _dense(W, c, pooled)
        loss += (-sym.log_density).xreplace(
            {**dict(zip(sym.outputs, logits)),
             **{t: int(k == label) for k, t in enumerate(sym.targets)}}) / 2
    _compare(model, params, x, y, fl.Categorical(), (loss, _flat(E, W, c)))


@pytest.mark.parametrize("causal", [False, True])
def test_attention_hessian_equals_the_composed_loss(causal):
    model = nn.Sequential([nn.MultiHeadAttention(1, 1, causal=causal), nn.MeanPool()])
    Wi, bi, Wo, bo = _mat("Wi", 3, 1), _vec("bi", 3), _mat("Wo", 1, 1), _vec("bo", 1)
    rng = np.random.default_rng(2)
    params = [(dyadic((3, 1), rng), dyadic(3, rng), dyadic((1, 1), rng), dyadic(1, rng))]
    x, y = dyadic((1, 2, 1), rng), dyadic((1, 1), rng)
    out = _attention([[R_(v) for v in row] for row in x[0]], Wi, bi, Wo, bo, 1, causal)
    pooled = [(out[0][0] + out[1][0]) / 2]
    loss = _gaussian_loss([pooled], [[R_(y[0, 0])]])
    _compare(model, params, x, y, fl.Gaussian(), (loss, _flat(Wi, bi, Wo, bo)))


def test_two_head_causal_attention_gradient_equals_the_composed_loss():
    """Empirical Fisher g g^T for N = 1 with g = sympy.diff of the composed loss (two heads)."""
    d, heads = 2, 2
    model = nn.Sequential([nn.MultiHeadAttention(d, heads, causal=True), nn.MeanPool()])
    Wi, bi, Wo, bo = _mat("Wi", 3 * d, d), _vec("bi", 3 * d), _mat("Wo", d, d), _vec("bo", d)
    rng = np.random.default_rng(3)
    params = [(dyadic((3 * d, d), rng), dyadic(3 * d, rng), dyadic((d, d), rng), dyadic(d, rng))]
    x, y = dyadic((1, 2, d), rng), dyadic((1, d), rng)
    theta = _flat(Wi, bi, Wo, bo)
    vals = _values(theta, params)

    def gradient(causal):
        out = _attention([[R_(v) for v in row] for row in x[0]], Wi, bi, Wo, bo, heads, causal)
        pooled = [(out[0][j] + out[1][j]) / 2 for j in range(d)]
        loss = _gaussian_loss([pooled], [[R_(v) for v in y[0]]])
        return sp.Matrix([sp.diff(loss, t).xreplace(vals) for t in theta])

    g = gradient(True)
    close(curvature(model, params, x, y, fl.Gaussian(), "empirical_fisher"), g * g.T)
    # a control: without the mask the gradient differs
    assert max(abs(v) for v in (gradient(False) - g).evalf(20)) > 1e-3


# --------------------------------------------------------------------------- per-token outputs


def _token_model():
    return nn.Sequential([nn.Embedding(3, 2), nn.LayerNorm(2), nn.Dense(2, 2)])


def _token_params(rng):
    return [(dyadic((3, 2), rng),), (dyadic(2, rng), dyadic(2, rng)),
            (dyadic((2, 2), rng), dyadic(2, rng))]


def test_per_token_outputs_sum_their_token_losses():
    model = _token_model()
    rng = np.random.default_rng(4)
    params = _token_params(rng)
    x, y = np.array([[0, 2]]), np.array([[1, 0]])
    E, w, b, W, c = _mat("E", 3, 2), _vec("w", 2), _vec("b", 2), _mat("W", 2, 2), _vec("c", 2)
    sym = likelihood_definitions.categorical(2)
    loss = 0
    for t, label in zip(x[0], y[0]):  # l_1 = the sum of the token losses
        logits = _dense(W, c, _layer_norm(E[t], w, b))
        loss += (-sym.log_density).xreplace(
            {**dict(zip(sym.outputs, logits)),
             **{s: int(k == label) for k, s in enumerate(sym.targets)}})
    _compare(model, params, x, y, fl.Categorical(), (loss, _flat(E, w, b, W, c)))


def test_flattened_tokens_divide_by_nr_and_sum_token_gradient_outer_products():
    model = _token_model()
    rng = np.random.default_rng(5)
    params = _token_params(rng)
    x, y = np.array([[0, 2], [1, 1]]), np.array([[1, 0], [0, 1]])
    lik = fl.Categorical()
    for kind in ("ggn", "hessian"):  # linear in the loss: only the scale changes
        close(curvature(model, params, x, y, lik, kind, tokens="flatten"),
              curvature(model, params, x, y, lik, kind) / 2)
    # empirical Fisher: sum over tokens of g g^T, not (sum g)(sum g)^T -- check by hand
    per_token = []
    for n in range(2):
        for r in range(2):
            one = [[x[n, r]]]
            G = curvature(model, params, np.array(one), np.array([[y[n, r]]]), lik,
                          "empirical_fisher", reduction="sum")
            per_token.append(G)
    close(curvature(model, params, x, y, lik, "empirical_fisher", tokens="flatten"),
          sum(per_token, sp.zeros(*per_token[0].shape)) / 4)
    summed = curvature(model, params, x, y, lik, "empirical_fisher")
    flat = curvature(model, params, x, y, lik, "empirical_fisher", tokens="flatten")
    assert max(abs(v) for v in (summed / 2 - flat)) > 1e-6  # not a rescaling
    # one token per example: the two views coincide up to the 1/R = 1 scale
    x1, y1 = x[:, :1], y[:, :1]
    close(curvature(model, params, x1, y1, lik, "empirical_fisher", tokens="flatten"),
          curvature(model, params, x1, y1, lik, "empirical_fisher"))


def test_gaussian_per_token_targets_and_fisher_equals_ggn():
    model = nn.Sequential([nn.Dense(2, 2), nn.RMSNorm(2, eps=0.5), nn.GELU("tanh")])
    rng = np.random.default_rng(6)
    params = [(dyadic((2, 2), rng), dyadic(2, rng)), (dyadic(2, rng),)]
    x, y = dyadic((2, 3, 2), rng), dyadic((2, 3, 2), rng)  # outputs (R, C) = (3, 2)
    close(curvature(model, params, x, y, fl.Gaussian(), "fisher"),
          curvature(model, params, x, y, fl.Gaussian(), "ggn"))


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def token_problem():
    rng = np.random.default_rng(7)
    return _token_model(), _token_params(rng), np.array([[0, 2]]), np.array([[1, 0]])


@pytest.mark.parametrize("change, exc, match", [
    (dict(x=np.array([[0, 3]])), ValueError, r"x must hold token ids in 0\.\.2 .*\[3\]"),
    (dict(x=np.array([[0.0, 1.0]])), TypeError, "x must hold integer token ids"),
    (dict(x=np.array([0, 1])), ValueError, r"x must hold token ids of shape \(N, R\)"),
    (dict(y=np.array([1, 0])), ValueError, r"y must hold 1 x 2 class indices, shape \(1, 2\), "
                                           "one per token"),
    (dict(y=np.array([[1, 2]])), ValueError, r"y\[0, 1\] must be a class index in 0\.\.1"),
    (dict(tokens="mean"), ValueError, "tokens must be 'sum' or 'flatten'"),
    (dict(engine="fast"), ValueError, "engine must be 'auto', 'composed' or 'layerwise'"),
    (dict(engine="composed"), TypeError, "engine='composed' needs a Sequential of Dense"),
    (dict(kind="kfac"), ValueError, "kind='kfac' needs a chain of Dense layers"),
    (dict(second_derivatives="symbolic"), ValueError, "second_derivatives='symbolic'"),
    (dict(params=[(np.ones((3, 2)),), (np.ones(2),), (np.ones((2, 2)), np.ones(2))]),
     ValueError, r"params\[1\] must be a \(weight, bias\) pair for LayerNorm"),
    (dict(params=[(np.ones((2, 3)),), (np.ones(2), np.ones(2)), (np.ones((2, 2)), np.ones(2))]),
     ValueError, r"params\[0\]\[0\] \(weight, shape \(num_embeddings, d\)\) must have shape "
                 r"\(3, 2\), got \(2, 3\)"),
])
def test_bad_input_is_named(token_problem, change, exc, match):
    model, params, x, y = token_problem
    kw = dict(model=model, params=params, x=x, y=y, likelihood=fl.Categorical(), kind="ggn")
    kw.update(change)
    with pytest.raises(exc, match=match):
        curvature(kw.pop("model"), kw.pop("params"), kw.pop("x"), kw.pop("y"),
                  kw.pop("likelihood"), **kw)


def test_unsupported_layer_inside_a_residual_is_named_with_its_path():
    model = nn.Sequential([nn.Dense(4, 4), nn.Residual(nn.Sequential([nn.Flatten()])),
                           nn.Dense(4, 1)])
    params = [(np.ones((4, 4)), np.zeros(4)), (np.ones((1, 4)), np.zeros(1))]
    with pytest.raises(TypeError, match=r"model\.layers\[1\]\.block\.layers\[0\] is Flatten"):
        curvature(model, params, np.ones((1, 4)), None, fl.Gaussian(), "fisher")
