"""Independent ground truth for the likelihood tests: the SymPy source, lambdified.

Two evaluations of the single symbolic source ``Likelihood.symbolic(C)``
(``fisherlab/likelihoods/symbolic.py``):

* **mpmath** (``modules="mpmath"``, 50 significant digits): the reference for every
  numeric comparison. The float64/float32 inputs are converted to ``mpf`` *exactly*, so the
  only error measured is the JAX implementation's own rounding; exponent range is unbounded,
  so logits of +-1000, log-variances of +-700 etc. evaluate without overflow.
* **JAX** (``modules="jax"``, ``loggamma`` routed to ``jax.scipy.special.gammaln``): the
  symbolic form run under ``jax.jit`` next to the kernels, at moderate values. For the
  categorical Fisher the *probability form* is lambdified (``eta_k = log q_k``) and fed
  ``jax.nn.softmax`` (SYMBOLIC.md pitfall: the literal ``exp(eta)`` form overflows at 1000).

Symbolic quantities: ``-log_density`` (nll), ``hessian_nll()`` (output Hessian, derived by
SymPy), ``fisher_definition()`` (``E[score score^T]`` by the family's exact expectation
operator) and the first two target moments from ``expectation``. Everything is built once
per (family, C) and cached at module level (SymPy is slow).

For the fixed-variance Gaussian the variance is a positive SymPy symbol ``v`` passed as an
extra argument, so one lambdification serves every variance drawn by Hypothesis.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import sympy as sp

from fisherlab.likelihoods import symbolic as _symbolic

DPS = 50
VAR = sp.Symbol("v", positive=True)

_FAMILIES = {
    "Categorical": lambda C: _symbolic.categorical(C),
    "Gaussian": lambda C: _symbolic.gaussian(C, VAR),
    "Bernoulli": lambda C: _symbolic.bernoulli(C),
    "Poisson": lambda C: _symbolic.poisson(C),
    "GaussianMeanVariance": lambda C: _symbolic.gaussian_mean_variance(C // 2),
}


@functools.lru_cache(maxsize=None)
def source(family: str, C: int):
    """The SymbolicLikelihood of ``family`` with ``C`` outputs (Gaussian: variance ``v``)."""
    return _FAMILIES[family](C)


def _args(sym):
    return list(sym.outputs) + list(sym.targets) + [VAR]


def abs_expression(e: sp.Expr) -> sp.Expr:
    """The running-error magnitude of ``e``: every sum replaced by the sum of absolute values.

    ``|Add| -> sum |args|``, ``|Mul| -> prod |args|``, ``|b^k| -> |b|^k`` (integer ``k``),
    anything else ``Abs(.)``. A naive floating-point evaluation of ``e`` has error
    ``<= n eps abs_expression(e)`` (standard forward error bound), so this is the scale any
    implementation's rounding must be judged against when ``e`` cancels.
    """
    if isinstance(e, sp.Add):
        return sp.Add(*[abs_expression(a) for a in e.args])
    if isinstance(e, sp.Mul):
        return sp.Mul(*[abs_expression(a) for a in e.args])
    if isinstance(e, sp.Pow) and e.exp.is_Integer:
        return abs_expression(e.base) ** e.exp
    return sp.Abs(e)


@functools.lru_cache(maxsize=None)
def symbolic_quantity(family: str, C: int, what: str):
    """One SymPy quantity of the source, derived once.

    ``nll`` (``-log_density``), ``grad`` (``-score()``), ``hessian`` (``hessian_nll()``),
    ``fisher`` (``fisher_definition()``), ``mean`` / ``second`` (``E[y]``, ``E[y y^T]`` by the
    exact expectation operator) and ``<name>_scale``: :func:`abs_expression` of ``<name>``
    entry-wise (a floor for the rounding error of any evaluation).
    """
    sym = source(family, C)
    if what.endswith("_scale"):
        # sum of |terms| (entry-wise): the size of the cancellation any evaluation must face
        q = symbolic_quantity(family, C, what[: -len("_scale")])
        return q.applyfunc(abs_expression) if isinstance(q, sp.MatrixBase) else abs_expression(q)
    if what == "nll":
        return sym.nll
    if what == "grad":
        return -sym.score()
    if what == "hessian":
        return sym.hessian_nll()
    if what == "fisher":
        return sym.fisher_definition()
    if what == "mean":
        return sp.Matrix([sym.expectation(t) for t in sym.targets])
    if what == "second":
        D = len(sym.targets)
        return sp.Matrix(D, D, lambda i, j: sym.expectation(sym.targets[i] * sym.targets[j]))
    raise KeyError(what)


@functools.lru_cache(maxsize=None)
def _mp(family: str, C: int, what: str):
    sym = source(family, C)
    return sp.lambdify(_args(sym), symbolic_quantity(family, C, what), modules="mpmath")


def _mpf_args(out, target, variance):
    return ([mpmath.mpf(float(v)) for v in np.ravel(out)]
            + [mpmath.mpf(float(v)) for v in np.ravel(target)]
            + [mpmath.mpf(float(variance))])


def one_hot(index: int, C: int) -> np.ndarray:
    e = np.zeros(C)
    e[int(index)] = 1.0
    return e


def evaluate(family: str, what: str, out, target=None, variance=1.0):
    """The exact value of ``what`` (nll, nll_scale, hessian, fisher, mean, second) as mpf.

    ``target``: the symbolic target vector (one-hot for Categorical; pass ``None`` for
    target-free quantities -- zeros are substituted, they do not appear).
    Returns an mpf (scalars) or a NumPy object array of mpf (matrices).
    """
    out = np.asarray(out, np.float64)
    C = out.shape[-1]
    sym = source(family, C)
    if target is None:
        target = np.zeros(len(sym.targets))
    fn = _mp(family, C, what)
    with mpmath.workdps(DPS):
        val = fn(*_mpf_args(out, np.asarray(target, np.float64), variance))
        if isinstance(val, mpmath.matrix):
            return np.array([[val[i, j] for j in range(val.cols)] for i in range(val.rows)],
                            dtype=object)
        return val


def close(actual, exact, *, rtol: float, scale=0.0, floor=None, tiny=0.0) -> tuple[bool, str]:
    """Entry-wise ``|actual - exact| <= rtol * (|exact| + scale + floor) + tiny``, in mpmath.

    ``tiny``: the smallest normal number of the working precision (``finfo.tiny``): values
    below it underflow in any implementation (e.g. ``softmax`` of a logit gap of 1000).

    ``scale``: per-entry size of the terms being summed (``<name>_scale``), i.e. the
    cancellation any floating-point evaluation faces. ``floor`` (default ``max |exact|``):
    the Frobenius-style convention of CONVENTIONS.md -- tiny entries of a matrix only need
    to be accurate relative to the matrix, not to themselves.
    """
    a = np.asarray(actual, np.float64)
    e = np.asarray(exact, dtype=object).reshape(a.shape)
    sc = np.broadcast_to(np.asarray(scale, dtype=object), a.shape)
    with mpmath.workdps(DPS):
        if floor is None:
            floor = max((abs(x) for x in e.ravel()), default=mpmath.mpf(0))
        worst, where = mpmath.mpf(0), None
        for idx in np.ndindex(a.shape):
            ai = a[idx]
            if not np.isfinite(ai):
                return False, f"non-finite value {ai} at {idx}, exact {mpmath.nstr(e[idx], 17)}"
            err = abs(mpmath.mpf(float(ai)) - e[idx])
            bound = rtol * (abs(e[idx]) + sc[idx] + floor) + tiny
            ratio = err / bound if bound > 0 else (mpmath.inf if err > 0 else mpmath.mpf(0))
            if ratio > worst:
                worst, where = ratio, idx
        ok = worst <= 1
        msg = "" if ok else (f"at {where}: got {a[where]!r}, exact {mpmath.nstr(e[where], 20)}, "
                             f"error/bound = {mpmath.nstr(worst, 5)} (rtol {rtol})")
        return bool(ok), msg


#: float64: 1e-12 relative to (|exact| + sum of |terms| + matrix scale) -- ~4500 ulps, room for the
#: few roundings of log-sum-exp / exp / gammaln chains, while any convention or formula error
#: (a factor, a sign, a dropped term) is >= 1e-3 relative.
F64_RTOL = 1e-12
#: float32 kernels (computed in float32 under the ``x32`` fixture): 1e-5 -- ~170 float32 ulps
#: (eps 1.19e-7), for the same chains plus float32 ``gammaln`` and ``exp`` of arguments up to ~80.
F32_RTOL = 1e-5

QUANTITIES = ("nll", "grad", "hessian", "fisher", "fisher_sqrt")


def symbolic_target(family: str, target, C: int):
    """The symbolic target vector of one example (one-hot for Categorical)."""
    if family == "Categorical":
        return one_hot(int(target), C)
    return np.asarray(target, np.float64)


@functools.lru_cache(maxsize=None)
def _jitted_values(lik, float32: bool):
    """One jitted function per (likelihood, precision) returning every quantity (fewer compiles)."""
    if float32:
        def fn(o, t):
            return {
                "nll": jax.vmap(lik._nll)(o, t),
                "grad": jax.vmap(lik._output_grad)(o, t),
                "hessian": jax.vmap(lik._output_hessian)(o, t),
                "fisher": jax.vmap(lik._output_fisher)(o),
                "fisher_sqrt": jax.vmap(lik._output_fisher_sqrt)(o),
            }
    else:
        def fn(o, t):
            return {
                "nll": lik.nll(o, t),
                "grad": jax.vmap(lik._output_grad)(o, t),
                "hessian": lik.output_hessian(o, t),
                "fisher": lik.output_fisher(o),
                "fisher_sqrt": lik.output_fisher_sqrt(o),
            }
    return jax.jit(fn)


def implementation_values(lik, outputs, targets, *, float32: bool = False):
    """The implementation's values of :data:`QUANTITIES` for a batch, all under ``jax.jit``.

    float64: the public validated methods (``nll``, ``output_hessian``, ``output_fisher``,
    ``output_fisher_sqrt``, traced so the checks are skipped) and the ``_output_grad``
    kernel. float32: the per-example kernels on float32 inputs (call with x64 off); asserts
    the results stay float32.
    """
    categorical = type(lik).__name__ == "Categorical"
    if float32:
        o = jnp.asarray(np.asarray(outputs, np.float32))
        t = (jnp.asarray(np.asarray(targets, np.int32)) if categorical
             else jnp.asarray(np.asarray(targets, np.float32)))
        want = jnp.float32
    else:
        o = jnp.asarray(outputs, jnp.float64)
        t = jnp.asarray(targets, jnp.int64) if categorical else jnp.asarray(targets, jnp.float64)
        want = jnp.float64
    vals = _jitted_values(lik, float32)(o, t)
    for k, v in vals.items():
        assert v.dtype == want, (k, v.dtype)
    return {k: np.asarray(v) for k, v in vals.items()}


def assert_matches_source(family: str, outputs, targets, values, *, rtol: float, variance=1.0,
                          dtype=np.float64):
    """Every implementation value equals the exact symbolic one within :func:`close`.

    ``fisher_sqrt`` is checked through ``M M^T = fisher_definition()``; ``nll`` uses an
    absolute floor of ``rtol`` nats (``floor=1``); ``dtype``'s smallest normal number is the
    absolute underflow allowance.
    """
    outputs = np.asarray(outputs, np.float64)
    C = outputs.shape[1]
    for n in range(outputs.shape[0]):
        y = symbolic_target(family, np.asarray(targets)[n], C)
        for name, arr in values.items():
            actual = np.asarray(arr[n], np.float64)
            what = "fisher" if name == "fisher_sqrt" else name
            if name == "fisher_sqrt":
                actual = actual @ actual.T
            exact = evaluate(family, what, outputs[n], y, variance)
            scale = evaluate(family, what + "_scale", outputs[n], y, variance)
            if isinstance(exact, np.ndarray) and what in ("grad",):
                exact, scale = exact.ravel(), scale.ravel()
            ok, msg = close(actual, exact, rtol=rtol, scale=scale,
                            floor=1 if name == "nll" else None, tiny=float(np.finfo(dtype).tiny))
            assert ok, (f"{family} {name} differs from the SymPy source for example {n}: {msg}\n"
                        f"outputs={outputs[n].tolist()} target={np.asarray(targets)[n].tolist()} "
                        f"variance={variance}")


# ------------------------------------------------------------------ JAX lambdification (jit-able)

_JAX_MODULES = [{"gammaln": jax.scipy.special.gammaln}, "jax"]
_GAMMALN = sp.Function("gammaln")


def _for_jax(e):
    """Route ``loggamma`` to ``jax.scipy.special.gammaln`` explicitly (SYMBOLIC.md pitfall).

    For an integer target SymPy auto-evaluates ``loggamma(y + 1)`` to ``log(gamma(y + 1))``,
    which the JAX printer cannot trace (and which overflows for ``y > 170``); both forms
    become ``gammaln``.
    """
    e = e.replace(sp.loggamma, _GAMMALN)
    return e.replace(lambda x: isinstance(x, sp.log) and isinstance(x.args[0], sp.gamma),
                     lambda x: _GAMMALN(x.args[0].args[0]))


@functools.lru_cache(maxsize=None)
def jax_functions(family: str, C: int):
    """``nll(out, y, v)``, ``hessian(out, y, v)``, ``fisher(out_or_probs, v)`` and the term
    scales ``hessian_scale(out, y, v)``, ``fisher_scale(out_or_probs, v)`` as JAX functions.

    The categorical Fisher (and its scale) is the probability form: call it with
    ``softmax(out)``.
    """
    sym = source(family, C)
    fisher = symbolic_quantity(family, C, "fisher")
    fisher_scale = symbolic_quantity(family, C, "fisher_scale")
    if family == "Categorical":
        q = sp.symbols(f"q_1:{C + 1}", positive=True)
        to_q = {e: sp.log(qk) for e, qk in zip(sym.outputs, q)}
        fisher, fisher_scale = fisher.subs(to_q), fisher_scale.subs(to_q)
        fisher_args = list(q) + [VAR]
    else:
        fisher_args = list(sym.outputs) + [VAR]
    mk = lambda args, e: sp.lambdify(args, _for_jax(e), modules=_JAX_MODULES)  # noqa: E731

    def unpack(fn):
        def call(*vectors_and_v):
            *vectors, v = vectors_and_v
            flat = [x for vec in vectors for x in vec]
            return jnp.asarray(fn(*flat, v))
        return call

    return {"nll": unpack(mk(_args(sym), sym.nll)),
            "hessian": unpack(mk(_args(sym), symbolic_quantity(family, C, "hessian"))),
            "hessian_scale": unpack(mk(_args(sym), symbolic_quantity(family, C, "hessian_scale"))),
            "fisher": unpack(mk(fisher_args, fisher)),
            "fisher_scale": unpack(mk(fisher_args, fisher_scale))}


# ------------------------------------------------------------------ Hypothesis helpers

def float_matrix(draw, N: int, C: int, moderate, extremes=()):
    """An ``(N, C)`` float64 array: entries from ``moderate`` or from ``extremes``.

    Subnormal numbers are replaced by 0: XLA on CPU flushes them to zero (inputs and results),
    so a subnormal input is not the number the implementation computes with.
    """
    from hypothesis import strategies as st

    elem = st.one_of(moderate, st.sampled_from(list(extremes))) if extremes else moderate
    a = np.array([[draw(elem) for _ in range(C)] for _ in range(N)], dtype=np.float64)
    return flush_subnormal(a)


def flush_subnormal(a, dtype=np.float64):
    """``a`` cast to ``dtype`` with subnormal entries set to 0 (what XLA on CPU computes with)."""
    a = np.asarray(a, dtype)
    return np.where(np.abs(a) < np.finfo(dtype).tiny, np.zeros((), dtype), a)


@functools.lru_cache(maxsize=None)
def _jitted_lambdified(lik, family: str, C: int):
    """jit(vmap) of the lambdified source and of the kernels, for one (likelihood, C)."""
    fns = jax_functions(family, C)

    def reference(o, y, v):
        fisher_in = jax.nn.softmax(o) if family == "Categorical" else o
        return {"nll": fns["nll"](o, y, v), "hessian": fns["hessian"](o, y, v),
                "hessian_scale": fns["hessian_scale"](o, y, v),
                "fisher": fns["fisher"](fisher_in, v),
                "fisher_scale": fns["fisher_scale"](fisher_in, v)}

    def implementation(o, t):
        return {"nll": lik._nll(o, t), "hessian": lik._output_hessian(o, t),
                "fisher": lik._output_fisher(o)}

    return (jax.jit(jax.vmap(reference, in_axes=(0, 0, None))),
            jax.jit(jax.vmap(implementation)))


def assert_lambdified_agrees(lik, family: str, outputs, targets, *, variance=1.0, rtol=1e-12,
                             quantities=("nll", "hessian", "fisher")):
    """The kernels equal the ``modules="jax"`` lambdified source, both under ``jax.jit``.

    The categorical Fisher is fed ``jax.nn.softmax`` (probability form), so it can be used at
    logits of +-1000; nll / Hessian use the literal form (moderate values only). The
    lambdified forms themselves cancel (e.g. ``p - p^2`` when ``p ~ 1``), so matrices are
    compared relative to the size of their terms (``*_scale``) plus the matrix's largest
    entry, and nll with an absolute floor of ``rtol`` nats.
    """
    outputs = jnp.asarray(outputs, jnp.float64)
    C = outputs.shape[1]
    ref_fn, impl_fn = _jitted_lambdified(lik, family, C)
    t = jnp.asarray(targets)
    y_sym = (jax.nn.one_hot(t, C, dtype=jnp.float64) if family == "Categorical"
             else jnp.asarray(targets, jnp.float64))
    ref = ref_fn(outputs, y_sym, jnp.asarray(variance, jnp.float64))
    impl = impl_fn(outputs, t)
    if "nll" in quantities:
        np.testing.assert_allclose(impl["nll"], ref["nll"], rtol=rtol, atol=rtol)
    for name in set(quantities) & {"hessian", "fisher"}:
        r = ref[name]
        bound = rtol * (jnp.abs(r) + ref[name + "_scale"]
                        + jnp.max(jnp.abs(r), axis=(1, 2), keepdims=True)) + 1e-300
        bad = jnp.abs(impl[name] - r) > bound
        assert not bool(jnp.any(bad)), (
            f"{family} {name}: kernel {np.asarray(impl[name])[np.asarray(bad)]} vs lambdified "
            f"source {np.asarray(r)[np.asarray(bad)]} (rtol {rtol}); outputs {np.asarray(outputs)}")
