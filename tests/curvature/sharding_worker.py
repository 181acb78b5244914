"""Run by test_curvature_sharding.py in a subprocess with 4 simulated CPU devices.

For every reference that follows a batch sharded over a device mesh, computes the result on
the sharded batch and on the same batch on one device, and records (as JSON on stdout): the
largest difference relative to the largest entry, which kernels ran on the mesh, whether
their compiled computation holds a cross-device reduction (``all-reduce``), and the number
of examples each device's kernel received (read from the kernel's traced local shapes).
"""

import json
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import jax.flatten_util  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import fisherlab as fl  # noqa: E402
from fisherlab.curvature import _kernels  # noqa: E402

N, P = 8, 4
CAPTURED = []
_ORIGINAL = _kernels.compiled


def _spy(name, f, likelihood, *static, mesh=None):
    kernel = _ORIGINAL(name, f, likelihood, *static, mesh=mesh)

    def call(*args):
        CAPTURED.append((name, mesh, kernel.jitted, args))
        return kernel(*args)

    return call


def _walk(jaxpr):
    """Every equation of a jaxpr, nested ones included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in (value if isinstance(value, (tuple, list)) else (value,)):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _walk(inner)


def _local_examples(jitted, args):
    """Leading sizes, as the per-device body of the shard_map sees them, of the inputs that the
    shard_map splits over the mesh (its ``in_specs`` name a mesh axis)."""
    sizes = set()
    for eqn in _walk(jax.make_jaxpr(jitted)(*args).jaxpr):
        if eqn.primitive.name == "shard_map":
            body = getattr(eqn.params["jaxpr"], "jaxpr", eqn.params["jaxpr"])
            for spec, var in zip(eqn.params["in_specs"], body.invars):
                if len(spec) and spec[0] is not None:
                    sizes.add(int(var.aval.shape[0]))
    return sorted(sizes)


def _flat(tree):
    return jax.flatten_util.ravel_pytree(tree)[0]


def main():
    assert jax.device_count() == P, jax.devices()
    _kernels.compiled = _spy
    mesh = jax.make_mesh((P,), ("batch",))
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    rng = np.random.default_rng(0)
    lik = fl.Categorical()
    mlp = fl.nn.Sequential([fl.nn.Dense(3, 5), fl.nn.Tanh(), fl.nn.Dense(5, 3)])
    params = mlp.init(jax.random.key(0))
    x = jnp.asarray(rng.normal(size=(N, 3)))
    y = jnp.asarray(rng.integers(0, 3, size=N))
    xs, ys = jax.device_put(x, batch), jax.device_put(y, batch)
    d = 3 * 5 + 5 + 5 * 3 + 3
    v = jnp.asarray(rng.normal(size=d))
    key = jax.random.key(3)

    # a per-token model: R = 2 tokens of C = 3 classes per example
    def token_model(p, xn):
        h = jnp.tanh(p["W"] @ xn)
        return jnp.stack([h, h ** 2 - 0.5])
    tparams = {"W": jnp.asarray(rng.normal(size=(3, 3)))}
    ty = jnp.asarray(rng.integers(0, 3, size=(N, 2)))
    tys = jax.device_put(ty, batch)
    tv = jnp.asarray(rng.normal(size=9))

    cases = {
        "ggn": lambda a, b: fl.ggn(mlp, params, a, b, lik),
        "ggn_jacobian": lambda a, b: fl.ggn(mlp, params, a, b, lik, method="jacobian"),
        "fisher": lambda a, b: fl.fisher(mlp, params, a, lik),
        "fisher_mc": lambda a, b: fl.fisher_mc(mlp, params, a, lik, key, 3),
        "empirical_fisher": lambda a, b: fl.empirical_fisher(mlp, params, a, b, lik),
        "gradient_covariance": lambda a, b: fl.gradient_covariance(mlp, params, a, b, lik),
        "hessian": lambda a, b: fl.hessian(mlp, params, a, b, lik),
        "gradient": lambda a, b: fl.gradient(mlp, params, a, b, lik),
        "ggn_vp": lambda a, b: fl.ggn_vp(mlp, params, a, b, lik)(v),
        "fisher_vp": lambda a, b: fl.fisher_vp(mlp, params, a, lik)(v),
        "fisher_mc_vp": lambda a, b: fl.fisher_mc_vp(mlp, params, a, lik, key, 3)(v),
        "empirical_fisher_vp": lambda a, b: fl.empirical_fisher_vp(mlp, params, a, b, lik)(v),
        "hvp": lambda a, b: fl.hvp(mlp, params, a, b, lik)(v),
        "chunked_ggn": lambda a, b: fl.ggn(mlp, params, a, b, lik, chunk_size=1),
        "natural_gradient": lambda a, b: _flat(fl.updates.natural_gradient(
            mlp, params, a, b, lik, lr=0.5, damping=1e-2)),
        "hessian_free": lambda a, b: _flat(fl.updates.hessian_free(
            mlp, params, a, b, lik, lr=0.5, damping=1e-2, maxiter=5)),
        "tokens_sum_ggn": lambda a, b: fl.ggn(token_model, tparams, a, b, lik),
        "tokens_flatten_empirical_fisher": lambda a, b: fl.empirical_fisher(
            token_model, tparams, a, b, lik, tokens="flatten"),
        "tokens_flatten_fisher_mc_vp": lambda a, b: fl.fisher_mc_vp(
            token_model, tparams, a, lik, key, 2, tokens="flatten")(tv),
    }
    tokens = {k for k in cases if k.startswith("tokens")}
    out = {}
    for name, fn in cases.items():
        a1, b1, a2, b2 = (x, ty, xs, tys) if name in tokens else (x, y, xs, ys)
        CAPTURED.clear()
        single = np.asarray(fn(a1, b1))
        single_meshes = [m for _, m, _, _ in CAPTURED]
        CAPTURED.clear()
        sharded_result = fn(a2, b2)
        sharded = np.asarray(sharded_result)
        runs = list(CAPTURED)
        record = {
            "rel_err": float(np.max(np.abs(sharded - single)) / np.max(np.abs(single))),
            "single_on_mesh": any(m is not None for m in single_meshes),
            "kernels": [k for k, _, _, _ in runs],
            "on_mesh": [m is not None for _, m, _, _ in runs],
            "all_reduce": [],
            "local_examples": [],
            "result_replicated": bool(sharded_result.sharding.is_fully_replicated),
        }
        for _, m, jitted, args in runs:
            with jax.set_mesh(mesh):
                hlo = jitted.lower(*args).compile().as_text()
                record["all_reduce"].append("all-reduce" in hlo)
                record["local_examples"].append(_local_examples(jitted, args))
        out[name] = record
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        sys.exit("run with XLA_FLAGS=--xla_force_host_platform_device_count=4")
    main()
