"""``sample`` draws from the predictive distribution: moments against the SymPy source.

For each family and a fixed batch of outputs, ``S = 20000`` targets per example are drawn
with a fixed key and three families of statistics ``W`` are averaged:

* ``y_i`` (mean), exact ``E[y_i]``;
* ``(y_i - m_i)(y_j - m_j)`` with the exact mean ``m`` (covariance), exact ``Cov[y]_{ij}``;
* ``g_i g_j`` with ``g = _output_grad(out, y)`` at the sampled ``y`` (Monte-Carlo output
  Fisher), exact ``fisher_definition()_{ij}`` -- this also ties ``_sample`` to ``_output_grad``
  and ``_output_fisher`` the way ``fisher_mc`` uses them.

Each exact ``E[W]`` and ``Var[W] = E[W^2] - E[W]^2`` is computed by the family's exact
expectation operator (``SymbolicLikelihood.expectation``) and evaluated in mpmath, so the
z-score ``z = (mean(W) - E[W]) / sqrt(Var[W] / S)`` uses no plug-in variance. A check passes
when ``|z| < 5``: under the CLT the false-failure probability is ``< 6e-7`` per check, and
``< 1e-4`` for the ~150 checks of this module together (union bound). Seeds are fixed, so
the outcome is deterministic.
"""

import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import sympy as sp

import likelihood_oracle as O
from fisherlab import Bernoulli, Categorical, Gaussian, GaussianMeanVariance, Poisson

S = 20_000
Z_MAX = 5.0

CASES = {
    "Categorical": (Categorical(), np.array([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0]]), 1.0),
    "Gaussian": (Gaussian(variance=0.3), np.array([[0.3, -1.2, 2.0], [5.0, 0.0, -7.0]]), 0.3),
    "Bernoulli": (Bernoulli(), np.array([[0.3, -1.2, 2.0], [0.0, 4.0, -3.0]]), 1.0),
    # row 2 includes log-rate 9.2 (rate 9897, just under Poisson.MAX_SAMPLING_RATE = 1e4)
    "Poisson": (Poisson(), np.array([[0.3, -1.2, 2.0], [0.0, 9.2, -3.0]]), 1.0),
    "GaussianMeanVariance": (GaussianMeanVariance(),
                             np.array([[0.3, -1.2, 2.0, -3.0], [5.0, 0.0, 1.5, 0.0]]), 1.0),
}


@functools.lru_cache(maxsize=None)
def _moment_functions(family: str, C: int):
    """mpmath functions of (outputs, v) giving E[W] and E[W^2] for every statistic."""
    sym = O.source(family, C)
    y = sym.targets
    D = len(y)
    m = [sym.expectation(t) for t in y]
    g = -sym.score()
    stats = {}
    for i in range(D):
        stats[("mean", i, i)] = y[i]
    for i in range(D):
        for j in range(i, D):
            stats[("cov", i, j)] = (y[i] - m[i]) * (y[j] - m[j])
    for i in range(C):
        for j in range(i, C):
            stats[("fisher", i, j)] = g[i] * g[j]
    args = list(sym.outputs) + [O.VAR]
    out = {}
    for key, w in stats.items():
        e1 = sym.expectation(w)  # each operator expands itself where it needs to
        e2 = sym.expectation(w * w)
        out[key] = (sp.lambdify(args, e1, modules="mpmath"),
                    sp.lambdify(args, e2, modules="mpmath"))
    return out


def _z_scores(family, lik, outputs, variance, key):
    samples = np.asarray(lik.sample(key, outputs, S))
    N, C = outputs.shape
    assert samples.shape[:2] == (S, N)
    if family == "Categorical":
        assert samples.shape == (S, N) and jnp.issubdtype(samples.dtype, jnp.integer)
        y = np.eye(C)[samples]  # one-hot, the symbolic target representation
        t = jnp.asarray(samples)
    else:
        D = C // 2 if family == "GaussianMeanVariance" else C
        assert samples.shape == (S, N, D) and samples.dtype == np.float64
        y = samples
        t = jnp.asarray(samples)
    grads = np.asarray(jax.vmap(jax.vmap(lik._output_grad), in_axes=(None, 0))(
        jnp.asarray(outputs, jnp.float64), t))
    fns = _moment_functions(family, C)
    zs = {}
    for n in range(N):
        with mpmath.workdps(30):
            args = [mpmath.mpf(float(v)) for v in outputs[n]] + [mpmath.mpf(float(variance))]
            exact_mean = {i: fns[("mean", i, i)][0](*args) for i in range(y.shape[-1])}
            for (kind, i, j), (e1, e2) in fns.items():
                if kind == "mean":
                    w = y[:, n, i]
                elif kind == "cov":
                    w = ((y[:, n, i] - float(exact_mean[i])) * (y[:, n, j] - float(exact_mean[j])))
                else:
                    w = grads[:, n, i] * grads[:, n, j]
                mu, second = e1(*args), e2(*args)
                var = second - mu ** 2
                if var <= 0:
                    assert np.all(w == float(mu)), (family, kind, i, j)
                    continue
                zs[(n, kind, i, j)] = float((mpmath.mpf(float(np.mean(w))) - mu)
                                            / mpmath.sqrt(var / S))
    return zs


@pytest.mark.parametrize("family", sorted(CASES))
def test_sample_moments_match_the_exact_distribution(family):
    lik, outputs, variance = CASES[family]
    zs = _z_scores(family, lik, outputs, variance, jax.random.key(20261122))
    bad = {k: z for k, z in zs.items() if abs(z) >= Z_MAX}
    assert not bad, f"{family}: |z| >= {Z_MAX} for {bad}"
    assert len(zs) >= 2 * outputs.shape[1]


def test_a_wrong_distribution_is_detected():
    # power check: the Bernoulli samples judged as if the logits were shifted by 0.1
    lik, outputs, _ = CASES["Bernoulli"]
    fns = _moment_functions("Bernoulli", 3)
    samples = np.asarray(lik.sample(jax.random.key(1), outputs, S))
    e1, e2 = fns[("mean", 0, 0)]
    with mpmath.workdps(30):
        args = [mpmath.mpf(float(v) + 0.1) for v in outputs[0]] + [mpmath.mpf(1)]
        mu, var = e1(*args), e2(*args) - e1(*args) ** 2
        z = (mpmath.mpf(float(samples[:, 0, 0].mean())) - mu) / mpmath.sqrt(var / S)
    assert abs(z) > Z_MAX


def test_sample_is_reproducible_and_key_dependent():
    lik = Gaussian()
    out = np.zeros((2, 3))
    a = lik.sample(jax.random.key(0), out, 4)
    b = lik.sample(jax.random.key(0), out, 4)
    c = lik.sample(jax.random.key(1), out, 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # examples use independent streams
    assert not np.array_equal(a[:, 0], a[:, 1])
