"""A batch sharded over 4 devices: the same results as on one device, and the work split.

JAX fixes the number of CPU devices when it starts, so the sharded runs happen in a subprocess
started with ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (sharding_worker.py); it
reports, per function, the relative difference to the single-device result, the kernels that
ran on the mesh, whether each compiled kernel holds a cross-device reduction (``all-reduce``)
and how many examples each device's part of the kernel received.
"""

import pathlib
import types

import pytest

from fisherlab.curvature import _sharding

HERE = pathlib.Path(__file__).parent
N, P, TOKENS = 8, 4, 2
CASES = ("ggn", "ggn_jacobian", "fisher", "fisher_mc", "empirical_fisher", "gradient_covariance",
         "hessian", "gradient", "ggn_vp", "fisher_vp", "fisher_mc_vp", "empirical_fisher_vp",
         "hvp", "chunked_ggn", "natural_gradient", "hessian_free", "tokens_sum_ggn", "tokens_flatten_empirical_fisher",
         "tokens_flatten_fisher_mc_vp")
# tokens="flatten": the outer-product kinds have N R examples (tokens), split over the devices
LOCAL = {name: (N * TOKENS // P if name.startswith("tokens_flatten") else N // P)
         for name in CASES}


@pytest.fixture(scope="module")
def report(simulated_devices):
    return simulated_devices(HERE / "sharding_worker.py", timeout=1500)


@pytest.mark.parametrize("name", CASES)
def test_sharded_result_equals_single_device(report, name):
    assert report[name]["rel_err"] <= 1e-12
    assert report[name]["result_replicated"]


@pytest.mark.parametrize("name", CASES)
def test_work_is_split_over_the_devices(report, name):
    r = report[name]
    assert r["kernels"] and all(r["on_mesh"]), r
    # one cross-device sum in every compiled kernel
    assert all(r["all_reduce"]), r
    # each device's part of the kernel sees 1/P of the examples
    assert r["local_examples"] == [[LOCAL[name]]] * len(r["kernels"]), r


def test_single_device_inputs_take_the_plain_path(report):
    assert not any(report[name]["single_on_mesh"] for name in CASES)


def test_path_follows_the_model(report):
    """Which kernel ran on the mesh: the layer-wise one for the MLP, the Jacobian one when
    asked or for a per-token model; the gradient covariance takes its mean gradient first."""
    assert report["ggn"]["kernels"] == ["layerwise"]
    assert report["ggn_jacobian"]["kernels"] == ["gauss_newton"]
    assert report["tokens_sum_ggn"]["kernels"] == ["gauss_newton"]
    assert report["gradient_covariance"]["kernels"] == ["gradient", "gradient_outer"]
    # the updates: the loss gradient, then the dense Fisher (layer-wise) or the CG products
    assert report["natural_gradient"]["kernels"] == ["gradient", "layerwise"]
    assert report["hessian_free"]["kernels"][0] == "gradient"
    assert set(report["hessian_free"]["kernels"][1:]) == {"output_space_vp"}


def test_batch_not_divisible_by_the_devices_is_refused():
    mesh = types.SimpleNamespace(shape={"batch": 4})
    with pytest.raises(ValueError, match=r"sharded over 4 devices .* has 10 examples"):
        _sharding.check_divisible(10, (mesh, "batch"))
    _sharding.check_divisible(12, (mesh, "batch"))
    _sharding.check_divisible(10, None)
