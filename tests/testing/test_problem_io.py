"""Problem.save / Problem.load: a round trip of every savable part; clear errors otherwise."""

import jax
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing import Problem


@pytest.mark.parametrize("case", ["dense_gaussian_sum", "conv_categorical"])
def test_round_trip(tmp_path, case):
    rng = np.random.default_rng(0)
    if case == "dense_gaussian_sum":
        model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Sigmoid(), fl.nn.Dense(3, 2)])
        x, y, lik, red = rng.normal(size=(3, 2)), rng.normal(size=(3, 2)), fl.Gaussian(0.5), "sum"
    else:
        model = fl.nn.Sequential([fl.nn.Conv2d(1, 2, 2, stride=1, padding=1), fl.nn.ReLU(),
                                  fl.nn.Flatten(), fl.nn.Dense(32, 3)])
        x, y, lik, red = rng.normal(size=(2, 1, 3, 3)), np.array([0, 2]), fl.Categorical(), "mean"
    P = Problem(model, model.init(jax.random.key(0)), x, y, lik, reduction=red)
    path = P.save(tmp_path / "p")
    assert path.endswith(".npz")
    Q = Problem.load(path)
    assert Q.model == P.model and Q.likelihood == P.likelihood and Q.reduction == red
    assert Q.digest() == P.digest() and repr(Q) == repr(P)
    np.testing.assert_allclose(Q.reference("ggn"), P.reference("ggn"), rtol=1e-14)


def test_what_cannot_be_saved_says_why(tmp_path):
    P = Problem(lambda p, x: p @ x, np.eye(2), np.ones((3, 2)), np.zeros(3, int),
                fl.Categorical())
    with pytest.raises(TypeError, match="Python function .*code is not data.*fl.nn"):
        P.save(tmp_path / "f.npz")

    class Mine(Problem):
        pass

    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    M = Mine(model, model.init(jax.random.key(0)), np.ones((3, 2)), np.zeros(3, int),
             fl.Categorical())
    with pytest.raises(TypeError, match="cannot save a Mine"):
        M.save(tmp_path / "m.npz")


def test_loading_a_file_that_is_not_a_problem(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="not a saved fl.testing.Problem"):
        Problem.load(tmp_path / "other.npz")


def test_round_trip_of_a_transformer_block(tmp_path):
    """Nested layers (Residual, Sequential), Embedding, LayerNorm, causal attention and GELU
    with integer token ids: saved and reloaded to the same problem and the same reference."""
    nn = fl.nn
    model = nn.Sequential([
        nn.Embedding(5, 4),
        nn.Residual(nn.Sequential([nn.LayerNorm(4), nn.MultiHeadAttention(4, 2, causal=True)])),
        nn.Residual(nn.Sequential([nn.RMSNorm(4), nn.Dense(4, 6), nn.GELU("tanh"), nn.Dense(6, 4)])),
        nn.Dense(4, 3)])
    x = np.array([[0, 4, 2], [1, 3, 3]])
    y = np.array([[2, 0, 1], [0, 2, 2]])
    P = Problem(model, model.init(jax.random.key(0)), x, y, fl.Categorical())
    Q = Problem.load(P.save(tmp_path / "tokens"))
    assert Q.model == P.model and Q.digest() == P.digest()
    assert np.issubdtype(np.asarray(Q.x).dtype, np.integer)
    np.testing.assert_allclose(Q.reference("ggn"), P.reference("ggn"), rtol=1e-14)
