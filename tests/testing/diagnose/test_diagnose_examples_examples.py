"""Fixed examples for targets and example weights on the fixed N=5, C=3 categorical problem:
shifted class indices, dropped or doubled examples, chunk means, and an example dropped from
both K-FAC factors -- each candidate written here with the NumPy engine."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import diagnose


def _setup():
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    g = no.output_gradient(lik, b["f"], y)
    G = np.einsum("nci,nc->ni", b["J"], g)  # per-example gradients (N, d)
    return P, b, lik, y, G


@pytest.mark.parametrize("shift,words", [(1, "class indices shifted by +1 (mod C)"),
                                         (-1, "class indices shifted by -1 (mod C)")])
def test_shifted_class_indices(shift, words):
    P, b, lik, y, _ = _setup()
    EF = no.empirical_fisher(b, lik, (y + shift) % 3)
    f = diagnose(EF, P.reference("empirical_fisher"), problem=P, quantity="empirical_fisher")
    assert words in f[0].message, [str(v) for v in f]
    assert f[0].residual <= 1e-8


def _weighted(G, w):
    return np.einsum("n,ni,nj->ij", w, G, G)


@pytest.mark.parametrize("w,data", [
    (np.array([1, 1, 0, 1, 1]) / 5, {"examples": [2], "normalised_by": 5}),
    (np.array([1, 1, 0, 1, 1]) / 4, {"examples": [2], "normalised_by": 4}),
    (np.array([1, 2, 1, 1, 1]) / 5, {"examples": [1], "count": 2}),
    # the mean of the chunk means, chunks [2, 2, 1]: weights 1/(3 s) per example
    (np.array([1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 3]), {"chunks": [2, 2, 1], "combined": "mean"}),
    (np.array([1 / 6, 1 / 6, 1 / 6, 1 / 4, 1 / 4]), {"chunks": [3, 2], "combined": "mean"}),
    (np.array([1 / 4, 1 / 4, 1 / 4, 1 / 4, 1]), {"chunks": [4, 1], "combined": "sum"})])
def test_example_weighting(w, data):
    """The empirical Fisher with the examples weighted ``w`` (written out here)."""
    P, b, lik, y, G = _setup()
    f = diagnose(_weighted(G, w), P.reference("empirical_fisher"), problem=P,
                 quantity="empirical_fisher")
    assert f[0].kind == "example_weighting", [str(v) for v in f]
    assert {k: f[0].data[k] for k in data} == data
    np.testing.assert_allclose(f[0].data["weights"], 5 * w, rtol=1e-12)


def test_example_dropped_from_both_kfac_factors():
    """K-FAC with example 3 left out of A and G (means over the remaining 4)."""
    P, b, lik, y, _ = _setup()
    keep = np.arange(5) != 3
    sub = {k: [v[keep] for v in vs] if isinstance(vs, list) else vs[keep]
           for k, vs in b.items()}
    M = no.output_fisher(lik, b["f"])[keep]
    K = no.kfac_matrix(no.kfac_factors(sub, M))
    f = diagnose(K, P.reference("kfac"), problem=P, quantity="kfac")
    assert f[0].kind == "example_weighting", [str(v) for v in f]
    assert f[0].data == {"examples": [3], "normalised_by": 4}
    assert "example 3 dropped from both K-FAC factors (means over the remaining 4)" in \
        f[0].message
