"""Former location of :mod:`fisherlab._core.validation`, kept for modules not yet moved to it."""

from fisherlab._core.validation import (  # noqa: F401
    as_array,
    as_float_array,
    check_choice,
    check_finite,
    check_int,
    check_key,
    check_scalar,
    is_tracer,
)
