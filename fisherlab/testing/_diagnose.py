"""``fl.testing.diagnose``: name the convention or bug that explains a curvature mismatch.

Every hypothesis is tested, never assumed: a :class:`Finding` is reported only when the
hypothesis *reproduces* ``actual`` -- ``||actual - Z|| <= tol * ||Z||`` for the candidate
explanation ``Z`` (an alternative quantity, a permuted or masked ``desired``, possibly times a
fitted scalar), with ``tol`` the comparison tolerance (``rtol``, default by dtype, see
:mod:`fisherlab.testing._assertions`) -- or, for a Monte-Carlo estimate, when the per-example
output-space matrices ``M_n`` of ``actual = s sum_n J_n^T M_n J_n`` are *identified* (least
squares with a full-rank design), have the structure of sampled outer products (label counts on
a lattice ``(1/S) Z`` for finite label spaces; PSD, range and rank otherwise) and pass two-sided
statistical bands with a stated false-rejection probability (see ``_monte_carlo``). A
deterministic bug (a wrong output Fisher, a dropped example, a softmax temperature) is never
named a Monte-Carlo estimate unless such evidence is found. When nothing reproduces ``actual``
the single finding is ``no_known_pattern`` with the evidence that was measured.

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
* ``monte_carlo_estimate`` -- a sampled Fisher compared as if exact (with the smallest sample
  count ``S`` consistent with the label counts, or an interval of ``S`` for continuous
  likelihoods; ``factor = S`` when it was summed over samples instead of averaged and ``S`` is
  identified, else ``factor = None``).
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

    def _multiple_of_desired(self, Z):
        """The factor ``c`` when ``Z = c * desired`` within tolerance, else None."""
        c, res = _fit(Z, self.Y)
        return c if c is not None and res <= self.tol else None

    def test(self, kind, Z, what, order, *, allow_factor=True, is_desired=False):
        """``what`` describes ``Z`` ("the empirical Fisher", ...)."""
        if Z is None or Z.shape != self.X.shape or not np.all(np.isfinite(Z)):
            return
        # Z may be a multiple of desired on this problem (one example with one output: the
        # empirical Fisher and the GGN are both rank one along J^T). Z is then still a
        # hypothesis, tied with the scalar_factor reading; the message says so.
        multiple = None if is_desired else self._multiple_of_desired(Z)
        tie = ("" if multiple is None else
               f"; on this problem it is {multiple:.6g} × desired, so a scalar factor explains "
               f"it equally well (a larger batch or more outputs would tell the two apart)")
        rel = relative_error(self.X, Z)
        if rel <= self.tol:
            msg = (f"actual equals {what} (relative error {rel:.2e}; it differs from desired by "
                   f"{relative_error(Z, self.Y):.2e})") + tie
            # an exact named quantity outranks an unexplained factor; a tie with a named
            # convention (scalar_factor, order 0) goes to the convention
            named = multiple is not None and _match_factor(multiple, self.problem, self.tol)
            self._add((1 if named else 0, order), Finding(kind, msg, residual=rel))
            return
        if not allow_factor:
            return
        c, res = _fit(self.X, Z)
        if c is None or res > self.tol or abs(c - 1.0) <= 10 * self.tol:
            return  # no fit, or a "factor" indistinguishable from 1 (a near-miss, not a cause)
        conv = _match_factor(c, self.problem, self.tol)
        if multiple is not None and not conv:
            return  # an unexplained factor times a multiple of desired: scalar_factor again
        factor_txt = f"{c:.6g}" + (f" = {_fraction(c)}" if _fraction(c) != f"{c:.6g}" else "")
        if conv:
            msg = (f"actual = {factor_txt} × {what} (residual {res:.2e}); the factor matches: "
                   + "; or ".join(conv[:3]) + tie)
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
    """Contiguous blocks of ``X``: split at ``k`` where both off-diagonal corners are ~0.

    Each split's corners must be below ``tol ||X|| / (2 sqrt(n))``, so that the entries
    dropped by all splits together stay below ``tol ||X||``: a split is only inferred where
    masking cannot change ``X`` beyond the tolerance the finding is then tested with.
    """
    n = X.shape[0]
    nx = np.linalg.norm(X)
    cut = tol * nx / (2.0 * np.sqrt(n))
    groups, g = np.zeros(n, int), 0
    for k in range(1, n):
        if np.linalg.norm(X[:k, k:]) <= cut and np.linalg.norm(X[k:, :k]) <= cut:
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


#: false-rejection probability of each statistical band of the Monte-Carlo hypothesis
#: (two-sided Chebyshev bands on statistics whose mean and variance under the hypothesis are
#: known: a true estimate fails a band with probability <= _MC_ALPHA).
_MC_ALPHA = 1e-3
#: largest sample count S tested (a claim needs S <= _MC_S_MAX)
_MC_S_MAX = 10_000
#: largest chance that non-lattice label weights fit a lattice (1/S)Z by coincidence
_MC_LATTICE_FP = 1e-3
#: largest design matrix (entries) of the Monte-Carlo identification (~400 MB of float64)
_MC_MAX_DESIGN = 50_000_000
#: largest finite support (number of label outcomes per example) enumerated exactly
_MC_MAX_SUPPORT = 64


def _mc_identify(problem, X, tol):
    """Recover the per-example output-space matrices ``M_n`` of ``X = s sum_n J_n^T M_n J_n``.

    Returns ``(M, res, err)`` -- ``M`` ``(N, C, C)`` symmetric, ``res`` the relative residual
    of the fit, ``err`` a bound on the entry error of ``M`` from a relative perturbation
    ``max(res, 1e-14)`` of ``X`` -- or None when the ``M_n`` are not identifiable (more unknowns
    ``N C (C+1)/2`` than equations ``d (d+1)/2``, a rank-deficient design, too large a problem)
    or ``X`` is not of this form.
    """
    J = np.asarray(problem.jacobians(), np.float64)
    N, C, d = J.shape
    s = problem.scale * problem._scales["curvature"]
    unknowns = N * C * (C + 1) // 2
    if unknowns > d * (d + 1) // 2 or d * d * unknowns > _MC_MAX_DESIGN:
        return None
    cols, index = [], []
    for n in range(N):
        for i in range(C):
            for j in range(i, C):
                B = np.outer(J[n, i], J[n, j])
                if i != j:
                    B = B + B.T
                cols.append(s * B.ravel())
                index.append((n, i, j))
    D = np.stack(cols, axis=1)
    U, sv, Vt = np.linalg.svd(D, full_matrices=False)
    if sv[-1] <= 1e-10 * sv[0]:
        return None  # some M_n (or combination) invisible in X: not identifiable
    x = X.ravel()
    coef = Vt.T @ ((U.T @ x) / sv)
    nx = max(float(np.linalg.norm(X)), TINY)
    res = float(np.linalg.norm(x - D @ coef) / nx)
    if res > max(tol, 1e-9):
        return None
    M = np.zeros((N, C, C))
    for c, (n, i, j) in zip(coef, index):
        M[n, i, j] = M[n, j, i] = c
    err = 10.0 * max(res, 1e-14) * nx / sv[-1]
    return M, res, err


def _finite_support(lik, out):
    """``(targets (K, ...), probabilities (N, K))`` of a finite label space, else None."""
    from fisherlab.likelihoods import Bernoulli, Categorical

    N, C = out.shape
    if isinstance(lik, Categorical):
        z = out - out.max(axis=1, keepdims=True)
        p = np.exp(z)
        return np.arange(C), p / p.sum(axis=1, keepdims=True)
    if isinstance(lik, Bernoulli) and 2 ** C <= _MC_MAX_SUPPORT:
        ys = np.array(list(itertools.product([0.0, 1.0], repeat=C)))  # (K, C)
        logsig = -np.logaddexp(0.0, -out)  # log sigma(f)
        logsig_neg = -np.logaddexp(0.0, out)  # log sigma(-f)
        logp = ys @ logsig.T + (1.0 - ys) @ logsig_neg.T  # (K, N)
        return ys, np.exp(logp.T)
    return None


def _vech(M):
    C = M.shape[-1]
    iu = np.triu_indices(C)
    return M[..., iu[0], iu[1]]


def _mc_lattice(problem, M, err, tol, out):
    """Finite label space: ``M_n / k = sum_y w_{ny} g_n(y) g_n(y)^T`` with label counts.

    Returns a list of claims ``(k, S, counts, extra)`` (``k = 1``: an average over ``S``
    labels, ``S`` the smallest count consistent; ``k = S``: a sum over ``S`` labels) or None
    when the weights of no example are identifiable; ``[]`` when no hypothesis fits.

    An example whose label terms are linearly dependent (Categorical with ``C = 2`` at
    ``p = (1/2, 1/2)``: ``g(0) g(0)^T = g(1) g(1)^T``) is consistent with many label counts: it
    must still be reproduced by weights summing to 1, but it carries no lattice evidence and
    is left out of the lattice and Pearson tests (``extra[5]`` lists such examples). When
    fewer examples are identified than left out, None: the few identified weights are too
    weak a witness (a deterministic bug with rational weights fits them).
    """
    import jax
    import jax.numpy as jnp

    from fisherlab._precision import float64

    lik = problem.likelihood
    sup = _finite_support(lik, out)
    if sup is None:
        return None
    ys, probs = sup
    N, C, _ = M.shape
    K = len(ys)
    with float64():
        g = np.asarray(jax.vmap(lambda o: jax.vmap(lambda y: lik._output_grad(o, y))(
            jnp.asarray(ys)))(jnp.asarray(out, jnp.float64)))  # (N, K, C)
    m = _vech(M)  # (N, q)
    q = m.shape[1]
    ones = np.ones((1, K))
    A_all, B_all, recon, ident = [], [], [], []
    for n in range(N):
        B = _vech(np.einsum("kc,kd->kcd", g[n], g[n])).T  # (q, K)
        w = max(float(np.linalg.norm(B)), TINY)
        Baug = np.vstack([B / w, ones])
        sv = np.linalg.svd(Baug, compute_uv=False)
        # the label weights of example n are identifiable iff Baug has full column rank;
        # otherwise the min-norm solution below still tests consistency (``fits``)
        ident.append(len(sv) >= K and sv[-1] > 1e-8 * sv[0])
        P = np.linalg.pinv(Baug, rcond=1e-8)
        A_all.append(P[:, :q] / w)  # u(k) = A m / k + b
        B_all.append(P[:, q])
        recon.append(B)
    ident = np.array(ident)
    if ident.sum() < max(1, (~ident).sum()):
        # mostly unidentifiable examples: too little lattice evidence to claim anything
        # (deterministic bugs with rational weights fit the few identified ones)
        return None
    skipped = np.flatnonzero(~ident).tolist()
    A_all, B_all = np.stack(A_all), np.stack(B_all)  # (N, K, q), (N, K)
    a = np.einsum("nkq,nq->nk", A_all, m)
    pinv_norm = max(float(np.linalg.norm(A_all[n], 2)) for n in np.flatnonzero(ident))
    e_u = pinv_norm * err * math.sqrt(q)  # entry error of a (weights at k = 1)
    dof = int(ident.sum()) * (K - 1)
    claims = []
    Ss = np.arange(1, _MC_S_MAX + 1, dtype=np.float64)
    # lattice tolerance eta_S = S (e_u + 1e-9 + tol): a coincidence bound per S of (2 eta_S)^dof
    eta = Ss * (e_u + 1e-9 + 1e-3 * tol)
    fp = np.cumsum(np.minimum(2 * eta, 1.0) ** dof)
    smax = int(np.searchsorted(fp, _MC_LATTICE_FP, side="right"))
    if smax < 1:
        return []

    def fits(u, k):
        """the weights reproduce M/k and sum to 1"""
        for n in range(N):
            r = np.linalg.norm(recon[n] @ u[n] - m[n] / k)
            if r > 10 * (err / k) * math.sqrt(q) + 1e-9 * np.linalg.norm(m[n] / k) + tol * np.linalg.norm(m[n]) / k:
                return False
        return bool(np.all(np.abs(u.sum(axis=1) - 1.0) <= 1e-6))

    # mean hypothesis: u = a + b, counts S u
    u1 = a + B_all
    if fits(u1, 1.0):
        c = Ss[:smax, None] * u1[ident].ravel()[None, :]
        ok = np.all((np.abs(c - np.round(c)) <= eta[:smax, None]) & (c >= -eta[:smax, None]),
                    axis=1)
        if ok.any():
            S0 = int(Ss[int(np.argmax(ok))])
            claims.append((1, S0, np.round(S0 * u1[ident]).astype(int)))
    # summed hypothesis: u(S) = a / S + b, counts a + S b
    for S in range(2, smax + 1):
        counts = a + S * B_all
        c = counts[ident]
        e = eta[S - 1]
        on_lattice = np.all(np.abs(c - np.round(c)) <= e) and np.all(c >= -e)
        if on_lattice and fits(counts / S, float(S)):
            claims.append((S, S, np.round(c).astype(int)))
    out_claims = []
    for k, S, counts in claims:
        # Pearson chi-square of the label counts against S p: mean N(K-1), exact variance
        # 2(K-1)(1) + (sum 1/p - K^2 - 2K + 2)/S per example (multinomial); Chebyshev band
        pr = np.maximum(probs[ident], 1e-300)
        if np.any((counts > 0) & (probs[ident] < 1e-300)):
            continue
        Q = float(np.sum((counts - S * pr) ** 2 / (S * pr)))
        EQ = float(dof)
        VQ = float(np.sum(2 * (K - 1) + (np.sum(1 / pr, axis=1) - K ** 2 - 2 * K + 2) / S))
        # + rounding: at S = 1 and uniform p, Q = EQ for every count vector (VQ = 0 exactly)
        band = math.sqrt(max(VQ, 0.0) / _MC_ALPHA) + 1e-9 * (1.0 + abs(Q) + EQ)
        if abs(Q - EQ) <= band:
            out_claims.append((k, S, counts, (Q, EQ, band, float(fp[smax - 1]), smax, skipped)))
    return out_claims


def _mc_moments(problem, out, Fout, *, num_draws, seed):
    """One-sample moments of the whitened sampled outer products, per example."""
    import jax
    import jax.numpy as jnp

    from fisherlab._precision import float64

    lik = problem.likelihood
    N, C = out.shape
    with float64():
        draws = lik.sample(jax.random.key(seed), out, num_draws)  # (K, N, ...)
        grads = np.asarray(jax.vmap(jax.vmap(lik._output_grad), in_axes=(None, 0))(
            jnp.asarray(out, jnp.float64), draws))  # (K, N, C)
    mom = []
    for n in range(N):
        lam, V = np.linalg.eigh(Fout[n])
        keep = lam > 1e-12 * max(lam.max(), TINY)
        r = int(keep.sum())
        Wh = (V[:, keep] / np.sqrt(lam[keep])) @ V[:, keep].T  # F^{+1/2}
        P = V[:, keep] @ V[:, keep].T
        h = np.einsum("ij,kj->ki", Wh, grads[:, n])  # whitened gradients
        H = (np.einsum("ki,kj->kij", h, h) - P).reshape(num_draws, -1)  # centred, (K, C^2)
        t = np.einsum("ki,ki->k", h, h)  # g^T F^+ g
        sq = np.einsum("ki,ki->k", H, H)
        Sig = np.cov(H.T)
        mom.append(dict(Wh=Wh, P=P, r=r, var_t=float(np.var(t)), e=float(np.mean(sq)),
                        var_sq=float(np.var(sq)), tr_sig2=float(np.sum(Sig * Sig))))
    return mom


def _mc_statistical(problem, M, err, tol, out, Fout, *, num_draws, seed):
    """Continuous or large label spaces: two Chebyshev bands and (continuous) ranks.

    Returns ``[(k, S_set, extra), ...]`` for the mean (``k = 1``) and summed (``k = S``)
    hypotheses with the integer sample counts ``S`` that pass.
    """
    from fisherlab.likelihoods import Gaussian, GaussianMeanVariance

    N, C, _ = M.shape
    mom = _mc_moments(problem, out, Fout, num_draws=num_draws, seed=seed)
    continuous = isinstance(problem.likelihood, (Gaussian, GaussianMeanVariance))
    inflate = 1.25  # the variances are estimated from num_draws draws (fixed seed)
    Ss = np.arange(1, _MC_S_MAX + 1, dtype=np.float64)
    ranks, trW, dev_terms = [], [], []
    for n in range(N):
        Mn = M[n]
        Wh, P = mom[n]["Wh"], mom[n]["P"]
        lam = np.linalg.eigvalsh(Mn)
        scale = max(float(np.abs(lam).max()), TINY)
        tolM = err + tol * scale
        if lam[0] < -tolM or np.linalg.norm(Mn - P @ Mn @ P) > tolM or lam[-1] <= tolM:
            return [], False  # not PSD, outside the range of F_out, or zero: no sampled estimate
        ranks.append(int(np.sum(lam > max(tolM, 1e-9 * scale))))
        Z = Wh @ Mn @ Wh
        trW.append(float(np.trace(Z)))
        dev_terms.append(Z)
    r = np.array([mm["r"] for mm in mom], float)
    var_t = inflate * sum(mm["var_t"] for mm in mom)
    e = sum(mm["e"] for mm in mom)
    var_sq = inflate * sum(mm["var_sq"] for mm in mom)
    tr_sig2 = inflate * sum(mm["tr_sig2"] for mm in mom)
    results = []
    for summed in (False, True):
        k = Ss if summed else np.ones_like(Ss)
        z = np.sum(trW) / k - r.sum()  # sum_n tr(F^+ (M/k - F))
        Dk = sum(float(np.sum(Z * Z)) for Z in dev_terms) / k ** 2 \
            - 2 * sum(float(np.trace(Z @ mom[n]["P"])) for n, Z in enumerate(dev_terms)) / k \
            + r.sum()
        ok_z = np.abs(z) <= np.sqrt(var_t / Ss / _MC_ALPHA)
        ED = e / Ss
        VD = (var_sq + 2 * (Ss - 1) * tr_sig2) / Ss ** 3
        ok_D = np.abs(Dk - ED) <= np.sqrt(VD / _MC_ALPHA)
        ok = ok_z & ok_D
        if summed:
            ok[0] = False  # S = 1 summed is the mean
        if continuous:  # rank(M_n) = min(S, rank F_n) almost surely
            ok &= np.all(np.array(ranks)[None, :] == np.minimum(Ss[:, None], r[None, :]), axis=1)
        if ok.any():
            good = Ss[ok].astype(int)
            results.append((summed, good))
    # structural evidence exists only when every M_n has the same rank S < rank F_out,n of a
    # continuous likelihood (a sum of S < C rank-one terms; deterministic bugs keep full rank)
    ranks = np.array(ranks)
    structural = bool(continuous and np.all(ranks == ranks[0]) and np.all(ranks < r))
    return results, structural


def _monte_carlo(col, problem, X, quantity, tol, *, num_draws=20000, seed=0):
    """Test ``X = (k/S) s sum_n J_n^T (sum_{j<=S} g_{nj} g_{nj}^T) J_n`` with sampled labels.

    A sampled Fisher is claimed only with evidence, in this order:

    1. **Identification.** The per-example output-space matrices ``M_n`` are recovered by
       least squares from ``X = s sum_n J_n^T M_n J_n`` (``s`` the reduction); only when the
       design has full column rank (``N C (C+1)/2 <= d (d+1)/2`` unknowns, smallest singular
       value > 1e-10 of the largest) and the residual is at rounding level. Otherwise no claim.
    2. **Sampling structure.** For a finite label space (Categorical; Bernoulli with
       ``2^C <= 64``) each ``M_n / k`` must be ``sum_y w_{ny} g_n(y) g_n(y)^T`` (``g_n(y)``
       the output gradient of the NLL at label ``y``; for Categorical ``(p - e_y)(p - e_y)^T``,
       so ``M_n 1 = 0``) with the weights identifiable and on the lattice ``(1/S) Z_{>=0}``,
       summing to 1, for some ``S <= S_max``; ``S_max`` is chosen so that weights whose
       fractional parts are uniform fit by coincidence with probability <= 1e-3. ``k = 1``
       (an average; the smallest ``S`` consistent with the counts is reported -- every
       multiple fits too) or ``k = S`` (summed over ``S`` labels instead of averaged).
       The coincidence bound holds for weights with spread fractional parts; a deterministic
       bug with rational weights (an unweighted class average: weights ``1/K``; the empirical
       Fisher at wrong labels: one-hot weights) is a lattice point as well, and only the
       statistics of step 3 speak against it -- the message says how many degrees of freedom
       they had. Examples whose label terms are linearly dependent are checked for
       consistency and left out; with fewer identified examples than left out, no claim.
       Otherwise (continuous likelihoods: Gaussian, GaussianMeanVariance) ``M_n`` must be
       symmetric PSD, nonzero, zero on the null space of ``F_out`` and of the same rank
       ``S < rank F_out`` for every example (a sum of ``S`` rank-one terms; ``S`` is then
       identified). Without such structural evidence -- Poisson, Bernoulli with ``C > 2``
       outputs, continuous likelihoods with ``S >= C`` -- no finding is made, only a note in
       the ``no_known_pattern`` evidence: the statistical bands alone were measured to accept
       deterministic bugs (a wrong output Fisher, one example counted twice).
    3. **Statistics.** Finite label spaces: the Pearson statistic of the label counts against
       ``S p`` lies within a two-sided Chebyshev band of its exact mean ``N (K-1)`` and
       exact multinomial variance. Otherwise: ``sum_n tr(F_n^+ (M_n/k - F_n))`` and
       ``sum_n ||F_n^{+1/2} (M_n/k) F_n^{+1/2} - P_n||^2`` lie within two-sided Chebyshev bands
       of their means and variances under the hypothesis (one-sample moments from
       ``num_draws`` draws with a fixed seed, variances inflated by 25 %). Each band rejects a
       true estimate with probability <= ``_MC_ALPHA`` = 0.1 %.

    Returns a note for the ``no_known_pattern`` evidence when the statistics fit but the
    structure cannot be verified, else None.
    """
    lik = problem.likelihood
    natural = getattr(lik, "natural", True)
    if quantity not in ("fisher", "ggn") or (quantity == "ggn" and not natural):
        return
    ident = _mc_identify(problem, X, tol)
    if ident is None:
        return
    M, res, err = ident
    out = np.asarray(problem.outputs(), np.float64)
    Fout = np.asarray(lik.output_fisher(out), np.float64)
    N, C, _ = M.shape
    head = (f"actual = s·Σ_n J_nᵀ M_n J_n with the per-example output-space M_n identified "
            f"(N·C(C+1)/2 = {N * C * (C + 1) // 2} unknowns, residual {res:.1e})")
    lat = _mc_lattice(problem, M, err, tol, out)
    if lat is not None:
        if not lat:
            return
        k, S, counts, (Q, EQ, band, fp, smax, skipped) = sorted(
            lat, key=lambda t: (t[0] != 1, t[1]))[0]
        stats = (f"the label counts pass the Pearson chi-square band (Q = {Q:.3g}, mean {EQ:g}, "
                 f"Chebyshev half-width {band:.3g}: a true estimate fails with probability "
                 f"<= {_MC_ALPHA:g}); weights with uniformly spread fractional parts fit a "
                 f"lattice with S <= {smax} with probability <= {fp:.1e}, but a deterministic "
                 f"bug with rational weights (an unweighted class average, wrong one-hot labels) "
                 f"is a lattice point too: against it only the band speaks, with {EQ:g} degrees "
                 f"of freedom")
        if skipped:
            stats += (f"; examples {skipped} have linearly dependent label terms (e.g. p = 1/2 "
                      f"with two classes): consistent, but left out of the counts and the band")
        ambiguous = len(lat) > 1
        if k == 1:
            msg = (f"{head}; each M_n is an average of sampled-label terms g(y) g(y)ᵀ with label "
                   f"counts {counts.tolist()} out of S = {S} per example (S = {S} is the "
                   f"smallest sample count consistent with them; any multiple fits too); "
                   f"{stats}: a Monte-Carlo estimate compared as if exact -- compare it "
                   f"statistically, or with fl.fisher_mc and the same key")
            if ambiguous:
                msg += (f" (it also fits as a sum over S = {[t[1] for t in lat if t[0] != 1]} "
                        f"samples)")
            col.add_raw((2, 0), Finding("monte_carlo_estimate", msg,
                                        convention=f"S={S} (or a multiple)", residual=res))
        else:
            msg = (f"{head}; each M_n is a sum (not an average) of S = {S} sampled-label terms "
                   f"g(y) g(y)ᵀ with label counts {counts.tolist()}; {stats}: the estimate "
                   f"was summed over the S = {S} samples instead of averaged")
            if ambiguous:
                msg += f" (other hypotheses also fit: {[(t[0], t[1]) for t in lat[1:]]} as (k, S))"
            col.add_raw((2, 1), Finding("monte_carlo_estimate", msg,
                                        factor=None if ambiguous else float(S),
                                        convention=f"sum over S={S} samples", residual=res))
        return
    stat, structural = _mc_statistical(problem, M, err, tol, out, Fout, num_draws=num_draws,
                                       seed=seed) or ([], False)
    if not stat:
        return None
    if not structural:
        # the statistics alone cannot tell a sampled estimate from a deterministic bug of the
        # same size (measured: wrong output Fishers pass them): a note, never a finding
        txt = "; ".join(f"{'a sum' if sm else 'an average'} over S in [{g.min()}, {g.max()}]"
                        for sm, g in stat)
        return (f"the per-example output-space M_n are identified and PSD and would pass the "
                f"statistical bands of a Monte-Carlo estimate ({txt}), but with no structural "
                f"evidence (label counts on a lattice, or rank S below rank F_out) no "
                f"Monte-Carlo estimate is claimed")

    def span(good):
        lo, hi = int(good.min()), int(good.max())
        return (lo, hi), (f"S = {lo}" if lo == hi else f"S in [{lo}, {hi}]")

    stats = ("M_n is PSD, nonzero, zero on the null space of F_out, and its deviation from F_out "
             "passes two Chebyshev bands (each rejects a true estimate with probability <= "
             f"{_MC_ALPHA:g})")
    if len(stat) == 2:  # both an average and a sum fit: the factor is not identified
        (_, mean_txt), ((lo, hi), sum_txt) = span(stat[0][1]), span(stat[1][1])
        msg = (f"{head}; {stats} both as an average over {mean_txt} samples and as a sum over "
               f"{sum_txt} samples: a Monte-Carlo estimate compared as if exact (whether it "
               f"was averaged or summed over its samples is not identified)")
        col.add_raw((2, 0), Finding("monte_carlo_estimate", msg,
                                    convention=f"average over {mean_txt} or sum over {sum_txt}",
                                    residual=res))
        return
    summed, good = stat[0]
    (lo, hi), rng_txt = span(good)
    if not summed:
        msg = (f"{head}; {stats} for {rng_txt}: a Monte-Carlo estimate with {rng_txt} samples "
               f"per example compared as if exact -- compare it statistically, or with "
               f"fl.fisher_mc and the same key")
        col.add_raw((2, 0), Finding("monte_carlo_estimate", msg, convention=rng_txt,
                                    residual=res))
    else:
        msg = (f"{head}; {stats} for a Monte-Carlo estimate summed over {rng_txt} samples "
               f"instead of averaged" + ("" if lo == hi else " (S not identified exactly)"))
        col.add_raw((2, 1), Finding("monte_carlo_estimate", msg,
                                    factor=float(lo) if lo == hi else None,
                                    convention=f"sum over {rng_txt} samples", residual=res))


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
            mc_note = _monte_carlo(col, problem, X, q, tol)
        except Exception:  # noqa: BLE001 - no sampler / no Jacobian: hypothesis not testable
            mc_note = None
    else:
        mc_note = None

    findings = col.sorted()
    if findings:
        return findings
    evidence = _evidence(X, Y, problem, q, tol)
    if mc_note:
        evidence += "; " + mc_note
    return [Finding("no_known_pattern", evidence, residual=relative_error(X, Y))]


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
