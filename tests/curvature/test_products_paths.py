"""The matrix-free products explain a non-finite product as the quantity they compute.

``fl.fisher_mc_vp`` multiplies by the Monte-Carlo Fisher, so when its product overflows the
explanation must bound the *sampled* output gradients (the labels drawn from the model), not
the closed-form output Fisher of ``fl.fisher_vp``. A Gaussian of variance ``1e-6`` makes the
sampled gradients ``(y_s - f) / sigma^2 = eps / sigma`` of size ``1e3`` (``eps`` standard
normal), and a vector of ``1e306`` then overflows float64.
"""

import re

import jax
import jax.numpy as jnp
import pytest

import fisherlab as fl
from curvature_cases import make_problem

VARIANCE = 1e-6
F, PARAMS, X, _, _ = make_problem("gaussian", seed=1, n=6, in_features=3, hidden=4, outputs=3)
LIK = fl.Gaussian(variance=VARIANCE)
D = 3 * 4 + 4 + 4 * 3 + 3
V = jnp.full((D,), 1e306)


def test_fisher_mc_vp_overflow_is_explained_by_the_sampled_gradients():
    mv = fl.fisher_mc_vp(F, PARAMS, X, LIK, jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"^the fl\.fisher_mc_vp matvec: the result is not "
                                         r"finite") as info:
        mv(V)
    msg = str(info.value)
    bound = re.search(r"\|sampled grad_f l\| <= ([0-9.e+-]+)", msg)
    assert bound is not None, msg
    # |eps| / sigma for 12 standard normal draws eps: between 0.1 / sigma and 6 / sigma
    assert 0.1 / VARIANCE ** 0.5 < float(bound.group(1)) < 6 / VARIANCE ** 0.5
    assert "F_out" not in msg and "|v| <= 1.000e+306" in msg


def test_fisher_vp_overflow_is_explained_by_the_output_fisher():
    with pytest.raises(ValueError, match=r"^the fl\.fisher_vp matvec: the result is not "
                                         r"finite .*\|F_out\| <= 1\.000e\+06") as info:
        fl.fisher_vp(F, PARAMS, X, LIK)(V)  # F_out = I / sigma^2
    assert "sampled" not in str(info.value)
