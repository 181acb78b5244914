"""Gaussian likelihood with learned mean and log-variance (not natural parameters).

Outputs ``(N, 2 D)`` are ``[mu_1..mu_D | s_1..s_D]`` with ``s = log sigma^2``; targets ``(N, D)``:

.. math::

    -\\log p(y \\mid \\mu, s) = \\sum_d \\tfrac12 (y_d - \\mu_d)^2 e^{-s_d} + \\tfrac12 s_d
                                + \\tfrac12 \\log(2\\pi) .

With ``r = y - mu`` and ``z = r e^{-s/2}`` (the standardised residual):

* output gradient ``(-r e^{-s}, (1 - z^2) / 2)``;
* output Hessian of the NLL (per coordinate ``d``, in the ``(mu_d, s_d)`` block)
  ``[[e^{-s}, r e^{-s}], [r e^{-s}, z^2 / 2]]`` -- it **depends on the target** (see the
  determinant below), which is why GGN != Fisher for this family;
* output Fisher ``E_y[score score^T] = diag(e^{-s}, 1/2)``;
* factor ``M = diag(e^{-s/2}, 1/sqrt 2)``.

Determinant of one 2x2 Hessian block: ``e^{-s} z^2/2 - r^2 e^{-2s} = -z^2 e^{-s}/2 <= 0``, so
the Hessian is indefinite whenever ``y != mu``: the library's counterexample to
"output Hessian = output Fisher" (Kunstner et al., 2019; Martens, 2020 §9.2).

Numerics: the quadratic term is evaluated as ``z^2`` with ``z = r e^{-s/2}``, which stays finite
and exact (no ``0 * inf``) for ``|s|`` up to ~1418 whenever the true value is representable.
``output_fisher`` returns ``e^{-s}``, which overflows to ``inf`` only for ``s < -709.78``,
where the true value is not representable in float64.

References:
  M. Johnson, "Natural gradients and K-FAC" (note, 2017); F. Kunstner, L. Balles & P. Hennig, "Limitations of the
  empirical Fisher approximation for natural gradient descent", NeurIPS 2019; J. Martens,
  "New insights and perspectives on the natural gradient method", JMLR 21, 2020, §9.2.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fisherlab.likelihoods._base import (
    Likelihood,
    _as_float_targets,
    _as_outputs,
    symbolic_definitions,
)

__all__ = ["GaussianMeanVariance"]


class GaussianMeanVariance(Likelihood):
    """Independent Gaussians ``N(mu_d, exp(s_d))`` with outputs ``[mu | s]`` (``C = 2 D``).

    Not natural parameters (``natural = False``): the output Hessian depends on the target
    and differs from the output Fisher, so GGN != Fisher.

    Shapes: ``outputs`` ``(N, 2 D)``; ``targets`` ``(N, D)`` float; ``sample`` returns
    ``(num_samples, N, D)`` float64.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.GaussianMeanVariance().output_fisher(jnp.array([[0.0, 0.0]]))[0]
    Array([[1. , 0. ],
           [0. , 0.5]], dtype=float64)
    """

    natural = False

    def symbolic(self, num_outputs: int):
        """``fisherlab.likelihoods.symbolic.gaussian_mean_variance(num_outputs // 2)``; ``num_outputs`` must be even."""
        if (not isinstance(num_outputs, int) or isinstance(num_outputs, bool)
                or num_outputs < 2 or num_outputs % 2):
            raise ValueError(
                "num_outputs for GaussianMeanVariance must be an even int C = 2 D >= 2 "
                f"([means | log-variances]), got {num_outputs!r}")
        return symbolic_definitions().gaussian_mean_variance(num_outputs // 2)

    # ------------------------------------------------------------------ kernels
    @staticmethod
    def _split(out):
        D = out.shape[-1] // 2
        return out[:D], out[D:]

    def _nll(self, out, target):
        """``sum (1/2) z^2 + s/2 + log(2 pi)/2`` with ``z = (target - mu) exp(-s/2)``."""
        mu, s = self._split(out)
        z = (target - mu) * jnp.exp(-0.5 * s)
        D = mu.shape[-1]
        return 0.5 * jnp.sum(z * z) + 0.5 * jnp.sum(s) + 0.5 * D * math.log(2 * math.pi)

    def _output_grad(self, out, target):
        """``[-(y - mu) e^{-s} | (1 - z^2) / 2]``."""
        mu, s = self._split(out)
        e = jnp.exp(-0.5 * s)
        z = (target - mu) * e
        return jnp.concatenate([-z * e, 0.5 * (1.0 - z * z)])

    def _output_hessian(self, out, target):
        """``[[diag(e^{-s}), diag(r e^{-s})], [diag(r e^{-s}), diag(z^2 / 2)]]``.

        Depends on the target (``r = target - mu``, ``z = r e^{-s/2}``).
        """
        mu, s = self._split(out)
        e = jnp.exp(-0.5 * s)
        z = (target - mu) * e
        top = jnp.concatenate([jnp.diag(e * e), jnp.diag(z * e)], axis=1)
        bottom = jnp.concatenate([jnp.diag(z * e), jnp.diag(0.5 * z * z)], axis=1)
        return jnp.concatenate([top, bottom], axis=0)

    def _output_fisher(self, out):
        """``diag(e^{-s_1..D}, 1/2, ..., 1/2)``."""
        mu, s = self._split(out)
        return jnp.diag(jnp.concatenate([jnp.exp(-s), jnp.full_like(s, 0.5)]))

    def _output_fisher_sqrt(self, out):
        """``diag(e^{-s/2}, 1/sqrt 2)``."""
        mu, s = self._split(out)
        return jnp.diag(jnp.concatenate([jnp.exp(-0.5 * s), jnp.full_like(s, math.sqrt(0.5))]))

    def _sample(self, key, out, num_samples):
        """``mu + e^{s/2} u``, ``u ~ N(0, I_D)``, shape ``(num_samples, D)``."""
        mu, s = self._split(out)
        u = jax.random.normal(key, (num_samples,) + mu.shape, dtype=out.dtype)
        return mu + jnp.exp(0.5 * s) * u

    # ------------------------------------------------------------------ validation
    def check_outputs(self, outputs, name: str = "outputs"):
        """Finite ``[means | log-variances]`` of shape ``(N, 2 D)`` (``C`` even)."""
        return _as_outputs(outputs, name, family="GaussianMeanVariance", min_C=2, even=True)

    def check_targets(self, targets, outputs, name: str = "targets"):
        """Finite float targets of shape ``(N, D)``, ``D = C / 2``."""
        return _as_float_targets(targets, outputs, name, D=outputs.shape[1] // 2,
                                 family="GaussianMeanVariance")
