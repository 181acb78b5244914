"""Token embeddings: ``Embedding`` (a lookup table, ``torch.nn.Embedding``'s layout)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.validation import check_int, is_tracer
from fisherlab.nn._base import Layer

__all__ = ["Embedding", "check_token_ids"]


def check_token_ids(t, num_embeddings: int, name: str = "token ids"):
    """Raise unless ``t`` holds integer ids in ``0..num_embeddings-1`` (values checked when concrete)."""
    dtype = jnp.result_type(t) if is_tracer(t) else np.asarray(t).dtype
    if dtype == bool or not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"{name} must be integers (an int array of token ids, shape (R,)), "
                        f"got dtype {dtype}")
    if not is_tracer(t):
        arr = np.asarray(t)
        if arr.size and (arr.min() < 0 or arr.max() >= num_embeddings):
            bad = arr[(arr < 0) | (arr >= num_embeddings)]
            raise ValueError(f"{name} must lie in 0..{num_embeddings - 1} (num_embeddings = "
                             f"{num_embeddings}), got {bad.ravel()[:5].tolist()} out of range")


@dataclasses.dataclass(frozen=True)
class Embedding(Layer):
    r"""A lookup table of ``num_embeddings`` vectors of size ``d``, as ``torch.nn.Embedding``.

    .. math:: y_r = E_{t_r,:}, \qquad E \in \mathbb R^{\text{num} \times d},

    i.e. ``y_r = E^T e_{t_r}`` with ``e_t`` the one-hot vector of token ``t``: a dense layer
    without bias on one-hot inputs. One example is an integer array of token ids, shape
    ``(R,)`` (any shape ``S`` gives ``S + (d,)``). Parameters ``(weight,)`` of shape
    ``(num_embeddings, d)``, PyTorch's layout, initialised as PyTorch does: ``N(0, 1)``.

    Bad input: float or bool ids raise ``TypeError`` (also under ``jax.jit``: the dtype is
    static); ids outside ``0..num_embeddings-1`` raise ``ValueError`` when the ids are concrete
    (a direct call, or ``Sequential.check_inputs`` on a batch); under a transformation the
    values are not known, and the row of an out-of-range id is ``NaN`` -- never a clamped or
    wrapped-around row.

    Args:
      num_embeddings: the vocabulary size.
      d: the embedding size.

    >>> import jax, jax.numpy as jnp, fisherlab as fl
    >>> emb = fl.nn.Embedding(10, 3)
    >>> (weight,) = emb.init(jax.random.key(0))
    >>> emb((weight,), jnp.asarray([4, 1, 4])).shape
    (3, 3)
    """

    num_embeddings: int
    d: int
    has_params = True

    def __post_init__(self):
        check_int(self.num_embeddings, "num_embeddings", minimum=1)
        check_int(self.d, "d", minimum=1)

    def param_spec(self):
        return (("weight", (self.num_embeddings, self.d), "(num_embeddings, d)"),)

    def init(self, key):
        """PyTorch's default: ``weight ~ N(0, 1)``, float64."""
        with jax.enable_x64(True):
            return (jax.random.normal(key, (self.num_embeddings, self.d), jnp.float64),)

    def input_spec(self):
        return ("tokens", self.num_embeddings)

    def chain(self, state, where):
        if state is not None and state[0] != "tokens":
            raise ValueError(f"{where} is {self}, which takes integer token ids, but the "
                             "previous layers produce float features")
        return ("features", self.d)

    def __call__(self, params, t):
        check_token_ids(t, self.num_embeddings, f"{self}: token ids")
        (weight,) = params
        t = jnp.asarray(t)
        inside = (t >= 0) & (t < self.num_embeddings)
        # an out-of-range id (possible only under a transformation) reads row `num`, filled NaN
        safe = jnp.where(inside, t, self.num_embeddings)
        return jnp.take(weight, safe, axis=0, mode="fill", fill_value=jnp.nan)
