"""A dense request that cannot fit is refused before anything is allocated or compiled.

The large problem has d = 200,803 parameters: its dense result alone is d^2 float64 entries,
322.6 GB, far more than this machine has, so a refusal that came after an allocation would
crash the test process instead of raising. Each refusal is also checked to have run no kernel.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.curvature import CurvatureMemoryError, _kernels, _memory

BIG = fl.nn.Sequential([fl.nn.Dense(1000, 200), fl.nn.Tanh(), fl.nn.Dense(200, 3)])
BIG_D = 1000 * 200 + 200 + 200 * 3 + 3  # 200,803
BIG_PARAMS = BIG.init(jax.random.key(0))
BIG_X = jnp.asarray(np.random.default_rng(0).normal(size=(4, 1000)))
BIG_Y = jnp.asarray([0, 1, 2, 0])
LIK = fl.Categorical()
KEY = jax.random.key(1)

SMALL = fl.nn.Sequential([fl.nn.Dense(3, 6), fl.nn.Tanh(), fl.nn.Dense(6, 3)])
SMALL_D = 3 * 6 + 6 + 6 * 3 + 3  # 45
SMALL_PARAMS = SMALL.init(jax.random.key(2))
SMALL_X = jnp.asarray(np.random.default_rng(1).normal(size=(8, 3)))
SMALL_Y = jnp.asarray([0, 1, 2, 0, 1, 2, 0, 1])

DENSE = {
    "ggn": lambda f, p, x, y, **kw: fl.ggn(f, p, x, y, LIK, **kw),
    "fisher": lambda f, p, x, y, **kw: fl.fisher(f, p, x, LIK, **kw),
    "fisher_mc": lambda f, p, x, y, **kw: fl.fisher_mc(f, p, x, LIK, KEY, 2, **kw),
    "empirical_fisher": lambda f, p, x, y, **kw: fl.empirical_fisher(f, p, x, y, LIK, **kw),
    "gradient_covariance": lambda f, p, x, y, **kw: fl.gradient_covariance(f, p, x, y, LIK,
                                                                           **kw),
    "hessian": lambda f, p, x, y, **kw: fl.hessian(f, p, x, y, LIK, **kw),
}
ALTERNATIVE = {"ggn": "fl.ggn_vp", "fisher": "fl.fisher_vp", "fisher_mc": "fl.fisher_mc_vp",
               "empirical_fisher": "fl.empirical_fisher_vp",
               "gradient_covariance": "fl.empirical_fisher_vp", "hessian": "fl.hvp"}
UPDATES = {
    "natural_gradient": lambda **kw: fl.updates.natural_gradient(
        BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK, lr=1.0, damping=1e-3, **kw),
    "natural_gradient_mc": lambda **kw: fl.updates.natural_gradient(
        BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK, lr=1.0, damping=1e-3, fisher_type="mc", key=KEY,
        **kw),
    "empirical_fisher_update": lambda **kw: fl.updates.empirical_fisher_update(
        BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK, lr=1.0, damping=1e-3, **kw),
    "newton": lambda **kw: fl.updates.newton(BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK, lr=1.0,
                                             damping=1e-3, **kw),
    "gauss_newton": lambda **kw: fl.updates.gauss_newton(BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK,
                                                         lr=1.0, damping=1e-3, **kw),
}


@pytest.fixture
def no_kernel(monkeypatch):
    """Any attempt to build or run a compiled kernel fails the test."""
    def refuse(name, *a, **kw):
        raise AssertionError(f"kernel {name!r} was built before the memory check refused")

    monkeypatch.setattr(_kernels, "compiled", refuse)


@pytest.mark.parametrize("kind", sorted(DENSE))
def test_dense_request_over_budget_is_refused_naming_bytes_and_alternatives(kind, no_kernel):
    with pytest.raises(CurvatureMemoryError) as info:
        DENSE[kind](BIG, BIG_PARAMS, BIG_X, BIG_Y, memory_budget="16GB")
    err, msg = info.value, str(info.value)
    # the result alone is d^2 float64 entries; the estimate holds it and is no wild overcount
    assert 8 * BIG_D ** 2 <= err.needed <= 4 * 8 * BIG_D ** 2
    assert err.budget == 16 * 10 ** 9
    assert f"{err.needed:,} bytes" in msg and f"({BIG_D}, {BIG_D})" in msg
    assert f"fl.{kind}" in msg and ALTERNATIVE[kind] in msg
    assert "fl.kfac" in msg and "fl.updates.hessian_free" in msg
    assert "memory_budget" in msg and _memory.ENV_VAR in msg
    assert isinstance(err, MemoryError) and isinstance(err, ValueError)


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_dense_update_is_refused_before_its_gradient(name, monkeypatch):
    # the refusal comes before the loss gradient and before any kernel
    def refuse(*a, **kw):
        raise AssertionError("work started before the memory check refused")

    monkeypatch.setattr(_kernels, "compiled", refuse)
    with pytest.raises(CurvatureMemoryError) as info:
        UPDATES[name](memory_budget="16GB")
    msg = str(info.value)
    assert "fl.updates." in msg and "the dense solve" in msg
    # the matrix and its solve: at least the matrix and one more d x d copy
    assert info.value.needed >= 2 * 8 * BIG_D ** 2


def test_environment_variable_sets_the_budget_and_the_argument_overrides_it(monkeypatch):
    monkeypatch.setenv(_memory.ENV_VAR, "1MiB")
    with pytest.raises(CurvatureMemoryError, match=r"1\.0 MB \(FISHERLAB_MEMORY_BUDGET=1MiB\)"):
        fl.ggn(BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK)
    # the argument wins over the variable: a budget large enough for the small problem runs
    small = fl.ggn(SMALL, SMALL_PARAMS, SMALL_X, SMALL_Y, LIK, memory_budget="1GB")
    assert small.shape == (SMALL_D, SMALL_D)
    # 'off' disables the check (the big request is then not refused by the plan: only checked
    # here through the plan itself, which must not raise)
    monkeypatch.setenv(_memory.ENV_VAR, "off")
    assert _memory.resolve_budget() == (math.inf, f"{_memory.ENV_VAR}=off")


def test_default_budget_is_a_fraction_of_the_available_memory(monkeypatch, no_kernel):
    monkeypatch.delenv(_memory.ENV_VAR, raising=False)
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: (10 ** 9, "test"))
    with pytest.raises(CurvatureMemoryError, match=r"90% of the 1\.0 GB available \(test\)") \
            as info:
        fl.fisher(BIG, BIG_PARAMS, BIG_X, LIK)
    assert info.value.budget == int(0.9 * 10 ** 9)
    monkeypatch.setattr(_memory, "available_bytes", lambda device=None: (None, "unknown"))
    assert _memory.resolve_budget() == (math.inf, "no memory information")


def test_available_bytes_reads_the_host_when_the_device_does_not_say():
    free, source = _memory.available_bytes()
    with open("/proc/meminfo") as fh:
        host = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    if source == "host MemAvailable":
        # MemAvailable moves while the test runs: same order of magnitude
        assert 0.5 * host["MemAvailable"] < free < 2 * host["MemAvailable"]
    else:
        assert free is not None and free > 0


@pytest.mark.parametrize("value,expected", [
    (1024, 1024.0), (2.5e9, 2.5e9), ("16GB", 16e9), ("512MiB", 512 * 2 ** 20),
    ("1.5 kb", 1500.0), ("3e3", 3000.0), ("off", math.inf), ("inf", math.inf),
    (math.inf, math.inf), (np.int64(7), 7.0)])
def test_parse_bytes(value, expected):
    assert _memory.parse_bytes(value) == expected


@pytest.mark.parametrize("value,error", [
    (True, TypeError), ([1], TypeError), (0, ValueError), (-5, ValueError),
    ("12 parsecs", ValueError), ("GB", ValueError), (float("nan"), ValueError)])
def test_bad_memory_budget_names_the_argument_before_any_work(value, error, no_kernel):
    with pytest.raises(error, match="memory_budget"):
        fl.ggn(BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK, memory_budget=value)
    with pytest.raises(error, match="memory_budget"):
        fl.updates.newton(BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK, lr=1.0, damping=1.0,
                          memory_budget=value)


def test_bad_environment_variable_is_named(monkeypatch, no_kernel):
    monkeypatch.setenv(_memory.ENV_VAR, "lots")
    with pytest.raises(ValueError, match=_memory.ENV_VAR):
        fl.ggn(BIG, BIG_PARAMS, BIG_X, BIG_Y, LIK)


@pytest.mark.parametrize("kind", sorted(DENSE))
def test_a_tight_budget_shrinks_the_chunks_without_changing_the_result(kind):
    """A budget that leaves room for a few examples per chunk: the plan chunks more finely and
    the matrix equals the one computed in a single chunk (to rounding)."""
    def run(**kw):
        return DENSE[kind](SMALL, SMALL_PARAMS, SMALL_X, SMALL_Y, **kw)

    whole = run(chunk_size=8)
    method = "layerwise" if kind in ("ggn", "fisher", "fisher_mc") else "jacobian"
    compact, per_example = _memory._entries(kind, method, SMALL, 8, 3, SMALL_D, 2)
    # the result, two accumulators and room for three examples' intermediates
    budget = 8 * (SMALL_D ** 2 + 2 * compact + 3 * per_example)
    p = _memory.plan(kind, f=SMALL, num_examples=8, num_outputs=3, num_params=SMALL_D,
                     method=method, num_samples=2, memory_budget=budget)
    assert p.chunk_size == 3 and p.peak <= budget
    np.testing.assert_allclose(run(memory_budget=budget), whole, rtol=1e-12, atol=1e-14)


def test_a_fitting_request_runs_and_the_check_is_made_once_per_call(monkeypatch):
    calls = []
    plan = _memory.plan

    def spy(kind, **kw):
        calls.append(kind)
        return plan(kind, **kw)

    monkeypatch.setattr(_memory, "plan", spy)
    out = fl.gradient_covariance(SMALL, SMALL_PARAMS, SMALL_X, SMALL_Y, LIK,
                                 memory_budget="64MB")
    assert out.shape == (SMALL_D, SMALL_D) and calls == ["gradient_covariance"]
