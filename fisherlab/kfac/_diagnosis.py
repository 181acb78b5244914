"""Why a K-FAC result is not finite: the layer, the factor and what overflowed.

Runs only after a result was found non-finite (concrete values). It recomputes the
intermediate quantities eagerly and names the first that overflowed: the layer inputs, the
likelihood's output-space quantity at a given model output, the back-propagated
pre-activation gradients, or only their second moments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab.kfac._checks import first_bad, is_concrete
from fisherlab.kfac._cotangents import output_cotangents
from fisherlab.kfac._layers import forward_with_offsets
from fisherlab.kfac._statistics import batched

__all__ = ["check_ekfac_finite", "check_factors_finite"]

_COTANGENT = {
    "exact": "the likelihood's output Fisher factor M (M M^T = F_out)",
    "mc": "the output gradient grad_f l(f, y) at labels y sampled from the likelihood",
    "empirical": "the output gradient grad_f l(f, y) at the data labels y",
}


def _where(n: int, q: int, Q: int) -> str:
    return f"model outputs[{n}]" if Q == 1 else f"model outputs[{n}] (output position {q})"


def _explain_gradient(problem, k):
    """Why the pre-activation-gradient side (``G``, EKFAC's ``S``) of layer ``k`` is not finite."""
    model, params, x, y, likelihood, fisher_type, num_samples, key, reduced = problem
    N = x.shape[0]
    keys = jax.random.split(key, N) if fisher_type == "mc" else jnp.zeros((N,), jnp.float64)
    yy = jnp.zeros((N,), jnp.float64) if y is None else y

    def one(xn, yn, kn):
        out = model(params, xn)
        cots = output_cotangents(likelihood, fisher_type, num_samples, out, yn, kn,
                                 reduced=reduced)
        flat = out.reshape((-1, out.shape[-1]))
        return flat, cots, jax.vmap(likelihood._output_fisher)(flat)

    flat, cots, fout = (np.asarray(t) for t in jax.vmap(one)(x, yy, keys))
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
    _, vs, _ = batched(model, params, likelihood, fisher_type, num_samples, x, y, key, reduced)
    v = np.asarray(vs[k])  # (N, K, P, out)
    if not np.all(np.isfinite(v)):
        n = int(np.argwhere(~np.all(np.isfinite(v), axis=(1, 2, 3)))[0][0])
        return (f"the back-propagated pre-activation gradients of layer {k} overflowed "
                f"(example {n})")
    return (f"the pre-activation gradients of layer {k} are finite (largest magnitude "
            f"{float(np.max(np.abs(v))):.3e}) but the second moments built from them overflow "
            "float64")


def _explain_input(problem, k, only_if_inputs_overflow=False):
    """Why the input side (``A``) of layer ``k`` is not finite (``None``: inputs finite and
    ``only_if_inputs_overflow``)."""
    model, params, x = problem[:3]
    inputs = jax.vmap(lambda xn: forward_with_offsets(model, params, xn, None)[1])(x)
    a = np.asarray(inputs[k])
    if not np.all(np.isfinite(a)):
        n = int(np.argwhere(~np.all(np.isfinite(a), axis=(1, 2)))[0][0])
        return (f"the inputs of layer {k} (the activations of the layers before it) "
                f"overflowed (example {n})")
    if only_if_inputs_overflow:
        return None
    return (f"the inputs of layer {k} are finite (largest magnitude "
            f"{float(np.max(np.abs(a))):.3e}) but their second moments overflow float64")


def check_factors_finite(facs, problem) -> None:
    """Every ``A``/``G`` of ``facs`` (concrete) is finite; else say what overflowed.

    ``problem`` is ``(model, params, x, y, likelihood, fisher_type, num_samples, key,
    reduced)`` as the factors were computed.
    """
    if not is_concrete(facs):
        return
    for k, f in enumerate(facs):
        for nm, M in (("A", f.A), ("G", f.G)):
            a = np.asarray(M)
            if np.all(np.isfinite(a)):
                continue
            v, idx = first_bad(a)
            why = _explain_input(problem, k) if nm == "A" else _explain_gradient(problem, k)
            raise ValueError(f"{nm} factor of layer {k} is not finite (got {v} at index {idx}): "
                             f"{why}")


def check_ekfac_finite(result, problem) -> None:
    """Every ``S`` / ``S_bias`` of the EKFAC result (concrete) is finite; else say why."""
    if not is_concrete(result):
        return
    for k, e in enumerate(result):
        for nm, M in (("S", e.S), ("S_bias", e.S_bias)):
            if M is None:
                continue
            a = np.asarray(M)
            if np.all(np.isfinite(a)):
                continue
            v, idx = first_bad(a)
            why = (_explain_input(problem, k, only_if_inputs_overflow=True)
                   or _explain_gradient(problem, k))
            raise ValueError(f"EKFAC eigenvalues {nm} of layer {k} are not finite (got {v} at "
                             f"index {idx}): {why}")
