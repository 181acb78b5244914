"""Activation derivatives at the wrong point, planted with the NumPy back-propagation."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems

SLIPS = {"at_output": no.AT_OUTPUT, "output_form_at_s": no.OUTPUT_FORM_AT_S}


@given(problems(archs=("tanh", "sigmoid", "both")), st.sampled_from(sorted(SLIPS)),
       st.sampled_from(["fisher", "empirical_fisher", "kfac"]))
def test_activation_derivative(problem, slip, quantity):
    kinds = {type(l).__name__ for l in problem.model.layers} & set(SLIPS[slip])
    kind = sorted(kinds)[0]
    b = oracle(problem, {kind: SLIPS[slip][kind]})
    lik, y = problem.likelihood, np.asarray(problem.y)
    if quantity == "fisher":
        cand = no.fisher(b, lik)
    elif quantity == "empirical_fisher":
        cand = no.empirical_fisher(b, lik, y)
    else:
        cand = no.kfac_matrix(no.kfac_factors(b, no.output_fisher(lik, b["f"])))
    f = named_first(cand, problem.reference(quantity), problem, quantity,
                    "activation_derivative")
    if f.kind == "activation_derivative":
        assert f.data["activation"] == kind and f.data["form"] == (1 if slip == "at_output"
                                                                    else 2)
