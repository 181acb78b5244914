"""Problems and helpers shared by the diagnose tests.

A few fixed architectures and one batch size keep the references' compiled programs shared
across Hypothesis examples (compilation dominates otherwise); parameters, inputs, targets and
the likelihood are drawn. Draws where the planted bug does not change the matrix, or where it
coincides exactly with another named explanation, are rejected with ``assume`` (they cannot
tell the kinds apart); everything else must name the planted kind first.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import fisherlab as fl
import numpy_oracle as no
from fisherlab.testing import KINDS, Finding, Problem, diagnose, relative_error
from fisherlab.testing import strategies as fls

N = 4
ARCHS = {
    "tanh": lambda C: fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, C)]),
    "sigmoid": lambda C: fl.nn.Sequential([fl.nn.Dense(3, 2), fl.nn.Sigmoid(),
                                           fl.nn.Dense(2, C)]),
    "both": lambda C: fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 3),
                                        fl.nn.Sigmoid(), fl.nn.Dense(3, C)]),
}
LIKELIHOODS = {"categorical": fl.Categorical, "bernoulli": fl.Bernoulli,
               "poisson": fl.Poisson, "gaussian": fl.Gaussian}


def problems(archs=("tanh", "sigmoid"), families=("categorical", "bernoulli", "poisson",
                                                     "gaussian"), C=3, n=N, scale=1.5):
    """``fl.testing.Problem`` draws on fixed architectures, ``C`` outputs and ``n`` examples."""

    @st.composite
    def build(draw):
        model = ARCHS[draw(st.sampled_from(archs))](C)
        lik = LIKELIHOODS[draw(st.sampled_from(families))]()
        params = draw(fls.network_parameters(model, scale=scale))
        x, y = draw(fls.batches(lik, in_features=model.in_features, out_features=C,
                                min_size=n, max_size=n))
        # a generic point: inputs and weights away from the degenerate zero draws
        assume(np.min(np.linalg.norm(x, axis=1)) > 0.2)
        assume(all(np.linalg.norm(W) > 0.3 for W, _ in params))
        return Problem(model, params, x, y, lik)

    return build()


def oracle(problem, derivative=None):
    """The NumPy engine's per-example quantities on ``problem``."""
    model, params, x, y, lik = no.problem_arrays(problem)
    return no.batch(model, params, x, derivative)


def named_first(actual, desired, problem, quantity, kind):
    """The diagnosis names ``kind`` first; degenerate draws (no difference, or an exact tie
    with another named explanation) are rejected."""
    assume(relative_error(actual, desired) > 1e-6)
    findings = diagnose(actual, desired, problem=problem, quantity=quantity)
    assert findings, "a planted difference produced no finding"
    assert all(isinstance(f, Finding) and f.kind in KINDS for f in findings)
    if findings[0].kind != kind:
        # acceptable only when the planted candidate coincides exactly with another
        # explanation on this draw -- and then the tie must be stated
        tied = kind in findings[0].data.get("ties", ())
        assume(not (findings[0].residual <= 1e-8 and findings[0].kind != "no_known_pattern"
                    and not tied))
        assert tied, [str(f) for f in findings]
        return findings[0]
    return findings[0]


def assert_no_finding(actual, problem, quantity):
    """A correct candidate (computed independently) gives no finding."""
    desired = problem.reference(quantity)
    assert diagnose(actual, desired, problem=problem, quantity=quantity) == []


def leaf_slices(problem):
    return [(l.start, l.stop, l.shape) for l in problem.leaves()]
