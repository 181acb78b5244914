"""Parameter orders and dropped blocks, planted by index arithmetic written here.

Each layout is an explicit list of the desired indices in the order the candidate stores them
(a Flax ``{'bias', 'kernel'}`` dict flattens bias first, the kernel as ``(in, out)``; ...).
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import ARCHS, leaf_slices, named_first, oracle, problems
from fisherlab.testing import Problem, diagnose, relative_error


def _layers(problem):
    """``[(W index array (out, in), b index array)]`` in parameter order."""
    s = leaf_slices(problem)
    return [(np.arange(w0, w1).reshape(shw), np.arange(b0, b1))
            for (w0, w1, shw), (b0, b1, _) in zip(s[::2], s[1::2])]


LAYOUTS = {
    "transposed": lambda L: [q for W, b in L for q in (W.T.ravel(), b)],
    "flax": lambda L: [q for W, b in L for q in (b, W.T.ravel())],
    "bias_first": lambda L: [q for W, b in L for q in (b, W.ravel())],
    "reversed": lambda L: [q for W, b in L[::-1] for q in (W.ravel(), b)],
    "weights_then_biases": lambda L: [W.ravel() for W, _ in L] + [b for _, b in L],
    "wb_rows": lambda L: [np.hstack([W, b[:, None]]).ravel() for W, b in L],
}


def _fisher(problem):
    return no.fisher(oracle(problem), problem.likelihood)


@given(problems(archs=("both",)), st.sampled_from(sorted(LAYOUTS)))
def test_named_parameter_orders(problem, layout):
    p = np.concatenate(LAYOUTS[layout](_layers(problem)))
    F = _fisher(problem)
    kind = "transposed_weight_layout" if layout == "transposed" else "parameter_order"
    f = named_first(F[np.ix_(p, p)], problem.reference("fisher"), problem, "fisher", kind)
    # the permutation it reports reproduces actual from desired
    q = f.data["permutation"]
    desired = problem.reference("fisher")
    assert relative_error(desired[np.ix_(q, q)], F[np.ix_(p, p)]) <= 1e-8


@given(problems())
def test_kronecker_order_swapped(problem):
    """kron(A, G) where kron(G, A) was expected, permuted to parameter order as if G (x) A."""
    b = oracle(problem)
    facs = no.kfac_factors(b, no.output_fisher(problem.likelihood, b["f"]))
    named_first(no.kfac_matrix(facs, kron_order="AG"), problem.reference("kfac"), problem,
                "kfac", "kronecker_order_swapped")


@given(problems())
def test_kfac_block_left_in_augmented_order(problem):
    """Each layer's G (x) A in the row-major order of [W | b], not permuted to parameter order."""
    b = oracle(problem)
    facs = no.kfac_factors(b, no.output_fisher(problem.likelihood, b["f"]))
    blocks = [np.kron(G, A) for A, G in facs]
    d = sum(len(B) for B in blocks)
    K, o = np.zeros((d, d)), 0
    for B in blocks:
        K[o:o + len(B), o:o + len(B)] = B
        o += len(B)
    f = named_first(K, problem.reference("kfac"), problem, "kfac", "parameter_order")
    assert "[W | b]" in f.message


@given(problems())
def test_kronecker_order_swapped_dense_block_without_problem(problem):
    b = oracle(problem)
    A, G = no.kfac_factors(b, no.output_fisher(problem.likelihood, b["f"]))[0]
    A = A[:-1, :-1]  # the weight block only (no bias)
    assume(min(A.shape[0], G.shape[0]) > 1)
    desired, actual = np.kron(G, A), np.kron(A, G)
    assume(relative_error(actual, desired) > 1e-6)
    f = diagnose(actual, desired, quantity="kfac")
    assert f[0].kind == "kronecker_order_swapped", [str(x) for x in f]


@given(problems(archs=("both",)), st.randoms(use_true_random=False))
def test_any_permutation_is_found_and_described(problem, rnd):
    """A random symmetric permutation: found by the general search, reported with a
    permutation that reproduces actual exactly."""
    F = _fisher(problem)
    p = np.arange(len(F))
    rnd.shuffle(p)
    f = named_first(F[np.ix_(p, p)], problem.reference("fisher"), problem, "fisher",
                    "parameter_order")
    q = f.data["permutation"]
    assert relative_error(problem.reference("fisher")[np.ix_(q, q)], F[np.ix_(p, p)]) <= 1e-8


@pytest.mark.parametrize("seed", [0, 1])
def test_tensor_reordering_is_described_by_tensors(seed):
    """b1 before W1ᵀ etc.: described as the tensors in their new order. (Generic weights: a
    drawn problem with repeated weights can have other permutations that fit as well.)"""
    rng = np.random.default_rng(seed)
    model = ARCHS["both"](3)
    params = [(rng.normal(size=(l.out_features, l.in_features)), rng.normal(size=l.out_features))
              for l in model.dense_layers]
    problem = Problem(model, params, rng.normal(size=(4, 2)), rng.integers(0, 3, 4),
                      fl.Categorical())
    L = _layers(problem)
    (W1, b1), (W2, b2), (W3, b3) = L
    p = np.concatenate([W2.ravel(), b1, W1.T.ravel(), b2, W3.ravel(), b3])
    F = _fisher(problem)
    f = named_first(F[np.ix_(p, p)], problem.reference("fisher"), problem, "fisher",
                    "parameter_order")
    assert "[W2, b1, W1ᵀ, b2, W3, b3]" in f.message


def test_permutation_search_without_problem():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(7, 7))
    Y = B @ B.T
    p = rng.permutation(7)
    f = diagnose(Y[np.ix_(p, p)], Y)
    assert f[0].kind == "parameter_order"
    q = f[0].data["permutation"]
    np.testing.assert_allclose(Y[np.ix_(q, q)], Y[np.ix_(p, p)])


@given(problems())
def test_bias_cross_terms_missing(problem):
    b = oracle(problem)
    M = no.output_fisher(problem.likelihood, b["f"])
    K = no.kfac_matrix(no.kfac_factors(b, M))
    # a separate bias: the W-b cross blocks of every layer zeroed
    for (W, bb) in _layers(problem):
        K[np.ix_(W.ravel(), bb)] = 0.0
        K[np.ix_(bb, W.ravel())] = 0.0
    named_first(K, problem.reference("kfac"), problem, "kfac", "bias_cross_terms_missing")


@given(problems(archs=("both",)))
def test_block_diagonal_only(problem):
    F = _fisher(problem)
    groups = np.concatenate([np.full(l.stop - l.start, l.group) for l in problem.leaves()])
    actual = np.where(groups[:, None] == groups[None, :], F, 0.0)
    named_first(actual, problem.reference("fisher"), problem, "fisher", "block_diagonal_only")


@given(problems(archs=("both",)))
def test_block_diagonal_only_without_problem(problem):
    F = _fisher(problem)
    groups = np.concatenate([np.full(l.stop - l.start, l.group) for l in problem.leaves()])
    actual = np.where(groups[:, None] == groups[None, :], F, 0.0)
    assume(relative_error(actual, F) > 1e-6)
    assume(all(np.linalg.norm(F[groups == g][:, groups == g]) > 1e-6 for g in set(groups)))
    f = diagnose(actual, problem.reference("fisher"))
    assert f[0].kind == "block_diagonal_only", [str(x) for x in f]
