"""Which kernel and which memory plan each dense curvature function uses.

Values alone cannot tell a fast path from the path it should replace (the layer-wise kernel
and the per-example Jacobian kernel give the same matrix), nor an estimate made for the wrong
sizes. Here the kernel that ran is read from the kernel call counts, and the memory plan is
checked against the sizes it must be made for: per device for a sharded batch, per token for
the outer products of ``tokens="flatten"``, and the per-example intermediates of the method
that runs (docs in :mod:`fisherlab.curvature._memory`). A budget of one byte makes every plan
refuse, so its message shows the sizes it was made for. Last, the cache of compiled kernels
keeps the most recently used ones.
"""

import collections
import re

import jax
import jax.numpy as jnp
import pytest
from jax.flatten_util import ravel_pytree
from jax.sharding import AbstractMesh

import fisherlab as fl
from fisherlab.curvature import CurvatureMemoryError, _dense, _kernels, _layerwise
from fisherlab.curvature._problem import prepare
from curvature_cases import make_problem
import token_cases

KEY = jax.random.key(5)
# an MLP 3 -> 4 -> 3 (categorical): d = 16 + 15 = 31, N = 6 examples, C = 3 outputs
MLP = make_problem("categorical", seed=1, n=6, in_features=3, hidden=4, outputs=3)
MLP_D = 3 * 4 + 4 + 4 * 3 + 3
DICT = make_problem("categorical", seed=2, n=4, in_features=3, outputs=3, model="dict")


@pytest.fixture
def kernel_calls(monkeypatch):
    """``calls(fn)``: the kernels ``fn`` asked for, by name; the kernels are not compiled (a
    zero ``(d, d)`` result stands in), so the choice of kernel is checked without its cost."""
    def calls(fn):
        asked = collections.Counter()

        def compiled(name, *args, **kw):
            asked[name] += 1

            def kernel(params, *rest):
                d = ravel_pytree(params)[0].size
                return jnp.zeros((d, d))
            return kernel

        monkeypatch.setattr(_kernels, "compiled", compiled)
        fn()
        monkeypatch.undo()
        return dict(asked)

    return calls


def _gauss_newton(kind, problem, **kw):
    f, params, x, y, lik = problem
    if kind == "ggn":
        return fl.ggn(f, params, x, y, lik, **kw)
    if kind == "fisher":
        return fl.fisher(f, params, x, lik, **kw)
    return fl.fisher_mc(f, params, x, lik, KEY, 2, **kw)


def _refusal(fn) -> str:
    with pytest.raises(CurvatureMemoryError) as info:
        fn()
    return str(info.value)


# ----------------------------------------------------------------------------- which kernel ran


@pytest.mark.parametrize("kind", ["ggn", "fisher", "fisher_mc"])
def test_method_selects_the_kernel_that_runs(kind, kernel_calls):
    _kernel_calls = kernel_calls
    dict_problem = DICT
    assert _kernel_calls(lambda: _gauss_newton(kind, MLP, method="layerwise")) == {
        "layerwise": 1}
    assert _kernel_calls(lambda: _gauss_newton(kind, MLP, method="jacobian")) == {
        "gauss_newton": 1}
    # auto: layer-wise for a Sequential MLP, unless a Jacobian mode is asked for
    assert _kernel_calls(lambda: _gauss_newton(kind, MLP)) == {"layerwise": 1}
    assert _kernel_calls(lambda: _gauss_newton(kind, MLP, jacobian="forward")) == {
        "gauss_newton": 1}
    assert _kernel_calls(lambda: _gauss_newton(kind, dict_problem)) == {"gauss_newton": 1}


def test_layerwise_method_on_an_unsupported_model_is_refused_naming_the_alternative():
    f, params, x, y, lik = make_problem("categorical", seed=2, n=4, in_features=3, outputs=3,
                                        model="dict")
    with pytest.raises(ValueError, match=r"method='layerwise' needs f to be a fisherlab\.nn\."
                                         r"Sequential.*use method='jacobian'"):
        fl.ggn(f, params, x, y, lik, method="layerwise")


# ----------------------------------------------------------------------------- the memory plan


def test_plan_of_each_method_counts_that_methods_intermediates():
    # the module doc of _memory: 3 C d entries per example for the per-example Jacobians and
    # their products with the output matrix; the layer-wise method holds its small factors.
    f, params, x, y, lik = MLP
    p = prepare(f, params, x, y, lik)
    n, c, d = 6, 3, MLP_D
    layerwise = _layerwise.per_example_entries(f, c, 1)
    assert layerwise != 3 * c * d
    for kind in ("ggn", "fisher"):
        for options, per_example in (({"method": "jacobian"}, 3 * c * d),
                                     ({"method": "layerwise"}, layerwise),
                                     ({}, layerwise),  # auto picks the layer-wise kernel
                                     ({"jacobian": "reverse"}, 3 * c * d)):
            plan = _dense.dense_plan(p, kind, chunk_size=n, **options)
            assert plan.parts[f"chunks of {n} examples"] == 8 * n * per_example, (kind, options)


@pytest.mark.parametrize("devices", [2, 3])
def test_plan_with_a_mesh_is_per_device(devices):
    f, params, x, y, lik = MLP  # N = 6 examples, split over the devices
    p = prepare(f, params, x, y, lik)
    mesh = (AbstractMesh((devices,), ("batch",)), "batch")
    for kind in ("ggn", "empirical_fisher", "hessian"):
        whole = _refusal(lambda: _dense.dense_plan(p, kind, memory_budget=1))
        assert "N = 6 examples" in whole
        shard = _refusal(lambda: _dense.dense_plan(p, kind, memory_budget=1, mesh=mesh))
        assert f"N = {6 // devices} examples" in shard, shard
    with pytest.raises(ValueError, match="sharded over 4 devices .* 6 examples, not a multiple"):
        _dense.dense_plan(p, "ggn", mesh=(AbstractMesh((4,), ("batch",)), "batch"))


def test_flatten_tokens_plan_the_outer_products_per_token():
    # N = 3 sequences of R = 3 tokens, C classes per token: the outer-product kinds of
    # tokens="flatten" are built from the N R token gradients (C outputs each); the other
    # kinds, and tokens="sum", keep the N sequences of R C outputs.
    fam = "categorical"
    f, params, x, y, lik = token_cases.problem(fam)
    n, r, c = token_cases.N, token_cases.R, token_cases.num_classes(fam)
    flat = prepare(f, params, x, y, lik, tokens="flatten")
    summed = prepare(f, params, x, y, lik, tokens="sum")
    for kind in ("empirical_fisher", "gradient_covariance", "fisher_mc"):
        msg = _refusal(lambda: _dense.dense_plan(flat, kind, memory_budget=1))
        assert f"N = {n * r} examples, C = {c} outputs" in msg, msg
        msg = _refusal(lambda: _dense.dense_plan(summed, kind, memory_budget=1))
        assert f"N = {n} examples, C = {r * c} outputs" in msg, msg
    for kind in ("ggn", "fisher", "hessian"):
        msg = _refusal(lambda: _dense.dense_plan(flat, kind, memory_budget=1))
        assert f"N = {n} examples, C = {r * c} outputs" in msg, msg


@pytest.mark.parametrize("kind", ["ggn", "fisher", "fisher_mc", "empirical_fisher",
                                  "gradient_covariance", "hessian"])
def test_dense_functions_reserve_no_solve_workspace_and_name_themselves(kind):
    # only the updates add the d x d copies of a dense solve to the estimate
    f, params, x, y, lik = MLP
    calls = {"ggn": lambda: fl.ggn(f, params, x, y, lik, memory_budget=1),
             "fisher": lambda: fl.fisher(f, params, x, lik, memory_budget=1),
             "fisher_mc": lambda: fl.fisher_mc(f, params, x, lik, KEY, memory_budget=1),
             "empirical_fisher": lambda: fl.empirical_fisher(f, params, x, y, lik,
                                                             memory_budget=1),
             "gradient_covariance": lambda: fl.gradient_covariance(f, params, x, y, lik,
                                                                   memory_budget=1),
             "hessian": lambda: fl.hessian(f, params, x, y, lik, memory_budget=1)}
    msg = _refusal(calls[kind])
    assert msg.startswith(f"fl.{kind}: a dense ({MLP_D}, {MLP_D}) matrix"), msg
    assert "dense solve" not in msg
    # the estimate holds at least the result
    needed = int(re.search(r"\(([\d,]+) bytes:", msg).group(1).replace(",", ""))
    assert 8 * MLP_D ** 2 < needed


def test_dict_model_plans_the_jacobian_method():
    f, params, x, y, lik = make_problem("gaussian", seed=4, n=4, in_features=2, outputs=2,
                                        model="dict")
    p = prepare(f, params, x, y, lik)
    d = sum(a.size for a in jax.tree_util.tree_leaves(params))
    plan = _dense.dense_plan(p, "ggn", chunk_size=4)
    assert plan.parts["chunks of 4 examples"] == 8 * 4 * 3 * 2 * d


# ----------------------------------------------------------------------------- the kernel cache


def test_kernel_cache_evicts_the_least_recently_used_kernel(monkeypatch):
    monkeypatch.setattr(_kernels, "_CACHE", collections.OrderedDict())
    monkeypatch.setattr(_kernels, "_CACHE_SIZE", 2)
    f, lik = MLP[0], MLP[4]

    def jitted(chunk_size):  # building a kernel traces nothing: jax.jit is lazy
        return _kernels.compiled("gradient", f, lik, chunk_size).jitted

    one, two = jitted(1), jitted(2)
    assert jitted(1) is one  # a hit: 1 is now the most recently used, 2 the least
    three = jitted(3)  # over the size: 2 goes
    assert jitted(3) is three and jitted(1) is one
    assert jitted(2) is not two  # rebuilt; it evicts 3, the least recently used now
    assert list(_kernels._CACHE) == [("gradient", f, lik, None, 1), ("gradient", f, lik, None, 2)]
