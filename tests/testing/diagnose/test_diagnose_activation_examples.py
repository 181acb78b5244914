"""Fixed examples for the activation derivatives: on the fixed N=5, C=3 network (a Tanh and a
Sigmoid layer), each derivative slip of each activation, planted with the NumPy
back-propagation, is named with its activation, form and formula text; a K-FAC A factor
(no derivative in it) is left to the other families."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import diagnose

SLIPS = {1: no.AT_OUTPUT, 2: no.OUTPUT_FORM_AT_S}
WORDS = {("Tanh", 1): "tanh' evaluated at the output a = tanh(s) instead of at s: 1 - tanh(a)^2",
         ("Tanh", 2): "the output form 1 - a^2 of tanh' evaluated at the pre-activation s",
         ("Sigmoid", 1): "sigmoid' evaluated at the output a = sigmoid(s) instead of at s",
         ("Sigmoid", 2): "the output form a(1 - a) of sigmoid' evaluated at the pre-activation"}


@pytest.mark.parametrize("quantity", ["fisher", "kfac"])
@pytest.mark.parametrize("kind,form", sorted(WORDS))
def test_each_derivative_slip_is_named(kind, form, quantity):
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x, {kind: SLIPS[form][kind]})
    M = no.output_fisher(lik, b["f"])
    cand = no.fisher(b, lik) if quantity == "fisher" else no.kfac_matrix(no.kfac_factors(b, M))
    f = diagnose(cand, P.reference(quantity), problem=P, quantity=quantity)
    assert f[0].kind == "activation_derivative", [str(v) for v in f]
    assert f[0].data["activation"] == kind and f[0].data["form"] == form
    assert f"every {kind} derivative replaced by {WORDS[kind, form]}" in f[0].message
    assert f[0].residual <= 1e-8


def test_a_factor_is_not_an_activation_derivative():
    """A of layer 1 without its homogeneous coordinate: a factor formula, and the activation
    family (A holds no derivative) adds nothing."""
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    A = no.kfac_factors(b, no.output_fisher(lik, b["f"]), homogeneous=0.0)[1][0]
    f = diagnose(A, P.reference("kfac_factor_A", layer=1), problem=P, quantity="kfac_factor_A")
    assert f[0].kind == "kfac_factor_formula", [str(v) for v in f]
    assert "activation_derivative" not in [v.kind for v in f]
