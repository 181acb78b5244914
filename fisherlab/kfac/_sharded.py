r"""K-FAC statistics of a batch sharded over a device mesh.

When ``x`` is split over a mesh axis (:func:`fisherlab.curvature._sharding.batch_mesh`), every
device computes the statistics of its own ``N / P`` examples -- their inputs, targets and
Monte-Carlo keys (the keys of the whole batch, :func:`~fisherlab.kfac._statistics.example_keys`,
so the draws are those of one device), weighted with the *global* ``1/N`` -- under
``jax.shard_map``, and one ``psum`` adds the partial sums
(:func:`fisherlab.curvature._sharding.sharded`): the factors, and per finiteness flag the
number of devices on which it is down. The result is replicated.

A device's factor passes its finiteness bound when its unnormalised diagonal is at most a
quarter of the largest float64 (:func:`~fisherlab.kfac._checks.bounded_diagonal`); each share
is divided by a count of at least ``N >= P``, so the sum of the ``P`` shares stays finite.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fisherlab.curvature._sharding import batch_mesh, check_divisible, place, sharded
from fisherlab.kfac._statistics import example_keys

__all__ = ["batch_mesh", "compiled", "run"]


@functools.lru_cache(maxsize=64)
def compiled(local, static, num_examples: int, mesh):
    """The jitted ``(params, (x, y, keys), *rest) -> (sum of the devices' results, flags,
    same)`` of ``local(*static, params, x, y, keys, num_examples, *rest) -> (result, flags)``
    or ``(result, flags, same)`` run on each device's examples; a flag is up when it is up on
    every device; ``same`` (``None`` if not returned) is computed from the replicated
    arguments only, identical on every device, and not summed."""

    def partial(params, batch, *rest):
        x, y, keys = batch
        out, flags, same = (*local(*static, params, x, y, keys, num_examples, *rest), None)[:3]
        return (out, jnp.logical_not(flags).astype(jnp.int32)), same

    def finish(total):
        (out, down), same = total
        return out, down == 0, same

    return jax.jit(sharded(partial, finish, mesh, replicated=True))


def run(local, static, problem, mesh, tokens: str = "sum", *rest):
    """``local`` over the batch of the prepared K-FAC ``problem`` split over ``mesh`` (the
    ``(mesh, axis)`` of :func:`batch_mesh`); ``rest`` is replicated. Returns ``(result, flags,
    same)`` (:func:`compiled`).

    Raises ``ValueError`` (naming ``x`` and the device count) when the batch size is not a
    multiple of the number of devices.
    """
    model, params, x, y, likelihood, fisher_type, num_samples, key, reduced = problem
    N = int(x.shape[0])
    check_divisible(N, mesh)
    keys = example_keys(model, params, fisher_type, x, key, tokens)
    params = place(params, mesh, batch=False)
    batch = place((x, y, keys), mesh, batch=True)
    rest = place(rest, mesh, batch=False)
    with jax.set_mesh(mesh[0]):
        return compiled(local, static, N, mesh)(params, batch, *rest)
