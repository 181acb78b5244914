"""ema.factor_estimates: the derivation verifies in chain form; its numeric counterpart
``fl.kfac.ema`` iterated from zero matches the unrolled closed form sum_j (1 - eta) eta^(k-j) A_j
(NumPy), the weights of a constant factor sum to 1 - eta^k so the bias-corrected estimate is
unbiased, and the running Kronecker product is not the product of the running factors."""

import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fisherlab as fl
from _kfac_proof_helpers import check_metadata, report


def test_metadata_and_verification():
    check_metadata("ema.factor_estimates", "B", ("k ≤ 8", "general k"))
    r, seconds = report("ema.factor_estimates")
    r.raise_if_failed()
    assert seconds < 30


def _run(factors, decay):
    """fl.kfac.ema applied step by step from zero factors."""
    zero = fl.kfac.KFACFactors(jnp.zeros_like(factors[0][0]), jnp.zeros_like(factors[0][1]))
    est = [zero]
    for A, G in factors:
        est = fl.kfac.ema(est, [fl.kfac.KFACFactors(A, G)], decay)
    return est[0]


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 12), decay=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_ema_weights_and_bias_correction_numerically(k, decay, seed):
    rng = np.random.default_rng(seed)
    As = [rng.normal(size=(3, 3)) for _ in range(k)]
    Gs = [rng.normal(size=(2, 2)) for _ in range(k)]
    out = _run([(jnp.asarray(a), jnp.asarray(g)) for a, g in zip(As, Gs)], decay)
    w = [(1 - decay) * decay ** (k - j) for j in range(1, k + 1)]
    np.testing.assert_allclose(out.A, sum(wj * a for wj, a in zip(w, As)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.G, sum(wj * g for wj, g in zip(w, Gs)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sum(w), 1 - decay ** k, rtol=1e-12)
    # a stationary (here: constant) factor: the bias-corrected estimate is the factor itself
    const = _run([(jnp.asarray(As[0]), jnp.asarray(Gs[0]))] * k, decay)
    np.testing.assert_allclose(const.A / (1 - decay ** k), As[0], rtol=1e-10, atol=1e-12)


def test_running_kronecker_product_is_not_the_product_of_running_factors():
    rng = np.random.default_rng(0)
    decay = 0.5
    (A1, A2), (G1, G2) = rng.normal(size=(2, 2, 2)), rng.normal(size=(2, 3, 3))
    out = _run([(jnp.asarray(A1), jnp.asarray(G1)), (jnp.asarray(A2), jnp.asarray(G2))], decay)
    ema_of_kron = decay * (1 - decay) * np.kron(A1, G1) + (1 - decay) * np.kron(A2, G2)
    kron_of_emas = np.kron(np.asarray(out.A), np.asarray(out.G))
    assert np.linalg.norm(kron_of_emas - ema_of_kron) > 1e-2 * np.linalg.norm(ema_of_kron)
