"""The oracle kit (``fl.testing``): strategies, problems, diagnosing assertions, a PyTorch bridge.

Other projects test *their* curvature code against fisherlab with it::

    import fisherlab as fl
    from fisherlab.testing import strategies as fls

    problem = fl.testing.Problem(model, params, x, y, fl.Categorical())
    fl.testing.assert_curvature_close(my_fisher, problem.reference("fisher"),
                                      problem=problem, quantity="fisher")

On a mismatch the ``AssertionError`` names the likely cause -- a reduction factor ``N``, the
MSE ``2/C`` convention, the empirical Fisher for the Fisher, swapped Kronecker factors, a
transposed weight layout, missing bias cross terms, a block-diagonal approximation, a
Monte-Carlo estimate -- with the evidence (see :func:`diagnose`).

* :mod:`fisherlab.testing.strategies` -- Hypothesis strategies (``spd_matrices``, ...).
* :class:`Problem`, :func:`assert_curvature_close`, :func:`diagnose`, :class:`Finding`.
* :mod:`fisherlab.testing.torch` -- references for a PyTorch ``nn.Module`` (transformer blocks
  included) and loss, in PyTorch's ``parameters()`` order and the loss's own scaling (optional
  extra: torch).
* :mod:`fisherlab.testing.flax`, :mod:`fisherlab.testing.equinox` -- references for Flax (linen,
  nnx) and Equinox models in the framework's own parameter order and layout (optional extras).
"""

from fisherlab.testing._assertions import assert_curvature_close, default_tolerances, relative_error
from fisherlab.testing._diagnose import KINDS, Finding, diagnose
from fisherlab.testing._problem import QUANTITIES, Problem

__all__ = [
    "Finding",
    "KINDS",
    "Problem",
    "QUANTITIES",
    "assert_curvature_close",
    "default_tolerances",
    "diagnose",
    "equinox",
    "flax",
    "relative_error",
    "strategies",
    "torch",
]


def __getattr__(name):
    import importlib

    if name in ("equinox", "flax", "strategies", "torch"):
        return importlib.import_module(f"fisherlab.testing.{name}")
    raise AttributeError(f"module 'fisherlab.testing' has no attribute {name!r}")
