"""EKFAC: K-FAC's Kronecker eigenbasis with the diagonal re-fitted (George et al., 2018)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fisherlab._core.precision import reference
from fisherlab._core.validation import as_float_array
from fisherlab.kfac import _sharded
from fisherlab.kfac._checks import all_finite, check_factor
from fisherlab.kfac._cotangents import cotangent_weight
from fisherlab.kfac._diagnosis import check_ekfac_finite, check_factors_finite
from fisherlab.kfac._factors import compute_checked, factors_from_statistics
from fisherlab.kfac._inputs import (check_factor_list, check_model, check_options,
                                    check_values, finite_flags, infer_bias, prepare)
from fisherlab.kfac._statistics import batched
from fisherlab.kfac._types import EKFACFactors, KFACFactors

__all__ = ["ekfac"]


def _corrected_eigenvalues(inputs, vs, facs, weight, bias, num_examples=None):
    result = []
    for amat, v, f in zip(inputs, vs, facs):
        N = amat.shape[0] if num_examples is None else num_examples
        if bias == "augmented":
            amat = jnp.concatenate([amat, jnp.ones(amat.shape[:-1] + (1,), amat.dtype)], -1)
        _, UA = jnp.linalg.eigh(f.A)
        _, UG = jnp.linalg.eigh(f.G)
        pa = jnp.einsum("npi,ij->npj", amat, UA)  # (N, P, in)
        pv = jnp.einsum("nkpo,oi->nkpi", v, UG)  # (N, K, P, out)
        proj = jnp.einsum("nkpi,npj->nkij", pv, pa)  # U_G^T D_{n,k} U_A
        S = weight * jnp.sum(proj ** 2, axis=(0, 1)) / N
        Sb = None
        if bias == "separate":
            Sb = weight * jnp.sum(jnp.sum(pv, axis=2) ** 2, axis=(0, 1)) / N
        result.append(EKFACFactors(UA, UG, S, Sb))
    return result


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6, 7))
def _compute(model, params, likelihood, fisher_type, approx, bias, num_samples, reduced, x, y,
             key, facs):
    """K-FAC factors (unless given) and EKFAC from one pass over the batch, with
    the :func:`~fisherlab.kfac._inputs.finite_flags` of the factors and of the result."""
    inputs, vs, outputs = batched(model, params, likelihood, fisher_type, num_samples, x, y, key,
                                  reduced)
    w = cotangent_weight(fisher_type, num_samples)
    if facs is None:
        facs, facs_finite = factors_from_statistics(inputs, vs, w, approx, bias)
    else:
        facs_finite = all_finite(facs)
    result = _corrected_eigenvalues(inputs, vs, facs, w, bias)
    return facs, result, finite_flags(params, x, outputs, facs_finite, all_finite(result))


def _sharded_statistics(model, likelihood, fisher_type, bias, num_samples, reduced, params, x, y,
                        keys, num_examples, facs):
    """A device's share of the corrected eigenvalues ``(S, S_bias)`` per layer, the flags of its
    inputs and outputs, and the eigenbasis ``(U_A, U_G)`` of the replicated ``facs``
    (:mod:`fisherlab.kfac._sharded`)."""
    inputs, vs, outputs = batched(model, params, likelihood, fisher_type, num_samples, x, y, None,
                                  reduced, keys=keys)
    result = _corrected_eigenvalues(inputs, vs, facs, cotangent_weight(fisher_type, num_samples),
                                    bias, num_examples)
    return ([(r.S, r.S_bias) for r in result], finite_flags(params, x, outputs),
            [(r.UA, r.UG) for r in result])


def _given_factors(factor_list, model, bias):
    layers = check_factor_list(factor_list, model, kinds=("dense",), what="fl.kfac.ekfac")
    checked = []
    for k, (f, layer) in enumerate(zip(factor_list, layers)):
        if not isinstance(f, (list, tuple)) or len(f) != 2:
            raise ValueError(f"factors[{k}] must be a KFACFactors (A, G) pair, got "
                             f"{type(f).__name__}")
        pair = []
        for nm, M in (("A", f[0]), ("G", f[1])):
            name = f"factors[{k}].{nm}"
            arr = as_float_array(M, name, ndim=2)
            check_factor(arr, f"{name} (layer {k})", dtype=arr.dtype, psd=False)
            pair.append(jnp.asarray(arr, jnp.float64))
        checked.append(KFACFactors(*pair))
        infer_bias(checked[-1], layer, k, "factors", bias)
    return checked


@reference
def ekfac(model, params, x, y, likelihood, *, fisher_type: str = "exact",
          approx: str = "expand", bias: str = "augmented", key=None, num_samples: int = 1,
          factors=None) -> list[EKFACFactors]:
    r"""Eigenvalue-corrected K-FAC (EKFAC) of every Dense/Conv2d layer.

    Take the K-FAC factors ``(A, G)`` (:func:`fisherlab.kfac.factors` with the same options,
    or ``factors`` if given) and their eigenvectors ``U_A``, ``U_G``; the Kronecker-factored
    eigenbasis of the layer is ``U = U_G (x) U_A`` (``[W b]`` row-major). EKFAC keeps ``U`` and
    replaces K-FAC's eigenvalues ``gamma_i alpha_j`` by the second moments of the per-example
    gradients projected onto it:

    .. math::

        S_{ij} = \frac1N \sum_n \mathbb E\big[ (U_G^\top D_n U_A)_{ij}^2 \big], \qquad
        D_n = \sum_p g_{n,p} \bar a_{n,p}^\top,

    ``D_n`` the exact per-example gradient of ``[W b]`` (summed over weight-sharing positions,
    whichever ``approx`` gave the basis), the expectation that of ``fisher_type`` (the factor
    columns for ``"exact"``, the labels of :func:`fisherlab.fisher_mc` with the same ``key``
    for ``"mc"``, the data labels for ``"empirical"``). Hence ``diag(U^T B U) = vec S`` for
    the exact block ``B`` of that curvature, ``tr(EKFAC) = tr(B)``, and EKFAC is the
    Frobenius-closest matrix to ``B`` among those diagonal in ``U`` -- at least as close as
    K-FAC (tested).

    Args:
      model, params, x, y, likelihood, fisher_type, approx, bias, key, num_samples: as in
        :func:`fisherlab.kfac.factors`.
      factors: optional K-FAC factors to take the eigenbasis from (e.g. an EMA); each
        ``A``/``G`` must be finite and symmetric (relative asymmetry ``<= 1e-8``); only their
        eigenvectors are used, so they need not be PSD.

    Returns:
      A list with one :class:`EKFACFactors` per layer (``S`` of shape ``(out, in'+1)`` or
      ``(out, in')``); the dense matrix is ``fl.kfac.matrix(result, model)``.

    A sharded batch ``x`` is reduced as in :func:`fisherlab.kfac.factors`, in two passes.

    Raises:
      ValueError: as :func:`fisherlab.kfac.factors`, for non-finite corrected eigenvalues (with
        what overflowed), and for non-symmetric ``factors``.

    References:
      T. George, C. Laurent, X. Bouthillier, N. Ballas and P. Vincent, "Fast approximate
      natural gradient descent in a Kronecker-factored eigenbasis", NeurIPS 2018.

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> e = fl.kfac.ekfac(model, params, x, None, fl.Categorical())
    >>> e[0].S.shape  # one corrected eigenvalue per entry of [W b]
    (4, 4)

    Derivations: ``ekfac.optimal_diagonal``, ``kronecker.eigenpairs``.
    """
    check_model(model, kinds=("dense",), what="fl.kfac.ekfac")
    check_options(fisher_type, approx, bias)
    mesh = _sharded.batch_mesh(x)
    problem = prepare(model, params, x, y, likelihood, fisher_type, key, num_samples)
    given = None if factors is None else _given_factors(factors, model, bias)
    model, params, x, y, likelihood, fisher_type, num_samples, key, reduced = problem
    if mesh is None:
        facs, result, flags = _compute(model, params, likelihood, fisher_type, approx, bias,
                                       num_samples, reduced, x, y, key, given)
        factors_ok, result_ok = check_values(flags, problem)
    else:  # the factors checked first; the sum of the devices' shares checked as a whole
        facs = given or compute_checked(problem, approx, bias, "sum", mesh)
        static = (model, likelihood, fisher_type, bias, num_samples, reduced)
        parts, flags, bases = _sharded.run(_sharded_statistics, static, problem, mesh, "sum",
                                           facs)
        result = [EKFACFactors(*basis, *part) for basis, part in zip(bases, parts)]
        check_values(flags, problem)
        factors_ok, result_ok = True, bool(all_finite(result))
    if not factors_ok:
        check_factors_finite(facs, problem)
    if not result_ok:
        check_ekfac_finite(result, problem)
    return result
