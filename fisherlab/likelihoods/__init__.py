"""Likelihood families (``fl.likelihoods``; also re-exported at the top level).

Exponential families in their natural parameters (canonical link) -- ``Categorical``
(logits), ``Gaussian`` (mean, fixed variance), ``Bernoulli`` (logits), ``Poisson``
(log-rate) -- and ``GaussianMeanVariance`` (mean, log-variance: *not* natural, the
counterexample to Fisher = GGN). Each is defined once symbolically (``.symbolic(C)``, a
:class:`SymbolicLikelihood` from :mod:`fisherlab.likelihoods.symbolic`, the source the proofs
start from; SymPy is imported only then) and numerically (``nll``, ``sample``,
``output_fisher``, ``output_hessian``). Shapes and target formats: docs/CONVENTIONS.md.
"""

from fisherlab.likelihoods._base import Likelihood
from fisherlab.likelihoods._bernoulli import Bernoulli
from fisherlab.likelihoods._categorical import Categorical
from fisherlab.likelihoods._gaussian import Gaussian
from fisherlab.likelihoods._gaussian_mean_variance import GaussianMeanVariance
from fisherlab.likelihoods._poisson import Poisson

__all__ = [
    "Bernoulli",
    "Categorical",
    "Gaussian",
    "GaussianMeanVariance",
    "Likelihood",
    "Poisson",
    "SymbolicLikelihood",
    "symbolic",
]


def __getattr__(name):
    # The symbolic definitions import SymPy: loaded only when asked for.
    if name == "SymbolicLikelihood":
        from fisherlab.likelihoods.symbolic import SymbolicLikelihood

        return SymbolicLikelihood
    if name == "symbolic":
        import importlib

        return importlib.import_module("fisherlab.likelihoods.symbolic")
    raise AttributeError(f"module 'fisherlab.likelihoods' has no attribute {name!r}")


def __dir__():
    return list(__all__)
