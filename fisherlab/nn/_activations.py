"""Elementwise activations: the same function on JAX arrays and on SymPy expressions.

Each activation has no parameters; ``.symbolic(z)`` gives the function as a SymPy expression
(SymPy is imported only there), the definition ``fl.symbolic.curvature`` differentiates.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fisherlab.nn._base import Layer

__all__ = ["Activation", "GELU", "Identity", "ReLU", "Sigmoid", "Tanh"]


@dataclasses.dataclass(frozen=True)
class Activation(Layer):
    """An elementwise activation: no parameters, the same function on JAX and SymPy values."""

    def chain(self, state, where):
        if state is not None and state[0] == "tokens":
            raise ValueError(f"{where} is {self}, which acts on float features, but it receives "
                             "integer token ids: put an Embedding first")
        return state

    def symbolic(self, z):  # pragma: no cover - abstract
        """The same elementwise function applied to a SymPy expression."""
        raise NotImplementedError


class Tanh(Activation):
    """``tanh(a)``, elementwise.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.Tanh()(None, jnp.zeros(2))
    Array([0., 0.], dtype=float64)
    """

    def __call__(self, params, a):
        return jnp.tanh(a)

    def symbolic(self, z):
        import sympy as sp

        return sp.tanh(z)


class Sigmoid(Activation):
    """The logistic function ``1 / (1 + e^{-a})``, elementwise.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.Sigmoid()(None, jnp.zeros(2))
    Array([0.5, 0.5], dtype=float64)
    """

    def __call__(self, params, a):
        return jax.nn.sigmoid(a)

    def symbolic(self, z):
        import sympy as sp

        return 1 / (1 + sp.exp(-z))


class ReLU(Activation):
    """``max(a, 0)``; its derivative at 0 is taken as 0 (as in PyTorch and JAX).

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.ReLU()(None, jnp.asarray([-1.0, 2.0]))
    Array([0., 2.], dtype=float64)
    """

    def __call__(self, params, a):
        return jax.nn.relu(a)  # custom JVP: relu'(0) = 0, as in PyTorch (jnp.maximum gives 0.5)

    def symbolic(self, z):
        import sympy as sp

        return sp.Max(z, 0)


class Identity(Activation):
    """``a`` unchanged.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.Identity()(None, jnp.ones(2))
    Array([1., 1.], dtype=float64)
    """

    def __call__(self, params, a):
        return a

    def symbolic(self, z):
        return z


_APPROXIMATE = ("none", "tanh")


@dataclasses.dataclass(frozen=True)
class GELU(Activation):
    r"""The Gaussian error linear unit, elementwise, as ``torch.nn.GELU(approximate=...)``.

    .. math::

        \mathrm{GELU}(a) = a\,\Phi(a) = \tfrac a2\bigl(1 + \operatorname{erf}(a/\sqrt2)\bigr)
        \quad(\texttt{approximate="none"}),\qquad
        \tfrac a2\bigl(1 + \tanh\bigl(\sqrt{2/\pi}\,(a + 0.044715\,a^3)\bigr)\bigr)
        \quad(\texttt{"tanh"}).

    Args:
      approximate: ``"none"`` (default, the exact form with ``erf``) or ``"tanh"``.

    References:
      D. Hendrycks & K. Gimpel, "Gaussian error linear units (GELUs)", arXiv:1606.08415, 2016.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.nn.GELU()(None, jnp.asarray([0.0, 1.0]))
    Array([0.        , 0.84134475], dtype=float64)
    """

    approximate: str = "none"

    def __post_init__(self):
        if not isinstance(self.approximate, str) or self.approximate not in _APPROXIMATE:
            raise ValueError(f"approximate must be 'none' or 'tanh', got {self.approximate!r}")

    def __call__(self, params, a):
        return jax.nn.gelu(a, approximate=self.approximate == "tanh")

    def symbolic(self, z):
        import sympy as sp

        if self.approximate == "tanh":
            inner = sp.sqrt(2 / sp.pi) * (z + sp.Rational(44715, 10 ** 6) * z ** 3)
            return z / 2 * (1 + sp.tanh(inner))
        return z / 2 * (1 + sp.erf(z / sp.sqrt(2)))
