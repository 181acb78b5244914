"""Output-space matrix formulas (``output_matrix_formula``): ``J^T M' J`` for a wrong ``M'``.

``desired`` is rebuilt (:mod:`._rebuild`) with its per-example output-space matrix replaced by
a named wrong one -- for the dense Fisher/GGN through ``J``, for the K-FAC ``G`` factors through
the pre-activation Jacobians:

* Categorical (``p = softmax(f)``): ``diag(p)`` without ``- p p^T``; the targets ``q`` in place
  of ``p``, one-hot (``diag(q) - q q^T = 0``) or label-smoothed ``q = (1 - e) e_y + e/C`` with
  the smoothing ``e`` fitted (a quartic least-squares problem in ``e``, then tested exactly);
  the unweighted class average ``(1/C) sum_k (p - e_k)(p - e_k)^T`` (the weights ``p_k``
  forgotten);
* Bernoulli (``p = sigmoid(f)``): ``diag(p)`` for ``diag(p (1 - p))``; the targets in place of
  ``p`` (one-hot, or smoothed with a fitted ``e``); the GGN split *after* the sigmoid of a BCE
  loss, ``sigma'^2 d^2 BCE / dp^2 = diag((y - p)^2)``;
* Poisson (``lambda = exp(f)``): the rate's Fisher ``diag(1/lambda)`` for the log-rate's
  ``diag(lambda)``; ``diag(lambda^2)``; the counts ``y`` in place of ``lambda``;
* Gaussian with mean and log-variance outputs: the log-standard-deviation Fisher block ``2``
  for the log-variance block ``1/2``; the variance's Fisher ``1/(2 sigma^4)`` in that block.

References:
  F. Kunstner, L. Balles, P. Hennig, "Limitations of the empirical Fisher approximation for
  natural gradient descent", NeurIPS 2019; N. Schraudolph, "Fast curvature matrix-vector
  products for second-order gradient descent", Neural Computation 2002 (the GGN split).
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing._diagnose import _network, _rebuild, _scalar

__all__ = ["candidates", "run"]


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _diag(v):
    return np.einsum("nc,cd->ncd", v, np.eye(v.shape[-1]))


def _cat(q):
    return _diag(q) - np.einsum("nc,nd->ncd", q, q)


def candidates(problem):
    """``[(name, description, M'(e) or M' (N Q, C, C), smoothing)]`` for the likelihood.

    ``smoothing`` is True when the entry is a function of the smoothing ``e`` in ``[0, 1]``.
    """
    out = _network.flat_outputs(problem)
    N, Q, C = out.shape
    f = out.reshape(N * Q, C)
    name = type(problem.likelihood).__name__
    res = []
    if name == "Categorical":
        p = _softmax(f)
        y = np.asarray(_network.flat_targets(problem)).astype(int).reshape(-1)
        onehot = np.eye(C)[y]
        res += [("softmax_diag_p", "the softmax Fisher without its -p pᵀ term: diag(p)",
                 _diag(p), False),
                ("softmax_one_hot_targets", "the softmax Fisher diag(q) - q qᵀ at the one-hot "
                 "targets q in place of p (identically zero)", _cat(onehot), False),
                ("softmax_smoothed_targets", "the softmax Fisher diag(q) - q qᵀ at the "
                 "label-smoothed targets q = (1 - e) e_y + e/C in place of p",
                 lambda e: _cat((1 - e) * onehot + e / C), True),
                ("softmax_unweighted_class_average", "the unweighted class average (1/C) "
                 "Σ_k (p - e_k)(p - e_k)ᵀ (the weights p_k of the expectation forgotten)",
                 sum(np.einsum("nc,nd->ncd", p - np.eye(C)[k], p - np.eye(C)[k])
                     for k in range(C)) / C, False)]
    elif name == "Bernoulli":
        p = 1.0 / (1.0 + np.exp(-f))
        y = np.asarray(_network.flat_targets(problem), float).reshape(N * Q, C)
        res += [("bernoulli_p_for_p_one_minus_p", "diag(p) instead of diag(p (1 - p))",
                 _diag(p), False),
                ("bernoulli_targets", "diag(q (1 - q)) at the targets q in place of p "
                 "(identically zero for 0/1 targets)", _diag(y * (1 - y)), False),
                ("bernoulli_smoothed_targets", "diag(q (1 - q)) at the smoothed targets "
                 "q = (1 - e) y + e/2 in place of p",
                 lambda e: _diag(((1 - e) * y + e / 2) * (1 - (1 - e) * y - e / 2)), True),
                ("bce_ggn_split_after_sigmoid", "the GGN split after the sigmoid of a BCE "
                 "loss: sigmoid'(f)^2 · d²BCE/dp² = diag((y - p)^2)", _diag((y - p) ** 2), False)]
    elif name == "Poisson":
        lam = np.exp(f)
        y = np.asarray(_network.flat_targets(problem), float).reshape(N * Q, C)
        res += [("poisson_rate_fisher", "the Fisher of the rate, diag(1/lambda), for the "
                 "Fisher of the log-rate, diag(lambda)", _diag(1.0 / lam), False),
                ("poisson_rate_squared", "diag(lambda^2) (the chain-rule factor lambda applied "
                 "twice) for diag(lambda)", _diag(lam ** 2), False),
                ("poisson_counts_for_rate", "the counts y in place of the rate: diag(y)",
                 _diag(y), False)]
    elif name == "GaussianMeanVariance":
        D = C // 2
        prec = np.exp(-f[:, D:])
        res += [("log_std_block", "the Fisher of a log-standard-deviation output (block 2) "
                 "for the log-variance's (block 1/2)",
                 _diag(np.concatenate([prec, np.full_like(prec, 2.0)], 1)), False),
                ("variance_block", "the Fisher of the variance, 1/(2 sigma^4), in the "
                 "log-variance block (1/2)",
                 _diag(np.concatenate([prec, prec ** 2 / 2], 1)), False)]
    return [(n, d, (lambda e, m=m: _blocks(m(e), N, Q)) if s else _blocks(m, N, Q), s)
            for n, d, m, s in res]


def _blocks(M, N, Q):
    C = M.shape[-1]
    return _network._block_diag(M.reshape(N, Q, C, C))


def _fit_smoothing(X, build):
    """The smoothing ``e`` in ``(0, 1]`` minimising ``||X - build(e)||`` (``build`` quadratic)."""
    Z0, Zh, Z1 = build(0.0), build(0.5), build(1.0)
    # Z(e) = Z0 + e A + e^2 B
    B = 2 * (Z1 - 2 * Zh + Z0)
    A = Z1 - Z0 - B
    R = X - Z0
    a1 = -2 * np.vdot(R, A)
    a2 = np.vdot(A, A) - 2 * np.vdot(R, B)
    a3 = 2 * np.vdot(A, B)
    a4 = np.vdot(B, B)
    roots = np.roots([4 * a4, 3 * a3, 2 * a2, a1]) if a4 or a3 or a2 else np.array([])
    best, val = None, np.inf
    for r in roots:
        if abs(r.imag) < 1e-9 and 0 < r.real <= 1:
            e = float(r.real)
            v = np.linalg.norm(X - Z0 - e * A - e * e * B)
            if v < val:
                best, val = e, v
    return best


def run(ctx):
    rb = _rebuild.calibrate(ctx)
    if rb is None or rb.output_kind == "empirical" or (rb.kfac is not None
                                                       and rb.kfac.what == "A"):
        return
    try:
        cands = candidates(ctx.problem)
    except (TypeError, ValueError):
        return
    for i, (name, desc, M, smoothing) in enumerate(cands):
        data = {"formula": name}
        if smoothing:
            e = _fit_smoothing(ctx.X, lambda e: rb.with_output(M=M(e)))
            if e is None:
                continue
            data["smoothing"] = e
            desc += f" with e = {_scalar.factor_text(e)}"
            Z = rb.with_output(M=M(e))
        else:
            Z = rb.with_output(M=M)
        ctx.col.test("output_matrix_formula", Z, f"desired with the output-space matrix "
                     f"replaced by {desc}", 60 + i, allow_factor=False, data=data)
