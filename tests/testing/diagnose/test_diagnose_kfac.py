"""K-FAC factor formulas, planted with the NumPy engine's factors."""

import jax
import numpy as np
import pytest
from hypothesis import given

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems
from fisherlab.testing import Problem, diagnose
from fisherlab.testing._diagnose import _kfac
from fisherlab.testing._diagnose._finding import Collector, Context


def _factors(problem, **kw):
    b = oracle(problem)
    return b, no.kfac_factors(b, no.output_fisher(problem.likelihood, b["f"]), **kw)


@given(problems())
def test_g_from_post_activation_gradients(problem):
    b, facs = _factors(problem, jac="Ja")
    named_first(no.kfac_matrix(facs), problem.reference("kfac"), problem, "kfac",
                "kfac_factor_formula")
    f = named_first(facs[0][1], problem.reference("kfac_factor_G", layer=0), problem,
                    "kfac_factor_G", "kfac_factor_formula")
    assert f.data["formula"] == "G_post_activation"


@given(problems())
def test_a_from_pre_activations(problem):
    b = oracle(problem)
    inputs = [None] + [b["s"][k - 1] for k in range(1, len(b["a"]))]
    facs = no.kfac_factors(b, no.output_fisher(problem.likelihood, b["f"]), inputs=inputs)
    f = named_first(no.kfac_matrix(facs), problem.reference("kfac"), problem, "kfac",
                    "kfac_factor_formula")
    assert f.data["formula"] == "A_pre_activation"
    named_first(facs[1][0], problem.reference("kfac_factor_A", layer=1), problem,
                "kfac_factor_A", "kfac_factor_formula")


@given(problems())
def test_a_without_the_homogeneous_coordinate(problem):
    b, facs = _factors(problem, homogeneous=0.0)
    f = named_first(no.kfac_matrix(facs), problem.reference("kfac"), problem, "kfac",
                    "kfac_factor_formula")
    assert f.data["formula"] == "A_without_homogeneous_coordinate"


def test_a_without_the_homogeneous_coordinate_as_a_smaller_matrix_says_so():
    """An (in, in) A against the augmented (in+1, in+1) reference: the shape error names it."""
    rng = np.random.default_rng(0)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    P = Problem(model, model.init(jax.random.key(0)), rng.normal(size=(4, 2)),
                rng.integers(0, 2, 4), fl.Categorical())
    x = np.asarray(P.x)
    with pytest.raises(ValueError, match="without the homogeneous coordinate 1"):
        diagnose(x.T @ x / 4, P.reference("kfac_factor_A", layer=0), problem=P,
                 quantity="kfac_factor_A")


def sequence_problem(n=4):
    """A Dense layer shared over T = 3 positions, pooled before the output (reduce setting),
    ``n`` sequences."""
    rng = np.random.default_rng(3)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.MeanPool(),
                              fl.nn.Dense(3, 2)])
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)), (rng.normal(size=(2, 3)),
                                                              rng.normal(size=2))]
    return Problem(model, params, rng.normal(size=(n, 3, 2)), rng.integers(0, 2, n),
                   fl.Categorical())


@pytest.mark.parametrize("which", ["A", "G"])
def test_expand_for_reduce(which):
    """K-FAC-expand's factor where K-FAC-reduce was expected (inputs shared over T = 3)."""
    P = sequence_problem()
    x = np.asarray(P.x)
    if which == "A":  # expand: every position an example, 1/(N T); computed by hand
        abar = np.concatenate([x, np.ones((4, 3, 1))], -1).reshape(12, 3)
        cand, q = abar.T @ abar / 12, "kfac_factor_A"
    else:  # fisherlab's own expand reference (a different code path from the diagnoser's)
        facs = fl.kfac.factors(P.model, P.params, P.x, P.y, P.likelihood, approx="expand")
        cand, q = np.asarray(facs[0].G), "kfac_factor_G"
    desired = P.reference(q, layer=0, approx="reduce")
    f = diagnose(cand, desired, problem=P, quantity=q)[0]
    assert f.kind == "kfac_factor_formula" and "expand" in f.data["formula"], str(f)


@given(problems())
def test_recomputed_factors_agree_with_fisherlab(problem):
    """The diagnoser's NumPy factors are fisherlab's factors (checked against the reference)."""
    K = problem.reference("kfac")
    ctx = Context(K, K, problem, "kfac", 1e-8, Collector(K, K, problem, 1e-8, "kfac"))
    st = _kfac.setting(ctx)
    assert st is not None and (st.bias, st.fisher_type, st.approx) == ("augmented", "exact",
                                                                        "expand")
    assert _kfac.check_against_reference(ctx, st) <= 1e-10


def token_problem():
    """A transformer block (Embedding, Residual LayerNorm + causal attention, Dense head) on
    integer token ids: layers the factor formulas do not take apart."""
    nn = fl.nn
    model = nn.Sequential([
        nn.Embedding(5, 4),
        nn.Residual(nn.Sequential([nn.LayerNorm(4), nn.MultiHeadAttention(4, 2, causal=True)])),
        nn.Dense(4, 3)])
    x = np.array([[0, 4, 2], [1, 3, 3], [2, 2, 0], [4, 1, 3]])
    y = np.array([[2, 0, 1], [0, 2, 2], [1, 1, 0], [2, 1, 1]])
    return Problem(model, model.init(jax.random.key(0)), x, y, fl.Categorical())


@pytest.mark.parametrize("q", ["kfac", "kfac_factor_G"])
def test_reduce_for_expand_on_a_token_model(q):
    """K-FAC-reduce where K-FAC-expand was expected on a transformer block is named (from
    fisherlab's own references), not left as no_known_pattern."""
    P = token_problem()
    facs = fl.kfac.factors(P.model, P.params, P.x, P.y, P.likelihood, approx="reduce")
    # G of the embedding (block 0): attention mixes the positions, so reduce != expand
    cand = (np.asarray(fl.kfac.matrix(facs, P.model)) if q == "kfac"
            else np.asarray(facs[0].G))
    desired = P.reference(q) if q == "kfac" else P.reference(q, layer=0)
    f = diagnose(cand, desired, problem=P, quantity=q)[0]
    assert f.kind == "kfac_factor_formula" and "reduce" in f.data["formula"], str(f)
