"""The oracle kit (``fl.testing``): strategies, problems, diagnosing assertions, a PyTorch bridge.

Other projects test *their* curvature code against fisherlab with it::

    import fisherlab as fl
    from fisherlab.testing import strategies as fls

    problem = fl.testing.Problem(model, params, x, y, fl.Categorical())
    fl.testing.assert_curvature_close(my_fisher, problem.reference("fisher"),
                                      problem=problem, quantity="fisher")

On a mismatch the ``AssertionError`` names the likely cause -- a reduction factor ``N``, the
MSE ``2/C`` convention, the empirical Fisher for the Fisher, parameters in another order,
swapped Kronecker factors, a wrong K-FAC factor, activation derivative or output-space
matrix, misaligned targets, dropped examples, labels not sampled from the model, a
Monte-Carlo estimate -- with the evidence (see :func:`diagnose`), and saves a copy of the
problem for a rerun.

* :mod:`fisherlab.testing.strategies` -- Hypothesis strategies (``spd_matrices``, ...).
* :class:`Problem` (``save``/``load``), :func:`assert_curvature_close`, :func:`diagnose`,
  :class:`Finding`.
* ``settings`` / ``PROFILES`` -- Hypothesis settings for oracle tests (few examples, no
  deadline; see :mod:`fisherlab.testing._settings`).
* :mod:`fisherlab.testing.torch` -- references for a PyTorch ``nn.Module`` (transformer blocks
  included) and loss, in PyTorch's ``parameters()`` order and the loss's own scaling (optional
  extra: torch).
* :mod:`fisherlab.testing.flax`, :mod:`fisherlab.testing.equinox` -- references for Flax (linen,
  nnx) and Equinox models in the framework's own parameter order and layout (optional extras).
"""

import importlib

from fisherlab.testing._assertions import assert_curvature_close
from fisherlab.testing._compare import default_tolerances, relative_error
from fisherlab.testing._diagnose import KINDS, Finding, diagnose
from fisherlab.testing._problem import QUANTITIES, Problem

__all__ = [
    "Finding",
    "KINDS",
    "PROFILES",
    "Problem",
    "QUANTITIES",
    "assert_curvature_close",
    "default_tolerances",
    "diagnose",
    "equinox",
    "flax",
    "relative_error",
    "settings",
    "strategies",
    "torch",
]

#: attributes imported on first use: Hypothesis (strategies, settings), torch, Flax and Equinox
#: are only loaded by the tests that use them
_LAZY = {"strategies": ("fisherlab.testing.strategies", None),
         "torch": ("fisherlab.testing.torch", None),
         "flax": ("fisherlab.testing.flax", None),
         "equinox": ("fisherlab.testing.equinox", None),
         "settings": ("fisherlab.testing._settings", "settings"),
         "PROFILES": ("fisherlab.testing._settings", "PROFILES")}


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'fisherlab.testing' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
