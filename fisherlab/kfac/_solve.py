"""Damped K-FAC solves: exact Tikhonov damping through eigendecompositions, or pi-damping;
exact blocks damped whole."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import reference
from fisherlab._core.validation import as_float_array, check_choice
from fisherlab.kfac._checks import check_factor, is_concrete
from fisherlab.kfac._inputs import check_factor_list
from fisherlab.kfac._types import ExactBlock

__all__ = ["solve"]

METHODS = ("exact", "factored")

# a denominator below this (relative to the largest) is treated as singular
_SINGULAR_RTOL = 1e-13


def _check_damping(damping):
    if not is_concrete(damping):
        return damping
    ok = isinstance(damping, numbers.Real) or (
        isinstance(damping, (np.ndarray, jax.Array)) and np.ndim(damping) == 0
        and np.issubdtype(np.asarray(damping).dtype, np.floating | np.integer))
    if isinstance(damping, (bool, np.bool_)) or not ok:
        raise TypeError(f"damping must be a real scalar, got {damping!r}")
    try:
        v = float(damping)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"damping must be a real scalar, got {damping!r}") from exc
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"damping must be a finite number >= 0, got {damping!r}")
    return v


def _check_nonsingular(denominators, k: int, what: str, damping):
    """The eigenvalues ``denominators`` of a damped PSD system are bounded away from zero."""
    if not is_concrete(denominators, damping):
        return
    d = np.asarray(denominators)
    scale = max(float(np.max(np.abs(d))), np.finfo(np.float64).tiny)
    if float(np.min(d)) <= _SINGULAR_RTOL * scale:
        hint = ("with damping = 0 the factors must be nonsingular; use a damping > 0"
                if float(damping) == 0 else
                f"damping = {float(damping)!r} is negligible next to the largest eigenvalue; "
                "use a larger damping")
        raise ValueError(
            f"factors[{k}]: {what} is singular (smallest eigenvalue {float(np.min(d)):.3e}, "
            f"largest {scale:.3e}): {hint}")


def _check_solution_finite(Y, k: int, part: str):
    if not is_concrete(Y):
        return
    a = np.asarray(Y)
    if not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(
            f"the solve result of layer {k} ({part}) is not finite (got {a[bad]} at index "
            f"{bad}): grads[{k}] divided by the damped eigenvalues overflowed float64")


def _eigh(M):
    # M was checked symmetric to 1e-8 relative (when concrete): averaging with M^T only removes
    # that rounding-level asymmetry, so both triangles are used consistently.
    w, U = jnp.linalg.eigh((M + M.T) / 2)
    return w, U


def _factor(M, k: int, nm: str):
    """``factors[k].A``/``.G`` as float64, checked finite, symmetric and PSD when concrete."""
    name = f"factors[{k}].{nm}"
    arr = as_float_array(M, name, ndim=2)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {tuple(arr.shape)}")
    role = "input" if nm == "A" else "pre-activation gradient"
    check_factor(arr, f"{name} (the {role} factor of layer {k})", dtype=arr.dtype)
    return jnp.asarray(arr, jnp.float64)


def _layer_grad_matrix(gW, gb, A_dim):
    """``(X, separate)``: ``X = [gW b]`` (augmented) or ``gW`` (separate), as a 2-d matrix."""
    out = gW.shape[0]
    X = gW.reshape((out, -1))
    if A_dim == X.shape[1] + 1:
        return jnp.concatenate([X, gb[:, None]], axis=1), False
    if A_dim == X.shape[1]:
        return X, True
    raise ValueError(
        f"grads do not match the factors: W gradient of shape {tuple(gW.shape)} (in' = "
        f"{X.shape[1]}) needs A of size {X.shape[1] + 1} (augmented) or {X.shape[1]} "
        f"(separate), got A of size {A_dim}")


def _exact_entry(f, g, k: int):
    """``(B, v, unflatten)`` for an :class:`ExactBlock` entry and its gradient tuple."""
    B = as_float_array(f.B, f"factors[{k}].B", ndim=2)
    if B.shape[0] != B.shape[1]:
        raise ValueError(f"factors[{k}].B must be a square matrix, got shape {tuple(B.shape)}")
    check_factor(B, f"factors[{k}].B (the exact block of layer {k})", dtype=B.dtype)
    if not isinstance(g, (list, tuple)) or not g:
        raise ValueError(f"grads[{k}] must be a tuple of the layer's parameter gradients (an "
                         f"ExactBlock), got {type(g).__name__}")
    parts = [jnp.asarray(as_float_array(t, f"grads[{k}][{i}]"), jnp.float64)
             for i, t in enumerate(g)]
    sizes = [int(np.prod(t.shape, dtype=np.int64)) for t in parts]
    if sum(sizes) != B.shape[0]:
        raise ValueError(
            f"grads[{k}] (shapes {[tuple(t.shape) for t in parts]}, {sum(sizes)} entries) does "
            f"not match factors[{k}].B of shape {tuple(B.shape)}")
    v = jnp.concatenate([t.reshape(-1) for t in parts])
    offsets = np.cumsum([0] + sizes)

    def unflatten(y):
        return tuple(y[offsets[i]:offsets[i + 1]].reshape(t.shape) for i, t in enumerate(parts))

    return jnp.asarray(B, jnp.float64), v, unflatten


def _group(grads, model, factors):
    """``(per-block gradient tuples, regroup)`` of a ``params``-structured ``grads``: one
    ``(gW, gb)`` pair per Dense block (two per MultiHeadAttention), ``(gE,)`` per Embedding and
    the layer's own parameters per LayerNorm/RMSNorm."""
    found = check_factor_list(factors, model)
    leaves, treedef = jax.tree_util.tree_flatten(grads)
    counts = [1 if b.kind == "embedding" else 2 if b.kind == "dense" else
              len(b.layer.param_spec()) for b in found]
    if len(leaves) != sum(counts):
        raise ValueError(
            f"grads must have the structure of the model's params ({sum(counts)} arrays), got "
            f"{len(leaves)} arrays")
    starts = np.cumsum([0] + counts)
    grouped = [tuple(leaves[starts[i]:starts[i + 1]]) for i in range(len(found))]

    def regroup(result):
        return jax.tree_util.tree_unflatten(treedef, [t for r in result for t in r])

    return grouped, regroup


@reference
def solve(factors, grads, damping, *, method: str = "exact", model=None):
    r"""Apply the damped inverse of the K-FAC matrix to a gradient, layer by layer.

    For a layer with factors ``(A, G)`` and gradient ``X = [gW gb]`` (``(out, in'+1)``; with
    separate bias factors, ``X = gW`` and the bias is handled by its own block ``G``):

    * ``method="exact"`` -- ``(G (x) A + lambda I)^{-1} vec(X)`` exactly (the matrix written
      ``A (x) G`` in column-major conventions). With ``A = U_A diag(alpha) U_A^T`` and
      ``G = U_G diag(gamma) U_G^T``:

      .. math::  X \mapsto U_G \big[(U_G^\top X U_A) \oslash (\gamma \alpha^\top + \lambda)\big] U_A^\top

      -- no dense inverse is ever formed.
    * ``method="factored"`` -- Martens & Grosse (2015, §6.3) pi-damping:
      ``((G + sqrt(lambda)/pi I) (x) (A + pi sqrt(lambda) I))^{-1}``, i.e.
      ``X -> (G + sqrt(lambda)/pi I)^{-1} X (A + pi sqrt(lambda) I)^{-1}`` with
      ``pi = sqrt((tr A / dim A) / (tr G / dim G))``. It differs from exact damping by
      ``sqrt(lambda) (G/pi (x) I + pi I (x) A)`` (see the proofs). For a separate bias the bias
      block ``G`` is treated as ``G (x) [1]`` (so ``A = [1]``, ``pi = sqrt(1 / (tr G / dim G))``).

    An embedding's block ``A (x) G`` (gradient ``gE`` of shape ``(num_embeddings, d)``) is solved
    as the layer above with ``X = gE^T``. An :class:`~fisherlab.kfac.ExactBlock` ``B`` (a
    ``LayerNorm``/``RMSNorm``) has no Kronecker factors to split the damping between, so both
    methods apply Tikhonov damping to the whole block, ``(B + lambda I)^{-1} v`` with ``v`` the
    layer's gradients concatenated in parameter order -- the rule of the ``"exact"`` method --
    solved through the eigendecomposition of ``B`` (a dense PSD solve).

    Args:
      factors: list of :class:`~fisherlab.kfac.KFACFactors` (augmented or separate bias; the
        layout is read from the shape of ``A``) and :class:`~fisherlab.kfac.ExactBlock`.
      grads: one entry per factor: ``(gW, gb)`` for a Dense/Conv2d block (``gW`` of shape
        ``(out, in)`` or ``(out, in, kh, kw)``), ``(gE,)`` for an embedding, the layer's
        parameter gradients (``(gw, gb)`` or ``(gw,)``) for an ``ExactBlock``. With ``model``,
        ``grads`` has the structure of the model's ``params`` instead.
      damping: ``lambda >= 0``. With ``lambda = 0`` the factors must be nonsingular (else a
        ``ValueError``; checked when the values are concrete).
      method: ``"exact"`` | ``"factored"``.
      model: optional :class:`fisherlab.nn.Sequential` the factors were computed for; given, the
        factors are checked against it and ``grads`` is read (and returned) in the structure of
        its ``params`` (a MultiHeadAttention's four arrays are its two Dense blocks).

    Returns:
      float64 arrays in the structure and shapes of ``grads``.

    Raises:
      ValueError: on concrete values, when a factor is not finite, not symmetric (relative
        asymmetry ``||M - M^T||_F / ||M||_F > 1e-8``, the threshold of ``fisherlab.updates``'
        dense solves; nothing is symmetrised silently) or not positive semi-definite (smallest
        eigenvalue ``< -1e-10`` times the largest magnitude; for factors given in a lower
        precision both tolerances grow to ``16 eps`` and ``4 d eps`` of that dtype) -- the
        message names the factor, the layer and the eigenvalue; when a damped system is
        singular (``lambda = 0`` with a singular factor, or ``lambda`` negligible next to the
        largest eigenvalue), naming the smallest eigenvalue; and when the result overflows. An
        ``ExactBlock``'s ``B`` is checked in the same way (finite, symmetric, PSD).
        Under a caller's ``jax.jit`` (traced values) none of this can be checked.

    References:
      J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
      approximate curvature", ICML 2015 (§6.3, factored Tikhonov damping). M. Johnson,
      "Natural gradients and K-FAC" (note, 2017; the Kronecker inverse identities).

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> f = fl.kfac.factors(model, params, x, None, fl.Categorical())
    >>> step = fl.kfac.solve(f, params, 0.1)  # any [(gW, gb), ...] of the params' shapes
    >>> [tuple(t.shape) for t in step[0]]
    [(4, 3), (4,)]

    Derivations: ``kfac_damping.exact_eigendecomposition``, ``kfac_damping.factored_residual``,
    ``kfac_damping.pi_trace_norm``, ``kronecker.eigenpairs``, ``kronecker.inverse``,
    ``kronecker.mixed_product``, ``kronecker.trace_det_frobenius``, ``kronecker.vec``.
    """
    check_choice(method, "method", METHODS)
    damping = _check_damping(damping)
    if not isinstance(factors, (list, tuple)):
        raise TypeError(f"factors must be a list of KFACFactors, got {type(factors).__name__}")
    regroup = list
    if model is not None:
        grads, regroup = _group(grads, model, factors)
    if not isinstance(grads, (list, tuple)) or len(grads) != len(factors):
        raise ValueError(
            f"grads must be a list of {len(factors)} (gW, gb) pairs (one per layer of the "
            f"factors), got {type(grads).__name__} of length "
            f"{len(grads) if hasattr(grads, '__len__') else '?'}"
            + ("" if model is not None else
               "; for grads in the structure of the model's params (nested Residual/Sequential "
               "lists, a MultiHeadAttention's four arrays) pass model="))
    result = []
    for k, (f, g) in enumerate(zip(factors, grads)):
        if isinstance(f, ExactBlock):
            B, v, unflatten = _exact_entry(f, g, k)
            y, denom = _dense_kernel(B, v, damping)
            _check_nonsingular(denom, k, "B + damping I", damping)
            _check_solution_finite(y, k, "exact block")
            result.append(unflatten(y))
            continue
        if not isinstance(f, (list, tuple)) or len(f) != 2:
            raise ValueError(f"factors[{k}] must be a KFACFactors (A, G) pair or an ExactBlock, "
                             f"got {type(f).__name__}")
        A, G = (_factor(M, k, nm) for nm, M in (("A", f[0]), ("G", f[1])))
        if isinstance(g, (list, tuple)) and len(g) == 1:  # an embedding: E (num, d), A (x) G
            gE = jnp.asarray(as_float_array(g[0], f"grads[{k}][0]", ndim=2), jnp.float64)
            if gE.shape != (A.shape[0], G.shape[0]):
                raise ValueError(
                    f"grads[{k}] (an embedding gradient of shape {tuple(gE.shape)}) does not "
                    f"match factors[{k}] (A {tuple(A.shape)}, G {tuple(G.shape)}): expected "
                    f"shape {(A.shape[0], G.shape[0])}")
            if method == "exact":
                Y, denom = _exact_kernel(A, G, gE.T, damping)
                _check_nonsingular(denom, k, "A (x) G + damping I", damping)
            else:
                _check_traces(A, G, k)
                Y, da, dg = _factored_kernel(A, G, gE.T, damping)
                _check_nonsingular(da, k, "A + pi sqrt(damping) I", damping)
                _check_nonsingular(dg, k, "G + sqrt(damping)/pi I", damping)
            _check_solution_finite(Y, k, "embedding")
            result.append((Y.T,))
            continue
        if not isinstance(g, (list, tuple)) or len(g) != 2:
            raise ValueError(f"grads[{k}] must be a (gW, gb) pair, got {type(g).__name__}")
        gW = jnp.asarray(as_float_array(g[0], f"grads[{k}][0]", min_ndim=2), jnp.float64)
        gb = jnp.asarray(as_float_array(g[1], f"grads[{k}][1]", ndim=1), jnp.float64)
        if G.shape != (gW.shape[0], gW.shape[0]) or gb.shape != (gW.shape[0],):
            raise ValueError(
                f"grads[{k}] (gW {tuple(gW.shape)}, gb {tuple(gb.shape)}) does not match "
                f"factors[{k}].G of shape {tuple(G.shape)}")
        X, separate = _layer_grad_matrix(gW, gb, A.shape[0])
        if method == "exact":
            Y, denom = _exact_kernel(A, G, X, damping)
            _check_nonsingular(denom, k, "G (x) A + damping I", damping)
            if separate:
                yb, dg = _exact_kernel(jnp.ones((1, 1), jnp.float64), G, gb[:, None], damping)
                _check_nonsingular(dg, k, "the bias block G + damping I", damping)
                yb = yb[:, 0]
        else:
            _check_traces(A, G, k)
            Y, da, dg = _factored_kernel(A, G, X, damping)
            _check_nonsingular(da, k, "A + pi sqrt(damping) I", damping)
            _check_nonsingular(dg, k, "G + sqrt(damping)/pi I", damping)
            if separate:
                one = jnp.ones((1, 1), jnp.float64)
                yb, da, dg = _factored_kernel(one, G, gb[:, None], damping)
                _check_nonsingular(dg, k, "the bias block G + sqrt(damping)/pi I", damping)
                yb = yb[:, 0]
        _check_solution_finite(Y, k, "weights" if separate else "[W b]")
        if separate:
            _check_solution_finite(yb, k, "bias")
            dW, db = Y.reshape(gW.shape), yb
        else:
            dW, db = Y[:, :-1].reshape(gW.shape), Y[:, -1]
        result.append((dW, db))
    return regroup(result)


@jax.jit
def _dense_kernel(B, v, damping):
    w, U = _eigh(B)
    denom = w + damping
    return U @ ((U.T @ v) / denom), denom


@jax.jit
def _exact_kernel(A, G, X, damping):
    alpha, UA = _eigh(A)
    gamma, UG = _eigh(G)
    denom = gamma[:, None] * alpha[None, :] + damping
    return UG @ ((UG.T @ X @ UA) / denom) @ UA.T, denom


def _check_traces(A, G, k):
    if not is_concrete(A, G):
        return
    for M, nm in ((A, "A"), (G, "G")):
        tr = float(jnp.trace(M))
        if not tr > 0:
            raise ValueError(
                f"factors[{k}]: tr {nm} = {tr:.3e} must be > 0 for pi-damping "
                f"(pi = sqrt((tr A/dim A)/(tr G/dim G)))")


@jax.jit
def _factored_kernel(A, G, X, damping):
    pi = jnp.sqrt((jnp.trace(A) / A.shape[0]) / (jnp.trace(G) / G.shape[0]))
    sq = jnp.sqrt(jnp.asarray(damping, jnp.float64))
    alpha, UA = _eigh(A)
    gamma, UG = _eigh(G)
    da = alpha + pi * sq
    dg = gamma + sq / pi
    Y = UG @ ((UG.T @ X @ UA) / (dg[:, None] * da[None, :])) @ UA.T
    return Y, da, dg
