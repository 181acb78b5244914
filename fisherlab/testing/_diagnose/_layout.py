"""Layouts and permutations: ``actual = P desired P^T``, and dropped blocks.

Named layouts, built from the problem's parameter tensors and each tested exactly:

* ``transposed_weight_layout`` -- every weight flattened as ``(in, out)`` (column-major), a
  ``Conv2d`` kernel as ``(kh, kw, in, out)`` (Flax/TensorFlow ``HWIO``);
* ``kronecker_order_swapped`` -- on a K-FAC quantity the same permutation is ``A (x) G`` for
  ``G (x) A``; also ``A (x) G`` permuted to parameter order as if it were ``G (x) A``;
* ``parameter_order`` -- bias before weight in each layer (with the transposed weight: Flax's
  ``{'bias', 'kernel'}``), layers in reverse order, all weights then all biases (or the other
  way round), each layer in the row-major order of the augmented weight ``[W | b]`` (a K-FAC
  block not permuted to parameter order), and their combinations. Any other permutation is
  found by the general search (:mod:`._permutation`) and described by the tensors it moves.

Blocks: ``bias_cross_terms_missing`` (the ``W``--``b`` blocks of each layer are zero: K-FAC with
a separate bias) and ``block_diagonal_only`` (blocks between layers or tensors are zero).
Without a problem the layer structure is guessed from the size ``n`` (a single ``(o, i)``
weight, possibly followed by its bias) and the block partition is inferred from ``actual``.
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing._compare import is_close
from fisherlab.testing._diagnose import _permutation

__all__ = ["named_layouts", "run", "transpose_perm"]


def transpose_perm(n, blocks):
    """Index map: position ``a`` of a transposed-layout vector holds desired index ``p[a]``.

    ``blocks``: ``[(start, out, in), ...]`` weight matrices flattened row-major as ``(out, in)``
    in ``desired`` and as ``(in, out)`` (column-major) in ``actual``.
    """
    p = np.arange(n)
    for start, out, inp in blocks:
        p[start:start + out * inp] = start + np.arange(out * inp).reshape(out, inp).T.ravel()
    return p


def _transposed(idx):
    """Indices of a weight tensor in the transposed layout: ``(in, out)`` or ``(kh, kw, in, out)``."""
    if idx.ndim == 2:
        return idx.T.ravel()
    if idx.ndim == 4:
        return idx.transpose(2, 3, 1, 0).ravel()
    return None


def _layers(problem):
    """``[(W_idx (shape of W), b_idx (out,) or None)]`` of desired indices, per group."""
    groups = {}
    for l in problem.leaves():
        groups.setdefault(l.group, []).append(l)
    out = []
    for g in sorted(groups):
        ls = groups[g]
        if len(ls) == 2 and ls[0].role == "W" and ls[1].role == "b":
            W = np.arange(ls[0].start, ls[0].stop).reshape(ls[0].shape)
            out.append((W, np.arange(ls[1].start, ls[1].stop)))
        else:
            out += [(np.arange(l.start, l.stop).reshape(l.shape), None) for l in ls]
    return out


def _agx(W, b):
    """``A (x) G`` (column-major ``[W | b]``) read as row-major ``[W | b]``, in parameter order."""
    Wm = W.reshape(W.shape[0], -1)
    out, inp = Wm.shape
    aug = np.hstack([Wm, b[:, None]])
    colmajor = aug.T.ravel()
    rows = np.arange(out)[:, None] * (inp + 1)
    to_param = np.concatenate([(rows + np.arange(inp)[None, :]).ravel(), rows[:, 0] + inp])
    return colmajor[to_param]


_PER_LAYER = {
    # name -> (description, function (W_idx, b_idx) -> list of index arrays, or None)
    "std": ("", lambda W, b: [W.ravel()] + ([] if b is None else [b])),
    "T": ("every weight stored transposed -- (in, out), or (kh, kw, in, out) for a Conv2d kernel",
          lambda W, b: None if _transposed(W) is None else
          [_transposed(W)] + ([] if b is None else [b])),
    "bias_first": ("bias before weight in each layer",
                   lambda W, b: None if b is None else [b, W.ravel()]),
    "bias_first_T": ("bias before weight and the weight stored transposed in each layer (Flax's "
                     "{'bias', 'kernel'} order, kernel (in, out))",
                     lambda W, b: None if b is None or _transposed(W) is None else
                     [b, _transposed(W)]),
    "wb_rows": ("each layer in the row-major order of the augmented weight [W | b] (a K-FAC "
                "block G ⊗ A not permuted to parameter order)",
                lambda W, b: None if b is None else
                [np.hstack([W.reshape(W.shape[0], -1), b[:, None]]).ravel()]),
    "agx": ("A ⊗ G for G ⊗ A, then permuted to parameter order as if it were G ⊗ A (the "
            "Kronecker order swapped, read with the augmented [W | b] labels)",
            lambda W, b: None if b is None else [_agx(W, b)]),
}


def named_layouts(problem):
    """``[(name, description, permutation)]``: the named parameter orders of ``problem``."""
    layers = _layers(problem)
    n = problem.num_params
    seen, out = {np.arange(n).tobytes()}, []

    def add(name, desc, pieces):
        if pieces is None:
            return
        p = np.concatenate(pieces)
        if len(p) != n or p.tobytes() in seen:
            return
        seen.add(p.tobytes())
        out.append((name, desc, p))

    for arrangement in ("standard", "reversed"):
        order = layers if arrangement == "standard" else layers[::-1]
        if arrangement == "reversed" and len(layers) < 2:
            continue
        for lay, (desc, fn) in _PER_LAYER.items():
            pieces = [fn(W, b) for W, b in order]
            if any(p is None for p in pieces):
                continue
            words = [d for d in ("layers in reverse order" if arrangement == "reversed" else "",
                                 desc) if d]
            add(f"{arrangement}/{lay}", " and ".join(words), [q for p in pieces for q in p])
    if len(layers) > 1 and all(b is not None for _, b in layers):
        for lay in ("std", "T"):
            Ws = [(W.ravel() if lay == "std" else _transposed(W)) for W, _ in layers]
            if any(w is None for w in Ws):
                continue
            bs = [b for _, b in layers]
            tail = "" if lay == "std" else " (weights stored transposed)"
            add(f"weights_then_biases/{lay}", "all weights first, then all biases" + tail,
                Ws + bs)
            add(f"biases_then_weights/{lay}", "all biases first, then all weights" + tail,
                bs + Ws)
    return out


def _kind_of(name, quantity):
    kfac = bool(quantity and quantity.startswith("kfac"))
    if name == "standard/T":
        return "kronecker_order_swapped" if kfac else "transposed_weight_layout"
    if name == "standard/agx":
        return "kronecker_order_swapped"
    return "parameter_order"


_T_WHAT = ("desired with every weight matrix flattened as (in, out) instead of (out, in) "
           "(column-major / transposed W)")
_AG_WHAT = "A (x) G instead of G (x) A, i.e. W flattened column-major (cvec for rvec)"


def _permutations(ctx):
    X, Y, problem, q, col = ctx.X, ctx.Y, ctx.problem, ctx.quantity, ctx.col
    n = X.shape[0]
    if ctx.full:
        for name, desc, p in named_layouts(problem):
            kind = _kind_of(name, q)
            what = (_AG_WHAT if kind == "kronecker_order_swapped" and name == "standard/T" else
                    _T_WHAT if kind == "transposed_weight_layout" else f"desired with {desc}")
            col.test(kind, Y[np.ix_(p, p)], what, 30, allow_factor=True,
                     data={"permutation": p, "layout": name, "description": desc})
        return
    kfac = bool(q and q.startswith("kfac"))
    kind = "kronecker_order_swapped" if kfac else "transposed_weight_layout"
    for o in range(2, n):
        for with_bias in (False, True):
            rest = n - o if with_bias else n
            if rest % o or rest // o < 2:
                continue
            i_ = rest // o
            p = transpose_perm(n, [(0, o, i_)])
            shape_txt = f"a ({o}, {i_}) weight" + (" followed by its bias" if with_bias else "")
            Z = Y[np.ix_(p, p)]
            data = {"permutation": p, "layout": f"transposed ({o}, {i_})"}
            col.test(kind, Z, (_AG_WHAT if kfac else _T_WHAT) + f" [{shape_txt}]", 30,
                     data=data)
            if not kfac:
                col.test("kronecker_order_swapped", Z, f"the same permutation read as A (x) G "
                         f"instead of G (x) A [{shape_txt}]", 34, data=data)


def _masked(Y, groups):
    """``Y`` with every entry between different groups set to 0 (``groups[i]`` per index)."""
    g = np.asarray(groups)
    return np.where(g[:, None] == g[None, :], Y, 0.0)


def _inferred_partition(X, tol):
    """Contiguous blocks of ``X``: split at ``k`` where both off-diagonal corners are ~0.

    Each split's corners must be below ``tol ||X|| / (2 sqrt(n))``, so that the entries
    dropped by all splits together stay below ``tol ||X||``.
    """
    n = X.shape[0]
    cut = tol * np.linalg.norm(X) / (2.0 * np.sqrt(n))
    groups, g = np.zeros(n, int), 0
    for k in range(1, n):
        if np.linalg.norm(X[:k, k:]) <= cut and np.linalg.norm(X[k:, :k]) <= cut:
            g += 1
        groups[k] = g
    return groups


_SEPARATE = ("desired without the W-b cross terms of each layer (a separate bias instead of "
             "the augmented [W b])")


def _blocks(ctx):
    X, Y, problem, tol, col = ctx.X, ctx.Y, ctx.problem, ctx.tol, ctx.col
    n = X.shape[0]
    if not ctx.full:
        groups = _inferred_partition(X, tol)
        if groups[-1] > 0:
            sizes = np.bincount(groups).tolist()
            col.test("block_diagonal_only", _masked(Y, groups),
                     f"the block-diagonal part of desired with blocks of sizes {sizes}", 32,
                     data={"block_sizes": sizes})
        return
    leaves = problem.leaves()
    layer_g, leaf_g = np.zeros(n, int), np.zeros(n, int)
    for i, l in enumerate(leaves):
        layer_g[l.start:l.stop] = l.group
        leaf_g[l.start:l.stop] = i
    Z_layer, Z_leaf = _masked(Y, layer_g), _masked(Y, leaf_g)
    wb = np.ones((n, n), bool)
    for l1 in leaves:
        for l2 in leaves:
            if l1.group == l2.group and l1 is not l2 and {l1.role, l2.role} == {"W", "b"}:
                wb[l1.start:l1.stop, l2.start:l2.stop] = False
    col.test("bias_cross_terms_missing", np.where(wb, Y, 0.0), _SEPARATE, 31)
    if is_close(Z_layer, Y, tol, 0.0):  # desired is layer-block-diagonal already (K-FAC)
        col.test("bias_cross_terms_missing", Z_leaf, _SEPARATE, 31)
    else:
        col.test("block_diagonal_only", Z_layer,
                 "the layer-block-diagonal part of desired (cross-layer blocks dropped)", 32,
                 data={"blocks": "layers"})
        col.test("block_diagonal_only", Z_leaf,
                 "the block-diagonal part of desired with one block per parameter tensor "
                 "(cross-layer blocks and the W-b cross terms dropped)", 33,
                 data={"blocks": "tensors"})


def run(ctx):
    if not ctx.square:
        return
    _permutations(ctx)
    _blocks(ctx)
    if not ctx.col.has_reproduction():
        _permutation.run(ctx)
