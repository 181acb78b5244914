"""Foundations shared by every numeric face of fisherlab (private).

* :mod:`fisherlab._core.validation` -- input checks whose errors name the argument, what was
  received and what was expected; the one tracer test :func:`~fisherlab._core.validation.is_tracer`
  and the one array coercion :func:`~fisherlab._core.validation.as_array`.
* :mod:`fisherlab._core.precision` -- float64 computation without touching the caller's JAX
  configuration.
* :mod:`fisherlab._core.sampling` -- Monte-Carlo labels and their output gradients, so that every
  Monte-Carlo quantity sees the same labels for one key.

Nothing here imports another part of fisherlab, and nothing here imports SymPy.
"""
