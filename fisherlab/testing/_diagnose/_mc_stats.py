"""Monte-Carlo statistics for continuous (or large) label spaces: two Chebyshev bands and ranks.

Under the hypothesis ``M_n = (k/S) sum_{j<=S} g_{nj} g_{nj}^T`` with ``g_{nj}`` the output
gradients at labels drawn from the model, ``sum_n tr(F_n^+ (M_n/k - F_n))`` and
``sum_n ||F_n^{+1/2} (M_n/k) F_n^{+1/2} - P_n||^2`` have known means and variances (one-sample
moments estimated from ``num_draws`` draws with a fixed seed, variances inflated by 25 %); each
two-sided Chebyshev band rejects a true estimate with probability <= ``ALPHA``. For a continuous
likelihood ``rank M_n = min(S, rank F_n)`` almost surely: the structural evidence.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import float64
from fisherlab._core.sampling import output_grads, sample_each
from fisherlab.likelihoods import Gaussian, GaussianMeanVariance
from fisherlab.testing._compare import TINY
from fisherlab.testing._diagnose._mc_lattice import ALPHA, S_MAX

__all__ = ["moments", "statistical"]


@functools.partial(jax.jit, static_argnums=(0, 3))
def _sampled_grads(lik, key, out, num_draws):
    keys = jax.random.split(key, out.shape[0])
    draws = sample_each(lik, keys, out, num_draws)  # (N, K, ...)
    return jnp.moveaxis(output_grads(lik, out, draws), 1, 0)  # (K, N, C)


def moments(problem, out, Fout, *, num_draws, seed):
    """One-sample moments of the whitened sampled outer products, per example."""
    lik = problem.likelihood
    N, C = out.shape
    with float64():
        grads = np.asarray(_sampled_grads(lik, jax.random.key(seed),
                                          jnp.asarray(out, jnp.float64), num_draws))
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


def statistical(problem, M, err, tol, out, Fout, *, num_draws, seed):
    """Continuous or large label spaces: two Chebyshev bands and (continuous) ranks.

    Returns ``[(k, S_set, extra), ...]`` for the mean (``k = 1``) and summed (``k = S``)
    hypotheses with the integer sample counts ``S`` that pass.
    """
    N, C, _ = M.shape
    mom = moments(problem, out, Fout, num_draws=num_draws, seed=seed)
    continuous = isinstance(problem.likelihood, (Gaussian, GaussianMeanVariance))
    inflate = 1.25  # the variances are estimated from num_draws draws (fixed seed)
    Ss = np.arange(1, S_MAX + 1, dtype=np.float64)
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
        ok_z = np.abs(z) <= np.sqrt(var_t / Ss / ALPHA)
        ED = e / Ss
        VD = (var_sq + 2 * (Ss - 1) * tr_sig2) / Ss ** 3
        ok_D = np.abs(Dk - ED) <= np.sqrt(VD / ALPHA)
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

