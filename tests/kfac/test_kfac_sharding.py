"""K-FAC of a batch sharded over 4 devices: the same factors as on one device, the work split.

JAX fixes the number of CPU devices when it starts, so the sharded runs happen in a subprocess
started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (sharding_worker.py); it
reports, per case, the relative difference to the single-device factors, whether the result
is replicated, which computations ran, whether the compiled sharded computation holds a
cross-device reduction (``all-reduce``) and how many examples each device's part received.
"""

import pathlib
import types

import jax
import pytest

import fisherlab as fl
from fisherlab.kfac import _factors, _inputs

HERE = pathlib.Path(__file__).parent
N, P = 8, 4
CASES = ("categorical_exact", "categorical_mc", "categorical_empirical", "gaussian_exact",
         "gaussian_mc", "gaussian_empirical", "shared_reduce_separate_mc", "tokens_flatten_mc",
         "tokens_sum_empirical", "ekfac_mc", "ekfac_given_factors", "kfac_update")
# EKFAC computes the factors first, then its corrected eigenvalues in their eigenbasis
SHARDED_RUNS = dict.fromkeys(CASES, 1) | {"ekfac_mc": 2}


# session scope: one worker run even when the tests of this file are interleaved with others
# (the mutation harness orders tests by duration, which would re-run a module fixture)
@pytest.fixture(scope="session")
def report(simulated_devices):
    return simulated_devices(HERE / "sharding_worker.py", timeout=900)


@pytest.mark.parametrize("name", CASES)
def test_sharded_factors_equal_single_device(report, name):
    r = report[name]
    assert r["count"][0] == r["count"][1] > 0, r
    assert r["rel_err"] <= 1e-12, r
    assert r["replicated"], r


@pytest.mark.parametrize("name", CASES)
def test_work_is_split_over_the_devices(report, name):
    r = report[name]
    # sharded computations only
    assert (r["sharded_runs"], r["plain_runs"]) == (SHARDED_RUNS[name], 0), r
    # each compiled one holds the cross-device sum, and each device's part sees N / P examples
    assert r["all_reduce"] == [True] * SHARDED_RUNS[name], r
    assert r["local_examples"] == [[N // P]] * SHARDED_RUNS[name], r


@pytest.mark.parametrize("name", CASES)
def test_single_device_inputs_take_the_plain_path(report, name):
    # (EKFAC's single-device computation is its own, not the factors')
    assert report[name]["single_runs"] == [0, 0 if name.startswith("ekfac") else 1]


def test_non_finite_example_on_one_device_is_named(report):
    assert report["non_finite_error"] == "x must be finite, got nan at index (5, 1)"


def test_batch_not_divisible_by_the_devices_is_refused():
    """JAX itself refuses to shard 10 examples over 4 devices; the K-FAC path checks the batch
    size before placing anything, naming ``x`` and the device count."""
    model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (10, 3))
    problem = _inputs.prepare(model, params, x, None, fl.Categorical(), "exact", None, 1)
    mesh = (types.SimpleNamespace(shape={"batch": 4}), "batch")
    with pytest.raises(ValueError, match=r"^x is sharded over 4 devices .* has 10 examples"):
        _factors.compute_checked(problem, "expand", "augmented", "sum", mesh)
