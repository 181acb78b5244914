r"""A batch sharded over a device mesh: each device reduces its own examples, then one sum.

Every curvature quantity is a sum over examples, ``M = sum_n w_n M_n``. When the inputs ``x``
are a ``jax.Array`` whose leading (batch) axis is split over an axis of a device mesh by a
``jax.sharding.NamedSharding`` -- e.g.
``jax.device_put(x, NamedSharding(mesh, PartitionSpec("batch")))`` -- the references follow
that sharding with JAX's own machinery (:func:`sharded`): under ``jax.shard_map`` every device
runs the same kernel on its ``N / P`` examples (its targets, its Monte-Carlo keys, its weights
``w_n``, always the *global* ``1/N``), giving a partial sum; one ``jax.lax.psum`` over the mesh
axis adds the ``P`` partial sums; the result (a ``d x d`` matrix, a gradient, a product
``M v``) is replicated on every device. The parameters and the vector ``v`` of a product are
replicated. Mesh axes that do not shard the batch (e.g. a model axis) see replicated work.

The result equals the single-device one up to the order of the floating-point additions.

Multi-host: after ``jax.distributed.initialize()`` a mesh over ``jax.devices()`` spans every
process; build the global batch with ``jax.make_array_from_process_local_data`` and call the
references with it on every process (docs/multi_device.md).
"""

from __future__ import annotations

import math

import jax
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["batch_mesh", "check_divisible", "place", "sharded"]


def _axis_size(mesh, axis) -> int:
    names = axis if isinstance(axis, tuple) else (axis,)
    return math.prod(mesh.shape[a] for a in names)


def batch_mesh(x, name: str = "x"):
    """``(mesh, axis)`` when the leading axis of ``x`` is sharded over ``axis`` of a mesh of
    more than one device, else ``None``.

    Raises ``ValueError`` when leaves of ``x`` are sharded differently.
    """
    found = None
    for path, leaf in jax.tree_util.tree_leaves_with_path(x):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(leaf, jax.core.Tracer) or not isinstance(sharding, NamedSharding):
            continue
        spec = tuple(sharding.spec)
        axis = spec[0] if spec else None
        if isinstance(axis, tuple) and len(axis) == 1:
            axis = axis[0]
        if axis is None or _axis_size(sharding.mesh, axis) == 1:
            continue
        if found is not None and (found[0] != sharding.mesh or found[1] != axis):
            raise ValueError(
                f"the leaves of {name} must share one batch sharding: "
                f"{name}{jax.tree_util.keystr(path)} is sharded over axis {axis!r} of "
                f"mesh {dict(sharding.mesh.shape)}, another leaf over {found[1]!r} of mesh "
                f"{dict(found[0].shape)}")
        found = (sharding.mesh, axis)
    return found


def check_divisible(num_examples: int, mesh_axis, name: str = "x") -> None:
    """The batch size is a multiple of the number of devices it is split over."""
    if mesh_axis is None:
        return
    p = _axis_size(*mesh_axis)
    if num_examples % p:
        raise ValueError(
            f"{name} is sharded over {p} devices (mesh axis {mesh_axis[1]!r}) but has "
            f"{num_examples} examples, not a multiple of {p}: shard a batch whose size is a "
            f"multiple of {p} (or pad it with examples of weight zero yourself)")


def place(tree, mesh_axis, *, batch: bool):
    """``tree`` on the mesh: split along its leading axis (``batch``) or replicated."""
    if mesh_axis is None:
        return tree
    mesh, axis = mesh_axis
    sharding = NamedSharding(mesh, PartitionSpec(axis) if batch else PartitionSpec())
    return jax.tree_util.tree_map(lambda a: jax.device_put(a, sharding), tree)


def sharded(partial, finish, mesh_axis, *, replicated: bool = False):
    """``run(params, batch, *rest) = finish(psum_devices(partial(params, local batch, *rest)))``.

    ``partial`` sums over the examples it is given; under ``jax.shard_map`` each device gives it
    its own ``N / P`` examples of ``batch`` (all leaves split along their leading axis), while
    ``params`` and ``rest`` are replicated; the partial sums are added by one ``psum``. With
    ``replicated``, ``partial`` returns ``(partial sums, same)``, ``same`` computed from the
    replicated arguments only (equal on every device, e.g. an eigenbasis), and ``finish`` gets
    ``(sums, same)``.
    """
    mesh, axis = mesh_axis

    def local(params, batch, *rest):
        out = partial(params, batch, *rest)
        if replicated:
            return jax.lax.psum(out[0], axis), out[1]
        return jax.lax.psum(out, axis)

    def run(params, batch, *rest):
        specs = (PartitionSpec(), PartitionSpec(axis)) + (PartitionSpec(),) * len(rest)
        total = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=PartitionSpec(),
                              check_vma=False)(params, batch, *rest)
        return finish(total)

    return run
