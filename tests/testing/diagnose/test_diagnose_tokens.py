"""The token axis: planted token-reduction bugs on a model with per-token outputs ``(R, C)``.

Candidates are written out here (the token loss and its gradients with ``jax.grad`` on a
hand-written forward pass, K-FAC factors with NumPy), not taken from fisherlab's references.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing import Problem, diagnose

N, R, D_IN, H, C = 4, 3, 2, 3, 2


def _problem(seed=2):
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(D_IN, H), fl.nn.Tanh(), fl.nn.Dense(H, C)])
    params = [(rng.normal(size=(H, D_IN)), rng.normal(size=H)),
              (rng.normal(size=(C, H)), rng.normal(size=C))]
    x = rng.normal(size=(N, R, D_IN))
    return Problem(model, params, x, rng.integers(0, C, (N, R)), fl.Categorical())


def _forward(theta, x):
    """The network by hand on one sequence ``x (R, D_IN)`` -> ``(R, C)``; ``theta`` flat in
    fisherlab's order (W1 row-major, b1, W2, b2)."""
    i = 0
    W1 = theta[i:i + H * D_IN].reshape(H, D_IN); i += H * D_IN
    b1 = theta[i:i + H]; i += H
    W2 = theta[i:i + C * H].reshape(C, H); i += C * H
    b2 = theta[i:i + C]
    return jnp.tanh(x @ W1.T + b1) @ W2.T + b2


def _token_loss(theta, x, y, r):
    f = _forward(theta, x)[r]
    return jax.nn.logsumexp(f) - f[y[r]]


def _token_gradients(P):
    """``g[n, r] = grad of token r's loss of sequence n``, ``(N, R, d)``."""
    theta = jnp.asarray(P.flat_params)
    x, y = jnp.asarray(P.x), jnp.asarray(P.y)
    with jax.enable_x64(True):
        g = jax.vmap(lambda xn, yn: jnp.stack([jax.grad(_token_loss)(theta, xn, yn, r)
                                               for r in range(R)]))(x, y)
    return np.asarray(g)


def test_per_token_empirical_fisher_for_per_sequence_is_named():
    P = _problem()
    g = _token_gradients(P)
    per_token = np.einsum("nri,nrj->ij", g, g) / N  # tokens as examples (1/N: a sum over tokens)
    per_seq = np.einsum("ni,nj->ij", g.sum(1), g.sum(1)) / N
    desired = P.reference("empirical_fisher")
    assert np.allclose(desired, per_seq, rtol=1e-10)  # the reference is per sequence
    f = diagnose(per_token, desired, problem=P, quantity="empirical_fisher")[0]
    assert f.kind == "token_reduction" and f.data["tokens"] == "flatten", str(f)
    assert "R=3" in f.message  # the per-token mean over N R tokens differs by the factor R
    f = diagnose(per_token / R, desired, problem=P, quantity="empirical_fisher")[0]
    assert f.kind == "token_reduction" and f.factor is None, str(f)


def torch_problem(P0, reduction="mean"):
    """The same network as ``P0`` in PyTorch, ``CrossEntropyLoss(reduction=...)`` over the
    ``N R`` flattened tokens (skips without torch)."""
    torch = pytest.importorskip("torch")
    from fisherlab.testing import torch as flt

    net = torch.nn.Sequential(torch.nn.Linear(D_IN, H), torch.nn.Tanh(),
                              torch.nn.Linear(H, C)).double()
    with torch.no_grad():
        for lin, (W, b) in zip((net[0], net[2]), P0.params):
            lin.weight.copy_(torch.from_numpy(np.asarray(W)))
            lin.bias.copy_(torch.from_numpy(np.asarray(b)))
    return flt.problem(net, torch.from_numpy(np.asarray(P0.x)),
                       torch.from_numpy(np.asarray(P0.y)),
                       torch.nn.CrossEntropyLoss(reduction=reduction))


def test_per_sequence_empirical_fisher_for_per_token_is_named():
    """PyTorch's loss on flattened tokens (the bridge's token setting) expects per-token
    gradients; the per-sequence outer products are named the other way round."""
    P0 = _problem()
    P = torch_problem(P0)
    assert P.tokens == "flatten"
    g = _token_gradients(P0)
    desired = P.reference("empirical_fisher")
    assert np.allclose(desired, np.einsum("nri,nrj->ij", g, g) / (N * R), rtol=1e-10)
    per_seq = np.einsum("ni,nj->ij", g.sum(1), g.sum(1)) / (N * R)
    f = diagnose(per_seq, desired, problem=P, quantity="empirical_fisher")[0]
    assert f.kind == "token_reduction" and f.data["tokens"] == "sum", str(f)


def test_sum_over_tokens_for_mean_is_the_factor_r():
    """The GGN of the mean over all N R tokens (1/(N R)) where fisherlab's per-sequence sum
    (1/N) was expected: the factor 1/R, named by the token count."""
    P = _problem()
    theta = jnp.asarray(P.flat_params)
    with jax.enable_x64(True):
        J = np.asarray(jax.vmap(lambda xn: jax.jacrev(_forward)(theta, xn))(jnp.asarray(P.x)))
        p = np.asarray(jax.nn.softmax(jax.vmap(lambda xn: _forward(theta, xn))(jnp.asarray(P.x))))
    Lam = np.einsum("nrc,cd->nrcd", p, np.eye(C)) - np.einsum("nrc,nrd->nrcd", p, p)
    ggn_tokens = np.einsum("nrci,nrcd,nrdj->ij", J, Lam, J) / (N * R)
    f = diagnose(ggn_tokens, P.reference("ggn"), problem=P, quantity="ggn")[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(1 / R), str(f)
    assert "R=3 tokens" in f.message


def test_reduce_factor_for_expand_on_tokens_is_named():
    """K-FAC-reduce's A (inputs averaged over the R tokens, then the homogeneous 1) where the
    expand factor (every token an example) was expected, for the Dense layer shared over
    tokens."""
    P = _problem()
    x = np.asarray(P.x)
    abar = np.concatenate([x.mean(1), np.ones((N, 1))], 1)
    cand = abar.T @ abar / N
    desired = P.reference("kfac_factor_A", layer=0)  # expand (fisherlab's default)
    f = diagnose(cand, desired, problem=P, quantity="kfac_factor_A")[0]
    assert f.kind == "kfac_factor_formula" and "reduce" in f.data["formula"], str(f)
