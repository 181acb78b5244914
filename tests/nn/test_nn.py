"""fisherlab.nn: layers, parameter layout and order (PyTorch's), Conv2d against loops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl


def test_dense_sequential_forward_and_layout():
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    params = model.init(jax.random.key(0))
    assert [tuple(p[0].shape) for p in params] == [(4, 3), (2, 4)]
    x = np.array([0.1, -0.2, 0.3])
    (W1, b1), (W2, b2) = [(np.asarray(W), np.asarray(b)) for W, b in params]
    expected = W2 @ np.tanh(W1 @ x + b1) + b2
    np.testing.assert_allclose(model(params, jnp.asarray(x)), expected, rtol=1e-14)
    flat, _ = ravel_pytree(params)
    np.testing.assert_array_equal(flat, np.concatenate([W1.ravel(), b1, W2.ravel(), b2]))
    assert model.num_params == flat.size == 4 * 3 + 4 + 2 * 4 + 2
    bound = 1 / np.sqrt(3)
    assert np.all(np.abs(W1) <= bound) and W1.dtype == np.float64


def test_dense_on_a_sequence_applies_per_position():
    model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    out = model(params, x)
    assert out.shape == (5, 2)
    for t in range(5):
        np.testing.assert_allclose(out[t], model(params, x[t]), rtol=1e-14)


def _loop_conv(W, b, x, stride, padding):
    W, b, x = np.asarray(W), np.asarray(b), np.asarray(x)
    O, C, kh, kw = W.shape
    sh, sw = stride
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))
    ho = (xp.shape[1] - kh) // sh + 1
    wo = (xp.shape[2] - kw) // sw + 1
    out = np.zeros((O, ho, wo))
    for o in range(O):
        for i in range(ho):
            for j in range(wo):
                out[o, i, j] = b[o] + np.sum(W[o] * xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw])
    return out


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 0), ((2, 3), (2, 1), (1, 2)),
                                                     (1, 1, 0)])
def test_conv2d_matches_explicit_loops_and_patches(kernel, stride, padding):
    conv = fl.nn.Conv2d(2, 3, kernel, stride=stride, padding=padding)
    W, b = conv.init(jax.random.key(0))
    assert W.shape == (3, 2) + conv.kernel_size
    x = jax.random.normal(jax.random.key(1), (2, 5, 6), jnp.float64)
    expected = _loop_conv(W, b, x, conv.stride, conv.padding)
    out = conv((W, b), x)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    patches, (ho, wo) = conv.patches(x)
    via_patches = (patches @ W.reshape(3, -1).T + b).T.reshape(3, ho, wo)
    np.testing.assert_allclose(via_patches, expected, rtol=1e-12, atol=1e-14)


def test_flatten_and_meanpool():
    x = jnp.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(fl.nn.Flatten()(None, x), np.arange(24.0))
    np.testing.assert_allclose(fl.nn.MeanPool()(None, jnp.asarray([[1.0, 2.0], [3.0, 6.0]])),
                               [2.0, 4.0])


def test_conv_sequential_params_and_order():
    model = fl.nn.Sequential([fl.nn.Conv2d(1, 2, 2), fl.nn.ReLU(), fl.nn.Flatten(),
                              fl.nn.Dense(2 * 2 * 2, 3)])
    params = model.init(jax.random.key(0))
    model.check_params(params)
    flat, _ = ravel_pytree(params)
    assert model.num_params == flat.size == 2 * 1 * 2 * 2 + 2 + 8 * 3 + 3
    np.testing.assert_array_equal(flat[:8], np.asarray(params[0][0]).ravel())
    assert model(params, jnp.ones((1, 3, 3))).shape == (3,)
    with pytest.raises(ValueError, match=r"\(out, in, kh, kw\)"):
        model.check_params([(jnp.ones((2, 1, 3, 3)), jnp.ones(2)), params[1]])


def test_layer_and_sequential_errors():
    with pytest.raises(ValueError, match="kernel_size"):
        fl.nn.Conv2d(1, 2, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        fl.nn.Conv2d(1, 2, (1, 2, 3))
    with pytest.raises(ValueError, match="padding"):
        fl.nn.Conv2d(1, 2, 2, padding=-1)
    with pytest.raises(TypeError, match="in_channels"):
        fl.nn.Conv2d(1.5, 2, 2)
    conv = fl.nn.Conv2d(2, 2, 3)
    with pytest.raises(ValueError, match=r"\(C_in, H, W\)"):
        conv(conv.init(jax.random.key(0)), jnp.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv(conv.init(jax.random.key(0)), jnp.ones((2, 2, 4)))
    with pytest.raises(ValueError, match="channels do not chain"):
        fl.nn.Sequential([fl.nn.Conv2d(1, 2, 1), fl.nn.Conv2d(3, 2, 1)])
    with pytest.raises(ValueError, match="widths do not chain"):
        fl.nn.Sequential([fl.nn.Dense(1, 2), fl.nn.Dense(3, 2)])
    with pytest.raises(ValueError, match="empty"):
        fl.nn.Sequential([])
    with pytest.raises(TypeError, match="layers"):
        fl.nn.Sequential([lambda p, a: a])


def test_sequential_equality_and_hash():
    a = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh()])
    b = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh()])
    c = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.ReLU()])
    assert a == b and hash(a) == hash(b) and a != c


def test_activation_values_and_relu_derivative_at_zero():
    z = jnp.asarray([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(fl.nn.Tanh()(None, z), np.tanh([-1.0, 0.0, 2.0]), rtol=1e-15)
    np.testing.assert_allclose(fl.nn.Sigmoid()(None, z), 1 / (1 + np.exp([1.0, 0.0, -2.0])),
                               rtol=1e-15)
    np.testing.assert_array_equal(fl.nn.ReLU()(None, z), [0.0, 0.0, 2.0])
    # PyTorch's convention, as documented: relu'(0) = 0
    assert float(jax.grad(lambda t: fl.nn.ReLU()(None, t))(0.0)) == 0.0
    assert float(jax.grad(lambda t: fl.nn.ReLU()(None, t))(1.0)) == 1.0
