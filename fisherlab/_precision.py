"""Former location of :mod:`fisherlab._core.precision`, kept for modules not yet moved to it."""

from fisherlab._core.precision import float64, reference  # noqa: F401
