"""An independent NumPy curvature engine for planting bugs (no fisherlab code paths).

A small back-propagation engine for ``Dense``/activation networks written from the textbook
formulas -- forward pass, per-example Jacobians of the outputs with respect to the parameters,
the pre-activations and the post-activations, with a pluggable activation derivative -- and
the likelihoods' output-space formulas. Wrong candidates are built from these with one
ingredient replaced, exactly as a user's own code would get it wrong; fisherlab's diagnoser
must then name the bug. Used by the tests only.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_PHI = {"Tanh": np.tanh, "Sigmoid": sigmoid, "ReLU": lambda s: np.maximum(s, 0.0),
        "Identity": lambda s: s}
#: derivative formulas d(s, a) with a = phi(s)
TRUE_DERIVATIVE = {"Tanh": lambda s, a: 1.0 - a * a, "Sigmoid": lambda s, a: a * (1.0 - a),
                   "ReLU": lambda s, a: (s > 0) * 1.0, "Identity": lambda s, a: np.ones_like(s)}
#: the two slips: the derivative at the output a, and the output form at the pre-activation s
AT_OUTPUT = {"Tanh": lambda s, a: 1.0 - np.tanh(a) ** 2,
             "Sigmoid": lambda s, a: sigmoid(a) * (1.0 - sigmoid(a))}
OUTPUT_FORM_AT_S = {"Tanh": lambda s, a: 1.0 - s * s, "Sigmoid": lambda s, a: s * (1.0 - s)}


def _structure(model):
    """``[(W-layer index, [activation names after it])]`` for a Dense/activation network."""
    out = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Dense":
            out.append([])
        else:
            out[-1].append(name)
    return out


def per_example(model, params, x, derivative=None):
    """For one example ``x``: ``f``, and per layer ``a`` (input), ``s``, ``Js``, ``Ja``, and ``J``.

    ``derivative`` overrides ``TRUE_DERIVATIVE`` per activation name (a dict).
    """
    d = dict(TRUE_DERIVATIVE, **(derivative or {}))
    acts = _structure(model)
    a, inputs, pre, post, dmats = np.asarray(x, float), [], [], [], []
    for (W, b), names in zip(params, acts):
        W, b = np.asarray(W, float), np.asarray(b, float)
        inputs.append(a)
        s = W @ a + b
        pre.append(s)
        D = np.eye(len(s))
        h = s
        for nm in names:
            out = _PHI[nm](h)
            D = np.diag(d[nm](h, out)) @ D
            h = out
        dmats.append(D)
        post.append(h)
        a = h
    f = a
    C = len(f)
    # backward: dF/d(post_k) and dF/d(s_k), one row per output
    Ja, Js = [None] * len(params), [None] * len(params)
    G = np.eye(C)  # dF / d post_L
    for k in range(len(params) - 1, -1, -1):
        Ja[k] = G
        Js[k] = G @ dmats[k]
        if k:
            G = Js[k] @ np.asarray(params[k][0], float)
    blocks = []
    for k in range(len(params)):
        JW = np.einsum("co,i->coi", Js[k], inputs[k]).reshape(C, -1)
        blocks += [JW, Js[k]]
    return dict(f=f, a=inputs, s=pre, Js=Js, Ja=Ja, J=np.concatenate(blocks, axis=1))


def batch(model, params, x, derivative=None):
    rows = [per_example(model, params, xi, derivative) for xi in np.asarray(x, float)]
    out = {k: np.stack([r[k] for r in rows]) for k in ("f", "J")}
    for k in ("a", "s", "Js", "Ja"):
        out[k] = [np.stack([r[k][l] for r in rows]) for l in range(len(rows[0][k]))]
    return out


# ----------------------------------------------------------------------------- likelihoods


def output_fisher(lik, f):
    """``F_out`` per example ``(N, C, C)``."""
    name = type(lik).__name__
    if name == "Categorical":
        p = softmax(f)
        return np.einsum("nc,cd->ncd", p, np.eye(f.shape[1])) - np.einsum("nc,nd->ncd", p, p)
    if name == "Bernoulli":
        s = sigmoid(f)
        return np.einsum("nc,cd->ncd", s * (1 - s), np.eye(f.shape[1]))
    if name == "Poisson":
        return np.einsum("nc,cd->ncd", np.exp(f), np.eye(f.shape[1]))
    if name == "Gaussian":
        return np.broadcast_to(np.eye(f.shape[1]) / lik.variance, (len(f),) + (f.shape[1],) * 2)
    raise NotImplementedError(name)


def mean_of(lik, f):
    name = type(lik).__name__
    return {"Categorical": softmax, "Bernoulli": sigmoid, "Poisson": np.exp,
            "Gaussian": lambda z: z}[name](f)


def output_gradient(lik, f, y):
    """``grad_f (-log p(y | f))`` per example ``(N, C)``."""
    name = type(lik).__name__
    y = np.asarray(y)
    if name == "Categorical":
        return softmax(f) - np.eye(f.shape[1])[y.astype(int)]
    if name == "Gaussian":
        return (f - y) / lik.variance
    return mean_of(lik, f) - y


def sample(lik, f, rng, num_samples=1):
    """Labels drawn from the model: ``(S, N, ...)``."""
    name = type(lik).__name__
    m = mean_of(lik, f)
    if name == "Categorical":
        u = rng.random((num_samples, len(f), 1))
        return (u > np.cumsum(m, axis=1)[None]).sum(-1)
    if name == "Bernoulli":
        return (rng.random((num_samples,) + f.shape) < m).astype(float)
    if name == "Poisson":
        return rng.poisson(m, size=(num_samples,) + f.shape).astype(float)
    return m + np.sqrt(lik.variance) * rng.standard_normal((num_samples,) + f.shape)


# ----------------------------------------------------------------------------- assembly


def sandwich(J, M, weights=None):
    w = np.full(len(J), 1.0 / len(J)) if weights is None else np.asarray(weights)
    return np.einsum("n,nci,ncd,ndj->ij", w, J, M, J)


def outer(g):
    return np.einsum("nc,nd->ncd", g, g)


def fisher(net, lik):
    return sandwich(net["J"], output_fisher(lik, net["f"]))


def empirical_fisher(net, lik, y):
    return sandwich(net["J"], outer(output_gradient(lik, net["f"], y)))


def kfac_factors(net, M, *, homogeneous=1.0, inputs=None, jac="Js"):
    """``[(A, G)]`` with ``A`` from ``[a; homogeneous]`` and ``G`` from ``J^T M J``."""
    out = []
    for k in range(len(net["a"])):
        a = net["a"][k] if inputs is None or inputs[k] is None else inputs[k]
        abar = np.concatenate([a, np.full((len(a), 1), homogeneous)], 1)
        A = abar.T @ abar / len(a)
        J = net[jac][k]
        G = np.einsum("nco,ncd,ndp->op", J, M, J) / len(a)
        out.append((A, G))
    return out


def kfac_matrix(factors, *, kron_order="GA"):
    """Block-diagonal K-FAC in parameter order (``W`` row-major, then ``b``, per layer)."""
    blocks = []
    for A, G in factors:
        out, inp1 = G.shape[0], A.shape[0]
        B = np.kron(G, A) if kron_order == "GA" else np.kron(A, G)
        idx = np.arange(out * inp1).reshape(out, inp1)
        perm = np.concatenate([idx[:, :-1].ravel(), idx[:, -1]])
        blocks.append(B[np.ix_(perm, perm)])
    d = sum(b.shape[0] for b in blocks)
    K, o = np.zeros((d, d)), 0
    for b in blocks:
        K[o:o + len(b), o:o + len(b)] = b
        o += len(b)
    return K


def problem_arrays(problem):
    """``(model, params as NumPy, x, y, likelihood)`` of a ``fl.testing.Problem``."""
    params = [(np.asarray(W, float), np.asarray(b, float)) for W, b in problem.params]
    return problem.model, params, np.asarray(problem.x), np.asarray(problem.y), problem.likelihood

