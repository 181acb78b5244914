"""The peer presets' maps on a small problem, against the facts each states (the real peers are
compared in tests/peers/test_presets.py; kfac-jax, which needs its own environment, in
benchmarks/kfac_jax_compare.py, whose measured mapping is restated here)."""

import jax
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing import PEER_CONVENTIONS, Problem

N, C = 5, 3


def _problem(lik, reduction="mean", y=None):
    rng = np.random.default_rng(0)
    model = fl.nn.Sequential([fl.nn.Dense(2, 4), fl.nn.Tanh(), fl.nn.Dense(4, C)])
    if y is None:
        y = rng.integers(0, C, N) if isinstance(lik, fl.Categorical) else rng.normal(size=(N, C))
    return Problem(model, model.init(jax.random.key(1)), rng.normal(size=(N, 2)), y, lik,
                   reduction=reduction)


def test_kfac_jax_is_the_measured_mapping():
    """w (in, out): kfac-jax's index i*out + j holds fisherlab's W[j, i] (j*in + i); the bias
    keeps its place; fisher_empirical is 1/N times fisherlab's; squared error is 2x."""
    P = _problem(fl.Categorical())
    p = np.arange(P.num_params)
    for start, (out, inp) in ((0, (4, 2)), (12, (C, 4))):
        for i in range(inp):
            for j in range(out):
                p[start + i * out + j] = start + j * inp + i
    for q, s in (("fisher", 1.0), ("empirical_fisher", 1.0 / N), ("kfac", 1.0)):
        M = P.reference(q)
        assert np.allclose(P.reference(q, convention="kfac-jax"), s * M[np.ix_(p, p)],
                           rtol=1e-13, atol=0)
    G = P.reference("kfac_factor_G", layer=1, fisher_type="empirical")
    assert np.allclose(P.reference("kfac_factor_G", convention="kfac-jax", layer=1,
                                   fisher_type="empirical"), G / N, rtol=1e-13)
    Pg = _problem(fl.Gaussian())
    assert np.allclose(Pg.reference("kfac_factor_G", convention="kfac-jax", layer=0),
                       2 * Pg.reference("kfac_factor_G", layer=0), rtol=1e-13)
    assert np.allclose(Pg.reference("kfac_factor_A", convention="kfac-jax", layer=0),
                       Pg.reference("kfac_factor_A", layer=0), rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduction_is_the_losss_or_the_librarys(reduction):
    P = _problem(fl.Categorical(), reduction)
    F = P.reference("fisher")
    mean = F if reduction == "mean" else F / N
    assert np.allclose(P.reference("fisher", convention="curvlinops"), F, rtol=1e-13)
    assert np.allclose(P.reference("fisher", convention="nngeometry"), mean, rtol=1e-13)
    assert np.allclose(P.reference("fisher", convention="laplace-torch"), N * mean, rtol=1e-13)


def test_declared_variance_is_carried_by_no_peer():
    """A Gaussian of variance v: the MSELoss curvature is 2 J^T J = 2 v x fisherlab's (1/v)."""
    P = _problem(fl.Gaussian(variance=0.5))
    assert np.allclose(P.reference("ggn", convention="pytorch"),
                       2 * 0.5 / C * P.reference("ggn"), rtol=1e-13)
    assert np.allclose(P.reference("empirical_fisher", convention="pytorch"),
                       4 * 0.25 / C * P.reference("empirical_fisher"), rtol=1e-13)


def test_every_preset_is_documented():
    for name, c in PEER_CONVENTIONS.items():
        assert c.name == name and c.library and c.losses
        assert c.evidence.startswith(("measured", "read from the source")), name
        assert c.reduction in ("loss", "mean", "sum") and c.empirical in ("once", "reduced")


def test_presets_refuse_token_models_they_do_not_cover():
    rng = np.random.default_rng(1)
    model = fl.nn.Sequential([fl.nn.Dense(2, C)])
    P = Problem(model, model.init(jax.random.key(0)), rng.normal(size=(N, 4, 2)),
                rng.integers(0, C, (N, 4)), fl.Categorical())
    with pytest.raises(ValueError, match="R=4 output positions"):
        P.reference("ggn", convention="curvlinops")


def test_presets_are_named_relative_to_a_converted_problems_own_scaling():
    """A problem converted from PyTorch has its reference in the loss's scaling: BackPACK's
    grad_batch outer products are then 1/(N C) of it for MSELoss(mean), named as BackPACK's."""
    torch = pytest.importorskip("torch")
    from fisherlab.testing import diagnose
    from fisherlab.testing import torch as flt

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(),
                              torch.nn.Linear(3, C)).double()
    X, y = torch.randn(N, 2, dtype=torch.float64), torch.randn(N, C, dtype=torch.float64)
    P = flt.problem(net, X, y, torch.nn.MSELoss())
    EF = P.reference("empirical_fisher")
    assert np.allclose(P.reference("empirical_fisher", convention="backpack"), EF / (N * C),
                       rtol=1e-12)
    f = diagnose(EF / (N * C), EF, problem=P, quantity="empirical_fisher")[0]
    assert f.kind == "scalar_factor" and "backpack" in f.convention, str(f)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_a_pytorch_loss_as_the_convention(reduction):
    """``convention=torch.nn.MSELoss(reduction=...)`` is the reference in that loss's scaling:
    the GGN of the torch loss computed by torch.func on the same network (float64)."""
    torch = pytest.importorskip("torch")
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    P = Problem(model, params, x, y, fl.Gaussian())
    loss = torch.nn.MSELoss(reduction=reduction)
    theta = torch.tensor(np.asarray(P.flat_params))
    X, Y = torch.tensor(x), torch.tensor(y)

    def f(t):  # the same network, written in torch from the flat parameters
        W1, b1 = t[:12].reshape(4, 3), t[12:16]
        W2, b2 = t[16:24].reshape(2, 4), t[24:26]
        return torch.tanh(X @ W1.T + b1) @ W2.T + b2

    J = torch.func.jacrev(f)(theta).reshape(10, -1)
    Lam = torch.func.hessian(lambda o: loss(o.reshape(5, 2), Y))(f(theta).reshape(-1))
    want = (J.T @ Lam @ J).numpy()
    got = P.reference("ggn", convention=loss)
    assert np.linalg.norm(got - want) <= 1e-12 * np.linalg.norm(want)
    with pytest.raises(ValueError, match=r"offers no loss for the likelihood Gaussian"):
        P.reference("ggn", convention=torch.nn.CrossEntropyLoss())
