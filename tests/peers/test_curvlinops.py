"""Conformance: curvlinops' curvature operators vs fisherlab (through the torch bridge).

curvlinops (Dangel et al.) normalises by the loss's reduction: ``mean`` divides by ``N``
(``CrossEntropyLoss``) or ``N C`` (``MSELoss``/``BCEWithLogitsLoss``) and ``MSELoss`` carries no
``½``; its ``EFLinearOperator`` is ``(1/R) sum_n g_n g_n^T`` with ``g_n`` the gradient of the
unnormalised per-example loss. The torch bridge returns fisherlab's references in exactly this
scaling (``fisherlab.testing.torch`` docstring), so the dense matrices must agree to rounding.
"""

import numpy as np
import pytest

from fisherlab.testing import assert_curvature_close, diagnose

from _peer_cases import all_cases, case, case_id, rel

torch = pytest.importorskip("torch")
cl = pytest.importorskip("curvlinops")

pytestmark = pytest.mark.peers
RTOL = 1e-10  # float64 on both sides; observed agreement ~1e-16


def _dense(op, d):
    return (op @ torch.eye(d, dtype=torch.float64)).detach().numpy()


def _setup(c):
    net, X, y, loss, P = case(*c)
    params = list(net.parameters())
    return net, loss, params, [(X, y)], P


OPERATORS = {
    "hessian": lambda net, loss, params, data: cl.HessianLinearOperator(
        net, loss, params, data, check_deterministic=False),
    "ggn": lambda net, loss, params, data: cl.GGNLinearOperator(
        net, loss, params, data, check_deterministic=False),
    "empirical_fisher": lambda net, loss, params, data: cl.EFLinearOperator(
        net, loss, params, data, check_deterministic=False),
}


@pytest.mark.parametrize("quantity", sorted(OPERATORS))
@pytest.mark.parametrize("c", all_cases(), ids=case_id)
def test_dense_curvature_agrees(c, quantity):
    net, loss, params, data, P = _setup(c)
    M = _dense(OPERATORS[quantity](net, loss, params, data), P.num_params)
    assert_curvature_close(M, P.reference(quantity), problem=P, quantity=quantity, rtol=RTOL)


@pytest.mark.parametrize("bias", ["separate", "augmented"])
@pytest.mark.parametrize("fisher_type", ["type-2", "empirical"])
@pytest.mark.parametrize("c", all_cases(), ids=case_id)
def test_kfac_agrees(c, fisher_type, bias):
    net, loss, params, data, P = _setup(c)
    op = cl.KFACLinearOperator(net, loss, params, data, fisher_type=fisher_type,
                               separate_weight_and_bias=(bias == "separate"),
                               check_deterministic=False)
    fl_type = {"type-2": "exact", "empirical": "empirical"}[fisher_type]
    ref = P.reference("kfac", bias=bias, fisher_type=fl_type)
    assert_curvature_close(_dense(op, P.num_params), ref, problem=P, quantity="kfac", rtol=RTOL)


@pytest.mark.parametrize("mc_samples", [1, 16])
def test_fisher_mc_is_diagnosed_as_monte_carlo(mc_samples):
    """FisherMCLinearOperator is an estimate: compared as if exact, diagnose must say so.

    Fixed seed (curvlinops' default) -> deterministic; the statistical band of the diagnosis
    rejects a true estimate with probability <= 0.1 % (Chebyshev band on the Pearson
    statistic of the label counts, exact multinomial variance).
    """
    net, loss, params, data, P = _setup(("tanh", "CrossEntropyLoss", "mean", 3))
    op = cl.FisherMCLinearOperator(net, loss, params, data, mc_samples=mc_samples,
                                   check_deterministic=False)
    M = _dense(op, P.num_params)
    F = P.reference("fisher")
    assert rel(M, F) > 1e-6
    findings = diagnose(M, F, problem=P, quantity="fisher")
    assert findings[0].kind == "monte_carlo_estimate", [str(f) for f in findings]
