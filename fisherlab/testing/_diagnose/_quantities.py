"""Quantity swaps: another curvature quantity where one was expected (needs the problem).

``empirical_fisher_for_fisher`` / ``fisher_for_empirical_fisher``, ``ggn_for_hessian`` /
``hessian_for_ggn``, ``fisher_for_ggn`` / ``ggn_for_fisher`` (non-natural likelihoods),
``hessian_for_fisher``, ``empirical_fisher_for_hessian``, ``hessian_for_empirical_fisher``,
``gradient_covariance_for_empirical_fisher`` / ``empirical_fisher_for_gradient_covariance``,
``kfac_approximation`` (K-FAC where the exact matrix was expected), and on K-FAC quantities
the separate-bias K-FAC (``bias_cross_terms_missing``), the K-FAC of the empirical Fisher and
the two factors exchanged (``kronecker_order_swapped``). Each may carry a named scalar factor.

On a token model (outputs ``(R, C)`` per example, ``R > 1``) the gradient outer products of the
other token setting (docs/CONVENTIONS.md, "Per-token outputs") are ``token_reduction``: the
per-token gradients ``g_{n,r}`` (tokens as examples, PyTorch's loss on flattened tokens) where
the sequence's ``g_n = sum_r g_{n,r}`` was expected, or the other way round.
"""

from __future__ import annotations

import numpy as np

import fisherlab as fl
from fisherlab.testing._compare import relative_error

__all__ = ["ALTERNATIVES", "NAMES", "infer_quantity", "run"]

ALTERNATIVES = {
    # desired quantity -> [(alternative quantity, kind)]
    "fisher": [("empirical_fisher", "empirical_fisher_for_fisher"),
               ("hessian", "hessian_for_fisher"), ("ggn", "ggn_for_fisher")],
    "ggn": [("empirical_fisher", "empirical_fisher_for_fisher"), ("hessian", "hessian_for_ggn"),
            ("fisher", "fisher_for_ggn")],
    "hessian": [("ggn", "ggn_for_hessian"), ("fisher", "ggn_for_hessian"),
                ("empirical_fisher", "empirical_fisher_for_hessian")],
    "empirical_fisher": [("fisher", "fisher_for_empirical_fisher"),
                         ("ggn", "fisher_for_empirical_fisher"),
                         ("gradient_covariance", "gradient_covariance_for_empirical_fisher"),
                         ("hessian", "hessian_for_empirical_fisher")],
    "gradient_covariance": [("empirical_fisher", "empirical_fisher_for_gradient_covariance")],
}

NAMES = {"fisher": "the (true) Fisher", "ggn": "the GGN", "hessian": "the Hessian",
         "empirical_fisher": "the empirical Fisher",
         "gradient_covariance": "the gradient covariance (centered empirical Fisher)",
         "kfac": "the K-FAC approximation"}


def infer_quantity(problem, Y, tol):
    """The quantity ``Y`` equals on ``problem`` (fisher, hessian, ...), else None."""
    for q in ("fisher", "hessian", "empirical_fisher", "gradient_covariance"):
        try:
            Z = problem.reference(q)
        except (TypeError, ValueError):
            continue
        if Z.shape == Y.shape and relative_error(Y, Z) <= tol:
            return q
    return None


def run(ctx):
    problem, q, col = ctx.problem, ctx.quantity, ctx.col
    if problem is None:
        return
    natural = getattr(problem.likelihood, "natural", True)
    if q in ALTERNATIVES:
        for i, (alt, kind) in enumerate(ALTERNATIVES[q]):
            if natural and _same_as_fisher_or_ggn(q, alt):
                continue  # F == G for natural parameters: nothing new to compute
            if kind == "hessian_for_fisher" and getattr(problem.likelihood, "natural", True):
                kind = "hessian_for_ggn"  # F == G for natural parameters
            col.test(kind, ctx.ref(alt), NAMES[alt], 10 + i, data={"quantity": alt},
                     factor_quantity=alt)
        if q in ("fisher", "ggn") and problem.model is not None:
            col.test("kfac_approximation", ctx.ref("kfac"), NAMES["kfac"], 20,
                     data={"quantity": "kfac"})
    if q in ("empirical_fisher", "gradient_covariance") and problem.num_positions > 1:
        _token_reduction(ctx)
    if q == "kfac":
        col.test("bias_cross_terms_missing", ctx.ref("kfac", bias="separate"),
                 "K-FAC with a separate bias (no W-b cross terms)", 21,
                 data={"bias": "separate"})
        col.test("empirical_fisher_for_fisher", ctx.ref("kfac", fisher_type="empirical"),
                 "K-FAC of the empirical Fisher", 22, data={"fisher_type": "empirical"},
                 factor_quantity="empirical_fisher")
    if q in ("kfac_factor_A", "kfac_factor_G") and problem.model is not None:
        other = "G" if q.endswith("A") else "A"
        for k in range(len(problem.model.param_layers)):
            col.test("kronecker_order_swapped", ctx.ref(f"kfac_factor_{other}", layer=k),
                     f"the K-FAC factor {other} of layer {k} (the two factors exchanged)", 23,
                     data={"layer": k, "factor": other})
        if q == "kfac_factor_G":
            for k in range(len(problem.model.param_layers)):
                col.test("empirical_fisher_for_fisher",
                         ctx.ref("kfac_factor_G", layer=k, fisher_type="empirical"),
                         f"the empirical K-FAC factor G of layer {k} (data labels)", 22,
                         data={"layer": k, "fisher_type": "empirical"})


def _same_as_fisher_or_ggn(q, alt):
    """Whether ``alt`` repeats another alternative (or desired) when the Fisher is the GGN."""
    return ({q, alt} == {"fisher", "ggn"} or (q == "hessian" and alt == "fisher")
            or (q == "empirical_fisher" and alt == "ggn"))


_TOKENS = {"flatten": "the per-token gradient outer products sum_{n,r} g_{n,r} g_{n,r}^T (tokens "
                      "as examples, as PyTorch's loss on flattened tokens) where the "
                      "per-sequence g_n = sum_r g_{n,r} was expected",
           "sum": "the per-sequence gradient outer products sum_n g_n g_n^T (g_n = sum_r "
                  "g_{n,r}) where the per-token gradients (tokens as examples) were expected"}


def _token_reduction(ctx):
    """``token_reduction``: the quantity in the other token setting."""
    problem, q = ctx.problem, ctx.quantity
    mode = getattr(problem, "tokens", None) or "sum"
    other = "flatten" if mode == "sum" else "sum"
    fn = fl.empirical_fisher if q == "empirical_fisher" else fl.gradient_covariance
    Z = np.asarray(fn(problem.f, problem.params, problem.x, problem.y, problem.likelihood,
                      reduction=problem.reduction, tokens=other), np.float64)
    R = problem.num_positions
    scale = problem._scales["empirical"]
    if other == "sum" and getattr(getattr(problem, "loss", None), "reduction", None) == "sum":
        scale = scale / R  # a summed loss counts tokens; the per-sequence sum counts sequences
    Z = Z * scale
    ctx.col.test("token_reduction", Z, _TOKENS[other] + f" (R={R} tokens per example)", 15,
                 data={"tokens": other})
