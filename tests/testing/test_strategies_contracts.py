"""``fl.testing.strategies``: every argument check with its message, and each documented contract.

The table below has one bad call per validation branch, each with the message it must raise
(``InvalidArgument`` at build time, or at draw time where the bound depends on a drawn size),
so a check that is skipped, or that raises for the wrong reason, fails here. The contract tests
check what the docstrings promise on the drawn values: the default sizes are all reachable,
singular values and eigenvalues lie in their bounds, targets follow each family's convention.
"""

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import fisherlab as fl
from fisherlab.testing import strategies as fls

SEQ = fl.nn.Sequential([fl.nn.Dense(2, 3)])

# (id, thunk, message regex)
BAD = [
    ("dim-bool", lambda: fls.spd_matrices(dim=True), r"dim=True must be an int"),
    ("dim-zero", lambda: fls.spd_matrices(dim=0), r"dim=0 must be >= 1"),
    ("min-dim-float", lambda: fls.spd_matrices(min_dim=1.5), r"min_dim=1.5 must be an int"),
    ("max-dim-float", lambda: fls.spd_matrices(max_dim=2.5), r"max_dim=2.5 must be an int"),
    ("max-dim-zero", lambda: fls.spd_matrices(max_dim=0), r"max_dim=0 must be >= 1"),
    ("dims-order", lambda: fls.spd_matrices(min_dim=4, max_dim=2),
     r"min_dim=4 must be <= max_dim=2"),
    ("eig-str", lambda: fls.spd_matrices(min_eigenvalue="1"),
     r"min_eigenvalue='1' must be a real number"),
    ("eig-bool", lambda: fls.spd_matrices(max_eigenvalue=True),
     r"max_eigenvalue=True must be a real number"),
    ("eig-inf", lambda: fls.spd_matrices(max_eigenvalue=float("inf")),
     r"max_eigenvalue=inf must be finite"),
    ("eig-zero", lambda: fls.spd_matrices(min_eigenvalue=0.0), r"min_eigenvalue=0.0 must be > 0"),
    ("max-eig-negative", lambda: fls.spd_matrices(max_eigenvalue=-1.0),
     r"max_eigenvalue=-1.0 must be > 0"),
    ("eig-order", lambda: fls.spd_matrices(min_eigenvalue=2.0, max_eigenvalue=1.0),
     r"min_eigenvalue=2.0 must be <= max_eigenvalue=1.0"),
    ("cond-below-1", lambda: fls.spd_matrices(max_condition=0.5),
     r"max_condition=0.5 must be >= 1.0"),
    ("psd-eig-zero", lambda: fls.psd_matrices(min_eigenvalue=0.0),
     r"min_eigenvalue=0.0 must be > 0"),
    ("psd-max-eig-zero", lambda: fls.psd_matrices(max_eigenvalue=0.0),
     r"max_eigenvalue=0.0 must be > 0"),
    ("psd-eig-order", lambda: fls.psd_matrices(min_eigenvalue=3.0, max_eigenvalue=2.0),
     r"min_eigenvalue=3.0 must be <= max_eigenvalue=2.0"),
    ("psd-cond", lambda: fls.psd_matrices(max_condition=0.1), r"max_condition=0.1 must be >= 1.0"),
    ("psd-rank-float", lambda: fls.psd_matrices(rank=1.0), r"rank=1.0 must be an int"),
    ("psd-rank-negative", lambda: fls.psd_matrices(rank=-1), r"rank=-1 must be >= 0"),
    ("psd-rank-above-dim", lambda: fls.psd_matrices(dim=2, rank=3), r"rank=3 must be <= dim=2"),
    ("psd-rank-above-max-dim", lambda: fls.psd_matrices(max_dim=3, rank=4),
     r"rank=4 must be <= max_dim=3"),
    ("psd-min-rank-negative", lambda: fls.psd_matrices(min_rank=-1), r"min_rank=-1 must be >= 0"),
    ("psd-max-rank-float", lambda: fls.psd_matrices(max_rank=1.5), r"max_rank=1.5 must be an int"),
    ("psd-rank-order", lambda: fls.psd_matrices(min_rank=3, max_rank=1),
     r"min_rank=3 must be <= max_rank=1"),
    ("psd-min-rank-above-max-dim", lambda: fls.psd_matrices(max_dim=2, min_rank=3),
     r"min_rank=3 exceeds the largest size 2"),
    ("psd-min-rank-above-dim", lambda: fls.psd_matrices(dim=2, min_rank=3),
     r"min_rank=3 exceeds the largest size 2"),
    ("kron-cond", lambda: fls.kronecker_pairs(max_condition=0.0), r"max_condition=0.0 must be >= 1.0"),
    ("kron-dims", lambda: fls.kronecker_pairs(min_dim=3, max_dim=1), r"min_dim=3 must be <= max_dim=1"),
    ("affine-cond", lambda: fls.affine_reparameterizations(max_condition=0.9),
     r"max_condition=0.9 must be >= 1.0"),
    ("affine-offset", lambda: fls.affine_reparameterizations(max_offset=-1.0),
     r"max_offset=-1.0 must be >= 0.0"),
    ("affine-dim", lambda: fls.affine_reparameterizations(dim=True), r"dim=True must be an int"),
    ("families-empty", lambda: fls.likelihoods(families=[]),
     r"families must name at least one likelihood family"),
    ("families-unknown", lambda: fls.likelihoods(families=["gaussian", "softmax"]),
     r"unknown likelihood family 'softmax'; expected one of \('categorical'"),
    ("variance-zero", lambda: fls.likelihoods(min_variance=0.0), r"min_variance=0.0 must be > 0"),
    ("max-variance-zero", lambda: fls.likelihoods(max_variance=0.0),
     r"max_variance=0.0 must be > 0"),
    ("variance-order", lambda: fls.likelihoods(min_variance=2.0, max_variance=1.0),
     r"min_variance=2.0 must be <= max_variance=1.0"),
    ("depth-zero", lambda: fls.sequential_models(min_depth=0), r"min_depth=0 must be >= 1"),
    ("max-depth-zero", lambda: fls.sequential_models(max_depth=0), r"max_depth=0 must be >= 1"),
    ("depth-order", lambda: fls.sequential_models(min_depth=3, max_depth=2),
     r"min_depth=3 must be <= max_depth=2"),
    ("width-zero", lambda: fls.sequential_models(min_width=0), r"min_width=0 must be >= 1"),
    ("max-width-zero", lambda: fls.sequential_models(max_width=0), r"max_width=0 must be >= 1"),
    ("width-order", lambda: fls.sequential_models(min_width=5, max_width=2),
     r"min_width=5 must be <= max_width=2"),
    ("in-features-zero", lambda: fls.sequential_models(in_features=0),
     r"in_features=0 must be >= 1"),
    ("out-features-str", lambda: fls.sequential_models(out_features="2"),
     r"out_features='2' must be an int"),
    ("out-features-zero", lambda: fls.sequential_models(out_features=0),
     r"out_features=0 must be >= 1"),
    ("activations-empty", lambda: fls.sequential_models(activations=[]),
     r"activations must name at least one activation"),
    ("activations-unknown", lambda: fls.sequential_models(activations=["tanh", "gelu"]),
     r"unknown activation 'gelu'; expected one of \('tanh'"),
    ("params-model", lambda: fls.network_parameters("not a model"),
     r"model must be a fisherlab.nn.Sequential, got 'not a model'"),
    ("params-scale", lambda: fls.network_parameters(SEQ, scale=0.0), r"scale=0.0 must be > 0"),
    ("batches-likelihood", lambda: fls.batches("gaussian", in_features=2, out_features=1),
     r"likelihood must be a fisherlab likelihood, got 'gaussian'"),
    ("batches-in-features", lambda: fls.batches(fl.Gaussian(), in_features=0, out_features=1),
     r"in_features=0 must be >= 1"),
    ("batches-no-out-features", lambda: fls.batches(fl.Gaussian(), in_features=2),
     r"out_features \(the number of model outputs C\) is required"),
    ("batches-out-features-zero", lambda: fls.batches(fl.Gaussian(), in_features=2, out_features=0),
     r"out_features=0 must be >= 1"),
    ("batches-categorical-1", lambda: fls.batches(fl.Categorical(), in_features=2, out_features=1),
     r"out_features=1 is too small for categorical \(needs >= 2\)"),
    ("batches-gmv-1", lambda: fls.batches(fl.GaussianMeanVariance(), in_features=2,
                                          out_features=1),
     r"out_features=1 is too small for gaussian_mean_variance \(needs >= 2\)"),
    ("batches-gmv-odd", lambda: fls.batches(fl.GaussianMeanVariance(), in_features=2,
                                            out_features=3),
     r"out_features=3 must be even for gaussian_mean_variance"),
    ("batches-min-size", lambda: fls.batches(fl.Gaussian(), in_features=2, out_features=1,
                                             min_size=0), r"min_size=0 must be >= 1"),
    ("batches-max-size", lambda: fls.batches(fl.Gaussian(), in_features=2, out_features=1,
                                             max_size=0), r"max_size=0 must be >= 1"),
    ("batches-size-order", lambda: fls.batches(fl.Gaussian(), in_features=2, out_features=1,
                                               min_size=3, max_size=2),
     r"min_size=3 must be <= max_size=2"),
    ("batches-input-scale", lambda: fls.batches(fl.Gaussian(), in_features=2, out_features=1,
                                                input_scale=0.0), r"input_scale=0.0 must be > 0"),
    ("batches-max-count", lambda: fls.batches(fl.Poisson(), in_features=2, out_features=1,
                                              max_count=-1), r"max_count=-1 must be >= 0"),
    ("problems-likelihoods", lambda: fls.problems(likelihoods_=fl.Gaussian()),
     r"likelihoods_ must be a strategy, got Gaussian\(variance=1.0\)"),
    ("problems-depth", lambda: fls.problems(min_depth=0), r"min_depth=0 must be >= 1"),
    ("problems-min-size", lambda: fls.problems(min_size=0), r"min_size=0 must be >= 1"),
    ("problems-max-size", lambda: fls.problems(max_size=0), r"max_size=0 must be >= 1"),
    ("problems-size-order", lambda: fls.problems(min_size=2, max_size=1),
     r"min_size=2 must be <= max_size=1"),
    ("problems-scale", lambda: fls.problems(scale=-1.0), r"scale=-1.0 must be > 0"),
    ("problems-activations", lambda: fls.problems(activations=["gelu"]),
     r"unknown activation 'gelu'"),
]


@pytest.mark.parametrize("thunk, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_each_bad_argument_is_named_in_the_error(thunk, message):
    with pytest.raises(InvalidArgument, match=message):
        thunk()  # the call itself raises, before any draw


def test_ranks_that_exceed_a_drawn_size_fail_at_draw_time():
    with pytest.raises(InvalidArgument, match=r"rank=3 exceeds the drawn size 2"):
        find(fls.psd_matrices(dim=st.just(2), rank=3), lambda A: True)
    with pytest.raises(InvalidArgument, match=r"min_rank=3 exceeds the drawn size 2"):
        find(fls.psd_matrices(dim=st.just(2), min_rank=3), lambda A: True)


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("strategy", [fls.spd_matrices(), fls.psd_matrices(),
                                      fls.affine_reparameterizations()],
                         ids=["spd", "psd", "affine"])
def test_default_sizes_one_to_five_are_all_reachable(strategy):
    def size(v):
        return (v[0] if isinstance(v, tuple) else v).shape[0]

    for n in (1, 5):
        assert size(find(strategy, lambda v, n=n: size(v) == n)) == n

    @given(strategy)
    def within(v):
        assert 1 <= size(v) <= 5

    within()


def test_a_strategy_of_sizes_is_used_as_is():
    A = find(fls.spd_matrices(dim=st.just(3)), lambda A: True)
    assert A.shape == (3, 3)
    B = find(fls.psd_matrices(dim=st.just(4), rank=2), lambda A: True)
    assert B.shape == (4, 4) and np.linalg.matrix_rank(B, tol=1e-8) == 2
    C = find(fls.psd_matrices(dim=3, min_rank=3), lambda A: True)
    assert np.linalg.matrix_rank(C, tol=1e-8) == 3


# ----------------------------------------------------------------------------- values


@given(fls.spd_matrices(dim=4, min_eigenvalue=0.5, max_eigenvalue=8.0, max_condition=None))
def test_spd_without_a_condition_bound_keeps_the_eigenvalue_bounds(A):
    w = np.linalg.eigvalsh(A)
    assert np.all(w >= 0.5 * (1 - 1e-12)) and np.all(w <= 8.0 * (1 + 1e-12))
    np.testing.assert_array_equal(A, A.T)


@given(fls.spd_matrices(dim=3, min_eigenvalue=1.0, max_eigenvalue=100.0, max_condition=4.0))
def test_spd_condition_bound_and_its_smallest_eigenvalue(A):
    w = np.linalg.eigvalsh(A)
    assert w[0] >= 1.0 * (1 - 1e-12) and w[-1] <= 100.0 * (1 + 1e-12)
    assert w[-1] / w[0] <= 4.0 * (1 + 1e-10)


@given(fls.psd_matrices(dim=4, min_rank=1, max_rank=3, min_eigenvalue=2.0,
                        max_eigenvalue=6.0, max_condition=None))
def test_psd_nonzero_eigenvalues_within_bounds_and_the_rest_zero(A):
    w = np.linalg.eigvalsh(A)
    r = int(np.sum(w > 1e-8))
    assert 1 <= r <= 3
    assert np.all(np.abs(w[: 4 - r]) <= 1e-10)
    assert np.all(w[4 - r:] >= 2.0 * (1 - 1e-10)) and np.all(w[4 - r:] <= 6.0 * (1 + 1e-10))


@given(fls.affine_reparameterizations(dim=3, max_condition=10.0, max_offset=0.25))
def test_affine_singular_values_between_one_and_the_condition_bound(Ab):
    A, b = Ab
    s = np.linalg.svd(A, compute_uv=False)
    assert s[-1] >= 1.0 - 1e-12 and s[0] <= 10.0 * (1 + 1e-12)
    assert b.shape == (3,) and np.all(np.abs(b) <= 0.25)


@given(fls.affine_reparameterizations(dim=2, max_offset=0.0))
def test_affine_zero_offset_allowed(Ab):
    np.testing.assert_array_equal(Ab[1], np.zeros(2))


def test_orthogonal_factors_are_orthogonal():
    # a non-trivial rotation is reachable, and every drawn factor is exactly orthogonal
    A = find(fls.spd_matrices(dim=3, min_eigenvalue=1.0, max_eigenvalue=10.0),
             lambda A: abs(A[0, 1]) > 0.5)
    w, V = np.linalg.eigh(A)
    np.testing.assert_allclose(V @ np.diag(w) @ V.T, A, atol=1e-12)
    assert np.all(w >= 1.0 - 1e-12) and np.all(w <= 10.0 + 1e-11)


# ----------------------------------------------------------------------------- likelihoods, models


def test_families_as_a_string_and_every_family_reachable():
    assert isinstance(find(fls.likelihoods(families="poisson"), lambda l: True), fl.Poisson)
    every = fls.likelihoods(families=fls.FAMILIES)
    for cls in (fl.Categorical, fl.Gaussian, fl.Bernoulli, fl.Poisson, fl.GaussianMeanVariance):
        assert isinstance(find(every, lambda l, c=cls: isinstance(l, c)), cls)


@given(fls.likelihoods(families=["gaussian"], min_variance=0.25, max_variance=0.25))
def test_a_fixed_variance_is_exact(lik):
    assert lik == fl.Gaussian(variance=0.25)


@given(fls.sequential_models(min_depth=2, max_depth=2, in_features=3, out_features=2,
                             activations="relu", final_activation=True))
def test_models_fixed_features_single_activation_and_final_activation(model):
    kinds = [type(l).__name__ for l in model.layers]
    assert kinds == ["Dense", "ReLU", "Dense", "ReLU"]
    assert model.in_features == 3 and model.out_features == 2


def test_depths_and_widths_within_bounds_are_reachable():
    s = fls.sequential_models(min_depth=1, max_depth=3, min_width=2, max_width=4)
    assert len(find(s, lambda m: len(m.dense_layers) == 3).dense_layers) == 3
    assert len(find(s, lambda m: len(m.dense_layers) == 1).dense_layers) == 1
    m = find(s, lambda m: m.in_features == 4 and m.out_features == 2)
    assert all(2 <= d.in_features <= 4 and 2 <= d.out_features <= 4 for d in m.dense_layers)


@given(st.data())
def test_parameters_within_scale(data):
    model = fl.nn.Sequential([fl.nn.Dense(3, 2), fl.nn.Tanh(), fl.nn.Dense(2, 4)])
    params = data.draw(fls.network_parameters(model, scale=0.5))
    assert [tuple(w.shape) for w, _ in params] == [(2, 3), (4, 2)]
    assert [tuple(b.shape) for _, b in params] == [(2,), (4,)]
    assert all(np.all(np.abs(a) <= 0.5) for layer in params for a in layer)


@pytest.mark.parametrize("lik, C, shape", [
    (fl.Categorical(), 3, lambda n: (n,)), (fl.Gaussian(), 2, lambda n: (n, 2)),
    (fl.Bernoulli(), 2, lambda n: (n, 2)), (fl.Poisson(), 3, lambda n: (n, 3)),
    (fl.GaussianMeanVariance(), 4, lambda n: (n, 2))],
    ids=["categorical", "gaussian", "bernoulli", "poisson", "mean_variance"])
def test_batch_targets_follow_each_family(lik, C, shape):
    @given(fls.batches(lik, in_features=2, out_features=C, min_size=2, max_size=3,
                       input_scale=0.5, max_count=2))
    def check(batch):
        x, y = batch
        n = x.shape[0]
        assert x.shape == (n, 2) and 2 <= n <= 3 and np.all(np.abs(x) <= 0.5)
        assert y.shape == shape(n)
        lik.nll(np.zeros((n, C)), y)  # valid for the family (raises otherwise)
        if isinstance(lik, fl.Poisson):
            assert np.all((y >= 0) & (y <= 2))
        if isinstance(lik, fl.Categorical):
            assert y.dtype == np.int64

    check()


@given(fls.problems(likelihoods_=fls.likelihoods(families=["gaussian_mean_variance"]),
                    min_width=1, max_width=3, max_depth=1))
def test_problems_have_an_even_output_width_for_mean_variance(problem):
    assert problem.num_outputs % 2 == 0 and problem.num_outputs >= 2


@given(fls.problems(likelihoods_=fls.likelihoods(families=["categorical"]), min_width=1,
                    max_width=1, max_depth=1))
def test_problems_widen_the_output_for_the_family(problem):
    assert problem.num_outputs == 2


# ----------------------------------------------------------------------------- distinct problems

_GAUSSIAN = fls.likelihoods(families=["gaussian"])


@given(fls.problems(likelihoods_=_GAUSSIAN, distinct=True, max_depth=1, min_width=3,
                    max_width=3, min_size=3, max_size=6))
def test_distinct_problems_avoid_sizes_where_conventions_coincide(problem):
    # C = 3 outputs: N = 3 (N = C) and N = 6 (N = 2 C) coincide, N = 4, 5 do not
    assert problem.num_outputs == 3 and problem.num_examples in (4, 5)


@given(fls.problems(likelihoods_=_GAUSSIAN, distinct=True, max_depth=1, min_width=6,
                    max_width=6, min_size=3, max_size=4))
def test_distinct_problems_avoid_twice_as_many_outputs_as_examples(problem):
    # C = 6 outputs: N = 3 would give C = 2 N
    assert problem.num_outputs == 6 and problem.num_examples == 4


def test_distinct_needs_three_examples_and_three_outputs():
    with pytest.raises(InvalidArgument, match=r"distinct=True needs N >= 3 .*max_size=2"):
        fls.problems(distinct=True, max_size=2)
    with pytest.raises(InvalidArgument, match=r"distinct=True needs N >= 3 .*max_width=2"):
        fls.problems(distinct=True, max_width=2)
