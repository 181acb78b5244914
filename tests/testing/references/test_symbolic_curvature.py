"""fl.symbolic.curvature against closed forms written by hand, exactly.

The closed forms here are derived on paper (not by another autodiff path):
linear regression (H = GGN = F = Xbar^T Xbar / (N sigma^2), EF with squared residuals),
softmax regression (H = F = mean (diag p - p p^T) (x) xbar xbar^T, then permuted into
parameter order), a single tanh neuron (chain rule by hand), and sympy.hessian of the
fully composed loss of a small network. Plus: K-FAC = Fisher for N = 1, reduction="sum",
the ReLU kink convention, bad inputs, and that curvature() never calls JAX.
"""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import fisherlab as fl
from fisherlab.likelihoods import _symbolic
from fisherlab.symbolic import curvature

RNG = np.random.default_rng(20261122)


def dyadic(shape, rng=RNG, scale=8):
    """Floats that are exact small dyadic rationals (k / 8), so exact forms stay readable."""
    return rng.integers(-2 * scale, 2 * scale + 1, size=shape).astype(np.float64) / scale


def R(v):
    return sp.Rational(float(v))


def close(a, b, digits=25):
    a, b = sp.Matrix(a), sp.Matrix(b)
    assert a.shape == b.shape
    diff = (a - b).evalf(digits + 10)
    scale = max(1, max(abs(v) for v in sp.Matrix(b).evalf(digits + 10)))
    err = max(abs(v) for v in diff) / scale
    assert err < sp.Float(10) ** (-digits), f"relative error {err}"


# --------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("C", [1, 2])
def test_linear_gaussian_is_xbar_gram_over_n_sigma2_exactly(C):
    N, n_in, var = 3, 2, 0.5
    model = fl.nn.Sequential([fl.nn.Dense(n_in, C)])
    params = [(dyadic((C, n_in)), dyadic((C,)))]
    x, y = dyadic((N, n_in)), dyadic((N, C))
    xbar = [[R(v) for v in row] + [sp.Integer(1)] for row in x]
    gram = sp.Matrix(n_in + 1, n_in + 1,
                     lambda i, j: sum(xb[i] * xb[j] for xb in xbar) / (N * R(var)))
    # parameter order: W row-major (c, i) -> c*n_in + i, then b_c -> C*n_in + c
    def idx(c, i):
        return c * n_in + i if i < n_in else C * n_in + c
    expected = sp.zeros(C * (n_in + 1))
    for c in range(C):
        for i in range(n_in + 1):
            for j in range(n_in + 1):
                expected[idx(c, i), idx(c, j)] = gram[i, j]
    lik = fl.Gaussian(variance=var)
    for kind in ("hessian", "ggn", "fisher"):
        got = curvature(model, params, x, y, lik, kind, exact=True)
        assert got == expected, kind
    # the residuals: EF = (1/N) sum_n (r r^T)_{cc'} xbar xbar^T / sigma^4 (Kunstner et al. 2019)
    W, b = params[0]
    res = [[(R(y[n, c]) - sum(R(W[c, i]) * R(x[n, i]) for i in range(n_in)) - R(b[c])) / R(var)
            for c in range(C)] for n in range(N)]
    ef = sp.zeros(C * (n_in + 1))
    for n in range(N):
        for c in range(C):
            for c2 in range(C):
                for i in range(n_in + 1):
                    for j in range(n_in + 1):
                        ef[idx(c, i), idx(c2, j)] += res[n][c] * res[n][c2] * xbar[n][i] * xbar[n][j] / N
    assert curvature(model, params, x, y, lik, "empirical_fisher", exact=True) == ef


def test_softmax_regression_fisher_is_kron_of_softmax_covariance_and_xbar_gram():
    N, n_in, K = 2, 2, 3
    model = fl.nn.Sequential([fl.nn.Dense(n_in, K)])
    W, b = dyadic((K, n_in)), dyadic((K,))
    x = dyadic((N, n_in))
    expected = sp.zeros(K * (n_in + 1))
    for n in range(N):
        logits = [sum(R(W[k, i]) * R(x[n, i]) for i in range(n_in)) + R(b[k]) for k in range(K)]
        Z = sum(sp.exp(l) for l in logits)
        p = [sp.exp(l) / Z for l in logits]
        cov = sp.Matrix(K, K, lambda a, c: (p[a] if a == c else 0) - p[a] * p[c])
        xbar = sp.Matrix([R(v) for v in x[n]] + [1])
        blk = sp.kronecker_product(cov, xbar * xbar.T) / N   # [W b] row-major order
        perm = [k * n_in + i if i < n_in else K * n_in + k
                for k in range(K) for i in range(n_in + 1)]
        for r in range(blk.rows):
            for c in range(blk.cols):
                expected[perm[r], perm[c]] += blk[r, c]
    y = np.array([0, 2])
    for kind in ("fisher", "ggn", "hessian"):  # linear model: no second-derivative term
        close(curvature(model, [(W, b)], x, y, fl.Categorical(), kind), expected)


def test_single_tanh_neuron_hessian_by_hand():
    # l = (y - tanh(w x + b))^2 / 2; u = w x + b, t = tanh u:
    # dl/du = -(y - t)(1 - t^2), d2l/du2 = (1 - t^2)^2 + 2 t (1 - t^2)(y - t)... written out:
    # d2l/du2 = (1 - t^2)^2 - (y - t) * (-2 t (1 - t^2)); H = d2l/du2 [x, 1][x, 1]^T.
    w, b, x, y = 0.75, -0.25, 1.5, 0.375
    t = sp.tanh(R(w) * R(x) + R(b))
    d2 = (1 - t ** 2) ** 2 - (R(y) - t) * (-2 * t * (1 - t ** 2))
    v = sp.Matrix([R(x), 1])
    model = fl.nn.Sequential([fl.nn.Dense(1, 1), fl.nn.Tanh()])
    params = [(w, b)]  # Python floats are accepted for a 1x1 weight
    got = curvature(model, params, [[x]], [[y]], fl.Gaussian(), "hessian")
    close(got, d2 * v * v.T)
    # GGN drops the residual term; Fisher = GGN (natural parameter); EF = (dl/du)^2 v v^T
    close(curvature(model, params, [[x]], [[y]], fl.Gaussian(), "ggn"), (1 - t ** 2) ** 2 * v * v.T)
    close(curvature(model, params, [[x]], None, fl.Gaussian(), "fisher"), (1 - t ** 2) ** 2 * v * v.T)
    close(curvature(model, params, [[x]], [[y]], fl.Gaussian(), "empirical_fisher"),
          ((R(y) - t) * (1 - t ** 2)) ** 2 * v * v.T)


def _composed_loss(sizes, acts, params, x, y_onehot_or_values, sym):
    """The fully composed per-example losses as one SymPy expression in fresh symbols."""
    theta, vals = [], {}
    a = [R(v) for v in x]
    for k, ((n_in, n_out), (W, b)) in enumerate(zip(sizes, params)):
        Ws = sp.Matrix(n_out, n_in, lambda r, c: sp.Symbol(f"w{k}{r}{c}"))
        bs = sp.Matrix(n_out, 1, lambda r, c: sp.Symbol(f"c{k}{r}"))
        theta += list(Ws) + list(bs)
        vals.update(zip(list(Ws) + list(bs), [R(v) for v in np.ravel(W)] + [R(v) for v in b]))
        a = list(Ws * sp.Matrix(a) + bs)
        if acts[k] is not None:
            a = [acts[k](z) for z in a]
    sub = dict(zip(sym.outputs, a))
    sub.update(dict(zip(sym.targets, y_onehot_or_values)))
    return (-sym.log_density).xreplace(sub), theta, vals


@pytest.mark.parametrize("second", ["symbolic", "layerwise"])
@pytest.mark.parametrize("family", ["gaussian", "categorical", "bernoulli", "poisson"])
def test_hessian_equals_sympy_hessian_of_the_composed_loss(family, second):
    sizes = [(2, 2), (2, 2)]
    rng = np.random.default_rng(7)
    params = [(dyadic((o, i), rng), dyadic((o,), rng)) for i, o in sizes]
    x = dyadic((2, 2), rng)
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Tanh(), fl.nn.Dense(2, 2)])
    if family == "categorical":
        lik, sym, y = fl.Categorical(), _symbolic.categorical(2), np.array([1, 0])
        targets = [[1 - int(v), int(v)] for v in y]
    elif family == "gaussian":
        lik, sym, y = fl.Gaussian(), _symbolic.gaussian(2), dyadic((2, 2), rng)
        targets = [[R(v) for v in row] for row in y]
    elif family == "bernoulli":
        lik, sym, y = fl.Bernoulli(), _symbolic.bernoulli(2), np.array([[0.0, 1.0], [1.0, 1.0]])
        targets = [[R(v) for v in row] for row in y]
    else:
        lik, sym, y = fl.Poisson(), _symbolic.poisson(2), np.array([[0.0, 3.0], [2.0, 1.0]])
        targets = [[R(v) for v in row] for row in y]
    total, theta, vals = 0, None, None
    for n in range(2):
        l_n, theta, vals = _composed_loss(sizes, [sp.tanh, None], params, x[n], targets[n], sym)
        total += l_n / 2
    # differentiate exactly, then evaluate at the exact parameter values with 60 digits
    expected = sp.hessian(total, theta).xreplace({k: sp.Float(v, 60) for k, v in vals.items()})
    close(curvature(model, params, x, y, lik, "hessian", second_derivatives=second), expected)


@pytest.mark.parametrize("second", ["symbolic", "layerwise"])
def test_deep_hessian_equals_sympy_hessian_of_the_composed_loss(second):
    # two nested nonlinearities (the "auto" choice is layerwise here)
    sizes = [(1, 2), (2, 1), (1, 1)]
    rng = np.random.default_rng(8)
    params = [(dyadic((o, i), rng), dyadic((o,), rng)) for i, o in sizes]
    x, y = dyadic((2, 1), rng), dyadic((2, 1), rng)
    model = fl.nn.Sequential([fl.nn.Dense(1, 2), fl.nn.Tanh(), fl.nn.Dense(2, 1), fl.nn.Sigmoid(),
                              fl.nn.Dense(1, 1)])
    sym = _symbolic.gaussian(1)
    sigmoid = lambda z: 1 / (1 + sp.exp(-z))  # noqa: E731
    total, theta, vals = 0, None, None
    for n in range(2):
        l_n, theta, vals = _composed_loss(sizes, [sp.tanh, sigmoid, None], params, x[n],
                                          [R(y[n, 0])], sym)
        total += l_n / 2
    expected = sp.hessian(total, theta).xreplace({k: sp.Float(v, 60) for k, v in vals.items()})
    close(curvature(model, params, x, y, fl.Gaussian(), "hessian", second_derivatives=second),
          expected)


def test_layerwise_and_symbolic_second_derivatives_agree_with_relu():
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.ReLU(), fl.nn.Dense(2, 2), fl.nn.Tanh(),
                              fl.nn.Dense(2, 2)])
    rng = np.random.default_rng(9)
    params = [(dyadic((2, 2), rng), dyadic((2,), rng)) for _ in range(3)]
    x, y = dyadic((1, 2), rng), np.array([1])
    x = np.vstack([x, [[0.0, 0.0]]])   # second example: pre-activations = biases
    y = np.array([1, 0])
    a = curvature(model, params, x, y, fl.Categorical(), "hessian", precision=40,
                  second_derivatives="symbolic")
    b = curvature(model, params, x, y, fl.Categorical(), "hessian", precision=40,
                  second_derivatives="layerwise")
    close(a, b, digits=38)


# --------------------------------------------------------------------------- structure


def _net(rng):
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Sigmoid(), fl.nn.Dense(2, 3)])
    params = [(rng.normal(size=(2, 2)), rng.normal(size=2)),
              (rng.normal(size=(3, 2)), rng.normal(size=3))]
    return model, params


def test_kfac_equals_fisher_blocks_for_one_example():
    rng = np.random.default_rng(3)
    model, params = _net(rng)
    x = rng.normal(size=(1, 2))
    F = curvature(model, params, x, None, fl.Categorical(), "fisher")
    K = curvature(model, params, x, None, fl.Categorical(), "kfac")
    blocks = [(0, 6), (6, 15)]
    for (a, b) in blocks:
        close(K[a:b, a:b], F[a:b, a:b])
    assert all(v == 0 for v in K[0:6, 6:15]) and all(v == 0 for v in K[6:15, 0:6])
    # and it is only an approximation for N > 1 (the factors average separately)
    x3 = rng.normal(size=(3, 2))
    F3 = curvature(model, params, x3, None, fl.Categorical(), "fisher")
    K3 = curvature(model, params, x3, None, fl.Categorical(), "kfac")
    assert max(abs(v) for v in (K3[0:6, 0:6] - F3[0:6, 0:6])) > 1e-6
    # single Dense layer, N = 1: K-FAC is the whole Fisher; empirical K-FAC the whole EF
    lin = fl.nn.Sequential([fl.nn.Dense(2, 3)])
    y = np.array([2])
    close(curvature(lin, params[1:], x[:, :2], None, fl.Categorical(), "kfac"),
          curvature(lin, params[1:], x[:, :2], None, fl.Categorical(), "fisher"))
    close(curvature(lin, params[1:], x[:, :2], y, fl.Categorical(), "kfac_empirical"),
          curvature(lin, params[1:], x[:, :2], y, fl.Categorical(), "empirical_fisher"))


@pytest.mark.parametrize("kind", ["hessian", "ggn", "fisher", "empirical_fisher", "kfac"])
def test_sum_reduction_is_n_times_mean(kind):
    rng = np.random.default_rng(4)
    model, params = _net(rng)
    x, y = rng.normal(size=(3, 2)), np.array([0, 2, 1])
    mean = curvature(model, params, x, y, fl.Categorical(), kind)
    total = curvature(model, params, x, y, fl.Categorical(), kind, reduction="sum")
    close(total, 3 * mean)


def test_fisher_equals_ggn_for_natural_families_but_not_mean_variance():
    rng = np.random.default_rng(5)
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Tanh(), fl.nn.Dense(2, 2)])
    params = [(rng.normal(size=(2, 2)), rng.normal(size=2)) for _ in range(2)]
    x = rng.normal(size=(2, 2))
    for lik, y in [(fl.Bernoulli(), np.array([[0.0, 1.0], [1.0, 0.0]])),
                   (fl.Gaussian(variance=2.0), rng.normal(size=(2, 2)))]:
        close(curvature(model, params, x, y, lik, "fisher"), curvature(model, params, x, y, lik, "ggn"))
    y = rng.normal(size=(2, 1))
    F = curvature(model, params, x, y, fl.GaussianMeanVariance(), "fisher")
    G = curvature(model, params, x, y, fl.GaussianMeanVariance(), "ggn")
    assert max(abs(v) for v in F - G) > 1e-3


def test_relu_kink_has_derivative_zero():
    # s = w1 x + b1 = 0 exactly: relu'(0) = 0, so the gradient wrt (w1, b1) vanishes.
    model = fl.nn.Sequential([fl.nn.Dense(1, 1), fl.nn.ReLU(), fl.nn.Dense(1, 1)])
    params = [(1.0, -0.5), (2.0, 0.25)]
    F = curvature(model, params, [[0.5]], None, fl.Gaussian(), "fisher", exact=True)
    assert F[0, :] == sp.zeros(1, 4) and F[1, :] == sp.zeros(1, 4)
    assert F[3, 3] == 1 and F[2, 2] == 0  # a = relu(0) = 0 feeds w2
    F2 = curvature(model, params, [[1.0]], None, fl.Gaussian(), "fisher", exact=True)
    assert F2[0, 0] == 4  # s = 1/2 > 0: df/dw1 = w2 x = 2
    # the mpmath evaluation path and the layerwise Hessian follow the same convention
    Fn = curvature(model, params, [[0.5]], None, fl.Gaussian(), "fisher")
    assert all(v == 0 for v in Fn[:2, :]) and float(Fn[3, 3]) == 1.0
    Hn = curvature(model, params, [[0.5]], [[1.0]], fl.Gaussian(), "hessian",
                   second_derivatives="layerwise")
    Hs = curvature(model, params, [[0.5]], [[1.0]], fl.Gaussian(), "hessian",
                   second_derivatives="symbolic")
    assert Hn == Hs and all(v == 0 for v in Hn[:2, :])


def test_params_as_lists_fractions_and_sympy_give_the_same_matrix():
    model = fl.nn.Sequential([fl.nn.Dense(2, 1), fl.nn.Sigmoid()])
    x, y = [[0.5, -1.0]], [[1.0]]
    a = curvature(model, [(np.array([[0.25, 0.5]]), np.array([0.125]))], x, y, fl.Bernoulli(),
                  "hessian", exact=True)
    b = curvature(model, [([[Fraction(1, 4), Fraction(1, 2)]], [Fraction(1, 8)])], x, y,
                  fl.Bernoulli(), "hessian", exact=True)
    c = curvature(model, [(sp.Matrix([[sp.Rational(1, 4), sp.Rational(1, 2)]]),
                           [sp.Rational(1, 8)])], x, y, fl.Bernoulli(), "hessian", exact=True)
    assert a == b == c


def test_poisson_and_mean_variance_outputs():
    model = fl.nn.Sequential([fl.nn.Dense(1, 2)])
    W, b = np.array([[0.5], [-0.25]]), np.array([0.125, 0.5])
    x = np.array([[1.0], [-2.0]])
    # Poisson, linear: F = mean_n diag(exp(eta)) (x) xbar xbar^T (exact expectation by series)
    F = curvature(model, [(W, b)], x, None, fl.Poisson(), "fisher")
    exp_F = sp.zeros(4)
    for n in range(2):
        xb = [R(x[n, 0]), 1]
        for c in range(2):
            lam = sp.exp(R(W[c, 0]) * R(x[n, 0]) + R(b[c]))
            ids = [c, 2 + c]
            for i in range(2):
                for j in range(2):
                    exp_F[ids[i], ids[j]] += lam * xb[i] * xb[j] / 2
    close(F, exp_F)
    # mean-variance Gaussian: output Fisher diag(exp(-s), 1/2)
    F = curvature(model, [(W, b)], x, None, fl.GaussianMeanVariance(), "fisher")
    exp_F = sp.zeros(4)
    for n in range(2):
        xb = [R(x[n, 0]), 1]
        s = R(W[1, 0]) * R(x[n, 0]) + R(b[1])
        out_F = [sp.exp(-s), sp.Rational(1, 2)]
        for c in range(2):
            ids = [c, 2 + c]
            for i in range(2):
                for j in range(2):
                    exp_F[ids[i], ids[j]] += out_F[c] * xb[i] * xb[j] / 2
    close(F, exp_F)


def test_symbolic_likelihood_accepted_directly():
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = [(np.eye(2) / 2, np.zeros(2))]
    x = np.array([[1.0, 0.5]])
    assert (curvature(model, params, x, None, _symbolic.categorical(2), "fisher", exact=True)
            == curvature(model, params, x, None, fl.Categorical(), "fisher", exact=True))


# --------------------------------------------------------------------------- errors


@pytest.fixture
def small():
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Tanh(), fl.nn.Dense(2, 2)])
    params = [(np.ones((2, 2)) / 4, np.zeros(2)), (np.ones((2, 2)) / 2, np.zeros(2))]
    return model, params, np.ones((2, 2)), np.array([0, 1])


@pytest.mark.parametrize("change, exc, match", [
    (dict(kind="newton"), ValueError, "kind must be one of"),
    (dict(reduction="avg"), ValueError, "reduction must be"),
    (dict(exact=1), TypeError, "exact must be a bool"),
    (dict(precision=5), ValueError, "precision"),
    (dict(second_derivatives="numeric"), ValueError, "second_derivatives must be"),
    (dict(model="net"), TypeError, "model must be a fisherlab.nn.Sequential"),
    (dict(model=fl.nn.Sequential([fl.nn.Tanh()])), ValueError, "at least one Dense"),
    (dict(params=[(np.ones((2, 2)), np.zeros(2))]), ValueError, "list of 2"),
    (dict(params=[(np.ones((2, 3)), np.zeros(2)), (np.ones((2, 2)), np.zeros(2))]),
     ValueError, r"params\[0\]\[0\].*shape \(2, 2\), got \(2, 3\)"),
    (dict(params=[(np.ones((2, 2)), np.zeros(2)), (np.ones((2, 2)), np.array([0.0, np.nan]))]),
     ValueError, "finite"),
    (dict(params=[np.ones(2), (np.ones((2, 2)), np.zeros(2))]), ValueError, r"\(W, b\) pair"),
    (dict(params=[(np.array([["a", "b"], ["c", "d"]]), np.zeros(2)),
                  (np.ones((2, 2)), np.zeros(2))]), TypeError, "numeric"),
    (dict(x=np.ones((2, 3))), ValueError, r"x must have shape \(N, 2\)"),
    (dict(x=np.ones(2)), ValueError, r"x must have shape \(N, 2\)"),
    (dict(y=None), ValueError, "y .* required"),
    (dict(y=np.array([0, 2])), ValueError, r"y\[1\] must be a class index in 0..1"),
    (dict(y=np.array([0.5, 1.0])), ValueError, r"y\[0\] must be a class index"),
    (dict(y=np.array([[0, 1]])), ValueError, r"y must hold 2 class indices"),
    (dict(likelihood=fl.Bernoulli(), y=np.array([[0.0, 2.0], [1.0, 1.0]])),
     ValueError, "0 or 1"),
    (dict(likelihood=fl.Poisson(), y=np.array([[0.0, -1.0], [1.0, 1.0]])),
     ValueError, "non-negative integer"),
    (dict(likelihood=fl.Gaussian(), y=np.ones((2, 3))), ValueError, r"shape \(2, 2\)"),
    (dict(likelihood=_symbolic.categorical(3)), ValueError, "the model has 2 outputs"),
    (dict(likelihood="gaussian"), TypeError, "likelihood must be"),
])
def test_bad_inputs_raise_naming_the_argument(small, change, exc, match):
    model, params, x, y = small
    kw = dict(model=model, params=params, x=x, y=y, likelihood=fl.Categorical(), kind="hessian")
    kw.update(change)
    with pytest.raises(exc, match=match):
        curvature(kw.pop("model"), kw.pop("params"), kw.pop("x"), kw.pop("y"),
                  kw.pop("likelihood"), **kw)


@pytest.mark.parametrize("layer", [fl.nn.Conv2d(1, 1, 1), fl.nn.Flatten()])
def test_unsupported_layers_are_named(layer):
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), layer])
    with pytest.raises(TypeError, match=r"model.layers\[1\] is .*supports Dense"):
        curvature(model, [(np.ones((2, 2)), np.zeros(2))], np.ones((1, 2)), None,
                  fl.Categorical(), "fisher")


# --------------------------------------------------------------------------- no JAX


_NO_JAX_SCRIPT = r"""
import numpy as np
import jax.numpy as jnp
from jax._src import core
import fisherlab as fl
from fisherlab.symbolic import curvature

model = fl.nn.Sequential([fl.nn.Dense(2, 2), fl.nn.Sigmoid(), fl.nn.Dense(2, 3)])
params = [(jnp.asarray(np.full((2, 2), 0.5)), jnp.asarray(np.zeros(2))),
          (jnp.asarray(np.full((3, 2), -0.25)), jnp.asarray(np.ones(3)))]  # JAX arrays in
x, y = jnp.asarray(np.ones((2, 2))), jnp.asarray(np.array([0, 2]))
lik = fl.Categorical()

def boom(self, *args, **kwargs):
    raise AssertionError(f"JAX primitive {self.name!r} was called")

core.Primitive.bind = boom
try:  # the trap works (a fresh process: no compiled fast path yet)
    jnp.multiply(x, x)
except AssertionError:
    pass
else:
    raise SystemExit("trap did not fire")
for kind in ("hessian", "ggn", "fisher", "empirical_fisher", "kfac", "kfac_empirical"):
    assert curvature(model, params, x, y, lik, kind).shape == (15, 15)
# the layerwise engine: a pre-LN attention block on token ids, per-token outputs
nn = fl.nn
block = nn.Sequential([nn.Embedding(3, 2),
                       nn.Residual(nn.Sequential([nn.LayerNorm(2),
                                                  nn.MultiHeadAttention(2, 2, causal=True)])),
                       nn.Residual(nn.Sequential([nn.RMSNorm(2), nn.Dense(2, 2), nn.GELU()])),
                       nn.Dense(2, 2)])
bp = [(np.full((3, 2), 0.5),), [(np.ones(2), np.zeros(2)),
                                (np.full((6, 2), 0.25), np.zeros(6), np.eye(2), np.ones(2))],
      [(np.ones(2),), (np.eye(2), np.zeros(2))], (np.eye(2), np.zeros(2))]
bx, by = np.array([[0, 2]]), np.array([[1, 0]])
for kind in ("hessian", "ggn", "fisher", "empirical_fisher"):
    assert curvature(block, bp, bx, by, lik, kind).shape == (48, 48)
print("ok")
"""


def test_curvature_never_calls_jax():
    """Every JAX operation binds a primitive; make binding raise and run every kind.

    Runs in a fresh interpreter: once an operation has been compiled, JAX dispatches it
    from a C++ cache without Python's ``Primitive.bind``, so an in-process trap could miss it.
    """
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _NO_JAX_SCRIPT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout + proc.stderr
