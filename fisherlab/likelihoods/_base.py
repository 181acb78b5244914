"""The likelihood interface shared by every family.

A likelihood has two faces:

* ``symbolic(num_outputs)`` -> :class:`~fisherlab.likelihoods.symbolic.SymbolicLikelihood`,
  the single source of truth the proofs start from (its SymPy module is imported on first
  use, so numeric use never loads SymPy);
* numeric JAX methods on batches, float64, validated (``nll``, ``sample``,
  ``output_fisher``, ``output_hessian``), built from per-example *kernels*
  (``_nll``, ``_output_fisher``, ``_sample``, ...) that do no validation and are
  safe to trace. The curvature, K-FAC and update code call the kernels.

Shapes: ``outputs`` is ``(N, C)``. Targets are ``(N,)`` int class indices for
:class:`Categorical` and ``(N, D)`` float for the others (``D = C`` except for
:class:`GaussianMeanVariance`, whose ``C = 2 D`` outputs are ``(mean, log_variance)``).

Per-example kernels (``out`` of shape ``(C,)``, ``target`` one example's target; pure JAX,
no validation, jit/vmap/grad-able, computed in the dtype of ``out``):

* ``_nll(out, target)`` -> scalar ``-log p(target | out)`` (normalising constants included);
* ``_output_grad(out, target)`` -> ``(C,)`` ``grad_out _nll`` (closed form where available);
* ``_output_hessian(out, target)`` -> ``(C, C)`` ``grad^2_out _nll``;
* ``_output_fisher(out)`` -> ``(C, C)`` ``F_out = E_{y ~ p(.|out)}[grad log p grad log p^T]``
  in closed form;
* ``_output_fisher_sqrt(out)`` -> ``(C, R)`` factor ``M`` with ``M M^T = F_out`` (``R = C``
  for every built-in family): exact K-FAC factors ``E[g g^T] = J^T M M^T J`` and pull-back
  sampling (``M u``, ``u ~ N(0, I_R)``, has covariance ``F_out``);
* ``_sample(key, out, S)`` -> ``S`` targets for one example, leading axis ``S``.

The public batch methods validate concrete inputs (never traced ones), then ``vmap`` the
kernels under float64 (:func:`fisherlab._core.precision.reference`).
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import reference
from fisherlab._core.sampling import sample_each
from fisherlab._core.validation import as_float_array, check_int, check_key, is_tracer

__all__ = ["Likelihood"]


class Likelihood(abc.ABC):
    """Base class of the likelihood families (see the module docstring)."""

    #: whether the outputs are natural parameters (then Fisher == GGN exactly).
    natural: bool = True

    # ------------------------------------------------------------------ symbolic face
    @abc.abstractmethod
    def symbolic(self, num_outputs: int):
        """The SymPy definition for ``num_outputs`` outputs (the proofs' source)."""

    # ------------------------------------------------------------------ kernels (per example)
    @abc.abstractmethod
    def _nll(self, out: jax.Array, target: jax.Array) -> jax.Array:
        """``-log p(target | out)`` for one example, ``out`` of shape ``(C,)``."""

    @abc.abstractmethod
    def _output_fisher(self, out: jax.Array) -> jax.Array:
        """Closed-form output-space Fisher ``E_y[grad_out log p grad_out log p^T]``, ``(C, C)``."""

    @abc.abstractmethod
    def _sample(self, key: jax.Array, out: jax.Array, num_samples: int) -> jax.Array:
        """``num_samples`` targets for one example, leading axis ``num_samples``."""

    def _output_grad(self, out: jax.Array, target: jax.Array) -> jax.Array:
        """``grad_out (-log p(target | out))``, ``(C,)``."""
        return jax.grad(self._nll)(out, target)

    def _output_hessian(self, out: jax.Array, target: jax.Array) -> jax.Array:
        """``grad^2_out (-log p(target | out))``, ``(C, C)``."""
        return jax.hessian(self._nll)(out, target)

    def _output_fisher_sqrt(self, out: jax.Array) -> jax.Array:
        """A factor ``M`` (``(C, R)``) of the output Fisher: ``M M^T = F_out(out)``.

        Used for exact K-FAC factors (``G = sum_r (J^T m_r)(J^T m_r)^T``) and for
        pull-back sampling (``M u`` with ``u ~ N(0, I_R)`` has covariance ``F_out``).
        Every family overrides this with a closed form; this generic fallback is the
        symmetric square root through an eigendecomposition (eigenvalues clipped at 0).
        """
        F = self._output_fisher(out)
        w, V = jnp.linalg.eigh(F)
        return (V * jnp.sqrt(jnp.clip(w, 0.0, None))) @ V.T

    # ------------------------------------------------------------------ validation
    @abc.abstractmethod
    def check_outputs(self, outputs, name: str = "outputs"):
        """Validate a batch of outputs ``(N, C)``; returns it as a float64 array."""

    @abc.abstractmethod
    def check_targets(self, targets, outputs, name: str = "targets"):
        """Validate targets against validated ``outputs``; returns them as an array."""

    # ------------------------------------------------------------------ public batch API
    @reference
    def nll(self, outputs, targets) -> jax.Array:
        """Per-example negative log-likelihood, shape ``(N,)``, float64."""
        outputs = self.check_outputs(outputs)
        targets = self.check_targets(targets, outputs)
        return self._finite("nll", jax.vmap(self._nll)(jnp.asarray(outputs, jnp.float64),
                                                       jnp.asarray(targets)), outputs)

    @reference
    def sample(self, key, outputs, num_samples: int) -> jax.Array:
        """Targets drawn from the predictive distribution, shape ``(num_samples, N, ...)``.

        ``(num_samples, N)`` int class indices for :class:`Categorical`, else
        ``(num_samples, N, D)`` float64. Example ``n`` uses ``jax.random.split(key, N)[n]``.
        """
        key = check_key(key)
        num_samples = check_int(num_samples, "num_samples", minimum=1)
        outputs = jnp.asarray(self.check_outputs(outputs), jnp.float64)
        keys = jax.random.split(key, outputs.shape[0])
        return jnp.moveaxis(sample_each(self, keys, outputs, num_samples), 1, 0)

    @reference
    def output_fisher(self, outputs) -> jax.Array:
        """Output-space Fisher per example, ``(N, C, C)``, float64.

        Derivations: ``fisher_psd.score_covariance``, ``information_equality.bernoulli``,
        ``information_equality.categorical``, ``information_equality.exponential_family``,
        ``information_equality.gaussian``, ``information_equality.gaussian_mean_variance``,
        ``information_equality.poisson``, ``kl_expansion.categorical``,
        ``kl_expansion.exponential_family``, ``kl_expansion.gaussian``,
        ``kl_expansion.gaussian_mean_variance``, ``output_fisher.bernoulli``,
        ``output_fisher.categorical``, ``output_fisher.gaussian``,
        ``output_fisher.gaussian_mean_variance``, ``output_fisher.poisson``.
        """
        outputs = jnp.asarray(self.check_outputs(outputs), jnp.float64)
        return self._finite("output_fisher", jax.vmap(self._output_fisher)(outputs), outputs)

    @reference
    def output_hessian(self, outputs, targets) -> jax.Array:
        """Output-space Hessian of the NLL per example, ``(N, C, C)``, float64.

        Derivations: ``information_equality.bernoulli``, ``information_equality.categorical``,
        ``information_equality.gaussian``, ``information_equality.gaussian_mean_variance``,
        ``information_equality.poisson``, ``output_fisher.bernoulli``,
        ``output_fisher.categorical``, ``output_fisher.gaussian``,
        ``output_fisher.gaussian_mean_variance``, ``output_fisher.poisson``.
        """
        outputs = self.check_outputs(outputs)
        targets = self.check_targets(targets, outputs)
        return self._finite("output_hessian", jax.vmap(self._output_hessian)(
            jnp.asarray(outputs, jnp.float64), jnp.asarray(targets)), outputs)

    @reference
    def output_fisher_sqrt(self, outputs) -> jax.Array:
        """Per-example factors ``M_n`` with ``M_n M_n^T = F_out(outputs_n)``, ``(N, C, R)``.

        See :meth:`_output_fisher_sqrt`; ``R = C`` for every built-in family.
        """
        outputs = jnp.asarray(self.check_outputs(outputs), jnp.float64)
        return self._finite("output_fisher_sqrt", jax.vmap(self._output_fisher_sqrt)(outputs),
                            outputs)

    def _finite(self, method: str, result, outputs):
        """``result`` unchanged, or a ValueError naming the first example that overflowed.

        Checked on concrete values only (under the caller's ``jax.jit`` nothing can be checked).
        """
        if is_tracer(result):
            return result
        per_example = np.asarray(result).reshape(np.shape(result)[0], -1)
        bad = ~np.all(np.isfinite(per_example), axis=1)
        if bad.any():
            n = int(np.argmax(bad))
            raise ValueError(
                f"{type(self).__name__}.{method}: the result overflowed float64 at example {n} "
                f"(outputs[{n}] = {np.asarray(outputs)[n]}); the outputs are finite but too "
                f"large for this family's {method.replace('_', ' ')} to be represented")
        return result

    # ------------------------------------------------------------------ identity
    def _params(self) -> tuple:
        """Hyper-parameters that define the family (used for ``==``, ``hash``, ``repr``)."""
        return ()

    def _state(self) -> tuple:
        """Every instance attribute (unhashable values by identity).

        Part of ``==``/``hash`` so that a subclass adding state without overriding
        :meth:`_params` is never mistaken for another instance: equal likelihoods share
        compiled kernels (they are static ``jit`` arguments), so equality must imply the
        same numbers.
        """
        items = []
        for k, v in sorted(vars(self).items()):
            try:
                hash(v)
            except TypeError:
                v = ("object id", id(v))
            items.append((k, v))
        return tuple(items)

    def __eq__(self, other) -> bool:
        return (type(self) is type(other) and self._params() == other._params()
                and self._state() == other._state())

    def __hash__(self) -> int:
        return hash((type(self), self._params(), self._state()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def symbolic_definitions():
    """The SymPy definitions, :mod:`fisherlab.likelihoods.symbolic`, imported on first use.

    Only :meth:`Likelihood.symbolic` needs them, so a numeric user never imports SymPy.
    """
    import importlib

    return importlib.import_module("fisherlab.likelihoods.symbolic")


def _as_outputs(outputs, name: str, *, family: str = "", min_C: int = 1, even: bool = False):
    """Shared first step of ``check_outputs``: a finite float array of shape (N, C).

    ``min_C`` is the smallest number of outputs the family accepts; ``even`` demands an
    even ``C`` (mean/log-variance pairs). Values are only checked on concrete arrays.
    """
    arr = as_float_array(outputs, name, ndim=2)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, C) with N, C >= 1, got {tuple(arr.shape)}")
    C = arr.shape[1]
    if C < min_C:
        raise ValueError(
            f"{name} for {family} must have at least {min_C} outputs per example (shape (N, C) "
            f"with C >= {min_C}), got shape {tuple(arr.shape)}")
    if even and C % 2:
        raise ValueError(
            f"{name} for {family} must have an even number of outputs C = 2 D "
            f"([means (D) | log-variances (D)]), got shape {tuple(arr.shape)} with C = {C}")
    if is_tracer(arr):
        return arr
    if arr.dtype == bool:
        raise TypeError(f"{name} must be a float array, got dtype bool")
    return np.asarray(arr, np.float64)


def _as_float_targets(targets, outputs, name: str, *, D: int, family: str):
    """Float targets of shape ``(N, D)`` matching ``outputs``' batch; finite when concrete."""
    arr = as_float_array(targets, name)
    N = outputs.shape[0]
    if arr.ndim != 2 or arr.shape != (N, D):
        raise ValueError(
            f"{name} for {family} must have shape (N, D) = ({N}, {D}) to match outputs of shape "
            f"{tuple(outputs.shape)}, got shape {tuple(arr.shape)}")
    if is_tracer(arr):
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise TypeError(f"{name} for {family} must be a float array, got dtype {arr.dtype}")
        return arr
    return np.asarray(arr, np.float64)


def _first_bad(mask):
    """Index (tuple) of the first True entry of a boolean NumPy array."""
    return tuple(int(i) for i in np.argwhere(mask)[0])
