"""Fixed examples for rebuilding desired from its ingredients: the gradient covariance (centred
at the mean gradient) rebuilt with a wrong activation derivative, on the fixed N=5, C=3
problem; the covariance written here with NumPy's np.cov."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import diagnose


@pytest.mark.parametrize("kind", ["Tanh", "Sigmoid"])
def test_gradient_covariance_with_a_derivative_slip(kind):
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)

    def cov(derivative=None):
        b = no.batch(m, params, x, derivative)
        G = np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], y))
        return np.cov(G.T, ddof=0)

    desired = P.reference("gradient_covariance")
    np.testing.assert_allclose(cov(), desired, rtol=1e-9, atol=1e-12)
    f = diagnose(cov({kind: no.AT_OUTPUT[kind]}), desired, problem=P,
                 quantity="gradient_covariance")
    assert f[0].kind == "activation_derivative", [str(v) for v in f]
    assert f[0].data["activation"] == kind and f[0].data["form"] == 1
