"""Residual connections: ``Residual(block)`` computes ``x + block(x)``."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from fisherlab.nn._base import Layer

__all__ = ["Residual"]


@dataclasses.dataclass(frozen=True)
class Residual(Layer):
    r"""A skip connection around a block: ``y = x + block(x)``.

    ``block`` is any layer, or a :class:`~fisherlab.nn.Sequential` of layers, whose output has
    the shape of its input. The parameters are the block's, nested as the block nests them (a
    tuple for a layer, a list for a ``Sequential``), so they flatten in the order of PyTorch's
    ``parameters()`` of the same module. A pre-LN transformer block is then
    ``Residual(Sequential([LayerNorm(d), MultiHeadAttention(d, h)]))`` followed by
    ``Residual(Sequential([LayerNorm(d), Dense(d, m), GELU(), Dense(m, d)]))``.

    Args:
      block: a ``fl.nn`` layer or ``Sequential``.

    References:
      K. He, X. Zhang, S. Ren & J. Sun, "Deep residual learning for image recognition", CVPR 2016.

    >>> import jax, jax.numpy as jnp, fisherlab as fl
    >>> res = fl.nn.Residual(fl.nn.Sequential([fl.nn.LayerNorm(2), fl.nn.Dense(2, 2)]))
    >>> params = res.init(jax.random.key(0))
    >>> [[p.shape for p in layer] for layer in params]
    [[(2,), (2,)], [(2, 2), (2,)]]
    >>> res(params, jnp.ones((3, 2))).shape
    (3, 2)
    """

    block: Layer

    def __post_init__(self):
        if not isinstance(self.block, Layer):
            raise TypeError(f"block must be a fisherlab.nn layer or Sequential, got {self.block!r}")

    @property
    def has_params(self) -> bool:
        return self.block.has_params

    @property
    def num_params(self) -> int:
        return self.block.num_params

    def init(self, key):
        """The block's parameters (PyTorch's default initialisation of each of its layers)."""
        return self.block.init(key)

    def check_params(self, params, name: str = "params") -> None:
        self.block.check_params(params, name)

    def input_spec(self):
        return self.block.input_spec()

    def chain(self, state, where):
        if state is not None and state[0] == "tokens":
            raise ValueError(f"{where} is {self}, which adds its input to the block's output, "
                             "but it receives integer token ids: put the Embedding before it")
        out = self.block.chain(state, f"{where}.block")
        inp = state if state is not None else self.block.input_spec()
        if inp is not None and out is not None and out != inp:
            raise ValueError(f"{where} is {self}: the block must keep the shape of its input, "
                             f"but it maps {inp[1]} {inp[0]} to {out[1]} {out[0]}")
        return state if state is not None else out

    def __call__(self, params, a):
        out = self.block(params if self.block.has_params else None, a)
        if tuple(jnp.shape(out)) != tuple(jnp.shape(a)):
            raise ValueError(f"{self}: the block must keep the shape of its input, but it maps "
                             f"{tuple(jnp.shape(a))} to {tuple(jnp.shape(out))}")
        return a + out
