"""fisherlab: a verified mathematical reference library for second-order optimization.

Fisher information, the generalized Gauss-Newton, the empirical Fisher, the
Hessian, K-FAC and the updates built on them -- each identity derived and
machine-checked in SymPy (``fl.proofs``), paired with a float64 JAX reference,
and a testing kit (``fl.testing``) that other curvature libraries use as an oracle.

Names are imported lazily so that ``import fisherlab`` stays cheap; ``dir()`` and
``__all__`` list them all.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # likelihood families
    "Likelihood": "fisherlab.likelihoods",
    "Categorical": "fisherlab.likelihoods",
    "Gaussian": "fisherlab.likelihoods",
    "Bernoulli": "fisherlab.likelihoods",
    "Poisson": "fisherlab.likelihoods",
    "GaussianMeanVariance": "fisherlab.likelihoods",
    # dense curvature and matrix-free products
    "hessian": "fisherlab.curvature",
    "ggn": "fisherlab.curvature",
    "fisher": "fisherlab.curvature",
    "fisher_mc": "fisherlab.curvature",
    "empirical_fisher": "fisherlab.curvature",
    "gradient_covariance": "fisherlab.curvature",
    "gradient": "fisherlab.curvature",
    "hvp": "fisherlab.curvature",
    "ggn_vp": "fisherlab.curvature",
    "fisher_vp": "fisherlab.curvature",
    "empirical_fisher_vp": "fisherlab.curvature",
    "fisher_mc_vp": "fisherlab.curvature",
    "CurvatureMemoryError": "fisherlab.curvature",
}
_SUBMODULES = ("likelihoods", "curvature", "nn", "kfac", "updates", "symbolic", "proofs",
               "testing", "optax", "cli")

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"fisherlab.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'fisherlab' has no attribute {name!r}")


def __dir__():
    return list(__all__)
