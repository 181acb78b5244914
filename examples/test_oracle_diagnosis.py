"""What a failing oracle test says: a wrong "Fisher" is caught and the mistake is named.

``mylib.fisher_from_data_labels`` uses the data labels where the Fisher needs labels drawn from
the model's predictive distribution -- it computes the empirical Fisher. The comparison with
fisherlab's reference fails, and the assertion message carries the diagnosis
``empirical_fisher_for_fisher`` with its evidence. Run with ``-s`` to see the message:

    python3 -m pytest -q -s examples/test_oracle_diagnosis.py
"""

import jax
import jax.numpy as jnp
import pytest

import fisherlab as fl
from fisherlab.testing import Problem, assert_curvature_close

from mylib import fisher_from_data_labels


def test_a_wrong_fisher_is_named():
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (8, 3))
    y = jnp.arange(8) % 3
    problem = Problem(model, params, x, y, fl.Categorical())
    wrong = fisher_from_data_labels(model, params, x, y, fl.Categorical())
    with pytest.raises(AssertionError, match="empirical_fisher_for_fisher") as failure:
        assert_curvature_close(wrong, problem.reference("fisher"), problem=problem,
                               quantity="fisher")
    print("\n--- the assertion message ---\n" + str(failure.value))
