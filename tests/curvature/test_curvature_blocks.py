"""The fast dense paths multiply out only the blocks on and above the diagonal and mirror them.

The default panel width (384 parameters) and unit size of the layer-wise method are larger than
the test models, which would make every product a single block; here they are shrunk so that
the tiny models are cut into many panels (Jacobian path) and many units per layer (layer-wise
path), and the results are compared with the naive per-example loops of
fisherlab.testing.references.naive (and with each other). Which kernel ran is read from the
kernel call counts.
"""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.curvature import _kernels, _layerwise, _symmetric
from fisherlab.testing.references import naive
from curvature_cases import make_problem

RTOL = 1e-11


def _close(actual, desired):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    assert np.linalg.norm(actual - desired) <= RTOL * np.linalg.norm(desired) + 1e-13


@pytest.fixture
def small_blocks(monkeypatch):
    """Panels of 7 parameters, layer-wise units of ~10 parameters, a fresh kernel cache."""
    panels = _symmetric.panels
    monkeypatch.setattr(_symmetric, "panels", lambda d, width=7: panels(d, 7))
    monkeypatch.setattr(_layerwise, "UNIT_PARAMS", 10)
    monkeypatch.setattr(_kernels, "_CACHE", collections.OrderedDict())


def _ran(fn):
    before = collections.Counter(_kernels.CALLS)
    out = fn()
    return out, sorted((collections.Counter(_kernels.CALLS) - before).elements())


@pytest.mark.parametrize("family", ["categorical", "gaussian_mean_variance"])
def test_block_paths_equal_the_naive_loops(small_blocks, family):
    f, params, x, y, lik = make_problem(family, seed=3, n=5, in_features=4, hidden=6)
    d = sum(a.size for a in jax.tree_util.tree_leaves(params))
    assert len(_symmetric.panels(d)) >= 5
    assert any(len(layer.units) > 1 for layer in _layerwise._layout(f))
    key = jax.random.key(7)
    expected = {
        "ggn": naive.ggn(f, params, x, y, lik),
        "fisher": naive.fisher(f, params, x, lik),
        "fisher_mc": naive.fisher_mc(f, params, x, lik, key, 2),
    }
    for kind, want in expected.items():
        def call(method, chunk_size=None, kind=kind):
            fn = {"ggn": lambda **kw: fl.ggn(f, params, x, y, lik, **kw),
                  "fisher": lambda **kw: fl.fisher(f, params, x, lik, **kw),
                  "fisher_mc": lambda **kw: fl.fisher_mc(f, params, x, lik, key, 2, **kw)}[kind]
            return _ran(lambda: fn(method=method, chunk_size=chunk_size))

        auto, ran_auto = call("auto", 2)
        jac, ran_jac = call("jacobian", 2)
        assert ran_auto == ["layerwise"] and ran_jac == ["gauss_newton"], (ran_auto, ran_jac)
        for out in (auto, jac):
            _close(out, want)
            assert np.array_equal(np.asarray(out), np.asarray(out).T)  # exactly symmetric
    for fn, want, kernel in (
            (fl.empirical_fisher, naive.empirical_fisher(f, params, x, y, lik), "gradient_outer"),
            (fl.gradient_covariance, naive.gradient_covariance(f, params, x, y, lik),
             "gradient_outer")):
        out, ran = _ran(lambda: fn(f, params, x, y, lik, chunk_size=3))
        assert kernel in ran
        _close(out, want)
        assert np.array_equal(np.asarray(out), np.asarray(out).T)


def test_assemble_equals_the_full_product_for_any_panels():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.normal(size=(11, 23)))
    full = np.asarray(a).T @ np.asarray(a)
    for width in (1, 4, 7, 23, 100):
        parts = _symmetric.panels(23, width)
        assert parts[0][0] == 0 and parts[-1][1] == 23
        assert all(p1 == q0 for (_, p1), (q0, _) in zip(parts[:-1], parts[1:]))
        m = np.asarray(_symmetric.assemble(_symmetric.block_products(a, a, parts), parts, 23))
        np.testing.assert_allclose(m, full, rtol=1e-13, atol=1e-13)
        assert np.array_equal(m, m.T)
