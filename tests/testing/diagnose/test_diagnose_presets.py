"""Peer presets: a candidate computed in a peer's convention (written here with the NumPy engine
from the peer's documented formula) is named by that peer, and compared with the preset's own
reference it gives no finding."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import numpy_oracle as no
from diagnose_cases import N, oracle, problems
from fisherlab.testing import diagnose, relative_error

C = 3


def _layers(problem):
    """``[(start, out, in)]`` of every weight and the bias offsets (fisherlab order)."""
    return [(l.start, *l.shape) for l in problem.leaves() if l.role == "W"]


def _in_out(problem, M):
    """``M`` with every weight stored ``(in, out)`` (kfac-jax's ``w``), written index by index."""
    d = M.shape[0]
    p = np.arange(d)
    for start, out, inp in _layers(problem):
        for i in range(inp):
            for j in range(out):
                p[start + i * out + j] = start + j * inp + i  # w[i, j] is W[j, i]
    return M[np.ix_(p, p)]


def _per_example_gradients(b, lik, y):
    """``g_n = J_n^T grad_f(-log p)`` of fisherlab's negative log-likelihood, ``(N, d)``."""
    return np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], y))


@given(data=st.data())
def test_kfac_jax_empirical_fisher_is_named(data):
    P = data.draw(problems(families=("categorical", "bernoulli", "gaussian")))
    b = oracle(P)
    kappa = 2.0 if type(P.likelihood).__name__ == "Gaussian" else 1.0  # squared error: (y-f)^2
    g = kappa * _per_example_gradients(b, P.likelihood, np.asarray(P.y)) / N  # mean-loss terms
    cand = _in_out(P, g.T @ g)
    f = diagnose(cand, P.reference("empirical_fisher"), problem=P, quantity="empirical_fisher")
    assert f[0].kind == "transposed_weight_layout" and "kfac-jax" in f[0].convention, str(f[0])
    assert diagnose(cand, P.reference("empirical_fisher", convention="kfac-jax"), problem=P,
                    quantity="empirical_fisher") == []


@given(data=st.data())
def test_curvlinops_kfac_with_separate_bias_is_named(data):
    P = data.draw(problems(families=("gaussian", "categorical")))
    b = oracle(P)
    M = no.output_fisher(P.likelihood, b["f"])
    blocks = []
    for k in range(len(b["a"])):
        a = b["a"][k]
        A = a.T @ a / N  # no ones column
        G = np.einsum("nco,ncd,ndp->op", b["Js"][k], M, b["Js"][k]) / N
        blocks.append(np.block([[np.kron(G, A), np.zeros((len(G) * len(A), len(G)))],
                                [np.zeros((len(G), len(G) * len(A))), G]]))
    d = sum(len(x) for x in blocks)
    K, o = np.zeros((d, d)), 0
    for x in blocks:
        K[o:o + len(x), o:o + len(x)] = x
        o += len(x)
    if type(P.likelihood).__name__ == "Gaussian":
        K = K * 2.0 / C  # MSELoss(reduction="mean")
    f = diagnose(K, P.reference("kfac"), problem=P, quantity="kfac")
    assert f[0].kind == "bias_cross_terms_missing" and "curvlinops" in f[0].convention, str(f[0])
    assert diagnose(K, P.reference("kfac", convention="curvlinops"), problem=P,
                    quantity="kfac") == []


@given(data=st.data())
def test_backpack_grad_batch_outer_product_is_named(data):
    P = data.draw(problems(families=("gaussian",)))
    b = oracle(P)
    # BatchGrad of MSELoss(reduction="mean"): the gradients of (1/(N C)) sum_c (f - y)^2
    r = b["f"] - np.asarray(P.y)
    g = np.einsum("nci,nc->ni", b["J"], 2.0 * r / (N * C))
    cand = g.T @ g
    desired = P.reference("empirical_fisher")
    assert relative_error(cand, desired) > 1e-6
    f = diagnose(cand, desired, problem=P, quantity="empirical_fisher")
    assert f[0].kind == "scalar_factor" and f[0].convention.startswith(
        "the empirical Fisher normalisation of backpack"), str(f[0])
