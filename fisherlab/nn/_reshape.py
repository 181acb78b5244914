"""Parameter-free reshaping and pooling: ``Flatten`` and ``MeanPool``."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from fisherlab.nn._base import Layer

__all__ = ["Flatten", "MeanPool"]


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
    """``(C, H, W) -> (C H W,)`` in row-major order (PyTorch's ``nn.Flatten`` per example).

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.Flatten()(None, jnp.zeros((2, 3, 4))).shape
    (24,)
    """

    def chain(self, state, where):
        return None  # the width depends on the spatial size

    def __call__(self, params, a):
        return a.reshape((-1,))


@dataclasses.dataclass(frozen=True)
class MeanPool(Layer):
    """Average over the leading (position) axis: ``(R, F) -> (F,)``.

    Pools a weight-shared sequence before the output -- the *reduce setting* of
    Eschenhagen et al. (2023), in which K-FAC-reduce is exact for deep linear networks.

    References:
      R. Eschenhagen, A. Immer, R. E. Turner, F. Schneider & P. Hennig, "Kronecker-factored
      approximate curvature for modern neural network architectures", NeurIPS 2023.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.MeanPool()(None, jnp.asarray([[1.0, 2.0], [3.0, 6.0]]))
    Array([2., 4.], dtype=float64)
    """

    def chain(self, state, where):
        if state is not None and state[0] == "tokens":
            raise ValueError(f"{where} is MeanPool(), which averages float features, but it "
                             "receives integer token ids: put an Embedding first")
        return state if state is not None and state[0] == "features" else None

    def __call__(self, params, a):
        if jnp.ndim(a) < 1 or jnp.shape(a)[0] == 0:
            raise ValueError("MeanPool() averages over the leading (position) axis and needs "
                             f"at least one position, got shape {tuple(jnp.shape(a))}")
        return jnp.mean(a, axis=0)
