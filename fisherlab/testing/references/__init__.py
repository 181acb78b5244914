"""Independent references for testing fisherlab's fast paths (and anyone else's).

Each is exact and obviously right rather than fast, and shares no code with the function it
checks:

* :mod:`~fisherlab.testing.references.naive` -- the textbook definitions of the dense
  curvature matrices, as loops over examples with per-example Jacobians (JAX);
* :mod:`~fisherlab.testing.references.kfac` -- brute-force dense curvature from full Jacobians
  and the K-FAC structure written out entry by entry (JAX);
* :mod:`~fisherlab.testing.references.symbolic` -- exact curvature of tiny networks in SymPy,
  never calling JAX (also ``fl.symbolic.curvature``).

The submodules load on first use, so the SymPy one is only imported when asked for.
"""

import importlib

__all__ = ["kfac", "naive", "symbolic"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return list(__all__)
