"""Run by test_kfac_sharding.py in a subprocess with 4 simulated CPU devices.

For K-FAC computed from a batch sharded over a device mesh, computes the result on the sharded
batch and on the same batch on one device, and records (as JSON on stdout): the largest
relative (Frobenius) difference over the factors, whether the result is replicated, how many
sharded and plain computations ran, whether the compiled sharded computation holds a
cross-device reduction (``all-reduce``), and the number of examples each device's part
received (read from the traced local shapes, as the curvature worker does).
"""

import json
import os
import pathlib
import sys

import jax

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import fisherlab as fl  # noqa: E402
from fisherlab import nn  # noqa: E402
from fisherlab.kfac import _factors, _sharded  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "curvature"))
from sharding_worker import _local_examples  # noqa: E402

N, P, R = 8, 4, 2
SHARDED, PLAIN = [], []
_ORIGINAL_COMPILED, _ORIGINAL_COMPUTE = _sharded.compiled, _factors._compute


def _spy_compiled(local, static, num_examples, mesh):
    fn = _ORIGINAL_COMPILED(local, static, num_examples, mesh)

    def call(*args):
        SHARDED.append((mesh, fn, args))
        return fn(*args)

    return call


def _spy_compute(*args):
    PLAIN.append(args)
    return _ORIGINAL_COMPUTE(*args)


def _matrices(result):
    """Every factor matrix of a list of factors, an update, or a flat array."""
    return [np.asarray(m) for m in jax.tree_util.tree_leaves(result)]


def _replicated(result):
    return all(m.sharding.is_fully_replicated for m in jax.tree_util.tree_leaves(result))


def main():
    assert jax.device_count() == P, jax.devices()
    _sharded.compiled, _factors._compute = _spy_compiled, _spy_compute
    mesh = jax.make_mesh((P,), ("batch",))
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    rng = np.random.default_rng(0)
    key = jax.random.key(3)
    cat, gauss = fl.Categorical(), fl.Gaussian()

    mlp = nn.Sequential([nn.Dense(3, 5), nn.Tanh(), nn.Dense(5, 3)])
    params = mlp.init(jax.random.key(0))
    x = jnp.asarray(rng.normal(size=(N, 3)))
    y = jnp.asarray(rng.integers(0, 3, size=N))
    yg = jnp.asarray(rng.normal(size=(N, 3)))
    # a Dense layer shared over R positions of the input, one output per position
    xr = jnp.asarray(rng.normal(size=(N, R, 3)))
    yr = jnp.asarray(rng.integers(0, 3, size=(N, R)))
    # a token model: embedding, attention and a norm (an exact block), per-token outputs
    tok = nn.Sequential([nn.Embedding(5, 4),
                         nn.Residual(nn.Sequential([nn.LayerNorm(4), nn.MultiHeadAttention(4, 2)])),
                         nn.Dense(4, 3)])
    tparams = jax.tree_util.tree_map(
        lambda p: p + 0.3 * jax.random.normal(jax.random.key(5), p.shape, p.dtype),
        tok.init(jax.random.key(4)))
    xt = jnp.asarray(rng.integers(0, 5, size=(N, R)))
    yt = jnp.asarray(rng.integers(0, 3, size=(N, R)))

    given = fl.kfac.factors(mlp, params, x, None, gauss)  # an eigenbasis from other factors

    def kfac(model, p, lik, **kw):
        return lambda a, b: fl.kfac.factors(model, p, a, b, lik, key=key, **kw)

    cases = {  # name: (function of (x, y), x, y)
        "categorical_exact": (kfac(mlp, params, cat), x, y),
        "categorical_mc": (kfac(mlp, params, cat, fisher_type="mc", num_samples=3), x, y),
        "categorical_empirical": (kfac(mlp, params, cat, fisher_type="empirical"), x, y),
        "gaussian_exact": (kfac(mlp, params, gauss), x, yg),
        "gaussian_mc": (kfac(mlp, params, gauss, fisher_type="mc", num_samples=2), x, yg),
        "gaussian_empirical": (kfac(mlp, params, gauss, fisher_type="empirical"), x, yg),
        "shared_reduce_separate_mc": (kfac(mlp, params, cat, fisher_type="mc", approx="reduce",
                                           bias="separate"), xr, yr),
        "tokens_flatten_mc": (kfac(tok, tparams, cat, fisher_type="mc", tokens="flatten"),
                              xt, yt),
        "tokens_sum_empirical": (kfac(tok, tparams, cat, fisher_type="empirical"), xt, yt),
        # EKFAC (compared as its dense matrix): the factors, then the corrected eigenvalues
        "ekfac_mc": (lambda a, b: fl.kfac.matrix(fl.kfac.ekfac(
            mlp, params, a, b, cat, fisher_type="mc", key=key, num_samples=2), mlp), x, y),
        "ekfac_given_factors": (lambda a, b: fl.kfac.matrix(fl.kfac.ekfac(
            mlp, params, a, b, gauss, fisher_type="empirical", factors=given), mlp), x, yg),
        "kfac_update": (lambda a, b: fl.updates.kfac_update(mlp, params, a, b, cat, lr=0.5,
                                                            damping=1e-2), x, y),
    }
    out = {}
    for name, (fn, a, b) in cases.items():
        SHARDED.clear()
        PLAIN.clear()
        single = fn(a, b)
        single_runs = (len(SHARDED), len(PLAIN))
        SHARDED.clear()
        PLAIN.clear()
        result = fn(jax.device_put(a, batch), jax.device_put(b, batch))
        runs, plain = list(SHARDED), len(PLAIN)
        errs = [float(np.linalg.norm(s - m) / np.linalg.norm(s))
                for s, m in zip(_matrices(single), _matrices(result))]
        record = {
            "rel_err": max(errs),
            "count": [len(_matrices(single)), len(_matrices(result))],
            "replicated": _replicated(result),
            "single_runs": single_runs,
            "sharded_runs": len(runs),
            "plain_runs": plain,
            "all_reduce": [],
            "local_examples": [],
        }
        for _, fn_jit, args in runs:
            with jax.set_mesh(mesh):
                hlo = fn_jit.lower(*args).compile().as_text()
                record["all_reduce"].append("all-reduce" in hlo)
                record["local_examples"].append(_local_examples(fn_jit, args))
        out[name] = record
    # a non-finite example on one device: the named error of one device (the compiled sharded
    # computation is reused)
    bad = x.at[5, 1].set(jnp.nan)
    try:
        fl.kfac.factors(mlp, params, jax.device_put(bad, batch), None, cat)
    except ValueError as err:
        out["non_finite_error"] = str(err)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        sys.exit("run with XLA_FLAGS=--xla_force_host_platform_device_count=4")
    main()
