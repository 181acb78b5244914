"""Identified labels: how they were drawn (``label_sampling``) or aligned (``target_mismatch``).

A one-sample estimate has per-example output matrices ``M_n = g_n(y_n) g_n(y_n)^T`` of rank one;
``g_n`` is recovered up to sign from the eigendecomposition and the label from the likelihood's
gradient (``p - e_y``, ``sigmoid(f) - y``, ``exp(f) - y``): it must be a valid label (one-hot,
in ``{0,1}^C``, a non-negative integer vector) within rounding, which a deterministic bug almost
never produces -- the structural evidence. For K-FAC the ``G`` factors are sums over examples, so
the labels are found by enumerating the ``K^N`` label assignments (finite label spaces, small
``N``) against every layer's ``G`` at once, and kept only when exactly one fits.

Identified labels are then judged:

* the data labels of *other* examples, or class indices shifted by one -> ``target_mismatch``;
* a deterministic pattern -> ``label_sampling``, never a Monte-Carlo estimate: every label the
  mode of its example's predictive distribution (argmax labels), or one label shared by all
  examples (one draw for the batch). The probability that independent draws from the model
  show the pattern is stated; a small one is evidence against sampling;
* labels whose total log-probability ``sum_n log p(y_n | f_n)`` lies outside a two-sided
  Chebyshev band around its mean (exact mean and variance under the model; a true draw falls
  outside with probability <= ``ALPHA``) -> ``label_sampling``: not drawn from the model
  (e.g. sampled from the logits taken as probabilities, or from another distribution);
* otherwise a Monte-Carlo estimate with one sample per example (``verdict`` returns None and
  the caller claims it).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from fisherlab.likelihoods import Bernoulli, Categorical, Poisson
from fisherlab.testing._diagnose._mc_lattice import ALPHA, MAX_SUPPORT, finite_support

__all__ = ["log_prob_band", "modes", "recover", "shared_probability", "verdict"]

_LABELLED = (Categorical, Bernoulli, Poisson)


def _softmax(f):
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mean(lik, f):
    if isinstance(lik, Categorical):
        return _softmax(f)
    if isinstance(lik, Bernoulli):
        return 1.0 / (1.0 + np.exp(-f))
    return np.exp(f)


def _valid(lik, y, eta):
    r = np.round(y)
    if np.max(np.abs(y - r)) > eta or np.min(r) < 0:
        return None
    if isinstance(lik, Categorical):
        return int(np.argmax(r)) if r.sum() == 1 and r.max() == 1 else None
    if isinstance(lik, Bernoulli) and r.max() > 1:
        return None
    return r


def recover(problem, M, err, tol):
    """Labels ``(N, ...)`` with ``M_n = g_n(y_n) g_n(y_n)^T`` for every example, or None."""
    lik = problem.likelihood
    if not isinstance(lik, _LABELLED):
        return None
    f = np.asarray(problem.outputs(), np.float64)
    if f.ndim != 2:
        return None
    mean = _mean(lik, f)
    labels = []
    for n in range(M.shape[0]):
        lam, V = np.linalg.eigh((M[n] + M[n].T) / 2)
        top = lam[-1]
        if top <= 0 or np.max(np.abs(lam[:-1])) > err + tol * top + 1e-12 * top:
            return None  # not rank one
        g = math.sqrt(top) * V[:, -1]
        eta = 1e-6 + 100 * (err + tol * top) / max(math.sqrt(top), 1e-300)
        found = [v for v in (_valid(lik, mean[n] - g, eta), _valid(lik, mean[n] + g, eta))
                 if v is not None]
        if not found or (len(found) == 2 and not np.array_equal(found[0], found[1])):
            return None  # no valid label, or two (the sign of g undetermined)
        labels.append(found[0])
    return np.array(labels)


def _log_p(lik, f, y):
    """``log p(y_n | f_n)`` per example."""
    if isinstance(lik, Categorical):
        z = f - f.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return logp[np.arange(len(y)), y.astype(int)]
    if isinstance(lik, Bernoulli):
        return np.sum(y * -np.logaddexp(0, -f) + (1 - y) * -np.logaddexp(0, f), axis=1)
    lgam = np.vectorize(math.lgamma)
    return np.sum(y * f - np.exp(f) - lgam(y + 1.0), axis=1)


def _poisson_table(rate):
    """Support ``0..K`` and probabilities covering all but ~1e-12 of ``Poisson(rate)``."""
    top = int(rate + 12 * math.sqrt(rate) + 30)
    k = np.arange(top + 1, dtype=float)
    lgam = np.vectorize(math.lgamma)
    return k, np.exp(k * math.log(max(rate, 1e-300)) - rate - lgam(k + 1))


def _moments(lik, f):
    """Mean and variance of ``log p(y | f_n)`` under ``y ~ p(.|f_n)``, per example."""
    if isinstance(lik, Categorical):
        z = f - f.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = np.exp(logp)
        m = np.sum(p * logp, axis=1)
        return m, np.sum(p * logp ** 2, axis=1) - m ** 2
    if isinstance(lik, Bernoulli):
        s = 1.0 / (1.0 + np.exp(-f))
        m = s * -np.logaddexp(0, -f) + (1 - s) * -np.logaddexp(0, f)
        return m.sum(1), (s * (1 - s) * f ** 2).sum(1)
    means, variances = np.zeros(len(f)), np.zeros(len(f))
    lgam = np.vectorize(math.lgamma)
    for n in range(len(f)):
        for eta in f[n]:
            k, p = _poisson_table(math.exp(eta))
            lp = k * eta - math.exp(eta) - lgam(k + 1)
            m = float(np.sum(p * lp))
            means[n] += m
            variances[n] += float(np.sum(p * lp ** 2)) - m * m
    return means, variances


def log_prob_band(problem, labels):
    """``(passed, T, mean, half_width)`` of the total log-probability of ``labels``."""
    lik, f = problem.likelihood, np.asarray(problem.outputs(), np.float64)
    T = float(np.sum(_log_p(lik, f, labels)))
    m, v = _moments(lik, f)
    half = math.sqrt(max(float(np.sum(v)), 0.0) / ALPHA) + 1e-9 * (1 + abs(T))
    return abs(T - float(np.sum(m))) <= half, T, float(np.sum(m)), half


def exact_one_sample(problem, labels):
    """Combined exact test of one label per example (finite label spaces), or None.

    Per example the p-value is the probability of the labels no more likely than the observed
    one; Fisher's combination against chi-square with ``2 N`` degrees of freedom (conservative
    for discrete p-values).
    """
    f = np.asarray(problem.outputs(), np.float64)
    sup = finite_support(problem.likelihood, f)
    if sup is None:
        return None
    ys, probs = sup
    ys = np.reshape(ys, (len(ys), -1))
    x = 0.0
    for n, lab in enumerate(np.reshape(labels, (len(labels), -1))):
        k = int(np.flatnonzero(np.all(ys == lab[None, :], axis=1))[0])
        pv = float(np.sum(probs[n][probs[n] <= probs[n, k] * (1 + 1e-12)]))
        x += -2.0 * math.log(max(min(pv, 1.0), 1e-300))
    half, total, term = x / 2.0, 0.0, 1.0
    for i in range(len(labels)):
        if i:
            term *= half / i
        total += term
    return math.exp(-half) * total


def modes(problem):
    """The mode of each example's predictive distribution (argmax labels)."""
    lik, f = problem.likelihood, np.asarray(problem.outputs(), np.float64)
    if isinstance(lik, Categorical):
        return np.argmax(f, axis=1)
    if isinstance(lik, Bernoulli):
        return (f > 0).astype(float)
    return np.floor(np.exp(f))


def unique_modes(problem) -> bool:
    """Whether every example's predictive distribution has a single mode (no ties)."""
    lik, f = problem.likelihood, np.asarray(problem.outputs(), np.float64)
    if isinstance(lik, Categorical):
        top = np.sort(f, axis=1)
        return bool(f.shape[1] < 2 or np.all(top[:, -1] - top[:, -2] > 1e-12))
    if isinstance(lik, Bernoulli):
        return bool(np.all(np.abs(f) > 1e-12))
    rate = np.exp(f)
    return bool(np.all(np.abs(rate - np.round(rate)) > 1e-12))


def _mode_probability(problem):
    lik, f = problem.likelihood, np.asarray(problem.outputs(), np.float64)
    return float(np.exp(np.sum(_log_p(lik, f, modes(problem)))))


def shared_probability(problem):
    """Probability that independent draws give every example the same label."""
    lik, f = problem.likelihood, np.asarray(problem.outputs(), np.float64)
    if isinstance(lik, Categorical):
        return float(np.sum(np.prod(_softmax(f), axis=0)))
    if isinstance(lik, Bernoulli):
        s = 1.0 / (1.0 + np.exp(-f))
        return float(np.prod(np.prod(s, axis=0) + np.prod(1 - s, axis=0)))
    total = 1.0
    for c in range(f.shape[1]):
        tables = [_poisson_table(float(np.exp(f[n, c])))[1] for n in range(f.shape[0])]
        size = max(len(t) for t in tables)
        prod = np.ones(size)
        for t in tables:
            prod *= np.concatenate([t, np.zeros(size - len(t))])
        total *= float(prod.sum())
    return total


def _probability(problem, labels):
    lik, f = problem.likelihood, np.asarray(problem.outputs(), np.float64)
    return float(np.exp(np.sum(_log_p(lik, f, labels))))


def _relations(problem):
    """``[(name, description, labels)]``: label vectors derived from the data targets."""
    y = np.asarray(problem.y)
    out = []
    if len(y) > 1:
        out += [("roll+1", "the data targets rolled by one example (each example paired with "
                 "the previous example's target)", np.roll(y, 1, axis=0)),
                ("roll-1", "the data targets rolled by one example the other way",
                 np.roll(y, -1, axis=0)),
                ("reversed", "the data targets in reverse order", y[::-1])]
    if isinstance(problem.likelihood, Categorical):
        C = problem.num_outputs
        out += [(f"class{s:+d}", f"the data class indices shifted by {s:+d} (mod C={C})",
                 (y + s) % C) for s in (1, -1)]
    if isinstance(problem.likelihood, Bernoulli):
        out.append(("flipped", "the data labels flipped (1 - y)", 1 - y))
    return [(n, d, v) for n, d, v in out if not np.array_equal(v, y)]


def _permutation_probability(problem, labels):
    """Probability that a draw from the model is *some* permutation of the data targets' rows."""
    y = np.asarray(problem.y)
    rows = {tuple(np.ravel(r)) for r in itertools.permutations(list(map(tuple, y.reshape(
        len(y), -1))))} if len(y) <= 7 else None
    if rows is None:
        return None
    shape = y.shape
    return sum(_probability(problem, np.asarray(r).reshape(shape)) for r in rows)


def _data_relation(problem, labels):
    """``(name, description, probability)`` when ``labels`` derive from the data targets."""
    y = np.asarray(problem.y)
    if labels.shape != y.shape:
        return None
    for name, desc, v in _relations(problem):
        if np.array_equal(labels, v):
            return name, desc, _probability(problem, v)
    rows = sorted(map(tuple, y.reshape(len(y), -1)))
    if rows == sorted(map(tuple, labels.reshape(len(y), -1))):
        q = _permutation_probability(problem, labels)
        if q is not None and q < ALPHA:  # a chance match of the multiset is unlikely
            return "permuted", "a permutation of the data targets (misaligned)", q
    return None


def verdict(problem, labels, what):
    """``(kind, message, data)`` for identified one-sample ``labels``, or None (a genuine draw).

    ``what`` describes where the labels were identified (for the message).
    """
    y = np.asarray(problem.y)
    if labels.shape == y.shape and np.array_equal(labels, y):
        return None  # the data labels: the empirical Fisher (named by the quantity swaps)
    rel = _data_relation(problem, labels)
    lab = labels.astype(int).tolist() if np.all(labels == np.round(labels)) else labels.tolist()
    if rel is not None:
        name, desc, q = rel
        tie = ("" if q < ALPHA else ": a one-sample Monte-Carlo estimate is not ruled out, but "
               "it is not certified either")
        return ("target_mismatch", f"{what}: the labels {lab} are {desc} -- an empirical Fisher "
                f"at misaligned targets (a draw from the model gives these labels with "
                f"probability {q:.3g})" + tie,
                {"labels": labels, "targets": name, "probability": q})
    N = len(labels)
    if unique_modes(problem) and np.array_equal(labels, modes(problem)):
        q = _mode_probability(problem)
        tie = ("" if q < ALPHA else ": a one-sample Monte-Carlo estimate is not ruled out, but "
               "it is not certified either")
        return ("label_sampling", f"{what}: every label is the mode (argmax) of its example's "
                f"predictive distribution, labels {lab}: deterministic argmax labels, not drawn "
                f"from the model (independent draws give all modes with probability {q:.3g})"
                + tie, {"labels": labels, "pattern": "argmax", "probability": q})
    if N >= 2 and all(np.array_equal(labels[0], l) for l in labels[1:]):
        q = shared_probability(problem)
        tie = ("" if q < ALPHA else ": independent sampling is not ruled out, but it is not "
               "certified either")
        return ("label_sampling", f"{what}: all {N} examples have the same label {lab[0]}: one "
                f"draw shared by the whole batch instead of one per example (independent draws "
                f"coincide with probability {q:.3g})" + tie,
                {"labels": labels, "pattern": "shared", "probability": q})
    passed, T, m, half = log_prob_band(problem, labels)
    exact = exact_one_sample(problem, labels)
    if not passed or (exact is not None and exact <= ALPHA):
        ex = "" if exact is None else f"; exact test p = {exact:.2g}"
        return ("label_sampling", f"{what}: labels {lab} whose total log-probability under the "
                f"model is {T:.4g} (band {m:.4g} ± {half:.3g}){ex} (each test rejects a true draw "
                f"with probability <= {ALPHA:g}): labels drawn from another distribution than "
                f"the model's predictive one (e.g. the logits taken as probabilities)",
                {"labels": labels, "pattern": "distribution", "log_probability": T,
                 "probability": exact})
    return None


def support_for_enumeration(problem, N):
    """``(labels (K, ...), K)`` when all ``K^N`` label assignments can be enumerated, else None."""
    out = np.asarray(problem.outputs(), np.float64)
    if out.ndim != 2:
        return None
    sup = finite_support(problem.likelihood, out)
    if sup is None or len(sup[0]) > MAX_SUPPORT:
        return None
    return sup[0]
