"""Former location of :mod:`fisherlab._core.sampling`, kept for modules not yet moved to it."""

from fisherlab._core.sampling import output_grads, sample_each  # noqa: F401
