"""Tests of fl.testing.strategies: the drawn objects satisfy their documented bounds."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import fisherlab as fl
from fisherlab.testing import strategies as fls

RTOL = 1e-9  # rounding slack of the constructions (documented: relative 1e-12 in exact bounds)


def _eig(A):
    return np.linalg.eigvalsh(A)


@given(fls.spd_matrices(min_dim=1, max_dim=5, min_eigenvalue=0.5, max_eigenvalue=20.0,
                        max_condition=10.0))
def test_spd_matrices_bounds(A):
    assert A.dtype == np.float64 and A.ndim == 2 and A.shape[0] == A.shape[1]
    assert 1 <= A.shape[0] <= 5
    np.testing.assert_array_equal(A, A.T)
    lam = _eig(A)
    assert lam[0] >= 0.5 * (1 - RTOL)
    assert lam[-1] <= 20.0 * (1 + RTOL)
    assert lam[-1] / lam[0] <= 10.0 * (1 + RTOL)
    np.linalg.cholesky(A)  # positive definite


@given(fls.spd_matrices(dim=3))
def test_spd_matrices_fixed_dim(A):
    assert A.shape == (3, 3)


@given(fls.spd_matrices(dim=st.sampled_from([2, 4])))
def test_spd_matrices_dim_strategy(A):
    assert A.shape[0] in (2, 4)


@given(fls.psd_matrices(min_dim=2, max_dim=5, min_rank=1, max_rank=3, max_condition=50.0))
def test_psd_matrices_rank_and_condition(A):
    np.testing.assert_array_equal(A, A.T)
    lam = _eig(A)
    scale = lam[-1]
    nonzero = lam[lam > 1e-9 * scale]
    zero = lam[lam <= 1e-9 * scale]
    assert np.all(np.abs(zero) <= 1e-9 * scale)  # PSD up to rounding
    assert 1 <= len(nonzero) <= 3
    assert nonzero[-1] / nonzero[0] <= 50.0 * (1 + RTOL)


@given(fls.psd_matrices(dim=4, rank=2))
def test_psd_matrices_exact_rank(A):
    assert np.linalg.matrix_rank(A, tol=1e-9 * np.abs(A).max()) == 2


@given(fls.psd_matrices(dim=3, rank=0))
def test_psd_matrices_rank_zero_is_zero(A):
    np.testing.assert_array_equal(A, np.zeros((3, 3)))


@given(fls.kronecker_pairs(max_dim=3, max_condition=5.0))
def test_kronecker_pairs(pair):
    A, G = pair
    for M in (A, G):
        lam = _eig(M)
        assert lam[0] > 0 and lam[-1] / lam[0] <= 5.0 * (1 + RTOL)
    # the product of SPD factors is SPD with condition cond(A) cond(G)
    K = np.kron(A, G)
    lk = _eig((K + K.T) / 2)
    assert lk[0] > 0


@given(fls.affine_reparameterizations(max_dim=4, max_condition=30.0, max_offset=0.5))
def test_affine_reparameterizations(Ab):
    A, b = Ab
    n = A.shape[0]
    assert A.shape == (n, n) and b.shape == (n,)
    s = np.linalg.svd(A, compute_uv=False)
    assert s[-1] >= 1 - RTOL and s[0] <= 30.0 * (1 + RTOL)
    assert np.all(np.abs(b) <= 0.5)


@given(fls.likelihoods())
def test_likelihoods_default_is_natural(lik):
    assert isinstance(lik, (fl.Categorical, fl.Gaussian, fl.Bernoulli, fl.Poisson))


@given(fls.likelihoods(families=["gaussian"], min_variance=0.5, max_variance=2.0))
def test_likelihoods_variance_range(lik):
    assert isinstance(lik, fl.Gaussian)
    assert 0.5 <= float(lik.variance) <= 2.0


@given(fls.sequential_models(min_depth=2, max_depth=3, min_width=2, max_width=3,
                             in_features=4, out_features=2, activations=["tanh", "relu"]))
def test_sequential_models(model):
    dense = model.dense_layers
    assert 2 <= len(dense) <= 3
    assert dense[0].in_features == 4 and dense[-1].out_features == 2
    assert all(2 <= l.out_features <= 3 for l in dense[:-1])
    acts = [l for l in model.layers if not isinstance(l, fl.nn.Dense)]
    assert len(acts) == len(dense) - 1
    assert all(isinstance(a, (fl.nn.Tanh, fl.nn.ReLU)) for a in acts)
    assert isinstance(model.layers[-1], fl.nn.Dense)


@given(st.data())
def test_network_parameters_match_model(data):
    model = data.draw(fls.sequential_models(max_depth=3))
    params = data.draw(fls.network_parameters(model, scale=0.5))
    model.check_params(params)
    assert all(np.all(np.abs(W) <= 0.5) and np.all(np.abs(b) <= 0.5) for W, b in params)


@pytest.mark.parametrize("lik,C", [(fl.Categorical(), 3), (fl.Gaussian(), 2), (fl.Bernoulli(), 2),
                                   (fl.Poisson(), 2), (fl.GaussianMeanVariance(), 4)])
def test_batches_valid_targets(lik, C):
    @given(fls.batches(lik, in_features=3, out_features=C, min_size=2, max_size=5))
    def check(batch):
        x, y = batch
        n = x.shape[0]
        assert 2 <= n <= 5 and x.shape == (n, 3) and x.dtype == np.float64
        outputs = np.zeros((n, C))
        lik.check_targets(y, outputs)  # the likelihood itself accepts them
        if isinstance(lik, fl.Categorical):
            assert y.shape == (n,) and np.issubdtype(y.dtype, np.integer)
            assert np.all((0 <= y) & (y < C))
        elif isinstance(lik, fl.Bernoulli):
            assert set(np.unique(y)) <= {0.0, 1.0}
        elif isinstance(lik, fl.Poisson):
            assert np.all(y >= 0) and np.all(y == np.round(y))
    check()


@given(fls.problems(max_size=3))
def test_problems_are_consistent(problem):
    assert problem.num_outputs == problem.model.out_features
    assert problem.num_params == problem.model.num_params
    assert problem.outputs().shape == (problem.num_examples, problem.num_outputs)


def test_shrinks_to_simple_examples():
    from hypothesis import find

    A = find(fls.spd_matrices(dim=3, min_eigenvalue=2.0), lambda A: True)
    np.testing.assert_allclose(A, 2.0 * np.eye(3), rtol=0, atol=1e-15)
    A, b = find(fls.affine_reparameterizations(dim=2), lambda Ab: True)
    np.testing.assert_allclose(A, np.eye(2), atol=1e-15)
    np.testing.assert_array_equal(b, np.zeros(2))


BAD_CALLS = [
    (fls.spd_matrices, dict(min_dim=0)),
    (fls.spd_matrices, dict(min_dim=4, max_dim=2)),
    (fls.spd_matrices, dict(dim=0)),
    (fls.spd_matrices, dict(dim=2.5)),
    (fls.spd_matrices, dict(min_eigenvalue=0.0)),
    (fls.spd_matrices, dict(min_eigenvalue=-1.0)),
    (fls.spd_matrices, dict(min_eigenvalue=2.0, max_eigenvalue=1.0)),
    (fls.spd_matrices, dict(max_condition=0.5)),
    (fls.spd_matrices, dict(max_condition=float("nan"))),
    (fls.spd_matrices, dict(max_eigenvalue=float("inf"))),
    (fls.psd_matrices, dict(dim=2, rank=3)),
    (fls.psd_matrices, dict(max_dim=3, rank=4)),
    (fls.psd_matrices, dict(rank=-1)),
    (fls.psd_matrices, dict(min_rank=3, max_rank=1)),
    (fls.psd_matrices, dict(max_dim=2, min_rank=3)),
    (fls.kronecker_pairs, dict(min_dim=3, max_dim=1)),
    (fls.kronecker_pairs, dict(max_condition=0.0)),
    (fls.affine_reparameterizations, dict(max_condition=0.9)),
    (fls.affine_reparameterizations, dict(max_offset=-1.0)),
    (fls.affine_reparameterizations, dict(dim=True)),
    (fls.likelihoods, dict(families=[])),
    (fls.likelihoods, dict(families=["softmax"])),
    (fls.likelihoods, dict(min_variance=0.0)),
    (fls.likelihoods, dict(min_variance=2.0, max_variance=1.0)),
    (fls.sequential_models, dict(min_depth=0)),
    (fls.sequential_models, dict(min_depth=3, max_depth=2)),
    (fls.sequential_models, dict(min_width=0)),
    (fls.sequential_models, dict(min_width=5, max_width=2)),
    (fls.sequential_models, dict(activations=[])),
    (fls.sequential_models, dict(activations=["gelu"])),
    (fls.sequential_models, dict(in_features=0)),
    (fls.sequential_models, dict(out_features="2")),
    (fls.network_parameters, dict(model="not a model")),
    (fls.network_parameters, dict(model=fl.nn.Sequential([fl.nn.Dense(1, 1)]), scale=0.0)),
    (fls.batches, dict(likelihood=fl.Categorical(), in_features=2, out_features=1)),
    (fls.batches, dict(likelihood=fl.Gaussian(), in_features=0, out_features=1)),
    (fls.batches, dict(likelihood=fl.Gaussian(), in_features=2)),
    (fls.batches, dict(likelihood=fl.Gaussian(), in_features=2, out_features=1, min_size=0)),
    (fls.batches, dict(likelihood=fl.Gaussian(), in_features=2, out_features=1, min_size=3,
                       max_size=2)),
    (fls.batches, dict(likelihood=fl.GaussianMeanVariance(), in_features=2, out_features=3)),
    (fls.batches, dict(likelihood="gaussian", in_features=2, out_features=1)),
    (fls.problems, dict(likelihoods_=fl.Gaussian())),
    (fls.problems, dict(min_size=2, max_size=1)),
    (fls.problems, dict(scale=-1.0)),
]


@pytest.mark.parametrize("fn,kwargs", BAD_CALLS,
                         ids=[f"{fn.__name__}-{sorted(kw)}-{i}" for i, (fn, kw) in enumerate(BAD_CALLS)])
def test_bad_arguments_raise_at_build_time(fn, kwargs):
    kwargs = dict(kwargs)
    args = ()
    if fn is fls.network_parameters:
        args = (kwargs.pop("model"),)
    if fn is fls.batches:
        args = (kwargs.pop("likelihood"),)
    with pytest.raises(InvalidArgument):
        fn(*args, **kwargs)  # raised by the call itself, before any draw


def test_keyword_only_bounds():
    with pytest.raises(TypeError):
        fls.spd_matrices(3)  # noqa
    with pytest.raises(TypeError):
        fls.psd_matrices(3, 2)  # noqa


def test_all_is_explicit():
    for name in fls.__all__:
        assert callable(getattr(fls, name))
