"""Fixed examples for the K-FAC factor formulas: each planted on one N=5, C=3 problem (kind,
formula and message asserted), K-FAC-reduce's factors written out by hand on a sequence model,
the pre-activation hypothesis refused across a non-elementwise layer, and the test hook that
compares the recomputed factors with fisherlab's."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from test_diagnose_kfac import sequence_problem
from fisherlab.testing import Problem, diagnose
from fisherlab.testing._diagnose import _kfac
from fisherlab.testing._diagnose._finding import Collector, Context


def _net(P):
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    return b, no.output_fisher(lik, b["f"])


@pytest.mark.parametrize("formula,kw,words", [
    ("G_post_activation", dict(jac="Ja"), "G built from the gradients with respect to the "
                                           "post-activations"),
    ("A_without_homogeneous_coordinate", dict(homogeneous=0.0), "A built from [a; 0]"),
    ("A_pre_activation", "pre", "A built from the pre-activations of the previous layer")])
def test_each_factor_formula_is_named(formula, kw, words):
    P = problem_factory(fl.Categorical(), 3)()
    b, M = _net(P)
    if kw == "pre":
        kw = dict(inputs=[None] + [b["s"][k - 1] for k in range(1, len(b["a"]))])
    K = no.kfac_matrix(no.kfac_factors(b, M, **kw))
    f = diagnose(K, P.reference("kfac"), problem=P, quantity="kfac")
    assert f[0].kind == "kfac_factor_formula", [str(x) for x in f]
    assert f[0].data["formula"] == formula and words in f[0].message
    assert f[0].residual <= 1e-8 and "(layer" not in f[0].message


def test_reduce_for_expand_written_by_hand():
    """K-FAC-reduce's A of the shared layer, ``(1/N) sum_n abar_n abar_n^T`` with ``abar_n``
    the position mean of ``[x_{n,t}; 1]``, where K-FAC-expand (every position an example,
    ``1/(N T)``) was expected: named with the other approximation, layer 0, and no factor."""
    P = sequence_problem(5)
    x = np.asarray(P.x)
    abar = np.concatenate([x, np.ones((5, 3, 1))], -1).mean(axis=1)
    A_reduce = abar.T @ abar / 5
    desired = P.reference("kfac_factor_A", layer=0, approx="expand")
    f = diagnose(A_reduce, desired, problem=P, quantity="kfac_factor_A")
    assert f[0].kind == "kfac_factor_formula", [str(v) for v in f]
    assert f[0].data["formula"] == "A_reduce_for_expand"
    assert "K-FAC-reduce A where K-FAC-expand was expected" in f[0].message
    assert "(layer 0)" in f[0].message and f[0].residual <= 1e-8
    assert "factor" not in f[0].data


def test_pre_activations_not_claimed_across_a_non_elementwise_layer():
    """Dense -> LayerNorm (no parameters) -> Tanh -> Dense: A of layer 1 built from the first
    layer's outputs before the LayerNorm is not "the pre-activations" of the Tanh (those are
    the normalised values), so no factor formula is claimed."""
    rng = np.random.default_rng(1)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.LayerNorm(4, elementwise_affine=False),
                              fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
              (rng.normal(size=(3, 4)), rng.normal(size=3))]
    P = Problem(model, params, rng.normal(size=(5, 3)), rng.integers(0, 3, 5), fl.Categorical())
    W, b = params[0]
    s = np.concatenate([np.asarray(P.x) @ W.T + b, np.ones((5, 1))], 1)
    f = diagnose(s.T @ s / 5, P.reference("kfac_factor_A", layer=1), problem=P,
                 quantity="kfac_factor_A")
    assert "kfac_factor_formula" not in [x.kind for x in f], [str(x) for x in f]


@pytest.mark.parametrize("quantity,which", [("kfac", "G"), ("kfac", "A"),
                                            ("kfac_factor_A", "A"), ("kfac_factor_G", "G")])
def test_reference_check_sees_one_wrong_factor(quantity, which):
    """The test hook reports the largest disagreement: the recomputed factors agree with
    fisherlab's, and one factor doubled is seen (relative error 1)."""
    P = problem_factory(fl.Categorical(), 3)()
    opts = {} if quantity == "kfac" else {"layer": 1}
    Y = P.reference(quantity, **opts)
    ctx = Context(Y, Y, P, quantity, 1e-8, Collector(Y, Y, P, 1e-8, quantity))
    st = _kfac.setting(ctx)
    assert st is not None and st.what == {"kfac": "kfac"}.get(quantity, quantity[-1])
    assert _kfac.check_against_reference(ctx, st) <= 1e-10
    factors = st.A if which == "A" else st.G
    factors[-1] = 2 * factors[-1]
    assert _kfac.check_against_reference(ctx, st) == pytest.approx(1.0)


@pytest.mark.parametrize("options,expected", [
    ({}, ("augmented", "exact")),
    ({"bias": "separate"}, ("separate", "exact")),
    ({"fisher_type": "empirical"}, ("augmented", "empirical")),
    ({"bias": "separate", "fisher_type": "empirical"}, ("separate", "empirical"))])
def test_setting_of_desired_is_inferred(options, expected):
    """desired computed by fisherlab in a known setting: the diagnoser infers that setting (a
    setting whose matrix is only a scalar fit of desired with a residual is not accepted)."""
    P = problem_factory(fl.Categorical(), 3)()
    Y = P.reference("kfac", **options)
    ctx = Context(Y, Y, P, "kfac", 1e-8, Collector(Y, Y, P, 1e-8, "kfac"))
    st = _kfac.setting(ctx)
    assert (st.bias, st.fisher_type, st.approx) == expected + ("expand",)
    assert st.c0 == pytest.approx(1.0)


def test_formula_in_the_empirical_setting_is_named():
    """G from post-activation gradients of the *data* labels, for an empirical K-FAC."""
    P = problem_factory(fl.Categorical(), 3)()
    b, _ = _net(P)
    g = no.output_gradient(P.likelihood, b["f"], np.asarray(P.y))
    K = no.kfac_matrix(no.kfac_factors(b, no.outer(g), jac="Ja"))
    f = diagnose(K, P.reference("kfac", fisher_type="empirical"), problem=P, quantity="kfac")
    assert f[0].kind == "kfac_factor_formula" and f[0].data["formula"] == "G_post_activation", \
        [str(x) for x in f]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_the_empirical_g_factor_for_the_exact_one_is_named_with_its_layer(layer):
    """G of layer k from the data labels' output gradients (the numpy oracle's outer products
    ``g_n g_n^T``) where the exact ``J^T Lambda J`` factor was expected."""
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    G = no.kfac_factors(b, no.outer(no.output_gradient(lik, b["f"], y)))[layer][1]
    f = diagnose(G, P.reference("kfac_factor_G", layer=layer), problem=P,
                 quantity="kfac_factor_G")[0]
    assert f.kind == "empirical_fisher_for_fisher" and f.factor is None, str(f)
    assert f.data["layer"] == layer and f.data["fisher_type"] == "empirical"
    assert f"the empirical K-FAC factor G of layer {layer} (data labels)" in f.message


def test_an_empirical_g_equal_to_the_a_factor_is_read_as_the_label_source_first():
    """A linear Gaussian layer whose residuals are its augmented inputs, ``y_n = f_n - abar_n``:
    the empirical G, ``(1/N) sum_n abar_n abar_n^T``, *is* the layer's A. Both readings fit;
    the label source (the likelier slip) is named first and the swapped order listed as a tie."""
    rng = np.random.default_rng(0)
    W, bias, x = rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=(6, 2))
    abar = np.concatenate([x, np.ones((6, 1))], 1)
    P = Problem(fl.nn.Sequential([fl.nn.Dense(2, 3)]), [(W, bias)], x,
                x @ W.T + bias - abar, fl.Gaussian())
    G_emp = abar.T @ abar / 6
    np.testing.assert_allclose(P.reference("kfac_factor_A", layer=0), G_emp, rtol=1e-12)
    f = diagnose(G_emp, P.reference("kfac_factor_G", layer=0), problem=P,
                 quantity="kfac_factor_G")
    assert f[0].kind == "empirical_fisher_for_fisher", [str(x) for x in f]
    assert f[0].data["ties"] == ["kronecker_order_swapped"]


@pytest.mark.parametrize("renorm", [True, False])
@pytest.mark.parametrize("q,i", [("kfac_factor_A", 0), ("kfac_factor_G", 1)])
def test_an_example_dropped_from_a_single_factor_is_named(q, i, renorm):
    """Each layer's A or G built by the numpy oracle without example 2 (a mean over the other
    four, or their sum still divided by N = 5): named example_weighting, example 2."""
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    keep = np.arange(len(x)) != 2
    b = no.batch(m, params, x[keep])
    facs = no.kfac_factors(b, no.output_fisher(lik, b["f"]))
    for k, fac in enumerate(facs):
        Z = fac[i] if renorm else fac[i] * 4 / 5
        f = diagnose(Z, P.reference(q, layer=k), problem=P, quantity=q)[0]
        assert f.kind == "example_weighting" and f.factor is None, str(f)
        assert "examples [2] dropped" in f.message
        assert ("remaining 4" if renorm else "divided by N=5") in f.message
