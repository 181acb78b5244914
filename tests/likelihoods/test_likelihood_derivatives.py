"""Derivatives of the NLL kernels at saturated logits (review defects 1 and 9).

The curvature module and K-FAC differentiate ``Likelihood._nll`` with ``jax.grad``,
``jax.hessian``, ``jvp``/``vjp``. Plain autodiff of ``softplus(eta) - y eta`` or
``logsumexp(eta) - eta_y`` forms ``sigma(eta) - 1`` and ``p_y - 1`` by subtraction (relative
error 1 at a logit of 40 in float64), and autodiff of ``jax.nn.sigmoid`` forms
``sigma (1 - sigma)`` (0 at 40, truth 4.25e-18). The kernels carry ``jax.custom_jvp`` rules with
the accurate closed forms; these tests check every differentiation path against an
independent ground truth.

Ground truth: the closed forms written directly in **mpmath at 50 digits** on the exact
float inputs -- Bernoulli ``sigma(eta) - y`` and ``sigma(eta) sigma(-eta)``, Categorical
``p - e_y`` and ``diag(p) - p p^T`` (``p`` the 50-digit softmax), Poisson ``e^eta - y`` and
``e^eta``, GaussianMeanVariance ``(-r e^{-s}, (1 - z^2)/2)`` and its Hessian -- and for the
end-to-end checks the closed-form gradient / Hessian / empirical Fisher of a linear model
``f = W x`` (Kronecker products of the output quantities with ``x x^T``).

Tolerances: every entry relative to **itself** (no matrix-scale floor; zero entries must be
exactly zero): float64 ``1e-12`` (~4500 ulps; the kernels measure <= 3e-16, the replaced
autodiff 2.9e-7 at 20, 1.3e-2 at 30, 1.0 at 40), float32 ``1e-5`` (~80 float32 ulps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
from fisherlab import Bernoulli, Categorical, GaussianMeanVariance, Poisson

DPS = 50
F64_RTOL = 1e-12
F32_RTOL = 1e-5

SATURATED = (-40.0, -30.0, -20.0, 0.0, 20.0, 30.0, 40.0)
ETAS = SATURATED + (-700.0, 700.0)      # sigma(-700) = 9.9e-305: still a normal float64
GAPS = (20.0, 30.0, 40.0, 700.0)


# --------------------------------------------------------------------------- exact references
def _mp(v):
    return mpmath.mpf(float(v))


def _sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def _dps(values):
    """50 digits *after* the cancellation of the naive closed forms: ``sigma(eta) - 1`` at
    ``eta = 700`` is ``-e^{-700}``, 304 decimal orders below 1 (2 ``|eta| / ln 10`` extra
    digits also cover products like ``p_k (1 - p_k)``)."""
    return DPS + int(2 * max(abs(float(v)) for v in values) / 2.302585) + 10


def bernoulli_exact(out, target):
    """(grad, hessian) of ``sum softplus(eta) - y eta``: ``sigma - y``, ``diag(sigma sigma(-.))``."""
    with mpmath.workdps(_dps(out)):
        eta = [_mp(v) for v in out]
        y = [_mp(v) for v in target]
        g = np.array([_sigmoid(e) - t for e, t in zip(eta, y)], dtype=object)
        H = np.full((len(eta), len(eta)), mpmath.mpf(0), dtype=object)
        for k, e in enumerate(eta):
            H[k, k] = _sigmoid(e) * _sigmoid(-e)
        nll = sum(mpmath.log(1 + mpmath.exp(e)) - t * e for e, t in zip(eta, y))
    return nll, g, H


def categorical_exact(out, target):
    """(nll, grad, hessian) of ``logsumexp(eta) - eta_y``: ``p - e_y``, ``diag(p) - p p^T``."""
    with mpmath.workdps(_dps(out)):
        eta = [_mp(v) for v in out]
        Z = sum(mpmath.exp(e) for e in eta)
        p = [mpmath.exp(e) / Z for e in eta]
        C = len(p)
        g = np.array([p[k] - (1 if k == int(target) else 0) for k in range(C)], dtype=object)
        H = np.array([[(p[i] if i == j else 0) - p[i] * p[j] for j in range(C)]
                      for i in range(C)], dtype=object)
        nll = mpmath.log(Z) - eta[int(target)]
    return nll, g, H


def poisson_exact(out, target):
    with mpmath.workdps(DPS):
        eta = [_mp(v) for v in out]
        y = [_mp(v) for v in target]
        g = np.array([mpmath.exp(e) - t for e, t in zip(eta, y)], dtype=object)
        H = np.full((len(eta), len(eta)), mpmath.mpf(0), dtype=object)
        for k, e in enumerate(eta):
            H[k, k] = mpmath.exp(e)
    return None, g, H


def gmv_exact(out, target):
    """Gradient and Hessian of ``sum (y - mu)^2 e^{-s} / 2 + s / 2`` in ``[mu | s]``."""
    with mpmath.workdps(DPS):
        D = len(target)
        mu = [_mp(v) for v in out[:D]]
        s = [_mp(v) for v in out[D:]]
        r = [_mp(t) - m for t, m in zip(target, mu)]
        g = np.array([-r[d] * mpmath.exp(-s[d]) for d in range(D)]
                     + [(1 - r[d] ** 2 * mpmath.exp(-s[d])) / 2 for d in range(D)], dtype=object)
        H = np.full((2 * D, 2 * D), mpmath.mpf(0), dtype=object)
        for d in range(D):
            H[d, d] = mpmath.exp(-s[d])
            H[d, D + d] = H[D + d, d] = r[d] * mpmath.exp(-s[d])
            H[D + d, D + d] = r[d] ** 2 * mpmath.exp(-s[d]) / 2
    return None, g, H


def assert_entrywise(actual, exact, rtol, what=""):
    """``|actual - exact| <= rtol |exact|`` in every entry (exact zeros must come out as 0)."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(exact, dtype=object).reshape(a.shape)
    with mpmath.workdps(DPS):
        for idx in np.ndindex(a.shape):
            assert np.isfinite(a[idx]), (what, idx, a[idx])
            err = abs(mpmath.mpf(float(a[idx])) - e[idx])
            assert err <= rtol * abs(e[idx]), (
                f"{what} at {idx}: got {a[idx]!r}, exact {mpmath.nstr(e[idx], 20)}, "
                f"relative error {mpmath.nstr(err / abs(e[idx]) if e[idx] else err, 3)}")


# --------------------------------------------------------------------------- differentiation paths
def _hvp_columns(nll):
    """Forward-over-reverse: the Hessian's columns as ``jvp`` of ``grad`` at ``e_i``."""
    def hess(o, t):
        eye = jnp.eye(o.shape[-1], dtype=o.dtype)
        return jax.vmap(lambda v: jax.jvp(lambda u: jax.grad(nll)(u, t), (o,), (v,))[1])(eye).T
    return hess


def _vjp_grad(nll):
    def grad(o, t):
        return jax.vjp(lambda u: nll(u, t), o)[1](jnp.ones((), o.dtype))[0]
    return grad


GRAD_PATHS = {
    "grad": jax.grad,
    "jacfwd": jax.jacfwd,
    "jacrev": jax.jacrev,
    "vjp": _vjp_grad,
    "_output_grad": None,           # the closed-form kernel
}
HESSIAN_PATHS = {
    "hessian": jax.hessian,
    "jacfwd(grad)": lambda nll: jax.jacfwd(jax.grad(nll)),
    "jacrev(grad)": lambda nll: jax.jacrev(jax.grad(nll)),
    "jacfwd(jacfwd)": lambda nll: jax.jacfwd(jax.jacfwd(nll)),
    "jacrev(jacrev)": lambda nll: jax.jacrev(jax.jacrev(nll)),
    "jvp(grad) columns": _hvp_columns,
    "_output_hessian": None,        # the closed-form kernel
}


def _path(lik, kind, name):
    table = GRAD_PATHS if kind == "grad" else HESSIAN_PATHS
    t = table[name]
    if t is None:
        return lik._output_grad if kind == "grad" else lik._output_hessian
    return t(lik._nll)


def bernoulli_cases(etas):
    out = np.array(etas, np.float64)
    C = out.size
    targets = [np.zeros(C), np.ones(C), (np.arange(C) % 2).astype(np.float64)]
    return [(out, t) for t in targets]


def categorical_cases(gaps, C):
    cases = []
    for g in gaps:
        if C == 2:
            cases += [(np.array([g, 0.0]), y) for y in (0, 1)]
            cases += [(np.array([0.0, -g]), y) for y in (0, 1)]
        else:  # C = 3: a dominant class, a near one and a far one
            cases += [(np.array([g, 0.0, -3.0]), y) for y in (0, 1, 2)]
            cases += [(np.array([-3.0, 0.0, g]), y) for y in (0, 2)]
    return cases


CATEGORICAL_CASES = {2: categorical_cases(GAPS, 2), 3: categorical_cases(GAPS[:3], 3)}
EXACT = {"Bernoulli": bernoulli_exact, "Categorical": categorical_exact}


def _batches(family):
    """(likelihood, outputs (N, C), targets, exact list) batches with one C each."""
    if family == "Bernoulli":
        cases = bernoulli_cases(ETAS)
        groups = [cases]
        lik = Bernoulli()
    else:
        groups = list(CATEGORICAL_CASES.values())
        lik = Categorical()
    out = []
    for cases in groups:
        outs = np.stack([c[0] for c in cases])
        tg = (np.array([c[1] for c in cases], np.int64) if family == "Categorical"
              else np.stack([c[1] for c in cases]))
        out.append((lik, outs, tg, [EXACT[family](*c) for c in cases]))
    return out


# --------------------------------------------------------------------------- float64
@pytest.mark.parametrize("family", ["Bernoulli", "Categorical"])
@pytest.mark.parametrize("kind, name", [("grad", n) for n in GRAD_PATHS]
                         + [("hessian", n) for n in HESSIAN_PATHS])
def test_derivatives_at_saturated_logits_float64(family, kind, name):
    for lik, outs, targets, exact in _batches(family):
        fn = _path(lik, kind, name)
        o = jnp.asarray(outs, jnp.float64)
        t = jnp.asarray(targets)
        batched = jax.jit(jax.vmap(fn))(o, t)                    # jit(vmap(.))
        single = [jax.jit(fn)(o[n], t[n]) for n in range(o.shape[0])]  # jit, per example
        for n, ex in enumerate(exact):
            want = ex[1] if kind == "grad" else ex[2]
            for got in (batched[n], single[n]):
                assert got.dtype == jnp.float64
                assert_entrywise(got, want, F64_RTOL, f"{family} {name} at {outs[n]} y={targets[n]}")


@pytest.mark.parametrize("family", ["Bernoulli", "Categorical"])
def test_nll_value_at_saturated_logits_float64(family):
    # a confident correct prediction costs e^{-40}, not 0 (log(1 + e^{-40}) rounded)
    batches = _batches(family)
    if family == "Bernoulli":  # one logit per example: a sum over C would hide a tiny term
        pairs = [(e, y) for e in ETAS for y in (0.0, 1.0)]
        outs, targets = np.array([[e] for e, _ in pairs]), np.array([[y] for _, y in pairs])
        batches = [(Bernoulli(), outs, targets,
                    [bernoulli_exact(o, t) for o, t in zip(outs, targets)])]
    for lik, outs, targets, exact in batches:
        got = jax.jit(jax.vmap(lik._nll))(jnp.asarray(outs), jnp.asarray(targets))
        for n, ex in enumerate(exact):
            assert_entrywise(got[n], ex[0], F64_RTOL, f"{family} nll at {outs[n]} y={targets[n]}")


def test_categorical_tied_top_classes():
    # ties at the maximum: no dominant class, the nll counts both top classes
    lik = Categorical()
    for out, y in [(np.array([40.0, 40.0, 0.0]), 0), (np.array([40.0, 40.0, 0.0]), 2),
                   (np.array([0.0, 0.0, 0.0]), 1), (np.array([-5.0, 35.0, 35.0]), 0)]:
        nll, g, H = categorical_exact(out, y)
        o, t = jnp.asarray(out), jnp.asarray(y)
        assert_entrywise(jax.jit(lik._nll)(o, t), nll, F64_RTOL, f"nll {out} {y}")
        assert_entrywise(jax.jit(jax.grad(lik._nll))(o, t), g, F64_RTOL, f"grad {out} {y}")
        assert_entrywise(jax.jit(jax.hessian(lik._nll))(o, t), H, F64_RTOL, f"hess {out} {y}")


@st.composite
def _random_case(draw):
    family = draw(st.sampled_from(["Bernoulli", "Categorical"]))
    C = draw(st.integers(1 if family == "Bernoulli" else 2, 4))
    out = np.array(draw(st.lists(st.floats(-50.0, 50.0), min_size=C, max_size=C)))
    if family == "Bernoulli":
        y = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=C, max_size=C)))
    else:
        y = draw(st.integers(0, C - 1))
    return family, out, y


_JIT_GRAD_HESS = {f: jax.jit(lambda o, t, lik=lik: (jax.grad(lik._nll)(o, t),
                                                     jax.hessian(lik._nll)(o, t)))
                  for f, lik in [("Bernoulli", Bernoulli()), ("Categorical", Categorical())]}


@given(_random_case())
def test_grad_and_hessian_are_entrywise_accurate_for_random_logits(case):
    # logits in [-50, 50], C <= 4: every entry of p - e_y / diag(p) - p p^T is a normal float
    family, out, y = case
    _, g, H = EXACT[family](out, y)
    got_g, got_H = _JIT_GRAD_HESS[family](jnp.asarray(out), jnp.asarray(y))
    assert_entrywise(got_g, g, F64_RTOL, f"{family} grad {out} {y}")
    assert_entrywise(got_H, H, F64_RTOL, f"{family} hessian {out} {y}")


# --------------------------------------------------------------------------- float32
@pytest.mark.parametrize("family", ["Bernoulli", "Categorical"])
@pytest.mark.parametrize("name", ["grad", "hessian", "jacfwd(grad)", "jvp(grad) columns"])
def test_derivatives_at_saturated_logits_float32(x32, family, name):
    kind = "grad" if name == "grad" else "hessian"
    if family == "Bernoulli":
        lik, cases = Bernoulli(), bernoulli_cases(SATURATED)
    else:
        lik, cases = Categorical(), categorical_cases(GAPS[:3], 2) + categorical_cases(GAPS[:3], 3)
    fn = jax.jit(_path(lik, kind, name))
    for out, y in cases:
        o = jnp.asarray(out.astype(np.float32))
        t = jnp.asarray(np.int32(y)) if family == "Categorical" else jnp.asarray(y.astype(np.float32))
        got = fn(o, t)
        assert got.dtype == jnp.float32
        ex = EXACT[family](out, y)
        assert_entrywise(got, ex[1] if kind == "grad" else ex[2], F32_RTOL,
                         f"float32 {family} {name} at {out} y={y}")


# --------------------------------------------------------------------------- targets
def test_bernoulli_derivatives_in_the_target():
    # nll = softplus(eta) - y eta: d/dy = -eta, d^2/(d eta d y) = -I, d^2/dy^2 = 0
    lik = Bernoulli()
    out = jnp.asarray(np.array(SATURATED))
    y = jnp.asarray((np.arange(len(SATURATED)) % 2).astype(np.float64))
    np.testing.assert_array_equal(jax.jit(jax.grad(lik._nll, argnums=1))(out, y), -out)
    eye = np.eye(len(SATURATED))
    mixed = jax.jit(jax.jacfwd(jax.grad(lik._nll, argnums=0), argnums=1))(out, y)
    np.testing.assert_array_equal(mixed, -eye)
    mixed_rev = jax.jit(jax.jacrev(jax.grad(lik._nll, argnums=1), argnums=0))(out, y)
    np.testing.assert_array_equal(mixed_rev, -eye)
    np.testing.assert_array_equal(jax.hessian(lik._nll, argnums=1)(out, y), 0 * eye)
    np.testing.assert_array_equal(jax.jacfwd(lik._output_grad, argnums=1)(out, y), -eye)


def test_categorical_integer_targets_under_vmap_and_jit():
    # the integer target has a float0 tangent: differentiating in the logits only must work
    lik = Categorical()
    o = jnp.asarray(np.array([[40.0, 0.0, -3.0]] * 3))
    t = jnp.asarray(np.array([0, 1, 2], np.int32))
    H = jax.jit(jax.vmap(jax.hessian(lik._nll)))(o, t)
    for n in range(3):
        assert_entrywise(H[n], categorical_exact(np.asarray(o[n]), int(t[n]))[2], F64_RTOL)


# --------------------------------------------------------------------------- Poisson, GMV: autodiff
@pytest.mark.parametrize("lik, out, y, exact", [
    (Poisson(), np.array([-40.0, -20.0, 0.0, 20.0, 40.0]), np.array([0.0, 3.0, 3.0, 0.0, 7.0]),
     poisson_exact),
    (GaussianMeanVariance(), np.array([1.0, 1.0, 1.0, 1.0, -40.0, 0.0, 20.0, 40.0]),
     np.array([1.5, 4.0, 1.5, -2.0]), gmv_exact),
], ids=["Poisson", "GaussianMeanVariance"])
def test_autodiff_is_accurate_for_the_other_families(lik, out, y, exact):
    # no cancellation beyond the intrinsic one (e^eta = y, z^2 = 1 avoided here), so plain
    # autodiff of _nll matches the closed forms; the kernels agree with it
    _, g, H = exact(out, y)
    o, t = jnp.asarray(out), jnp.asarray(y)
    for got in (jax.jit(jax.grad(lik._nll))(o, t), jax.jit(lik._output_grad)(o, t)):
        assert_entrywise(got, g, F64_RTOL, f"{type(lik).__name__} grad")
    for got in (jax.jit(jax.hessian(lik._nll))(o, t), jax.jit(_hvp_columns(lik._nll))(o, t),
                jax.jit(lik._output_hessian)(o, t)):
        assert_entrywise(got, H, F64_RTOL, f"{type(lik).__name__} hessian")


# --------------------------------------------------------------------------- end to end
def _linear(p, x):
    return p["W"] @ x


X = np.array([[1.0, 0.5], [0.5, 1.0]])   # with W = [[a, b], ...] the logits are exact floats


def _end_to_end_exact(exact_fn, W, y):
    """Closed forms of the mean-reduced loss of f = W x: per-example g_n = r_n (x) x_n,
    H = mean kron(Lambda_n, x_n x_n^T), EF = mean g_n g_n^T (row-major ravel of W)."""
    N = X.shape[0]
    with mpmath.workdps(DPS):
        gs, Hs = [], []
        for n in range(N):
            eta = [sum(_mp(W[c, d]) * _mp(X[n, d]) for d in range(X.shape[1]))
                   for c in range(W.shape[0])]
            _, r, lam = exact_fn(eta, y[n])
            xn = np.array([_mp(v) for v in X[n]], dtype=object)
            gs.append(np.array([r[c] * xn[d] for c in range(len(r)) for d in range(len(xn))],
                               dtype=object))
            Hs.append(np.array([[lam[c, e] * xn[d] * xn[k] for e in range(len(r))
                                 for k in range(len(xn))]
                                for c in range(len(r)) for d in range(len(xn))], dtype=object))
        g = sum(gs) / N
        H = sum(Hs) / N
        EF = sum(np.outer(gn, gn) for gn in gs) / N
    return g, H, EF


@pytest.mark.parametrize("family, W, y", [
    ("Bernoulli", np.array([[40.0, 20.0]]), np.array([[1.0], [1.0]])),     # logits 50, 40
    ("Bernoulli", np.array([[-30.0, -20.0]]), np.array([[0.0], [0.0]])),   # logits -40, -35
    ("Bernoulli", np.array([[20.0, 10.0]]), np.array([[1.0], [1.0]])),     # logits 25, 20
    ("Categorical", np.array([[40.0, 20.0], [0.0, 0.0]]), np.array([0, 0])),   # gaps 50, 40
    ("Categorical", np.array([[0.0, 0.0], [20.0, 20.0]]), np.array([1, 1])),   # gaps 30, 30
], ids=["bern-50-40", "bern-neg", "bern-25-20", "cat-50-40", "cat-30"])
def test_public_curvature_at_saturated_logits(family, W, y):
    # logits are exact (entries of X are 1 and 1/2); W's dyadic values keep them exact
    lik = Bernoulli() if family == "Bernoulli" else Categorical()
    exact_fn = bernoulli_exact if family == "Bernoulli" else categorical_exact
    g, H, EF = _end_to_end_exact(exact_fn, W, y)
    params = {"W": W}
    assert_entrywise(fl.gradient(_linear, params, X, y, lik), g, F64_RTOL, "gradient")
    assert_entrywise(fl.hessian(_linear, params, X, y, lik), H, F64_RTOL, "hessian")
    assert_entrywise(fl.ggn(_linear, params, X, y, lik), H, F64_RTOL, "ggn")
    assert_entrywise(fl.empirical_fisher(_linear, params, X, y, lik), EF, F64_RTOL, "EF")
    # H v with v = e_i: the columns of H (forward-over-reverse through the custom rules)
    hv = fl.hvp(_linear, params, X, y, lik)
    cols = np.stack([np.asarray(hv(jnp.asarray(e))) for e in np.eye(W.size)], axis=1)
    assert_entrywise(cols, H, F64_RTOL, "hvp")


# --------------------------------------------------------------------------- defect 9
def test_categorical_under_callers_jit_with_x64_off(x32):
    # jnp.argmax failed here ("reduce operand dtypes should match"): no argmax any more
    assert not jax.config.jax_enable_x64
    lik = Categorical()
    X3 = np.array([[1.0, 0.5, -1.0], [0.5, 1.0, 2.0]])
    params = {"W": np.array([[40.0, 0.0, 0.0], [0.0, 0.0, 0.0]])}
    f = lambda p, x: p["W"] @ x  # noqa: E731
    y = np.array([0, 1])
    F = jax.jit(lambda p: fl.fisher(f, p, X3, lik))(params)
    G = jax.jit(lambda p: fl.ggn(f, p, X3, y, lik))(params)
    H = jax.jit(lambda p: fl.hessian(f, p, X3, y, lik))(params)
    assert F.dtype == G.dtype == H.dtype == jnp.float64
    # closed form: mean_n kron(diag(p_n) - p_n p_n^T, x_n x_n^T) (row-major ravel of W)
    with mpmath.workdps(DPS):
        want = 0
        for n in range(2):
            eta = [sum(_mp(params["W"][c, d]) * _mp(X3[n, d]) for d in range(3)) for c in range(2)]
            lam = categorical_exact(eta, 0)[2]
            xx = np.outer(np.array([_mp(v) for v in X3[n]], dtype=object),
                          np.array([_mp(v) for v in X3[n]], dtype=object))
            want = want + np.kron(lam, xx) / 2
    for got, what in ((F, "fisher"), (G, "ggn"), (H, "hessian")):
        # entries of x x^T are exact zeros nowhere; kron entries are products, no cancellation
        assert_entrywise(got, want, F64_RTOL, what)
    # the kernel itself, traced with x64 off (float32)
    o = jnp.asarray(np.array([[40.0, 0.0], [0.0, 1.0]], np.float32))
    assert jax.jit(jax.vmap(lik._output_fisher))(o).dtype == jnp.float32
    assert jax.jit(jax.vmap(jax.hessian(lik._nll)))(o, jnp.asarray(np.array([0, 1], np.int32))
                                                    ).dtype == jnp.float32
