"""``fl.kfac.solve``'s less-used branches: the pi-damped embedding block against a dense
Kronecker construction (``np.kron``), and every shape and trace rejection with its message."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl


def _spd(rng, n, shift):
    M = rng.normal(size=(n, n))
    return M @ M.T + shift * np.eye(n)


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_factored_embedding_block_is_the_pi_damped_kronecker_inverse(damping):
    """An embedding's block is ``A (x) G`` on ``vec_row(gE)`` (``gE`` of shape ``(num, d)``);
    pi-damping inverts ``(A + pi s I) (x) (G + s/pi I)`` with ``s = sqrt(damping)`` and
    ``pi = sqrt((tr A / num) / (tr G / d))``. num = 5, d = 3 and the two trace means differ,
    so a transposed gradient, a swapped factor or pi = 1 would each change the result."""
    rng = np.random.default_rng(3)
    num, d = 5, 3
    A, G = _spd(rng, num, 0.5), 9.0 * _spd(rng, d, 0.2)
    gE = rng.normal(size=(num, d))
    pi = np.sqrt((np.trace(A) / num) / (np.trace(G) / d))
    assert abs(pi - 1) > 0.2
    s = np.sqrt(damping)
    K = np.kron(A + pi * s * np.eye(num), G + s / pi * np.eye(d))
    assert np.allclose(K @ gE.reshape(-1),
                       ((A + pi * s * np.eye(num)) @ gE @ (G + s / pi * np.eye(d))).reshape(-1))
    want = np.linalg.solve(K, gE.reshape(-1)).reshape(num, d)
    (got,) = fl.kfac.solve([fl.kfac.KFACFactors(A, G)], [(gE,)], damping, method="factored")
    assert got[0].shape == (num, d)
    np.testing.assert_allclose(np.asarray(got[0]), want, rtol=1e-10, atol=1e-13)
    # exact damping of the same block: (A (x) G + damping I)^{-1}
    want = np.linalg.solve(np.kron(A, G) + damping * np.eye(num * d), gE.reshape(-1))
    (got,) = fl.kfac.solve([fl.kfac.KFACFactors(A, G)], [(gE,)], damping, method="exact")
    np.testing.assert_allclose(np.asarray(got[0]).reshape(-1), want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("method", ["exact", "factored"])
def test_mismatched_weight_or_bias_gradient_is_rejected_naming_both_shapes(method):
    """``G`` is ``(out, out)``: a ``gW`` with another row count, or a ``gb`` of another length,
    is refused before any solve, the message giving the shapes on both sides."""
    rng = np.random.default_rng(0)
    f = [fl.kfac.KFACFactors(_spd(rng, 4, 1.0), _spd(rng, 2, 1.0))]  # out = 2, in' + 1 = 4
    for gW, gb in (((3, 3), (3,)), ((2, 3), (3,))):
        g = [(np.ones(gW), np.ones(gb))]
        match = (r"grads\[0\] \(gW " + re.escape(str(gW)) + r", gb \(" + str(gb[0])
                 + r",\)\) does not match factors\[0\]\.G of shape \(2, 2\)")
        with pytest.raises(ValueError, match=match):
            fl.kfac.solve(f, g, 0.1, method=method)
    with pytest.raises(ValueError, match=r"needs A of size 3 \(augmented\) or 2 \(separate\), "
                                         r"got A of size 4"):
        fl.kfac.solve(f, [(np.ones((2, 2)), np.ones(2))], 0.1, method=method)


@pytest.mark.parametrize("nm", ["A", "G"])
@pytest.mark.parametrize("embedding", [False, True])
def test_pi_damping_needs_positive_traces(nm, embedding):
    """pi = sqrt((tr A / dim A) / (tr G / dim G)) is undefined for a zero factor: the factored
    method refuses it, naming the factor and the cause; the exact method solves the same
    damped system (here ``damping I`` on the zero factor's side)."""
    rng = np.random.default_rng(1)
    A, G = _spd(rng, 3, 1.0), _spd(rng, 2, 1.0)
    if nm == "A":
        A = np.zeros_like(A)
    else:
        G = np.zeros_like(G)
    g = [(rng.normal(size=(3, 2)),)] if embedding else [(rng.normal(size=(2, 2)),
                                                         rng.normal(size=2))]
    with pytest.raises(ValueError, match=rf"factors\[0\]: tr {nm} = 0\.000e\+00 must be > 0 "
                                         r"for pi-damping"):
        fl.kfac.solve([fl.kfac.KFACFactors(A, G)], g, 0.5, method="factored")
    out = fl.kfac.solve([fl.kfac.KFACFactors(A, G)], g, 0.5, method="exact")
    assert all(np.isfinite(np.asarray(t)).all() for t in jax.tree_util.tree_leaves(out))


def test_embedding_gradient_of_the_wrong_shape_is_rejected():
    rng = np.random.default_rng(2)
    f = [fl.kfac.KFACFactors(_spd(rng, 5, 1.0), _spd(rng, 3, 1.0))]
    with pytest.raises(ValueError, match=r"grads\[0\] \(an embedding gradient of shape \(3, 5\)\) "
                                         r"does not match factors\[0\] .* expected shape \(5, 3\)"):
        fl.kfac.solve(f, [(jnp.ones((3, 5)),)], 0.1)
