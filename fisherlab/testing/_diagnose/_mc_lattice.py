"""Monte-Carlo identification: the per-example output-space matrices and their label counts.

:func:`identify` recovers ``M_n`` of ``actual = s sum_n J_n^T M_n J_n`` by least squares (only
where the design has full column rank: the ``M_n`` are then *identified*); :func:`lattice`
tests, for a finite label space, whether each ``M_n`` is an average (or a sum) of sampled-label
terms ``g_n(y) g_n(y)^T`` with label counts on the lattice ``(1/S) Z_{>=0}``, their Pearson
statistic against ``S p`` and an exact multinomial test (:func:`exact_test`); see
:mod:`fisherlab.testing._diagnose._monte_carlo`.
"""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import float64
from fisherlab.likelihoods import Bernoulli, Categorical
from fisherlab.testing._compare import TINY
from fisherlab.testing._diagnose import _network

__all__ = ["ALPHA", "finite_support", "identify", "label_gradients", "lattice"]


@functools.partial(jax.jit, static_argnums=0)
def _label_gradients_jit(lik, out, ys):
    return jax.vmap(lambda o: jax.vmap(lambda y: lik._output_grad(o, y))(ys))(out)


def label_gradients(lik, out, ys):
    """``g_n(y_k) = grad_f (-log p(y_k | f_n))`` for every example and label: ``(N, K, C)``."""
    with float64():
        return np.asarray(_label_gradients_jit(lik, jnp.asarray(out, jnp.float64),
                                               jnp.asarray(ys)))


#: false-rejection probability of each statistical band of the Monte-Carlo hypothesis
#: (two-sided Chebyshev bands on statistics whose mean and variance under the hypothesis are
#: known: a true estimate fails a band with probability <= ALPHA).
ALPHA = 1e-3
#: largest sample count S tested (a claim needs S <= S_MAX)
S_MAX = 10_000
#: largest chance that non-lattice label weights fit a lattice (1/S)Z by coincidence
LATTICE_FP = 1e-3
#: largest design matrix (entries) of the Monte-Carlo identification (~400 MB of float64)
MAX_DESIGN = 50_000_000
#: largest finite support (number of label outcomes per example) enumerated exactly
MAX_SUPPORT = 64


def identify(problem, X, tol):
    """Recover the per-example output-space matrices ``M_n`` of ``X = s sum_n J_n^T M_n J_n``.

    Returns ``(M, res, err)`` -- ``M`` ``(N, C, C)`` symmetric, ``res`` the relative residual
    of the fit, ``err`` a bound on the entry error of ``M`` from a relative perturbation
    ``max(res, 1e-14)`` of ``X`` -- or None when the ``M_n`` are not identifiable (more unknowns
    ``N C (C+1)/2`` than equations ``d (d+1)/2``, a rank-deficient design, too large a problem)
    or ``X`` is not of this form.
    """
    J = _network.jacobians(problem)
    N, C, d = J.shape
    s = problem.scale * problem._scales["curvature"]
    unknowns = N * C * (C + 1) // 2
    if unknowns > d * (d + 1) // 2 or d * d * unknowns > MAX_DESIGN:
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


def finite_support(lik, out):
    """``(targets (K, ...), probabilities (N, K))`` of a finite label space, else None."""
    N, C = out.shape
    if isinstance(lik, Categorical):
        z = out - out.max(axis=1, keepdims=True)
        p = np.exp(z)
        return np.arange(C), p / p.sum(axis=1, keepdims=True)
    if isinstance(lik, Bernoulli) and 2 ** C <= MAX_SUPPORT:
        ys = np.array(list(itertools.product([0.0, 1.0], repeat=C)))  # (K, C)
        logsig = -np.logaddexp(0.0, -out)  # log sigma(f)
        logsig_neg = -np.logaddexp(0.0, out)  # log sigma(-f)
        logp = ys @ logsig.T + (1.0 - ys) @ logsig_neg.T  # (K, N)
        return ys, np.exp(logp.T)
    return None


#: largest number of count vectors per example enumerated by the exact multinomial test
MAX_COMPOSITIONS = 200_000


def _compositions(S, K):
    """All count vectors of ``S`` draws over ``K`` labels, ``(M, K)``."""
    out = []
    for bars in itertools.combinations(range(S + K - 1), K - 1):
        edges = (-1,) + bars + (S + K - 1,)
        out.append([edges[i + 1] - edges[i] - 1 for i in range(K)])
    return np.array(out, dtype=float)


def exact_test(counts, probs, S):
    """Combined exact multinomial test of label counts against ``Mult(S, p_n)``, or None.

    Per example, the p-value is the probability of all count vectors no more likely than the
    observed one (exact, enumerated); Fisher's combination ``-2 sum log p_n`` is compared with
    the chi-square distribution with ``2 m`` degrees of freedom (closed form for even degrees).
    Discrete p-values make the test conservative: a true estimate is rejected with probability
    at most the returned combined p-value's threshold. None when too many count vectors.
    """
    K = probs.shape[1]
    if math.comb(S + K - 1, K - 1) > MAX_COMPOSITIONS:
        return None
    comp = _compositions(S, K)
    base = math.lgamma(S + 1) - np.sum([[math.lgamma(v + 1) for v in row] for row in comp], 1)
    x = 0.0
    for c, p in zip(counts, probs):
        with np.errstate(divide="ignore"):
            logp = np.log(p)
        terms = np.where(comp > 0, comp * logp[None, :], 0.0)
        logpmf = base + terms.sum(1)
        obs = math.lgamma(S + 1) - sum(math.lgamma(v + 1) for v in c) + float(
            np.sum(np.where(c > 0, c * logp, 0.0)))
        pval = float(np.sum(np.exp(logpmf[logpmf <= obs + 1e-9 * max(1.0, abs(obs))])))
        x += -2.0 * math.log(max(min(pval, 1.0), 1e-300))
    m = len(counts)
    # P(chi2_{2m} > x) = exp(-x/2) sum_{k<m} (x/2)^k / k!
    half = x / 2.0
    total, term = 0.0, 1.0
    for k in range(m):
        if k:
            term *= half / k
        total += term
    return math.exp(-half) * total


def _vech(M):
    C = M.shape[-1]
    iu = np.triu_indices(C)
    return M[..., iu[0], iu[1]]


def lattice(problem, M, err, tol, out):
    """Finite label space: ``M_n / k = sum_y w_{ny} g_n(y) g_n(y)^T`` with label counts.

    Returns a list of lattice fits ``(k, S, counts, extra, passed)`` (``k = 1``: an average over
    ``S`` labels, ``S`` the smallest count consistent; ``k = S``: a sum over ``S`` labels;
    ``counts`` of the identified examples ``extra[6]``; ``passed``: the Pearson band) or None
    when the weights of no example are identifiable; ``[]`` when no hypothesis fits.

    An example whose label terms are linearly dependent (Categorical with ``C = 2`` at
    ``p = (1/2, 1/2)``: ``g(0) g(0)^T = g(1) g(1)^T``) is consistent with many label counts: it
    must still be reproduced by weights summing to 1, but it carries no lattice evidence and
    is left out of the lattice and Pearson tests (``extra[5]`` lists such examples). When
    fewer examples are identified than left out, None: the few identified weights are too
    weak a witness (a deterministic bug with rational weights fits them).
    """
    lik = problem.likelihood
    sup = finite_support(lik, out)
    if sup is None:
        return None
    ys, probs = sup
    N, C, _ = M.shape
    K = len(ys)
    g = label_gradients(lik, out, ys)  # (N, K, C)
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
    Ss = np.arange(1, S_MAX + 1, dtype=np.float64)
    # lattice tolerance eta_S = S (e_u + 1e-9 + tol): a coincidence bound per S of (2 eta_S)^dof
    eta = Ss * (e_u + 1e-9 + 1e-3 * tol)
    fp = np.cumsum(np.minimum(2 * eta, 1.0) ** dof)
    smax = int(np.searchsorted(fp, LATTICE_FP, side="right"))
    if smax < 1:
        return []

    def fits(u, k):
        """the weights reproduce M/k and sum to 1"""
        for n in range(N):
            r = np.linalg.norm(recon[n] @ u[n] - m[n] / k)
            bound = (10 * (err / k) * math.sqrt(q) + 1e-9 * np.linalg.norm(m[n] / k)
                     + tol * np.linalg.norm(m[n]) / k)
            if r > bound:
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
        EQ = float(dof)
        extra = (math.inf, EQ, 0.0, float(fp[smax - 1]), smax, skipped, ident, 0.0)
        if np.any((counts > 0) & (probs[ident] < 1e-300)):
            out_claims.append((k, S, counts, extra, False))  # labels of probability 0
            continue
        Q = float(np.sum((counts - S * pr) ** 2 / (S * pr)))
        VQ = float(np.sum(2 * (K - 1) + (np.sum(1 / pr, axis=1) - K ** 2 - 2 * K + 2) / S))
        # + rounding: at S = 1 and uniform p, Q = EQ for every count vector (VQ = 0 exactly)
        band = math.sqrt(max(VQ, 0.0) / ALPHA) + 1e-9 * (1.0 + abs(Q) + EQ)
        exact = exact_test(counts, probs[ident], S)
        extra = (Q, EQ, band) + extra[3:-1] + (exact,)
        passed = abs(Q - EQ) <= band and (exact is None or exact > ALPHA)
        out_claims.append((k, S, counts, extra, passed))
    return out_claims
