"""``fl.testing.diagnose``: name the convention or bug that explains a curvature mismatch.

Every hypothesis is tested, never assumed: a :class:`Finding` is reported only when the
hypothesis *reproduces* ``actual`` -- ``||actual - Z|| <= tol * ||Z||`` for the candidate
explanation ``Z`` (an alternative quantity, a permuted or masked ``desired``, possibly times a
fitted scalar), with ``tol`` the comparison tolerance (``rtol``, default by dtype, see
:mod:`fisherlab.testing._assertions`) -- or, for a Monte-Carlo estimate, when ``actual`` lies in
the exact subspace every such estimate lies in and its deviation from the exact Fisher is within
a stated statistical band. When nothing reproduces ``actual`` the single finding is
``no_known_pattern`` with the evidence that was measured.

Hypotheses (``Finding.kind``):

* ``scalar_factor`` -- ``actual = c * desired``; ``c`` is matched against the conventions of the
  problem: batch reduction (``N``, ``1/N``), squared-error conventions (``2``, ``1/2``, ``2/C``
  for ``MSELoss(reduction="mean")``, ``C/2``, ``1/C``, ``C``, ``(2/C)^2``, ``4/C``, ``4``), a
  Gaussian variance (``sigma^2``, ``1/sigma^2``), a flipped sign, and products of these.
* ``empirical_fisher_for_fisher`` / ``fisher_for_empirical_fisher``, ``ggn_for_hessian`` /
  ``hessian_for_ggn``, ``fisher_for_ggn`` / ``ggn_for_fisher`` (non-natural likelihoods),
  ``hessian_for_fisher``, ``empirical_fisher_for_hessian``, ``hessian_for_empirical_fisher``,
  ``gradient_covariance_for_empirical_fisher`` / ``empirical_fisher_for_gradient_covariance``,
  ``kfac_approximation`` (K-FAC where the exact matrix was expected) -- need a ``problem``;
  each may carry a scalar ``factor`` as well (e.g. the empirical Fisher with a sum reduction).
* ``transposed_weight_layout`` -- ``W`` flattened as ``(in, out)`` (column-major ``(out, in)``).
* ``kronecker_order_swapped`` -- ``A (x) G`` for ``G (x) A`` (rvec vs cvec), or the factors
  ``A``/``G`` exchanged. On a dense K-FAC block this is the same permutation as the
  transposed layout; the name follows ``quantity``.
* ``bias_cross_terms_missing`` -- the ``W``--``b`` blocks of each layer are zero (K-FAC with a
  *separate* bias where the *augmented* one was expected).
* ``block_diagonal_only`` -- blocks between layers (or parameter tensors) are zero.
* ``monte_carlo_estimate`` -- a sampled Fisher compared as if exact (with its estimated sample
  count ``S``; ``factor = S`` when it was summed over samples instead of averaged).
* ``no_known_pattern`` -- none of the above reproduces ``actual``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from fisherlab.testing._assertions import (TINY, _check_tols, as_matrix_pair, is_close,
                                           relative_error)

__all__ = ["Finding", "KINDS", "diagnose"]

KINDS = (
    "scalar_factor",
    "empirical_fisher_for_fisher",
    "fisher_for_empirical_fisher",
    "ggn_for_hessian",
    "hessian_for_ggn",
    "fisher_for_ggn",
    "ggn_for_fisher",
    "hessian_for_fisher",
    "empirical_fisher_for_hessian",
    "hessian_for_empirical_fisher",
    "gradient_covariance_for_empirical_fisher",
    "empirical_fisher_for_gradient_covariance",
    "kfac_approximation",
    "kronecker_order_swapped",
    "bias_cross_terms_missing",
    "block_diagonal_only",
    "transposed_weight_layout",
    "monte_carlo_estimate",
    "no_known_pattern",
)

_QUANTITIES = ("hessian", "ggn", "fisher", "empirical_fisher", "gradient_covariance", "kfac",
               "kfac_factor_A", "kfac_factor_G")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One explanation of a mismatch.

    Attributes:
      kind: a stable identifier from :data:`KINDS`.
      message: human-readable, with the evidence (residuals, fitted factor, sample count).
      factor: the scalar ``c`` with ``actual = c * (explanation)`` when one was fitted, else None.
      convention: the named convention(s) the factor matches, when any.
      residual: ``||actual - explanation|| / ||explanation||`` of this hypothesis (for
        ``monte_carlo_estimate``: the residual of the subspace fit).
    """

    kind: str
    message: str
    factor: float | None = None
    convention: str | None = None
    residual: float = float("nan")

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


# ----------------------------------------------------------------------------- conventions


def _fraction(v: float) -> str:
    for den in range(1, 65):
        num = v * den
        if abs(num - round(num)) < 1e-9 * max(1.0, abs(num)) and round(num) != 0:
            n = int(round(num))
            return f"{n}" if den == 1 else f"{n}/{den}"
    return f"{v:.6g}"


def _conventions(problem):
    """``[(value, description), ...]``: scalar factors that named conventions produce."""
    reductions = [(1.0, "")]
    outs = [(1.0, ""), (2.0, "squared error without the 1/2 (||y-f||^2 instead of ½||y-f||^2)"),
            (0.5, "an extra 1/2 (e.g. ½ applied twice, or a Gaussian variance of 2)"),
            (4.0, "(2)^2: gradients of the un-halved squared error in an outer product")]
    if problem is not None:
        N, C = problem.num_examples, problem.num_outputs
        reductions += [
            (float(N), f"sum over the N={N} examples where the mean was expected"),
            (1.0 / N, f"an extra 1/N (N={N}): the batch mean taken twice, e.g. an empirical "
                      f"Fisher normalised by 1/N^2, or a mean where a sum was expected")]
        if C > 1:
            outs += [
                (2.0 / C, f"MSELoss(reduction='mean'): the mean over the C={C} outputs of (y-f)^2 "
                          f"= (2/C)·½||y-f||^2"),
                (C / 2.0, f"C/2 (C={C}): the inverse of the MSELoss mean-over-outputs convention"),
                (1.0 / C, f"a mean over the C={C} outputs (e.g. BCEWithLogitsLoss(reduction="
                          f"'mean') or ½-squared error averaged over outputs)"),
                (float(C), f"a sum over the C={C} outputs where a mean over outputs was expected"),
                (4.0 / C ** 2, f"(2/C)^2 (C={C}): outer products of MSELoss(mean) per-example "
                               f"gradients"),
                (4.0 / C, f"4/C = (2/C)^2·C (C={C}): MSELoss(mean) gradient outer products "
                          f"summed over the outputs"),
                (1.0 / C ** 2, f"(1/C)^2 (C={C}): outer products of gradients of a loss averaged "
                               f"over the outputs")]
        var = getattr(problem.likelihood, "variance", None)
        if var is not None and abs(float(var) - 1.0) > 1e-12:
            outs += [(float(var), f"the Gaussian variance sigma^2={var} multiplied instead of "
                                  f"divided"),
                     (1.0 / float(var), f"1/sigma^2 (sigma^2={var}): variance 1 assumed")]
    outs = [(v, d) for v, d in outs if not d or abs(v - 1.0) > 1e-12]  # e.g. 2/C with C = 2
    signs = [(1.0, ""), (-1.0, "flipped sign (curvature of log p instead of -log p)")]
    table = {}
    for (r, rd), (o, od), (s, sd) in itertools.product(reductions, outs, signs):
        v = r * o * s
        if abs(v - 1.0) < 1e-12:
            continue
        desc = " and ".join(d for d in (rd, od, sd) if d)
        table.setdefault(round(v, 12), []).append(desc)
    return sorted(table.items(), key=lambda kv: min(len(d) for d in kv[1]))


def _match_factor(c: float, problem, tol: float):
    rel = max(10 * tol, 1e-9)
    hits = []
    for v, descs in _conventions(problem):
        if abs(c - v) <= rel * abs(v):
            hits.extend(descs)
    if hits:
        # shortest explanation first (the fewest conventions combined)
        hits = sorted(set(hits), key=lambda d: (d.count(" and "), len(d)))
        return hits
    return None


# ----------------------------------------------------------------------------- fitting


def _fit(X, Z):
    """Best scalar ``c`` for ``X ~ c Z`` and the relative residual ``||X - c Z|| / ||c Z||``."""
    zz = float(np.vdot(Z, Z))
    if zz <= TINY:
        return None, math.inf
    c = float(np.vdot(X, Z)) / zz
    if c == 0.0:
        return 0.0, math.inf
    return c, float(np.linalg.norm(X - c * Z) / max(abs(c) * math.sqrt(zz), TINY))


class _Collector:
    """Tests candidate explanations ``Z`` of ``X`` and keeps those that reproduce it."""

    def __init__(self, X, Y, problem, tol):
        self.X, self.Y, self.problem, self.tol = X, Y, problem, tol
        self.findings: list[tuple[tuple, Finding]] = []
        self._seen: list[np.ndarray] = []

    def _distinct_from_desired(self, Z):
        # an explanation equal to (a multiple of) desired is no separate hypothesis
        c, res = _fit(Z, self.Y)
        return not (c is not None and res <= self.tol)

    def test(self, kind, Z, what, order, *, allow_factor=True, is_desired=False):
        """``what`` describes ``Z`` ("the empirical Fisher", ...)."""
        if Z is None or Z.shape != self.X.shape or not np.all(np.isfinite(Z)):
            return
        if not is_desired and not self._distinct_from_desired(Z):
            return
        rel = relative_error(self.X, Z)
        if rel <= self.tol:
            msg = (f"actual equals {what} (relative error {rel:.2e}; it differs from desired by "
                   f"{relative_error(Z, self.Y):.2e})")
            self._add((0, order), Finding(kind, msg, residual=rel))
            return
        if not allow_factor:
            return
        c, res = _fit(self.X, Z)
        if c is None or res > self.tol or abs(c - 1.0) <= 10 * self.tol:
            return  # no fit, or a "factor" indistinguishable from 1 (a near-miss, not a cause)
        conv = _match_factor(c, self.problem, self.tol)
        factor_txt = f"{c:.6g}" + (f" = {_fraction(c)}" if _fraction(c) != f"{c:.6g}" else "")
        if conv:
            msg = (f"actual = {factor_txt} × {what} (residual {res:.2e}); the factor matches: "
                   + "; or ".join(conv[:3]))
            self._add((1, order), Finding(kind, msg, factor=c, convention=conv[0], residual=res))
        else:
            msg = (f"actual = {factor_txt} × {what} (residual {res:.2e}); the factor matches no "
                   f"known convention" + _integer_hint(c))
            self._add((3, order), Finding(kind, msg, factor=c, residual=res))

    def _add(self, rank, finding):
        if any(f.kind == finding.kind for _, f in self.findings):
            return
        self.findings.append((rank, finding))

    def add_raw(self, rank, finding):
        self._add(rank, finding)

    def sorted(self):
        return [f for _, f in sorted(self.findings, key=lambda t: t[0])]


def _integer_hint(c: float) -> str:
    for v, name in ((c, "an integer"), (1.0 / c if c else 0.0, "the inverse of an integer")):
        if v >= 2 and abs(v - round(v)) < 1e-6 * v:
            return (f" by name, but it is {name} ({int(round(v))}): a batch size or a "
                    f"Monte-Carlo sample count?")
    return ""


# ----------------------------------------------------------------------------- structure


def _masked(Y, groups):
    """``Y`` with every entry between different groups set to 0 (``groups[i]`` per index)."""
    g = np.asarray(groups)
    return np.where(g[:, None] == g[None, :], Y, 0.0)


def _inferred_partition(X, tol):
    n = X.shape[0]
    nx = np.linalg.norm(X)
    groups, g = np.zeros(n, int), 0
    for k in range(1, n):
        if (np.linalg.norm(X[:k, k:]) <= tol * nx and np.linalg.norm(X[k:, :k]) <= tol * nx):
            g += 1
        groups[k] = g
    return groups


def _transpose_perm(n, blocks):
    """Index map: position ``a`` of a transposed-layout vector holds desired index ``p[a]``.

    ``blocks``: ``[(start, out, in), ...]`` weight matrices flattened row-major as ``(out, in)``
    in ``desired`` and as ``(in, out)`` (column-major) in ``actual``.
    """
    p = np.arange(n)
    for start, out, inp in blocks:
        for i in range(out):
            for j in range(inp):
                p[start + j * out + i] = start + i * inp + j
    return p


def _permuted(Y, p):
    return Y[np.ix_(p, p)]


# ----------------------------------------------------------------------------- Monte Carlo


#: statistical band of the Monte-Carlo hypothesis: by Markov's inequality an S-sample average
#: has P(||F_hat - F||^2 > V / (S * _MC_BAND)) <= _MC_BAND, so a true estimate is rejected with
#: probability <= 0.1 %.
_MC_BAND = 1e-3
#: largest design matrix (entries) of the Monte-Carlo subspace test (~400 MB of float64)
_MC_MAX_DESIGN = 50_000_000


def _monte_carlo(col, problem, X, quantity, tol, *, num_draws=4000, seed=0):
    """Test ``X = (scale) sum_n J_n^T M_n J_n`` with sampled ``M_n`` (Monte-Carlo Fisher).

    Structural evidence: ``X`` lies in the span of ``{J_n^T E J_n}`` (symmetric ``E``), a
    proper subspace of the symmetric ``d x d`` matrices whenever its dimension is smaller (else
    no claim is made). Statistical evidence: with ``V = E||F_hat_1 - F||_F^2`` the expected
    squared deviation of a one-sample estimate (estimated with ``num_draws`` draws per example,
    fixed seed), an ``S``-sample average has ``E||F_hat_S - F||^2 = V / S``; the finding states
    ``S_hat = V / ||X - F||^2`` and is made only when ``S_hat >= 1e-3`` (Markov: a true
    estimate fails this with probability <= 0.1 %). The alternative ``X = k F_hat_k`` (summed
    over ``k = 2..10000`` samples instead of averaged) needs ``V / (k ||X/k - F||^2)`` in
    ``[1e-3, 1e3]``; the hypothesis whose deviation ratio is closest to 1 (any ``S_hat >= 1``
    for the mean) is reported.
    """
    import jax
    import jax.numpy as jnp

    from fisherlab._precision import float64

    lik = problem.likelihood
    natural = getattr(lik, "natural", True)
    if quantity not in ("fisher", "ggn") or (quantity == "ggn" and not natural):
        return
    J = np.asarray(problem.jacobians(), np.float64)
    N, C, d = J.shape
    s = problem.scale * problem._scales["curvature"]
    if N * C * (C + 1) // 2 >= d * (d + 1) // 2:
        return  # the span could be everything: no structural evidence
    if d * d * N * C * (C + 1) // 2 > _MC_MAX_DESIGN:
        return  # too large for the dense least-squares test (not claimed, not tested)
    cols = []
    for n in range(N):
        for i in range(C):
            for j in range(i, C):
                B = np.outer(J[n, i], J[n, j])
                if i != j:
                    B = B + B.T
                cols.append(s * B.ravel())
    D = np.stack(cols, axis=1)
    coef, *_ = np.linalg.lstsq(D, X.ravel(), rcond=None)
    res = float(np.linalg.norm(X.ravel() - D @ coef) / max(np.linalg.norm(X), TINY))
    if res > max(tol, 1e-9):
        return
    F = problem.reference("fisher")
    with float64():
        out = problem.outputs()
        Fout = np.asarray(lik.output_fisher(out))
        draws = lik.sample(jax.random.key(seed), out, num_draws)  # (K, N, ...)
        grads = jax.vmap(jax.vmap(lik._output_grad), in_axes=(None, 0))(
            jnp.asarray(out, jnp.float64), draws)  # (K, N, C)
        grads = np.asarray(grads)
    P = np.einsum("nci,ndi->ncd", J, J)  # Gram J J^T, (N, C, C)
    V = 0.0
    for n in range(N):
        A = np.einsum("kc,kd->kcd", grads[:, n], grads[:, n]) - Fout[n]  # (K, C, C)
        # ||J^T A J||_F^2 = tr(A P A P)
        AP = A @ P[n]
        V += float(np.mean(np.einsum("kij,kji->k", AP, AP)))
    V *= s * s
    if V <= TINY:
        return
    dev = float(np.linalg.norm(X - F) ** 2)
    S_hat = V / max(dev, TINY)
    # score = |log| of the (deviation ratio); mean hypothesis: any S_hat >= 1 fits perfectly
    cands = []
    if S_hat >= _MC_BAND:
        cands.append((abs(math.log(min(S_hat, 1.0))), 1, S_hat))
    ks = np.arange(2, 10001, dtype=np.float64)
    xx, xf, ff = float(np.vdot(X, X)), float(np.vdot(X, F)), float(np.vdot(F, F))
    devs = np.maximum(xx / ks ** 2 - 2 * xf / ks + ff, TINY)  # ||X/k - F||^2
    ratios = V / (ks * devs)
    ok = (ratios >= _MC_BAND) & (ratios <= 1.0 / _MC_BAND)
    for k, ratio in zip(ks[ok], ratios[ok]):
        cands.append((abs(math.log(ratio)), int(k), float(ratio)))
    if not cands:
        return
    _, k, ratio = min(cands)
    if k == 1:
        S = max(1, int(round(S_hat)))
        msg = (f"actual lies in the span of the per-example Fisher terms J_n^T E J_n (fit residual "
               f"{res:.1e}) and deviates from the exact Fisher by ||X-F||^2 = {dev:.3e}, as a "
               f"Monte-Carlo estimate with S ≈ {S} sampled labels per example does "
               f"(expected V/S with V = {V:.3e} for one sample; S_hat = V/||X-F||^2 = "
               f"{S_hat:.3g}, band S_hat >= {_MC_BAND:g}); compare it statistically, or with "
               f"fl.fisher_mc and the same key")
        col.add_raw((2, 0), Finding("monte_carlo_estimate", msg, convention=f"S≈{S}",
                                    residual=res))
    else:
        msg = (f"actual lies in the span of the per-example Fisher terms (fit residual {res:.1e}) "
               f"and actual/{k} is a Monte-Carlo estimate with S = {k} samples "
               f"(V/(S||X/S - F||^2) = {ratio:.3g}, band [{_MC_BAND:g}, {1 / _MC_BAND:g}]): the "
               f"estimate was summed over the S = {k} samples instead of averaged")
        col.add_raw((2, 1), Finding("monte_carlo_estimate", msg, factor=float(k),
                                    convention=f"sum over S={k} samples", residual=res))


# ----------------------------------------------------------------------------- main


_ALTERNATIVES = {
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

_NAMES = {"fisher": "the (true) Fisher", "ggn": "the GGN", "hessian": "the Hessian",
          "empirical_fisher": "the empirical Fisher",
          "gradient_covariance": "the gradient covariance (centered empirical Fisher)",
          "kfac": "the K-FAC approximation"}


def _infer_quantity(problem, Y, tol):
    for q in ("fisher", "hessian", "empirical_fisher", "gradient_covariance"):
        try:
            Z = problem.reference(q)
        except Exception:  # noqa: BLE001 - an unavailable reference is no evidence
            continue
        if Z.shape == Y.shape and relative_error(Y, Z) <= tol:
            return q
    return None


def _safe_ref(problem, q, **kw):
    try:
        return problem.reference(q, **kw)
    except Exception:  # noqa: BLE001 - e.g. K-FAC of a plain function: hypothesis not testable
        return None


def diagnose(actual, desired, *, problem=None, quantity=None, rtol=None) -> list[Finding]:
    """Explain why a candidate curvature matrix differs from the reference.

    Args:
      actual: the candidate matrix (NumPy/JAX/PyTorch).
      desired: the reference matrix.
      problem: optional :class:`fisherlab.testing.Problem` both were computed on; with it the
        diagnosis computes the alternative quantities itself (``fl.empirical_fisher``,
        ``fl.hessian``, ``fl.ggn``, ``fl.fisher``, ``fl.kfac``) and knows ``N``, ``C`` and
        the parameter layout.
      quantity: what ``desired`` is: one of ``"hessian"``, ``"ggn"``, ``"fisher"``,
        ``"empirical_fisher"``, ``"gradient_covariance"``, ``"kfac"``, ``"kfac_factor_A"``,
        ``"kfac_factor_G"``; inferred from ``problem`` when omitted (if possible).
      rtol: the reproduction tolerance (default: by dtype, as in ``assert_curvature_close``).

    Returns:
      ``[]`` when ``actual`` and ``desired`` agree within tolerance; otherwise the findings,
      most likely first (exact reproductions, then reproductions up to a scalar that matches
      a named convention, then Monte-Carlo, then unexplained scalar factors), or the single
      finding ``no_known_pattern``.

    Raises:
      ValueError: mismatched shapes, non-finite entries, unknown ``quantity``, or a
        ``problem`` whose parameter count does not match ``desired``.
    """
    X, Y = as_matrix_pair(actual, desired)
    rtol, _ = _check_tols(rtol, None, actual, desired)
    if quantity is not None and quantity not in _QUANTITIES:
        raise ValueError(f"quantity must be one of {list(_QUANTITIES)} or None, got {quantity!r}")
    if problem is not None:
        from fisherlab.testing._problem import Problem

        if not isinstance(problem, Problem):
            raise TypeError(f"problem must be a fisherlab.testing.Problem, got "
                            f"{type(problem).__name__}")
        d = problem.num_params
        if quantity not in ("kfac_factor_A", "kfac_factor_G") and Y.shape != (d, d):
            raise ValueError(f"desired has shape {Y.shape} but the problem has d={d} parameters "
                             f"(expected ({d}, {d}))")
    if is_close(X, Y, rtol, 0.0):
        return []
    tol = max(rtol, 1e-12)
    col = _Collector(X, Y, problem, tol)
    square = X.ndim == 2 and X.shape[0] == X.shape[1]

    # 1. a plain scalar factor
    col.test("scalar_factor", Y, "desired", 0, is_desired=True)

    # 2. a different quantity (needs the problem)
    q = quantity
    if problem is not None and q is None and square:
        q = _infer_quantity(problem, Y, tol)
    if problem is not None and q in _ALTERNATIVES:
        for i, (alt, kind) in enumerate(_ALTERNATIVES[q]):
            if kind == "hessian_for_fisher" and getattr(problem.likelihood, "natural", True):
                kind = "hessian_for_ggn"  # F == G for natural parameters
            col.test(kind, _safe_ref(problem, alt), _NAMES[alt], 10 + i)
        if q in ("fisher", "ggn") and problem.model is not None:
            col.test("kfac_approximation", _safe_ref(problem, "kfac"), _NAMES["kfac"], 20)
    if problem is not None and q == "kfac":
        col.test("bias_cross_terms_missing", _safe_ref(problem, "kfac", bias="separate"),
                 "K-FAC with a separate bias (no W-b cross terms)", 21)
        col.test("empirical_fisher_for_fisher", _safe_ref(problem, "kfac", fisher_type="empirical"),
                 "K-FAC of the empirical Fisher", 22)
    if problem is not None and q in ("kfac_factor_A", "kfac_factor_G") and problem.model:
        other = "G" if q.endswith("A") else "A"
        for k in range(len(problem.model.dense_layers)):
            col.test("kronecker_order_swapped", _safe_ref(problem, f"kfac_factor_{other}", layer=k),
                     f"the K-FAC factor {other} of layer {k} (the two factors exchanged)", 23)

    # 3. structure: layout permutations and dropped blocks
    if square:
        n = X.shape[0]
        perm_kind = ("kronecker_order_swapped" if q and q.startswith("kfac")
                     else "transposed_weight_layout")
        perm_what = ("A (x) G instead of G (x) A, i.e. W flattened column-major (cvec for rvec)"
                     if perm_kind == "kronecker_order_swapped" else
                     "desired with every weight matrix flattened as (in, out) instead of "
                     "(out, in) (column-major / transposed W)")
        if problem is not None and n == problem.num_params:
            leaves = problem.leaves()
            blocks = [(l.start, l.shape[0], l.shape[1]) for l in leaves
                      if len(l.shape) == 2 and min(l.shape) > 1]
            if blocks:
                col.test(perm_kind, _permuted(Y, _transpose_perm(n, blocks)), perm_what, 30)
            layer_g = np.zeros(n, int)
            leaf_g = np.zeros(n, int)
            for i, l in enumerate(leaves):
                layer_g[l.start:l.stop] = l.group
                leaf_g[l.start:l.stop] = i
            Z_layer = _masked(Y, layer_g)
            Z_leaf = _masked(Y, leaf_g)
            layer_diag = is_close(Z_layer, Y, tol, 0.0)
            # W_k-b_k cross blocks only (cross-layer blocks kept)
            wb = np.ones((n, n), bool)
            for l1 in leaves:
                for l2 in leaves:
                    if l1.group == l2.group and l1 is not l2 and {l1.role, l2.role} == {"W", "b"}:
                        wb[l1.start:l1.stop, l2.start:l2.stop] = False
            col.test("bias_cross_terms_missing", np.where(wb, Y, 0.0),
                     "desired without the W-b cross terms of each layer (a separate bias "
                     "instead of the augmented [W b])", 31)
            if layer_diag:
                col.test("bias_cross_terms_missing", Z_leaf,
                         "desired without the W-b cross terms of each layer (a separate bias "
                         "instead of the augmented [W b])", 31)
            else:
                col.test("block_diagonal_only", Z_layer,
                         "the layer-block-diagonal part of desired (cross-layer blocks dropped)", 32)
                col.test("block_diagonal_only", Z_leaf,
                         "the block-diagonal part of desired with one block per parameter tensor "
                         "(cross-layer blocks and the W-b cross terms dropped)", 33)
        else:
            groups = _inferred_partition(X, tol)
            if groups[-1] > 0:
                sizes = np.bincount(groups).tolist()
                col.test("block_diagonal_only", _masked(Y, groups),
                         f"the block-diagonal part of desired with blocks of sizes {sizes}", 32)
            for o in range(2, n):
                for with_bias in (False, True):
                    rest = n - o if with_bias else n
                    if rest % o or rest // o < 2:
                        continue
                    i_ = rest // o
                    p = _transpose_perm(n, [(0, o, i_)])
                    shape_txt = f"a ({o}, {i_}) weight" + (" followed by its bias" if with_bias
                                                          else "")
                    col.test(perm_kind, _permuted(Y, p), perm_what + f" [{shape_txt}]", 30)
                    if perm_kind == "transposed_weight_layout":
                        col.test("kronecker_order_swapped", _permuted(Y, p),
                                 f"the same permutation read as A (x) G instead of G (x) A "
                                 f"[{shape_txt}]", 34)

    # 4. a Monte-Carlo estimate
    if (problem is not None and square and X.shape[0] == problem.num_params
            and not col.findings):
        try:
            _monte_carlo(col, problem, X, q, tol)
        except Exception:  # noqa: BLE001 - no sampler / no Jacobian: hypothesis not testable
            pass

    findings = col.sorted()
    if findings:
        return findings
    return [Finding("no_known_pattern", _evidence(X, Y, problem, q, tol),
                    residual=relative_error(X, Y))]


def _evidence(X, Y, problem, q, tol) -> str:
    parts = [f"no tested explanation reproduces actual within {tol:.1e}: relative error "
             f"{relative_error(X, Y):.3e}"]
    c, res = _fit(X, Y)
    if c is not None:
        parts.append(f"best scalar fit actual ≈ {c:.4g} × desired leaves residual {res:.2e}")
    if X.ndim == 2 and X.shape[0] == X.shape[1]:
        asym = float(np.linalg.norm(X - X.T) / max(np.linalg.norm(X), TINY))
        if asym > tol:
            parts.append(f"actual is not symmetric (||X - X^T||/||X|| = {asym:.2e})")
        try:
            lx = float(np.linalg.eigvalsh((X + X.T) / 2)[0])
            ly = float(np.linalg.eigvalsh((Y + Y.T) / 2)[0])
            parts.append(f"smallest eigenvalue actual {lx:.3e} vs desired {ly:.3e}")
        except np.linalg.LinAlgError:  # pragma: no cover
            pass
    idx = np.unravel_index(int(np.argmax(np.abs(X - Y))), X.shape)
    where = f"at index {tuple(int(i) for i in idx)}"
    if problem is not None and X.ndim == 2 and X.shape[0] == problem.num_params:
        leaves = problem.leaves()

        def name(i):
            for l in leaves:
                if l.start <= i < l.stop:
                    return f"{l.role or 'leaf'}{l.group + 1}[{i - l.start}]"
            return str(i)  # pragma: no cover

        where += f" ({name(idx[0])}, {name(idx[1])})"
    parts.append(f"largest entry difference {float(np.abs(X - Y)[idx]):.3e} {where}")
    if q is None and problem is None:
        parts.append("pass problem= and quantity= to test alternative quantities "
                     "(empirical Fisher, Hessian, GGN, K-FAC, Monte-Carlo)")
    return "; ".join(parts)
