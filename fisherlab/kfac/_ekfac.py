"""EKFAC: K-FAC's Kronecker eigenbasis with the diagonal re-fitted (George et al., 2018)."""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from fisherlab._precision import reference
from fisherlab._validation import as_float_array
from fisherlab.kfac import _core
from fisherlab.kfac._checks import check_ekfac_finite, check_factor, check_factors_finite
from fisherlab.kfac._factors import KFACFactors, _factors_jit

__all__ = ["EKFACFactors", "ekfac"]


class EKFACFactors(NamedTuple):
    """One layer of EKFAC.

    Attributes:
      UA: eigenvectors of the K-FAC factor ``A`` (columns), ``(in'+1, in'+1)`` or ``(in', in')``.
      UG: eigenvectors of ``G`` (columns), ``(out, out)``.
      S: corrected eigenvalues ``(out, in'+1)`` (or ``(out, in')``): ``S[i, j]`` belongs to the
        eigenvector ``u_G,i (x) u_A,j`` of ``[W b]`` (row-major), i.e. the block is
        ``(U_G (x) U_A) diag(vec_row(S)) (U_G (x) U_A)^T``.
      S_bias: ``None`` (augmented) or, with ``bias="separate"``, the corrected eigenvalues of
        the bias block in the basis ``U_G``, ``(out,)``.

    :func:`fisherlab.kfac.matrix` accepts a list of these and returns the dense EKFAC matrix.
    """

    UA: jax.Array
    UG: jax.Array
    S: jax.Array
    S_bias: Optional[jax.Array] = None


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5))
def _ekfac_jit(model, params, likelihood, fisher_type, bias, num_samples, x, y, key, facs):
    inputs, vs = _core.batched(model, params, likelihood, fisher_type, num_samples, x, y, key)
    w = _core.cotangent_weight(fisher_type, num_samples)
    result = []
    for amat, v, f in zip(inputs, vs, facs):
        N = amat.shape[0]
        if bias == "augmented":
            amat = jnp.concatenate([amat, jnp.ones(amat.shape[:-1] + (1,), amat.dtype)], -1)
        _, UA = jnp.linalg.eigh(f.A)
        _, UG = jnp.linalg.eigh(f.G)
        pa = jnp.einsum("npi,ij->npj", amat, UA)  # (N, P, in)
        pv = jnp.einsum("nkpo,oi->nkpi", v, UG)  # (N, K, P, out)
        proj = jnp.einsum("nkpi,npj->nkij", pv, pa)  # U_G^T D_{n,k} U_A
        S = w * jnp.sum(proj ** 2, axis=(0, 1)) / N
        Sb = None
        if bias == "separate":
            Sb = w * jnp.sum(jnp.sum(pv, axis=2) ** 2, axis=(0, 1)) / N
        result.append(EKFACFactors(UA, UG, S, Sb))
    return result


@reference
def ekfac(model, params, x, y, likelihood, *, fisher_type: str = "exact",
          approx: str = "expand", bias: str = "augmented", key=None, num_samples: int = 1,
          factors=None) -> list[EKFACFactors]:
    r"""Eigenvalue-corrected K-FAC (EKFAC) of every Dense/Conv2d layer.

    Take the K-FAC factors ``(A, G)`` (from :func:`fisherlab.kfac.factors` with the same
    options, or ``factors`` if given) and their eigenvectors ``U_A``, ``U_G``. The
    Kronecker-factored eigenbasis of the layer is ``U = U_G (x) U_A`` (``[W b]`` row-major).
    EKFAC keeps ``U`` and replaces K-FAC's eigenvalues ``gamma_i alpha_j`` by the second moments
    of the per-example gradients projected onto it:

    .. math::

        S_{ij} = \frac1N \sum_n \mathbb E\big[ (U_G^\top D_n U_A)_{ij}^2 \big], \qquad
        D_n = \sum_p g_{n,p} \bar a_{n,p}^\top \ (\text{the per-example gradient of } [W b]),

    with the same expectation as ``fisher_type``: ``"exact"`` -- the ``C`` "pseudo-gradients"
    ``J_s^T M e_c`` (``M M^T = F_out``), so the re-fitted curvature is the exact GGN/Fisher
    block; ``"mc"`` -- the same sampled labels as the factors (same ``key``), which are the labels of
    :func:`fisherlab.fisher_mc` with that ``key`` (``likelihood.sample(key, outputs, S)``), so
    the curvature is the block of that Monte-Carlo Fisher; ``"empirical"`` -- the data labels (empirical Fisher block).
    ``D_n`` is always the exact per-example gradient (summed over weight-sharing positions),
    whichever ``approx`` gave the eigenbasis.

    Consequences (tested): ``diag(U^T B U) = vec S`` for the exact block ``B`` of that curvature,
    hence ``tr(EKFAC) = tr(B)``, and EKFAC is the Frobenius-closest matrix to ``B`` among those
    diagonal in ``U`` -- in particular at least as close as K-FAC.

    Args:
      model, params, x, y, likelihood, fisher_type, approx, bias, key, num_samples: as in
        :func:`fisherlab.kfac.factors`.
      factors: optional precomputed K-FAC factors to take the eigenbasis from (e.g. an EMA);
        each ``A``/``G`` must be finite and symmetric (relative asymmetry ``<= 1e-8``; only
        their eigenvectors are used, so PSD-ness is not required). Checked when concrete.

    Returns:
      A list with one :class:`EKFACFactors` per layer; the dense matrix is
      ``fl.kfac.matrix(result, model)``.

    Raises:
      ValueError: as :func:`fisherlab.kfac.factors` (non-finite inputs; non-finite factors or
        corrected eigenvalues ``S``, with what overflowed), and for non-symmetric ``factors``.

    References:
      T. George, C. Laurent, X. Bouthillier, N. Ballas, P. Vincent, "Fast approximate natural
      gradient descent in a Kronecker-factored eigenbasis", NeurIPS 2018.
    
    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> e = fl.kfac.ekfac(model, params, x, None, fl.Categorical())
    >>> e[0].S.shape  # one corrected eigenvalue per entry of [W b]
    (4, 4)
    """
    _core.check_model(model)
    _core.check_options(fisher_type, approx, bias)
    x, y, key, num_samples, _ = _core.prepare(model, params, x, y, likelihood, fisher_type,
                                              key, num_samples)
    params = [tuple(jnp.asarray(t, jnp.float64) for t in p) for p in params]
    if factors is None:
        factors = _factors_jit(model, params, likelihood, fisher_type, approx, bias,
                               num_samples, x, y, key)
        check_factors_finite(factors, model, params, x, y, likelihood, fisher_type,
                             num_samples, key)
    else:
        from fisherlab.kfac._matrix import _check_entries, infer_bias

        layers = _check_entries(factors, model)
        checked = []
        for k, (f, layer) in enumerate(zip(factors, layers)):
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
        factors = checked
    result = _ekfac_jit(model, params, likelihood, fisher_type, bias, num_samples, x, y, key,
                        factors)
    check_ekfac_finite(result, model, params, x, y, likelihood, fisher_type, num_samples, key)
    return result
