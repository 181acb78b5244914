r"""Layer-wise (Kronecker-structured) Gauss-Newton-type matrices for ``fl.nn.Sequential`` MLPs.

For a chain of ``Dense`` layers and elementwise activations, the Jacobian of the outputs
with respect to a weight has Kronecker structure: with ``abar_k = [a_{k-1}; 1]`` the
(augmented) input of layer ``k`` and ``B_k = d f / d s_k`` (``C x o_k``, ``s_k`` its
pre-activation),

.. math:: \frac{\partial f_c}{\partial [W_k\ b_k]_{o i}} = (B_k)_{c o}\, (\bar a_k)_i ,

so every block of ``M = w sum_n J_n^T Lambda_n J_n`` factorises per example:

.. math::
    M_{kl}[(o,i),(p,j)] = w \sum_n (D_n)_{op}\, (\bar a_{n,k})_i (\bar a_{n,l})_j,
    \qquad D_n = B_{n}^\top \Lambda_n B_{n} \ (O \times O,\ O = \textstyle\sum_k o_k).

The sum over the ``C`` outputs is done once in the small ``O x O`` space, and each block is
one matrix product ``(o_k o_l x B)(B x i_k i_l)``: about ``2 N d^2`` flops for the whole
matrix instead of ``2 N C d^2`` for ``J^T (Lambda J)`` -- a factor ``C`` fewer. This is the
same identity that K-FAC starts from (Martens & Grosse, 2015, §3), used here *without* its
approximation (all cross terms kept). Exact: tested against the generic Jacobian path
and the naive per-example loop.

Only ``Sequential`` models made of ``Dense`` layers (on 1-D inputs) and elementwise
activations (``Tanh``, ``Sigmoid``, ``ReLU``, ``Identity``) qualify (:func:`supports`);
everything else uses the generic path.

References:
  J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
  curvature", ICML 2015, §3; M. Johnson, "Natural gradients and K-FAC" (note, 2017), §8 and App. A.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab import nn as _nn
from fisherlab._core import sampling
from fisherlab.curvature._chunking import HIGHEST, accumulate, symmetrize

__all__ = ["build", "default_chunk_size", "supports"]


def _elementwise_types():
    return tuple(t for t in (getattr(_nn, n, None) for n in ("Tanh", "Sigmoid", "ReLU",
                                                              "Identity")) if t is not None)


def supports(f, params, x) -> bool:
    """Whether ``f`` is a ``Sequential`` of Dense + elementwise layers on (N, in) inputs."""
    if not isinstance(f, _nn.Sequential) or not hasattr(x, "ndim") or x.ndim != 2:
        return False
    allowed = (_nn.Dense,) + _elementwise_types()
    if not all(type(layer) in allowed for layer in f.layers):
        return False
    dense = [layer for layer in f.layers if isinstance(layer, _nn.Dense)]
    if not dense or x.shape[1] != dense[0].in_features:
        return False
    if not isinstance(params, (list, tuple)) or len(params) != len(dense):
        return False
    for layer, p in zip(dense, params):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            return False
        W, b = p
        if tuple(W.shape) != (layer.out_features, layer.in_features) or tuple(b.shape) != (
                layer.out_features,):
            return False
    return True


def _block(Dkl, a, c):
    """Block ``sum_b Dkl[b,o,p] [a_b;1]_i [c_b;1]_j`` laid out as ``[[W W, W b], [b W, b b]]``.

    ``W`` indices ``(o, i)`` row-major then ``b`` indices ``o``: the ravel order of
    ``(W_k, b_k)`` on both sides. Each part is one matrix product over the batch.
    """
    nb, ok, ol = Dkl.shape
    ik, il = a.shape[1], c.shape[1]
    Dm = Dkl.reshape(nb, ok * ol).T  # (o p, B)
    ac = (a[:, :, None] * c[:, None, :]).reshape(nb, ik * il)
    ww = jnp.matmul(Dm, ac, precision=HIGHEST).reshape(ok, ol, ik, il)
    ww = ww.transpose(0, 2, 1, 3).reshape(ok * ik, ol * il)
    wb = jnp.matmul(Dm, a, precision=HIGHEST).reshape(ok, ol, ik)
    wb = wb.transpose(0, 2, 1).reshape(ok * ik, ol)
    bw = jnp.matmul(Dm, c, precision=HIGHEST).reshape(ok, ol * il)
    bb = jnp.sum(Dkl, axis=0)
    return jnp.block([[ww, wb], [bw, bb]])


def default_chunk_size(model, num_examples: int, num_outputs: int) -> int:
    """Examples per chunk: per-example intermediates ``O^2 + C O + max_k (i_k i_l + o_k o_l)``
    float64 entries kept under ``2^24``."""
    dense = [layer for layer in model.layers if isinstance(layer, _nn.Dense)]
    total_out = sum(layer.out_features for layer in dense)
    widest = max(layer.in_features for layer in dense) ** 2 + max(
        layer.out_features for layer in dense) ** 2
    per_example = total_out ** 2 + num_outputs * total_out + 2 * widest
    return int(max(1, min(num_examples, 2 ** 24 // per_example)))


def build(model, likelihood, kind: str, num_samples: int):
    """``run(params, x_chunks, extra_chunks, w_chunks) -> (d, d)`` for ggn/fisher/fisher_mc."""
    dense = [layer for layer in model.layers if isinstance(layer, _nn.Dense)]
    outs_k = [layer.out_features for layer in dense]
    ins_k = [layer.in_features for layer in dense]
    offsets = np.concatenate([[0], np.cumsum(outs_k)])

    def forward(params, eps, xn):
        a, k, inputs = xn, 0, []
        for layer in model.layers:
            if isinstance(layer, _nn.Dense):
                inputs.append(a)
                a = layer(params[k], a) + eps[k]
                k += 1
            else:
                a = layer(None, a)
        return a, (a, inputs)

    def run(params, x_chunks, extra_chunks, w_chunks):
        d = sum(o * (i + 1) for o, i in zip(outs_k, ins_k))
        eps0 = tuple(jnp.zeros((o,), jnp.float64) for o in outs_k)
        per_example = jax.vmap(jax.jacrev(lambda e, xn: forward(params, e, xn), has_aux=True),
                               in_axes=(None, 0))

        def body(chunk):
            xb, extra, wb = chunk
            Bs, (outs, inputs) = per_example(eps0, xb)  # Bs[k]: (B, C, o_k)
            Ball = jnp.concatenate(Bs, axis=2)  # (B, C, O)
            if kind == "ggn":
                lam = jax.vmap(likelihood._output_hessian)(outs, extra)
            elif kind == "fisher":
                lam = jax.vmap(likelihood._output_fisher)(outs)
            else:  # fisher_mc
                scores = sampling.output_grads(likelihood, outs, sampling.sample_each(
                    likelihood, extra, outs, num_samples))
                lam = jnp.einsum("bsc,bse->bce", scores, scores,
                                 precision=HIGHEST) / num_samples
            lam = lam * wb[:, None, None]
            D = jnp.einsum("bco,bce,bep->bop", Ball, lam, Ball, precision=HIGHEST)
            nb = xb.shape[0]
            blocks = {}
            L = len(dense)
            for k in range(L):
                for l in range(k, L):
                    blocks[k, l] = _block(D[:, offsets[k]:offsets[k + 1],
                                            offsets[l]:offsets[l + 1]], inputs[k], inputs[l])
            return jnp.block([[blocks[k, l] if l >= k else blocks[l, k].T for l in range(L)]
                              for k in range(L)])

        m = accumulate(body, jnp.zeros((d, d), jnp.float64), (x_chunks, extra_chunks, w_chunks))
        return symmetrize(m)

    return run
