"""Checks on concrete values for the K-FAC references: finite inputs and results, valid factors.

Every check is skipped for traced values (inside a caller's ``jax.jit``), where nothing can be
raised; on concrete values a violation is a ``ValueError`` naming the argument or result, the
layer, the offending value and -- for a non-finite result -- which quantity overflowed.

* :func:`check_params_finite` -- every ``W``/``b`` is finite (as :func:`fisherlab.ggn` checks).
* :func:`check_factor` -- a K-FAC factor is symmetric (relative asymmetry
  ``||M - M^T||_F / ||M||_F <= 1e-8``, the threshold of ``fisherlab.updates``' dense solves) and
  positive semi-definite (smallest eigenvalue ``>= -1e-10 * `` the largest magnitude). For
  inputs of lower precision than float64 both tolerances grow to ``16 eps`` and ``4 d eps`` of
  that dtype (its rounding alone breaks exact symmetry / PSD-ness).
* :func:`check_factors_finite`, :func:`check_ekfac_finite` -- the computed factors are finite;
  if not, the message says what overflowed (the layer inputs, the likelihood's output-space
  quantity at a given model output, the back-propagated pre-activation gradients, or only
  their second moments).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._validation import check_finite

SYM_RTOL = 1e-8
PSD_RTOL = 1e-10


def _concrete(*xs) -> bool:
    return not any(isinstance(t, jax.core.Tracer) for t in jax.tree_util.tree_leaves(xs))


def _first_bad(a):
    bad = np.argwhere(~np.isfinite(a))[0]
    return a[tuple(bad)], tuple(int(i) for i in bad)


def check_params_finite(params, name: str = "params") -> None:
    """Every ``params[k][i]`` is finite (concrete values only)."""
    for k, p in enumerate(params):
        for i, t in enumerate(p):
            check_finite(t, f"{name}[{k}][{i}]")


def tolerances(dtype, d: int):
    """``(symmetry rtol, PSD rtol)`` for a factor of size ``d`` given in ``dtype``."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating) and np.finfo(dtype).eps > np.finfo(np.float64).eps:
        eps = float(np.finfo(dtype).eps)
        return max(SYM_RTOL, 16 * eps), max(PSD_RTOL, 4 * d * eps)
    return SYM_RTOL, PSD_RTOL


def check_factor(M, name: str, *, dtype=np.float64, psd: bool = True) -> None:
    """``M`` (concrete) is symmetric and, with ``psd``, positive semi-definite."""
    if not _concrete(M):
        return
    a = np.asarray(M, np.float64)
    sym_tol, psd_tol = tolerances(dtype, a.shape[0])
    norm = max(float(np.linalg.norm(a)), np.finfo(np.float64).tiny)
    asym = float(np.linalg.norm(a - a.T)) / norm
    if asym > sym_tol:
        raise ValueError(
            f"{name} must be symmetric (a K-FAC factor is a mean of outer products), got "
            f"relative asymmetry ||M - M^T||_F / ||M||_F = {asym:.3g} > {sym_tol:g}")
    if not psd:
        return
    w = np.linalg.eigvalsh((a + a.T) / 2)
    scale = max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny)
    if w[0] < -psd_tol * scale:
        raise ValueError(
            f"{name} must be positive semi-definite (a K-FAC factor is a mean of outer "
            f"products), but its smallest eigenvalue is {w[0]:.6g} < 0 (largest magnitude "
            f"{scale:.6g}, tolerance {psd_tol:g} relative)")


# ----------------------------------------------------------------------------- diagnosis
_COTANGENT = {
    "exact": "the likelihood's output Fisher factor M (M M^T = F_out)",
    "mc": "the output gradient grad_f l(f, y) at labels y sampled from the likelihood",
    "empirical": "the output gradient grad_f l(f, y) at the data labels y",
}


def _where(n: int, q: int, Q: int) -> str:
    return f"model outputs[{n}]" if Q == 1 else f"model outputs[{n}] (output position {q})"


def _explain_gradient(model, params, x, y, likelihood, fisher_type, num_samples, key, k):
    """Why the pre-activation-gradient side (``G``, EKFAC's ``S``) of layer ``k`` is not finite."""
    from fisherlab.kfac import _core

    N = x.shape[0]
    keys = jax.random.split(key, N) if fisher_type == "mc" else jnp.zeros((N,), jnp.float64)
    yy = jnp.zeros((N,), jnp.float64) if y is None else y

    def one(xn, yn, kn):
        out = model(params, xn)
        cots = _core.output_cotangents(likelihood, fisher_type, num_samples, out, yn, kn)
        flat = out.reshape((-1, out.shape[-1]))
        return flat, cots, jax.vmap(likelihood._output_fisher)(flat)

    flat, cots, fout = jax.vmap(one)(x, yy, keys)  # (N, Q, C), (N, K, Q, C), (N, Q, C, C)
    flat, cots, fout = np.asarray(flat), np.asarray(cots), np.asarray(fout)
    Q = flat.shape[1]
    bad = ~np.all(np.isfinite(cots), axis=(1, 3))  # (N, Q)
    if bad.any():
        n, q = (int(i) for i in np.argwhere(bad)[0])
        return (f"{_COTANGENT[fisher_type]} overflowed at {_where(n, q, Q)} = "
                f"{np.array2string(flat[n, q], precision=6)}")
    if fisher_type != "empirical":
        bad = ~np.all(np.isfinite(fout), axis=(2, 3))
        if bad.any():
            n, q = (int(i) for i in np.argwhere(bad)[0])
            return (f"the likelihood's output Fisher F_out overflowed at {_where(n, q, Q)} = "
                    f"{np.array2string(flat[n, q], precision=6)}")
    _, vs = _core.batched(model, params, likelihood, fisher_type, num_samples, x, y, key)
    v = np.asarray(vs[k])  # (N, K, P, out)
    if not np.all(np.isfinite(v)):
        n = int(np.argwhere(~np.all(np.isfinite(v), axis=(1, 2, 3)))[0][0])
        return (f"the back-propagated pre-activation gradients of layer {k} overflowed "
                f"(example {n})")
    return (f"the pre-activation gradients of layer {k} are finite (largest magnitude "
            f"{float(np.max(np.abs(v))):.3e}) but the second moments built from them overflow "
            "float64")


def _explain_input(model, params, x, k, only_if_inputs_overflow=False):
    """Why the input side (``A``) of layer ``k`` is not finite (``None``: inputs finite and
    ``only_if_inputs_overflow``)."""
    from fisherlab.kfac import _core

    inputs = jax.vmap(lambda xn: _core.forward_eps(model, params, xn, None)[1])(x)
    a = np.asarray(inputs[k])
    if not np.all(np.isfinite(a)):
        n = int(np.argwhere(~np.all(np.isfinite(a), axis=(1, 2)))[0][0])
        return (f"the inputs of layer {k} (the activations of the layers before it) "
                f"overflowed (example {n})")
    if only_if_inputs_overflow:
        return None
    return (f"the inputs of layer {k} are finite (largest magnitude "
            f"{float(np.max(np.abs(a))):.3e}) but their second moments overflow float64")


def check_factors_finite(facs, model, params, x, y, likelihood, fisher_type, num_samples,
                         key) -> None:
    """Every ``A``/``G`` of ``facs`` (concrete) is finite; else say what overflowed."""
    if not _concrete(facs):
        return
    for k, f in enumerate(facs):
        for nm, M in (("A", f.A), ("G", f.G)):
            a = np.asarray(M)
            if np.all(np.isfinite(a)):
                continue
            v, idx = _first_bad(a)
            if nm == "A":
                why = _explain_input(model, params, x, k)
            else:
                why = _explain_gradient(model, params, x, y, likelihood, fisher_type,
                                        num_samples, key, k)
            raise ValueError(f"{nm} factor of layer {k} is not finite (got {v} at index {idx}): "
                             f"{why}")


def check_ekfac_finite(result, model, params, x, y, likelihood, fisher_type, num_samples,
                       key) -> None:
    """Every ``S`` / ``S_bias`` of the EKFAC result (concrete) is finite; else say why."""
    if not _concrete(result):
        return
    for k, e in enumerate(result):
        for nm, M in (("S", e.S), ("S_bias", e.S_bias)):
            if M is None:
                continue
            a = np.asarray(M)
            if np.all(np.isfinite(a)):
                continue
            v, idx = _first_bad(a)
            why = _explain_input(model, params, x, k, only_if_inputs_overflow=True) or \
                _explain_gradient(model, params, x, y, likelihood, fisher_type, num_samples,
                                  key, k)
            raise ValueError(f"EKFAC eigenvalues {nm} of layer {k} are not finite (got {v} at "
                             f"index {idx}): {why}")
