"""Bad input: every case raises ValueError/TypeError naming the argument, what was received
and what was expected -- never a silent NaN or a wrong number. And valid input is not
rejected under tracing (the checks run only on concrete arrays)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fisherlab import Bernoulli, Categorical, Gaussian, GaussianMeanVariance, Poisson

OUT = np.array([[0.1, -0.2, 0.3], [1.0, 2.0, -1.0]])          # (N, C) = (2, 3)
OUT4 = np.array([[0.1, -0.2, 0.3, 0.0], [1.0, 2.0, -1.0, 0.5]])  # (2, 4): GMV with D = 2
Y_FLOAT = np.array([[0.5, 1.0, -2.0], [0.0, 1.0, 3.0]])
Y_BIN = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
Y_COUNT = np.array([[0.0, 1.0, 4.0], [2.0, 0.0, 7.0]])
Y_CLASS = np.array([0, 2])
Y_GMV = np.array([[0.5, 1.0], [0.0, -1.0]])
NAN_OUT = OUT.copy()
NAN_OUT[1, 2] = np.nan
INF_OUT = OUT.copy()
INF_OUT[0, 1] = -np.inf


def _with(a, idx, value):
    a = np.array(a, dtype=np.float64)
    a[idx] = value
    return a


ALL = [Categorical(), Gaussian(), Bernoulli(), Poisson()]

# (id, callable, exception, regex the message must match)
CASES = [
    # ---- outputs, every family
    *[(f"{type(l).__name__}-outputs-1d", lambda l=l: l.output_fisher(OUT[0]), ValueError,
       r"outputs must have 2 dimensions, got shape \(3,\)") for l in ALL],
    *[(f"{type(l).__name__}-outputs-3d", lambda l=l: l.output_fisher(OUT[None]), ValueError,
       r"outputs must have 2 dimensions, got shape \(1, 2, 3\)") for l in ALL],
    *[(f"{type(l).__name__}-outputs-empty", lambda l=l: l.output_fisher(np.zeros((0, 3))),
       ValueError, r"outputs must have shape \(N, C\) with N, C >= 1, got \(0, 3\)") for l in ALL],
    *[(f"{type(l).__name__}-outputs-nan", lambda l=l: l.output_fisher(NAN_OUT), ValueError,
       r"outputs must be finite, got nan at index \(1, 2\)") for l in ALL],
    *[(f"{type(l).__name__}-outputs-inf", lambda l=l: l.output_fisher(INF_OUT), ValueError,
       r"outputs must be finite, got -inf at index \(0, 1\)") for l in ALL],
    *[(f"{type(l).__name__}-outputs-str", lambda l=l: l.output_fisher(np.array([["a", "b"]])),
       TypeError, r"outputs must be a numeric array, got dtype <U1") for l in ALL],
    *[(f"{type(l).__name__}-outputs-complex", lambda l=l: l.output_fisher(OUT + 1j), TypeError,
       r"outputs must be real, got dtype complex128") for l in ALL],
    *[(f"{type(l).__name__}-outputs-bool", lambda l=l: l.output_fisher(OUT > 0), TypeError,
       r"outputs must be a float array, got dtype bool") for l in ALL],
    ("Categorical-one-output", lambda: Categorical().nll(np.zeros((2, 1)), Y_CLASS * 0),
     ValueError, r"outputs for Categorical must have at least 2 outputs .*got shape \(2, 1\)"),
    ("GMV-odd-outputs", lambda: GaussianMeanVariance().output_fisher(OUT), ValueError,
     r"outputs for GaussianMeanVariance must have an even number of outputs C = 2 D .*"
     r"got shape \(2, 3\) with C = 3"),
    ("GMV-nan-outputs", lambda: GaussianMeanVariance().nll(_with(OUT4, (0, 3), np.nan), Y_GMV),
     ValueError, r"outputs must be finite, got nan at index \(0, 3\)"),
    # ---- Categorical targets
    ("Categorical-float-labels", lambda: Categorical().nll(OUT, np.array([0.0, 2.0])),
     TypeError, r"targets for Categorical must have an integer dtype \(class indices in "
                r"\[0, 3\)\), got dtype float64"),
    ("Categorical-fractional-labels", lambda: Categorical().nll(OUT, np.array([0.5, 2.0])),
     TypeError, r"targets for Categorical must have an integer dtype.*got dtype float64"),
    ("Categorical-bool-labels", lambda: Categorical().nll(OUT, np.array([True, False])),
     TypeError, r"targets for Categorical must have an integer dtype.*got dtype bool"),
    ("Categorical-label-too-large", lambda: Categorical().nll(OUT, np.array([0, 3])),
     ValueError, r"targets for Categorical must be class indices in \[0, 3\) \(C = 3 outputs\), "
                 r"got 3 at index \(1,\)"),
    ("Categorical-negative-label", lambda: Categorical().output_hessian(OUT, np.array([-1, 0])),
     ValueError, r"class indices in \[0, 3\).*got -1 at index \(0,\)"),
    ("Categorical-one-hot", lambda: Categorical().nll(OUT, np.eye(3)[[0, 2]]), ValueError,
     r"targets for Categorical must be integer class indices of shape \(N,\) = \(2,\), got "
     r"shape \(2, 3\) \(one-hot targets\? use targets.argmax\(-1\)\)"),
    ("Categorical-batch-mismatch", lambda: Categorical().nll(OUT, np.array([0, 1, 2])),
     ValueError, r"shape \(N,\) = \(2,\) to match outputs of shape \(2, 3\), got shape \(3,\)"),
    ("Categorical-column-labels", lambda: Categorical().nll(OUT, np.array([[0], [1]])),
     ValueError, r"shape \(N,\) = \(2,\) .*got shape \(2, 1\)"),
    ("Categorical-labels-str", lambda: Categorical().nll(OUT, np.array(["a", "b"])),
     TypeError, r"targets for Categorical must have an integer dtype.*got dtype <U1"),
    # ---- float targets: shape, finiteness
    *[(f"{type(l).__name__}-targets-columns", lambda l=l: l.nll(OUT, Y_FLOAT[:, :2]), ValueError,
       rf"targets for {type(l).__name__} must have shape \(N, D\) = \(2, 3\) to match outputs "
       r"of shape \(2, 3\), got shape \(2, 2\)") for l in ALL[1:]],
    *[(f"{type(l).__name__}-targets-batch", lambda l=l: l.output_hessian(OUT, Y_BIN[:1]),
       ValueError, r"must have shape \(N, D\) = \(2, 3\) .*got shape \(1, 3\)") for l in ALL[1:]],
    *[(f"{type(l).__name__}-targets-1d", lambda l=l: l.nll(OUT, Y_BIN[0]), ValueError,
       r"must have shape \(N, D\) = \(2, 3\) .*got shape \(3,\)") for l in ALL[1:]],
    *[(f"{type(l).__name__}-targets-nan", lambda l=l: l.nll(OUT, _with(Y_COUNT, (1, 1), np.nan)),
       ValueError, r"targets must be finite, got nan at index \(1, 1\)") for l in ALL[1:]],
    *[(f"{type(l).__name__}-targets-inf", lambda l=l: l.nll(OUT, _with(Y_COUNT, (0, 2), np.inf)),
       ValueError, r"targets must be finite, got inf at index \(0, 2\)") for l in ALL[1:]],
    ("GMV-targets-C-not-D", lambda: GaussianMeanVariance().nll(OUT4, OUT4), ValueError,
     r"targets for GaussianMeanVariance must have shape \(N, D\) = \(2, 2\) to match outputs of "
     r"shape \(2, 4\), got shape \(2, 4\)"),
    ("GMV-targets-inf", lambda: GaussianMeanVariance().output_hessian(
        OUT4, _with(Y_GMV, (1, 0), -np.inf)), ValueError,
     r"targets must be finite, got -inf at index \(1, 0\)"),
    # ---- Bernoulli: 0/1 only
    ("Bernoulli-half", lambda: Bernoulli().nll(OUT, _with(Y_BIN, (0, 1), 0.5)), ValueError,
     r"targets for Bernoulli must be 0 or 1 in every entry, got 0.5 at index \(0, 1\)"),
    ("Bernoulli-two", lambda: Bernoulli().nll(OUT, _with(Y_BIN, (1, 2), 2.0)), ValueError,
     r"must be 0 or 1 in every entry, got 2.0 at index \(1, 2\)"),
    ("Bernoulli-minus-one", lambda: Bernoulli().output_hessian(OUT, _with(Y_BIN, (0, 0), -1.0)),
     ValueError, r"must be 0 or 1 in every entry, got -1.0 at index \(0, 0\)"),
    # ---- Poisson: non-negative integers
    ("Poisson-negative", lambda: Poisson().nll(OUT, _with(Y_COUNT, (1, 0), -1.0)), ValueError,
     r"targets for Poisson must be non-negative integer counts, got -1.0 at index \(1, 0\)"),
    ("Poisson-fractional", lambda: Poisson().nll(OUT, _with(Y_COUNT, (0, 1), 1.5)), ValueError,
     r"targets for Poisson must be integer counts \(stored as float\), got 1.5 at index \(0, 1\)"),
    ("Poisson-tiny-fraction", lambda: Poisson().output_hessian(OUT, _with(Y_COUNT, (0, 0), 1e-9)),
     ValueError, r"must be integer counts .*got 1e-09 at index \(0, 0\)"),
    # ---- Gaussian variance
    ("variance-zero", lambda: Gaussian(variance=0.0), ValueError,
     r"variance must be a finite number > 0, got 0.0"),
    ("variance-negative", lambda: Gaussian(variance=-1), ValueError,
     r"variance must be a finite number > 0, got -1"),
    ("variance-nan", lambda: Gaussian(variance=float("nan")), ValueError,
     r"variance must be a finite number > 0, got nan"),
    ("variance-inf", lambda: Gaussian(variance=np.inf), ValueError,
     r"variance must be a finite number > 0, got inf"),
    ("variance-array", lambda: Gaussian(variance=np.array([1.0, 2.0])), TypeError,
     r"variance must be a real number > 0, got ndarray \(2,\)"),
    ("variance-str", lambda: Gaussian(variance="1"), TypeError,
     r"variance must be a real number > 0, got str"),
    ("variance-bool", lambda: Gaussian(variance=True), TypeError,
     r"variance must be a real number > 0, got True"),
    ("variance-none", lambda: Gaussian(variance=None), TypeError,
     r"variance must be a real number > 0, got NoneType"),
    ("variance-0d-nan-array", lambda: Gaussian(variance=np.array(np.nan)), ValueError,
     r"variance must be a finite number > 0, got nan"),
    # ---- sample arguments
    ("sample-zero", lambda: Gaussian().sample(jax.random.key(0), OUT, 0), ValueError,
     r"num_samples must be >= 1, got 0"),
    ("sample-float", lambda: Bernoulli().sample(jax.random.key(0), OUT, 1.5), TypeError,
     r"num_samples must be an int, got 1.5"),
    ("sample-no-key", lambda: Categorical().sample(None, OUT, 2), ValueError,
     r"key is required for a Monte-Carlo estimate"),
    ("sample-int-key", lambda: Poisson().sample(0, OUT, 2), TypeError,
     r"key must be a jax.random key, got int"),
    ("sample-nan-outputs", lambda: Poisson().sample(jax.random.key(0), NAN_OUT, 2), ValueError,
     r"outputs must be finite, got nan at index \(1, 2\)"),
    ("sample-poisson-rate-too-large", lambda: Poisson().sample(
        jax.random.key(0), _with(OUT, (1, 1), 9.3), 2), ValueError,
     r"outputs for Poisson.sample must be log-rates <= log\(10000\) = 9.2103 "
     r"\(jax.random.poisson is inexact for larger rates\), got 9.3 at index \(1, 1\)"),
    # ---- symbolic sizes
    ("symbolic-categorical-1", lambda: Categorical().symbolic(1), ValueError,
     r"num_classes must be an int >= 2, got 1"),
    ("symbolic-gaussian-0", lambda: Gaussian().symbolic(0), ValueError,
     r"num_outputs must be an int >= 1, got 0"),
    ("symbolic-poisson-bool", lambda: Poisson().symbolic(True), ValueError,
     r"num_outputs must be an int >= 1, got True"),
    ("symbolic-bernoulli-float", lambda: Bernoulli().symbolic(2.0), ValueError,
     r"num_outputs must be an int >= 1, got 2.0"),
    ("symbolic-gmv-odd", lambda: GaussianMeanVariance().symbolic(3), ValueError,
     r"num_outputs for GaussianMeanVariance must be an even int C = 2 D >= 2 .*got 3"),
    ("output-fisher-sqrt-odd", lambda: GaussianMeanVariance().output_fisher_sqrt(OUT), ValueError,
     r"must have an even number of outputs"),
]


@pytest.mark.parametrize("call, exc, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_with_a_clear_message(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


VALID = [
    (Categorical(), OUT, Y_CLASS),
    (Gaussian(2.0), OUT, Y_FLOAT),
    (Bernoulli(), OUT, Y_BIN),
    (Poisson(), OUT, Y_COUNT),
    (GaussianMeanVariance(), OUT4, Y_GMV),
]


@pytest.mark.parametrize("lik, outputs, targets", VALID, ids=lambda v: repr(v)[:20])
def test_checks_do_not_run_on_traced_values(lik, outputs, targets):
    # jit, grad and vmap through the public (validating) methods and the kernels
    nll = jax.jit(lik.nll)(outputs, targets)
    np.testing.assert_allclose(nll, lik.nll(outputs, targets), rtol=1e-14)
    g = jax.grad(lambda o: jnp.sum(lik.nll(o, targets)))(jnp.asarray(outputs))
    g_kernel = jax.vmap(lik._output_grad)(jnp.asarray(outputs), jnp.asarray(targets))
    np.testing.assert_allclose(g, g_kernel, rtol=1e-13, atol=1e-15)
    per_example = jax.vmap(lambda o, t: lik.nll(o[None], t[None])[0])(
        jnp.asarray(outputs), jnp.asarray(targets))
    np.testing.assert_allclose(per_example, nll, rtol=1e-14)


@pytest.mark.parametrize("lik, outputs, targets", VALID, ids=lambda v: repr(v)[:20])
def test_valid_input_types_are_accepted(lik, outputs, targets):
    # nested lists, float32 / int32 arrays, JAX arrays
    ref = lik.nll(outputs, targets)
    for o, t in [(outputs.tolist(), targets.tolist()),
                 (jnp.asarray(outputs), jnp.asarray(targets)),
                 (outputs.astype(np.float32), targets.astype(
                     np.int32 if targets.dtype.kind == "i" else np.float32))]:
        got = lik.nll(o, t)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_traced_poisson_sampling_beyond_the_supported_rate_gives_nan_not_a_wrong_draw():
    out = _with(OUT, (1, 1), 20.0)
    draws = jax.jit(Poisson().sample, static_argnums=2)(jax.random.key(0), out, 3)
    assert np.all(np.isnan(draws[:, 1, 1]))
    assert np.all(np.isfinite(np.delete(np.asarray(draws).reshape(3, -1), 4, axis=1)))
