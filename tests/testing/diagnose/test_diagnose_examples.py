"""Targets misaligned with the inputs, and examples weighted wrongly (NumPy candidates)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems
from fisherlab.testing import Problem, diagnose


def _variants(problem):
    y = np.asarray(problem.y)
    out = {"roll+1": np.roll(y, 1, axis=0), "roll-1": np.roll(y, -1, axis=0), "reversed": y[::-1]}
    if isinstance(problem.likelihood, fl.Categorical):
        out.update({"class+1": (y + 1) % 3, "class-1": (y - 1) % 3})
    if isinstance(problem.likelihood, fl.Bernoulli):
        out["flipped"] = 1.0 - y
    return out


@given(problems(), st.sampled_from(["roll+1", "roll-1", "reversed"]),
       st.sampled_from(["empirical_fisher", "gradient_covariance"]))
def test_targets_misaligned(problem, shift, quantity):
    y2 = _variants(problem)[shift]
    b = oracle(problem)
    g = no.output_gradient(problem.likelihood, b["f"], y2)
    if quantity == "empirical_fisher":
        cand = no.sandwich(b["J"], no.outer(g))
    else:
        G = np.einsum("nci,nc->ni", b["J"], g)
        cand = np.cov(G.T, ddof=0)
    f = named_first(cand, problem.reference(quantity), problem, quantity, "target_mismatch")
    if f.kind == "target_mismatch":  # the named targets are the planted ones (two named
        # misalignments coincide on periodic targets, e.g. roll+1 = roll-1 for [a, b, a, b], or
        # give the same matrix when inputs repeat: then all are listed)
        names = [f.data["targets"]] + f.data.get("alternatives", [])
        assert any(np.array_equal(_variants(problem)[n], y2) for n in names) or any(
            n == shift for n in names), str(f)


@given(problems(families=("categorical",)))
def test_one_based_class_labels(problem):
    y = np.asarray(problem.y)
    cand = no.empirical_fisher(oracle(problem), problem.likelihood, (y - 1) % 3)
    named_first(cand, problem.reference("empirical_fisher"), problem, "empirical_fisher",
                "target_mismatch")


def _weighted(problem, w, quantity="fisher"):
    b = oracle(problem)
    lik = problem.likelihood
    M = (no.output_fisher(lik, b["f"]) if quantity == "fisher" else
         no.outer(no.output_gradient(lik, b["f"], np.asarray(problem.y))))
    return no.sandwich(b["J"], M, weights=w)


@given(problems(), st.integers(0, 3), st.booleans())
def test_dropped_example(problem, n, renormalised):
    N = problem.num_examples
    w = np.full(N, 1.0 / (N - 1 if renormalised else N))
    w[n] = 0.0
    f = named_first(_weighted(problem, w), problem.reference("fisher"), problem, "fisher",
                    "example_weighting")
    if f.kind == "example_weighting":  # the planted example, or one whose term equals it
        found = [f.data] + f.data.get("alternatives", [])
        assert any(d.get("examples") == [n] and d["normalised_by"] == (N - 1 if renormalised
                                                                       else N) for d in found)


@given(problems(), st.sampled_from(["fisher", "empirical_fisher"]))
def test_mean_of_ragged_chunk_means(problem, quantity):
    """Chunks [3, 1] (a batch size of 3 with a ragged last batch): (mean_1 + mean_2) / 2."""
    w = np.array([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    f = named_first(_weighted(problem, w, quantity), problem.reference(quantity), problem,
                    quantity, "example_weighting")
    if f.kind == "example_weighting":
        found = [f.data] + f.data.get("alternatives", [])
        assert any(d.get("chunks") == [3, 1] for d in found), str(f)


@given(problems())
def test_example_counted_twice(problem):
    w = np.array([2.0, 1.0, 1.0, 1.0]) / 4
    named_first(_weighted(problem, w), problem.reference("fisher"), problem, "fisher",
                "example_weighting")


def test_dropped_example_in_the_hessian():
    rng = np.random.default_rng(4)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)), (rng.normal(size=(2, 3)),
                                                              rng.normal(size=2))]
    x, y = rng.normal(size=(4, 2)), rng.integers(0, 2, 4)
    P = Problem(model, params, x, y, fl.Categorical())
    # fisherlab's Hessian of the first three examples (a different code path: not the diagnoser's)
    H3 = np.asarray(fl.hessian(model, params, x[:3], y[:3], fl.Categorical()))
    f = diagnose(H3, P.reference("hessian"), problem=P, quantity="hessian")[0]
    assert f.kind == "example_weighting" and f.data["examples"] == [3], str(f)


@pytest.mark.parametrize("renormalised", [True, False])
def test_dropped_example_in_kfac(renormalised):
    rng = np.random.default_rng(5)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)), (rng.normal(size=(2, 3)),
                                                              rng.normal(size=2))]
    P = Problem(model, params, rng.normal(size=(4, 2)), rng.integers(0, 2, 4), fl.Categorical())
    b = oracle(P)
    keep = np.array([True, False, True, True])
    sub = {k: (v[keep] if k in ("f", "J") else [t[keep] for t in v]) for k, v in b.items()}
    facs = no.kfac_factors(sub, no.output_fisher(P.likelihood, sub["f"]))
    if not renormalised:
        facs = [(A * 3 / 4, G * 3 / 4) for A, G in facs]
    f = diagnose(no.kfac_matrix(facs), P.reference("kfac"), problem=P, quantity="kfac")[0]
    assert f.kind == "example_weighting" and f.data["examples"] == [1], str(f)
