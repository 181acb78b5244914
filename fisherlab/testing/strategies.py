"""Hypothesis strategies for curvature tests (``fl.testing.strategies``).

In the style of :mod:`hypothesis.extra.numpy`: module-level functions listed in
``__all__``, keyword-only bounds, each returning a ``SearchStrategy``. Bad bounds
raise :class:`hypothesis.errors.InvalidArgument` **when the strategy is built**
(the call itself), not when it is first drawn from.

Every matrix is float64 NumPy and is built *deterministically* from a few
bounded floats that Hypothesis draws, chosen so that shrinking moves towards the
simplest valid example:

* orthogonal factors come from the Cayley transform ``Q = (I - S)(I + S)^{-1}`` of
  a drawn skew-symmetric ``S`` (always orthogonal; ``S -> 0`` shrinks to ``Q = I``);
* spectra are ``lo * kappa**t`` for drawn ``t`` in ``[0, 1]`` (``t -> 0`` shrinks to
  a multiple of the identity), so a condition-number bound holds by construction
  (up to floating-point rounding of the products, a relative ``1e-12``).

Use it as a namespace::

    from fisherlab.testing import strategies as fls

    @given(fls.spd_matrices(max_dim=4, max_condition=50.0))
    def test_cholesky(A): ...

Networks: :func:`sequential_models` draws a ``fl.nn.Sequential``; parameters for a
given model come from :func:`network_parameters` (a separate strategy, because
their shapes depend on the drawn model: combine with ``st.data()`` or
``flatmap``); :func:`problems` draws a whole ``fl.testing.Problem`` (model,
parameters, batch, likelihood) at once.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from fisherlab import likelihoods as L
from fisherlab import nn
from fisherlab.testing._problem import Problem

__all__ = [
    "affine_reparameterizations",
    "batches",
    "kronecker_pairs",
    "likelihoods",
    "network_parameters",
    "problems",
    "psd_matrices",
    "sequential_models",
    "spd_matrices",
]

#: activation names accepted by :func:`sequential_models`
ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
#: likelihood family names accepted by :func:`likelihoods`
FAMILIES = ("categorical", "gaussian", "bernoulli", "poisson", "gaussian_mean_variance")
_NATURAL_FAMILIES = ("categorical", "gaussian", "bernoulli", "poisson")


# ----------------------------------------------------------------------------- argument checks


def _check_int(value, name, *, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"{name}={value!r} must be an int")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be >= {minimum}")
    return int(value)


def _check_real(value, name, *, positive=False, minimum=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{name}={value!r} must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    if positive and v <= 0:
        raise InvalidArgument(f"{name}={value!r} must be > 0")
    if minimum is not None and v < minimum:
        raise InvalidArgument(f"{name}={value!r} must be >= {minimum}")
    return v


def _check_order(lo, hi, lo_name, hi_name):
    if lo > hi:
        raise InvalidArgument(f"{lo_name}={lo!r} must be <= {hi_name}={hi!r}")


def _dim_strategy(dim, min_dim, max_dim, name="dim", floor=1):
    """An int strategy from ``dim`` (int, strategy or None) and bounds checked eagerly."""
    if dim is not None:
        if isinstance(dim, st.SearchStrategy):
            return dim
        dim = _check_int(dim, name, minimum=floor)
        return st.just(dim)
    min_dim = _check_int(min_dim, f"min_{name}", minimum=floor)
    max_dim = _check_int(max_dim, f"max_{name}", minimum=floor)
    _check_order(min_dim, max_dim, f"min_{name}", f"max_{name}")
    return st.integers(min_dim, max_dim)


def _unit_floats():
    return st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def _sym_floats(bound):
    return st.floats(-bound, bound, allow_nan=False, allow_infinity=False, allow_subnormal=False)


# ----------------------------------------------------------------------------- building blocks


def _orthogonal(draw, n):
    """A draw of an ``n x n`` orthogonal matrix via the Cayley transform (shrinks to I)."""
    if n == 1:
        return np.ones((1, 1))
    upper = draw(hnp.arrays(np.float64, (n * (n - 1) // 2,), elements=_sym_floats(2.0)))
    S = np.zeros((n, n))
    S[np.triu_indices(n, 1)] = upper
    S = S - S.T
    eye = np.eye(n)
    # I + S is invertible for skew-symmetric S (eigenvalues 1 + i*w).
    return np.linalg.solve((eye + S).T, (eye - S).T).T


def _spectrum(draw, k, lo, hi, max_condition):
    """``k`` values in ``[lo, hi]`` with ``max/min <= max_condition``, shrinking to all == lo."""
    t0 = draw(_unit_floats())
    smallest = lo * (hi / lo) ** t0
    top = min(hi, smallest * max_condition)
    ts = draw(hnp.arrays(np.float64, (k,), elements=_unit_floats()))
    vals = smallest * (top / smallest) ** ts
    vals[0] = smallest  # the bound is attained from below: cond = max(vals)/smallest
    return vals


def _symmetrize(M):
    return (M + M.T) / 2.0


# ----------------------------------------------------------------------------- matrices


def spd_matrices(*, dim=None, min_dim: int = 1, max_dim: int = 5,
                 min_eigenvalue: float = 1e-2, max_eigenvalue: float = 1e2,
                 max_condition: float | None = 1e3):
    """Symmetric positive-definite float64 matrices ``Q diag(lam) Q^T``.

    Args:
      dim: fixed size (int) or a strategy of sizes; default: drawn in ``[min_dim, max_dim]``.
      min_eigenvalue, max_eigenvalue: bounds on the spectrum (``0 < min <= max``).
      max_condition: upper bound on ``lam_max / lam_min`` (``>= 1``); ``None`` = only the
        eigenvalue bounds.

    Returns:
      strategy of ``(n, n)`` float64 arrays, exactly symmetric, eigenvalues in the bounds
      and condition number ``<= max_condition`` (up to rounding, relative ``1e-12``).
      Shrinks towards ``min_eigenvalue * I``.
    """
    dims = _dim_strategy(dim, min_dim, max_dim)
    lo = _check_real(min_eigenvalue, "min_eigenvalue", positive=True)
    hi = _check_real(max_eigenvalue, "max_eigenvalue", positive=True)
    _check_order(lo, hi, "min_eigenvalue", "max_eigenvalue")
    kappa = math.inf if max_condition is None else _check_real(
        max_condition, "max_condition", minimum=1.0)

    @st.composite
    def build(draw):
        n = draw(dims)
        Q = _orthogonal(draw, n)
        lam = _spectrum(draw, n, lo, hi, kappa)
        return _symmetrize((Q * lam) @ Q.T)

    return build()


def psd_matrices(*, dim=None, min_dim: int = 1, max_dim: int = 5,
                 rank=None, min_rank: int = 0, max_rank: int | None = None,
                 min_eigenvalue: float = 1e-2, max_eigenvalue: float = 1e2,
                 max_condition: float | None = 1e3):
    """Symmetric positive-semidefinite float64 matrices of a given rank.

    Built as ``B B^T`` with ``B = Q[:, :r] diag(sqrt(lam))``, so the matrix is PSD by
    construction with exactly ``n - r`` zero eigenvalues in exact arithmetic (numerically
    ``~1e-16 * lam_max``).

    Args:
      dim, min_dim, max_dim: size as in :func:`spd_matrices`.
      rank: fixed rank (int) or None to draw it in ``[min_rank, min(max_rank, n)]``.
      min_eigenvalue, max_eigenvalue: bounds on the *nonzero* eigenvalues.
      max_condition: bound on the ratio of the largest to the smallest *nonzero* eigenvalue.
    """
    dims = _dim_strategy(dim, min_dim, max_dim)
    lo = _check_real(min_eigenvalue, "min_eigenvalue", positive=True)
    hi = _check_real(max_eigenvalue, "max_eigenvalue", positive=True)
    _check_order(lo, hi, "min_eigenvalue", "max_eigenvalue")
    kappa = math.inf if max_condition is None else _check_real(
        max_condition, "max_condition", minimum=1.0)
    if rank is not None:
        rank = _check_int(rank, "rank", minimum=0)
        if dim is not None and not isinstance(dim, st.SearchStrategy) and rank > dim:
            raise InvalidArgument(f"rank={rank} must be <= dim={dim}")
        if dim is None and rank > max_dim:
            raise InvalidArgument(f"rank={rank} must be <= max_dim={max_dim}")
    else:
        min_rank = _check_int(min_rank, "min_rank", minimum=0)
        if max_rank is not None:
            max_rank = _check_int(max_rank, "max_rank", minimum=0)
            _check_order(min_rank, max_rank, "min_rank", "max_rank")
        top_dim = dim if isinstance(dim, numbers.Integral) else (None if dim is not None else max_dim)
        if top_dim is not None and min_rank > top_dim:
            raise InvalidArgument(f"min_rank={min_rank} exceeds the largest size {top_dim}")

    @st.composite
    def build(draw):
        n = draw(dims)
        if rank is not None:
            if rank > n:
                raise InvalidArgument(f"rank={rank} exceeds the drawn size {n}")
            r = rank
        else:
            hi_r = n if max_rank is None else min(max_rank, n)
            if min_rank > hi_r:
                raise InvalidArgument(f"min_rank={min_rank} exceeds the drawn size {n}")
            r = draw(st.integers(min_rank, hi_r))
        Q = _orthogonal(draw, n)
        if r == 0:
            return np.zeros((n, n))
        lam = _spectrum(draw, r, lo, hi, kappa)
        B = Q[:, :r] * np.sqrt(lam)
        return _symmetrize(B @ B.T)

    return build()


def kronecker_pairs(*, min_dim: int = 1, max_dim: int = 4, max_condition: float | None = 1e2,
                    min_eigenvalue: float = 1e-1, max_eigenvalue: float = 1e1):
    """Pairs ``(A, G)`` of SPD Kronecker factors (sizes drawn independently).

    Typical use: K-FAC factor algebra, ``(A (x) G)^{-1} = A^{-1} (x) G^{-1}``. Each factor
    is drawn by :func:`spd_matrices` with the given bounds.
    """
    one = spd_matrices(min_dim=min_dim, max_dim=max_dim, max_condition=max_condition,
                       min_eigenvalue=min_eigenvalue, max_eigenvalue=max_eigenvalue)
    return st.tuples(one, one)


def affine_reparameterizations(*, dim=None, min_dim: int = 1, max_dim: int = 5,
                               max_condition: float = 1e2, max_offset: float = 1.0):
    """Invertible affine maps ``theta = A phi + b``, drawn as ``(A, b)``.

    ``A = U diag(s) V^T`` with orthogonal ``U, V`` and singular values ``s`` in
    ``[1, max_condition]`` (so ``cond_2(A) <= max_condition``), ``b`` entries in
    ``[-max_offset, max_offset]``. Used for invariance tests of natural-gradient steps
    (Amari 1998; seed 004_*: the natural gradient is invariant under such maps).
    Shrinks to ``(I, 0)``.
    """
    dims = _dim_strategy(dim, min_dim, max_dim)
    kappa = _check_real(max_condition, "max_condition", minimum=1.0)
    off = _check_real(max_offset, "max_offset", minimum=0.0)

    @st.composite
    def build(draw):
        n = draw(dims)
        U = _orthogonal(draw, n)
        V = _orthogonal(draw, n)
        s = _spectrum(draw, n, 1.0, kappa, kappa)
        b = draw(hnp.arrays(np.float64, (n,), elements=_sym_floats(off)))
        return (U * s) @ V.T, b

    return build()


# ----------------------------------------------------------------------------- likelihoods


def _make_likelihood(family, variance):
    if family == "categorical":
        return L.Categorical()
    if family == "gaussian":
        return L.Gaussian(variance=variance)
    if family == "bernoulli":
        return L.Bernoulli()
    if family == "poisson":
        return L.Poisson()
    if family == "gaussian_mean_variance":
        return L.GaussianMeanVariance()
    raise AssertionError(family)  # pragma: no cover - validated eagerly


def likelihoods(*, families=_NATURAL_FAMILIES, min_variance: float = 1.0,
                max_variance: float = 1.0):
    """Likelihood objects of the given families.

    Args:
      families: a non-empty subset of ``("categorical", "gaussian", "bernoulli", "poisson",
        "gaussian_mean_variance")``; default: the four natural-parameter families.
      min_variance, max_variance: range of the ``Gaussian`` variance (default exactly 1).
    """
    if isinstance(families, str):
        families = (families,)
    families = tuple(families)
    if not families:
        raise InvalidArgument("families must name at least one likelihood family")
    for fam in families:
        if fam not in FAMILIES:
            raise InvalidArgument(f"unknown likelihood family {fam!r}; expected one of {FAMILIES}")
    lo = _check_real(min_variance, "min_variance", positive=True)
    hi = _check_real(max_variance, "max_variance", positive=True)
    _check_order(lo, hi, "min_variance", "max_variance")
    variances = st.just(lo) if lo == hi else st.floats(lo, hi)
    return st.builds(_make_likelihood, st.sampled_from(families), variances)


def _family(likelihood) -> str:
    name = type(likelihood).__name__
    return {"Categorical": "categorical", "Gaussian": "gaussian", "Bernoulli": "bernoulli",
            "Poisson": "poisson", "GaussianMeanVariance": "gaussian_mean_variance"}.get(name, name)


def _min_outputs(family) -> int:
    return 2 if family in ("categorical", "gaussian_mean_variance") else 1


# ----------------------------------------------------------------------------- networks


def sequential_models(*, min_depth: int = 1, max_depth: int = 3, min_width: int = 1,
                      max_width: int = 4, in_features=None, out_features=None,
                      activations=ACTIVATIONS, final_activation: bool = False):
    """``fl.nn.Sequential`` networks ``Dense -> act -> Dense -> ... -> Dense``.

    Args:
      min_depth, max_depth: number of ``Dense`` layers.
      min_width, max_width: range of every width (input, hidden and output) not fixed below.
      in_features, out_features: fix the input / output width (int) or draw them (None).
      activations: names drawn for the hidden activations (subset of
        ``("tanh", "sigmoid", "relu", "identity")``).
      final_activation: also put an activation after the last ``Dense`` (default: the
        network ends with a ``Dense`` layer, i.e. outputs are natural parameters).

    Returns:
      strategy of ``fl.nn.Sequential``; draw parameters with :func:`network_parameters`.
    """
    min_depth = _check_int(min_depth, "min_depth", minimum=1)
    max_depth = _check_int(max_depth, "max_depth", minimum=1)
    _check_order(min_depth, max_depth, "min_depth", "max_depth")
    min_width = _check_int(min_width, "min_width", minimum=1)
    max_width = _check_int(max_width, "max_width", minimum=1)
    _check_order(min_width, max_width, "min_width", "max_width")
    if in_features is not None:
        in_features = _check_int(in_features, "in_features", minimum=1)
    if out_features is not None:
        out_features = _check_int(out_features, "out_features", minimum=1)
    if isinstance(activations, str):
        activations = (activations,)
    activations = tuple(activations)
    if not activations:
        raise InvalidArgument("activations must name at least one activation")
    for a in activations:
        if a not in ACTIVATIONS:
            raise InvalidArgument(f"unknown activation {a!r}; expected one of {ACTIVATIONS}")
    widths = st.integers(min_width, max_width)

    @st.composite
    def build(draw):
        depth = draw(st.integers(min_depth, max_depth))
        ws = [in_features if in_features is not None else draw(widths)]
        for _ in range(depth - 1):
            ws.append(draw(widths))
        ws.append(out_features if out_features is not None else draw(widths))
        acts = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "identity": nn.Identity}
        layers = []
        for k in range(depth):
            layers.append(nn.Dense(ws[k], ws[k + 1]))
            if k < depth - 1 or final_activation:
                layers.append(acts[draw(st.sampled_from(activations))]())
        return nn.Sequential(layers)

    return build()


def network_parameters(model, *, scale: float = 1.0):
    """Parameters ``[(W, b), ...]`` (float64 NumPy, ``W`` of shape ``(out, in)``) for ``model``.

    Entries are drawn in ``[-scale, scale]`` (shrinking to 0; tests that need a generic,
    non-degenerate point should ``assume`` it).
    """
    scale = _check_real(scale, "scale", positive=True)
    dense = getattr(model, "dense_layers", None)
    if dense is None:
        raise InvalidArgument(f"model must be a fisherlab.nn.Sequential, got {model!r}")
    el = _sym_floats(scale)
    return st.tuples(*[
        st.tuples(hnp.arrays(np.float64, (l.out_features, l.in_features), elements=el),
                  hnp.arrays(np.float64, (l.out_features,), elements=el))
        for l in dense
    ]).map(list)


def batches(likelihood, *, in_features: int, out_features: int | None = None,
            min_size: int = 1, max_size: int = 6, input_scale: float = 2.0,
            max_count: int = 5):
    """Batches ``(x, y)`` valid for ``likelihood``.

    ``x`` is ``(N, in_features)`` float64 with entries in ``[-input_scale, input_scale]``;
    ``y`` follows the likelihood's target convention (API.md): ``(N,)`` int class indices
    in ``[0, C)`` for ``Categorical``; ``(N, C)`` float for ``Gaussian``; 0./1. for
    ``Bernoulli``; non-negative integers ``<= max_count`` as float for ``Poisson``;
    ``(N, C/2)`` float for ``GaussianMeanVariance`` (``C`` = ``out_features``).
    """
    in_features = _check_int(in_features, "in_features", minimum=1)
    fam = _family(likelihood)
    if fam not in FAMILIES:
        raise InvalidArgument(f"likelihood must be a fisherlab likelihood, got {likelihood!r}")
    if out_features is None:
        raise InvalidArgument("out_features (the number of model outputs C) is required")
    C = _check_int(out_features, "out_features", minimum=1)
    if C < _min_outputs(fam):
        raise InvalidArgument(f"out_features={C} is too small for {fam} (needs >= {_min_outputs(fam)})")
    if fam == "gaussian_mean_variance" and C % 2:
        raise InvalidArgument(f"out_features={C} must be even for gaussian_mean_variance")
    min_size = _check_int(min_size, "min_size", minimum=1)
    max_size = _check_int(max_size, "max_size", minimum=1)
    _check_order(min_size, max_size, "min_size", "max_size")
    scale = _check_real(input_scale, "input_scale", positive=True)
    max_count = _check_int(max_count, "max_count", minimum=0)

    @st.composite
    def build(draw):
        n = draw(st.integers(min_size, max_size))
        x = draw(hnp.arrays(np.float64, (n, in_features), elements=_sym_floats(scale)))
        if fam == "categorical":
            y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, C - 1)))
        elif fam == "gaussian":
            y = draw(hnp.arrays(np.float64, (n, C), elements=_sym_floats(2.0)))
        elif fam == "bernoulli":
            y = draw(hnp.arrays(np.float64, (n, C), elements=st.sampled_from([0.0, 1.0])))
        elif fam == "poisson":
            y = draw(hnp.arrays(np.int64, (n, C), elements=st.integers(0, max_count))).astype(
                np.float64)
        else:
            y = draw(hnp.arrays(np.float64, (n, C // 2), elements=_sym_floats(2.0)))
        return x, y

    return build()


def problems(*, likelihoods_=None, min_depth: int = 1, max_depth: int = 2, min_width: int = 1,
             max_width: int = 3, activations=ACTIVATIONS, min_size: int = 1, max_size: int = 4,
             scale: float = 1.0, distinct: bool = False):
    """Whole curvature problems: a ``fl.testing.Problem`` (network, parameters, batch, likelihood).

    Args:
      likelihoods_: a strategy of likelihoods (default :func:`likelihoods` with the natural
        families); the output width is drawn large enough for it.
      distinct: avoid the degenerate draws on which several conventions coincide, so that a
        diagnosis can tell them apart: ``N >= 3`` examples and ``C >= 3`` outputs with
        ``N != C``, ``N != 2 C``, ``C != 2 N`` (else a factor ``2`` is a sum over ``N = 2``
        examples, the un-halved squared error and a sum over ``C = 2`` outputs at once), every
        input row and every weight matrix of norm at least a quarter of its bound (shrinking
        would otherwise drive them to zero, where many quantities vanish together). Needs
        ``max_size >= 3``, ``max_width >= 3`` and room for ``N != C``.
      other arguments: as in :func:`sequential_models`, :func:`batches`, :func:`network_parameters`.

    >>> from hypothesis import given
    >>> from fisherlab.testing import strategies as fls
    >>> @given(fls.problems(distinct=True))
    ... def test_sizes(problem):
    ...     assert problem.num_examples != problem.num_outputs
    >>> test_sizes()
    """
    lik_strategy = likelihoods() if likelihoods_ is None else likelihoods_
    if not isinstance(lik_strategy, st.SearchStrategy):
        raise InvalidArgument(f"likelihoods_ must be a strategy, got {lik_strategy!r}")
    # validate eagerly by building the component strategies once
    sequential_models(min_depth=min_depth, max_depth=max_depth, min_width=min_width,
                      max_width=max_width, activations=activations)
    _check_int(min_size, "min_size", minimum=1)
    _check_int(max_size, "max_size", minimum=1)
    _check_order(min_size, max_size, "min_size", "max_size")
    _check_real(scale, "scale", positive=True)
    if distinct:
        if max_size < 3 or max_width < 3 or (max_size == 3 and max_width == 3 and min_width >= 3
                                             and min_size >= 3):
            raise InvalidArgument(f"distinct=True needs N >= 3 examples and C >= 3 outputs with "
                                  f"N != C: got max_size={max_size}, max_width={max_width}")

    def _sizes_ok(N, C):
        return not distinct or (N >= 3 and C >= 3 and N != C and N != 2 * C and C != 2 * N)

    @st.composite
    def build(draw):
        lik = draw(lik_strategy)
        fam = _family(lik)
        lo = max(min_width, _min_outputs(fam), 3 if distinct else 1)
        C = draw(st.integers(lo, max(lo, max_width)))
        if fam == "gaussian_mean_variance" and C % 2:
            C += 1
        N = draw(st.integers(max(min_size, 3) if distinct else min_size, max_size)
                 .filter(lambda n: _sizes_ok(n, C)))
        model = draw(sequential_models(min_depth=min_depth, max_depth=max_depth,
                                       min_width=min_width, max_width=max_width,
                                       out_features=C, activations=activations))
        params = draw(network_parameters(model, scale=scale))
        x, y = draw(batches(lik, in_features=model.in_features, out_features=C,
                            min_size=N, max_size=N))
        if distinct:
            assume(all(np.linalg.norm(W) >= 0.25 * scale for W, _ in params))
            assume(np.min(np.linalg.norm(x, axis=1)) >= 0.25 * 2.0)
        return Problem(model, params, x, y, lik)

    return build()
