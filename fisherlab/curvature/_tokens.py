r"""Per-token outputs: a single-example model that returns ``(R, C)``, one row per token.

The loss of example ``n`` is the sum of its ``R`` token losses,
``l_n = sum_r -log p(y_{n,r} | f_r(theta, x_n))`` (docs/CONVENTIONS.md, "Per-token outputs").
Two views of such a problem let every kernel of :mod:`fisherlab.curvature` run unchanged:

* **sequences** (:class:`TokenOutputs` + :class:`PerToken`): the ``(R, C)`` outputs read as
  ``R C`` outputs ``f_flat = vec(f)`` (token-major), and a likelihood over the ``R`` tokens whose
  negative log-likelihood is the sum of the token terms. Its output-space derivatives are
  block-diagonal, one ``C x C`` block per token, because token ``r``'s term depends on row ``r``
  only:

  .. math::
      \nabla_{f} l_n = [\nabla_{f_1} l_{n,1}; \dots; \nabla_{f_R} l_{n,R}],\qquad
      \nabla^2_{f} l_n = \mathrm{blockdiag}_r\big(\nabla^2_{f_r} l_{n,r}\big),\qquad
      F_{\rm out} = \mathrm{blockdiag}_r\big(F_{\rm out}(f_r)\big)

  (the ``R`` token labels are independent given the outputs, so the output Fisher of their joint
  distribution is block-diagonal too). Every quantity that is linear in the loss (gradient,
  Hessian, GGN, Fisher and their products) is computed in this view.

* **tokens as examples** (:class:`TokenExamples`): the ``N R`` pairs ``(x_n, r)`` are the
  examples, ``f(params, (x_n, r)) = f(params, x_n)[r]`` with the original likelihood, exactly
  PyTorch's ``loss(out.flatten(0, 1), y.flatten(0, 1))``. With ``tokens="flatten"`` the
  quantities built from per-example gradient outer products (empirical Fisher, gradient
  covariance, Monte-Carlo Fisher and their products) are computed in this view: they are not
  linear in the loss, so summing tokens into one example or not changes them (not only their
  scale).

Both views are checked against the explicitly written token loss (``jax.hessian`` of
``sum_n sum_r l_{n,r}``) in the tests.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from fisherlab.likelihoods._base import Likelihood

__all__ = ["PerToken", "TokenExamples", "TokenOutputs", "block_diagonal"]


@dataclasses.dataclass(frozen=True)
class TokenOutputs:
    """``x_n -> vec(f(params, x_n))``: a per-token model read as one with ``R C`` outputs.

    Equal (and hashable) when ``f`` is, so compiled kernels are shared across calls.
    """

    f: Any

    def __call__(self, params, x):
        return jnp.reshape(self.f(params, x), (-1,))

    def __repr__(self) -> str:
        return f"the per-token outputs of {self.f!r}"


@dataclasses.dataclass(frozen=True)
class TokenExamples:
    """``(x_n, r) -> f(params, x_n)[r]``: token ``r`` of example ``n`` as an example of its own."""

    f: Any

    def __call__(self, params, x_and_token):
        x, r = x_and_token
        return self.f(params, x)[r]

    def __repr__(self) -> str:
        return f"the tokens of {self.f!r} as examples"


def block_diagonal(blocks):
    """``(R, C, K)`` blocks to the ``(R C, R K)`` block-diagonal matrix (block ``r`` at ``(r, r)``)."""
    R, C, K = blocks.shape
    eye = jnp.eye(R, dtype=blocks.dtype)
    return jnp.einsum("rck,rs->rcsk", blocks, eye).reshape(R * C, R * K)


class PerToken(Likelihood):
    """The likelihood of ``R`` independent tokens, each with the family ``base``.

    Outputs are ``vec`` of the ``(R, C)`` per-token outputs (``R C`` entries, token-major);
    one example's target has a leading token axis ``R`` (``(R,)`` class indices for
    ``Categorical``, ``(R, D)`` floats otherwise). The negative log-likelihood is the sum of
    the token terms, its output-space Hessian, Fisher and Fisher factor are block-diagonal
    (module docstring), and sampling draws token ``r`` with ``jax.random.split(key, R)[r]``
    (``key`` itself for ``R = 1``).
    Internal: prepared by :func:`fisherlab.curvature._problem.prepare`, never built by users.
    """

    def __init__(self, base: Likelihood, num_tokens: int):
        self.base = base
        self.num_tokens = int(num_tokens)
        self.natural = base.natural

    def symbolic(self, num_outputs: int):
        raise TypeError(
            f"the per-token view of {self.base!r} has no symbolic definition of its own; use "
            "the token likelihood's, base.symbolic(C)")

    def _rows(self, out):
        return jnp.reshape(out, (self.num_tokens, -1))

    # ------------------------------------------------------------------ kernels
    def _nll(self, out, target):
        return jnp.sum(jax.vmap(self.base._nll)(self._rows(out), target))

    def _output_grad(self, out, target):
        return jnp.reshape(jax.vmap(self.base._output_grad)(self._rows(out), target), (-1,))

    def _output_hessian(self, out, target):
        return block_diagonal(jax.vmap(self.base._output_hessian)(self._rows(out), target))

    def _output_fisher(self, out):
        return block_diagonal(jax.vmap(self.base._output_fisher)(self._rows(out)))

    def _output_fisher_sqrt(self, out):
        return block_diagonal(jax.vmap(self.base._output_fisher_sqrt)(self._rows(out)))

    def _sample(self, key, out, num_samples):
        # R = 1: the example's key itself, so a (1, C) model draws the labels of the (C,) model
        keys = key[None] if self.num_tokens == 1 else jax.random.split(key, self.num_tokens)
        draws = jax.vmap(lambda k, o: self.base._sample(k, o, num_samples))(keys,
                                                                            self._rows(out))
        return jnp.moveaxis(draws, 0, 1)  # (S, R, ...)

    # ------------------------------------------------------------------ validation
    def check_outputs(self, outputs, name: str = "outputs"):
        """Outputs ``(N, R C)`` checked token-wise by the base family; returned ``(N, R C)``."""
        n, rc = outputs.shape
        flat = self.base.check_outputs(outputs.reshape(n * self.num_tokens, -1),
                                       f"{name} (one row per token)")
        return flat.reshape(n, rc)

    def check_targets(self, targets, outputs, name: str = "targets"):
        """Targets ``(N, R, ...)`` checked token-wise by the base family."""
        n = outputs.shape[0]
        R = self.num_tokens
        shape = tuple(targets.shape)
        if len(shape) < 2 or shape[:2] != (n, R):
            raise ValueError(
                f"{name} must have shape (N, R, ...) = ({n}, {R}, ...), one target per token, "
                f"to match per-token outputs with R = {R}, got shape {shape}")
        rows = outputs.reshape(n * R, -1)
        flat = self.base.check_targets(targets.reshape((n * R,) + shape[2:]), rows,
                                       f"{name} (one row per token)")
        return flat.reshape(shape)

    def _params(self) -> tuple:
        return (self.base, self.num_tokens)

    def __repr__(self) -> str:
        return f"PerToken({self.base!r}, num_tokens={self.num_tokens})"
