"""Fixed examples for the quantity swaps: the preference among alternatives that coincide (a
linear Gaussian model, where the Hessian is the GGN is the Fisher), the two K-FAC factors
exchanged, and the Hessian/GGN pair on a natural likelihood."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
import test_diagnose_tokens as tok
from fisherlab.testing import Problem, diagnose


def _linear_gaussian():
    rng = np.random.default_rng(8)
    model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    return Problem(model, [(rng.normal(size=(2, 3)), rng.normal(size=2))],
                   rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), fl.Gaussian())


def test_coinciding_alternatives_prefer_the_listed_order():
    """Linear model, Gaussian likelihood: Hessian = GGN = Fisher = (1/N) sum J^T J. The Fisher
    passed for the empirical Fisher is named fisher_for_empirical_fisher first, the Hessian
    reading stated as a tie."""
    P = _linear_gaussian()
    m, params, x, y, lik = no.problem_arrays(P)
    F = no.fisher(no.batch(m, params, x), lik)
    np.testing.assert_allclose(P.reference("hessian"), F, rtol=1e-10, atol=1e-12)
    f = diagnose(F, P.reference("empirical_fisher"), problem=P, quantity="empirical_fisher")
    assert f[0].kind == "fisher_for_empirical_fisher", [str(x) for x in f]
    assert "hessian_for_empirical_fisher" in f[0].data["ties"]
    assert f[0].message.startswith("actual equals the (true) Fisher")


@pytest.mark.parametrize("desired,given", [("A", "G"), ("G", "A")])
def test_kfac_factors_exchanged(desired, given):
    """Layer 0 of the fixed problem has A of size 3 + 1 = 4 and G of size 4: the other factor
    of the same layer, written here from the NumPy engine, is named with its layer."""
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    A, G = no.kfac_factors(b, no.output_fisher(lik, b["f"]))[0]
    actual = G if given == "G" else A
    f = diagnose(actual, P.reference(f"kfac_factor_{desired}", layer=0), problem=P,
                 quantity=f"kfac_factor_{desired}")
    assert f[0].kind == "kronecker_order_swapped", [str(v) for v in f]
    assert f[0].data["layer"] == 0 and f[0].data["factor"] == given
    assert f"the K-FAC factor {given} of layer 0 (the two factors exchanged)" in f[0].message


def test_ggn_for_hessian_on_a_natural_likelihood():
    """Categorical (natural parameters, Fisher = GGN): the GGN passed for the Hessian."""
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    F = no.fisher(no.batch(m, params, x), lik)
    f = diagnose(F, P.reference("hessian"), problem=P, quantity="hessian")
    assert f[0].kind == "ggn_for_hessian", [str(x) for x in f]
    assert f[0].data["quantity"] == "ggn"


def test_token_reduction_is_exact_for_a_mean_loss():
    """A PyTorch token model, CrossEntropyLoss(reduction="mean") on the N R flattened tokens:
    desired is ``(1/(N R)) sum_{n,r} g_{n,r} g_{n,r}^T``; the per-sequence outer products of
    the same mean reduction, ``(1/N) sum_n g_n g_n^T`` with ``g_n = sum_r g_{n,r}``
    (docs/CONVENTIONS.md, "Per-token outputs"), are named token_reduction exactly, with no
    factor left over. The per-token gradients are computed by hand with jax.grad."""
    P0 = tok._problem()
    P = tok.torch_problem(P0)
    g = tok._token_gradients(P0)
    N, R = tok.N, tok.R
    desired = P.reference("empirical_fisher")
    np.testing.assert_allclose(desired, np.einsum("nri,nrj->ij", g, g) / (N * R), rtol=1e-10)
    per_seq = np.einsum("ni,nj->ij", g.sum(1), g.sum(1)) / N
    f = diagnose(per_seq, desired, problem=P, quantity="empirical_fisher")[0]
    assert f.kind == "token_reduction" and f.data["tokens"] == "sum", str(f)
    assert f.factor is None and "factor" not in f.data
    assert f.message.startswith("actual equals the per-sequence gradient outer products")
    assert "(R=3 tokens per example)" in f.message


def test_token_reduction_is_exact_for_a_summed_loss():
    """The same token model with CrossEntropyLoss(reduction="sum"): desired is
    ``sum_{n,r} g_{n,r} g_{n,r}^T``; the per-sequence outer products of the summed loss,
    ``sum_n g_n g_n^T``, are named token_reduction exactly (no factor 1/R left over)."""
    P0 = tok._problem()
    P = tok.torch_problem(P0, "sum")
    g = tok._token_gradients(P0)
    desired = P.reference("empirical_fisher")
    np.testing.assert_allclose(desired, np.einsum("nri,nrj->ij", g, g), rtol=1e-10)
    per_seq = np.einsum("ni,nj->ij", g.sum(1), g.sum(1))
    f = diagnose(per_seq, desired, problem=P, quantity="empirical_fisher")[0]
    assert f.kind == "token_reduction" and f.data["tokens"] == "sum", str(f)
    assert f.factor is None and "factor" not in f.data, str(f)
