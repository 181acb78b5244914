"""Which models the layer-wise method accepts, and the sizes its memory plan counts.

The layer-wise kernel (:mod:`fisherlab.curvature._layerwise`) qualifies only a ``Sequential``
of ``Dense`` layers and elementwise activations applied to ``(N, in_features)`` inputs with
params in the layers' shapes; anything else must fall back to the Jacobian kernel. Its memory
estimate counts one example's intermediates, written out here by hand for a two-layer network
with sizes chosen so that no two of them coincide (``m_1 = 3``, ``m_2 = 6``, ``o_1 = 5``,
``o_2 = C = 3``).
"""

import jax
import jax.numpy as jnp
import pytest

import fisherlab as fl
from fisherlab.curvature import _layerwise

# Dense(2 -> 5), Tanh, Dense(5 -> 3): inputs i = (2, 5), m = i + 1 = (3, 6), outputs o = (5, 3)
MODEL = fl.nn.Sequential([fl.nn.Dense(2, 5), fl.nn.Tanh(), fl.nn.Dense(5, 3)])
PARAMS = MODEL.init(jax.random.key(0))
X = jnp.ones((4, 2))


def test_supports_the_mlp_it_is_built_for():
    assert _layerwise.supports(MODEL, PARAMS, X)
    act = fl.nn.Sequential([fl.nn.Dense(2, 5), fl.nn.ReLU(), fl.nn.Dense(5, 3), fl.nn.Sigmoid()])
    assert _layerwise.supports(act, act.init(jax.random.key(1)), X)


@pytest.mark.parametrize("case", ["wrong width", "1-d x", "3-d x", "not Sequential",
                                  "no Dense", "params short", "params not pairs",
                                  "W shape", "b shape", "params dict"])
def test_does_not_support_what_the_kernel_cannot_run(case):
    model, params, x = MODEL, PARAMS, X
    (W1, b1), (W2, b2) = PARAMS
    if case == "wrong width":  # x has 3 features, the first layer takes 2
        x = jnp.ones((4, 3))
    elif case == "1-d x":
        x = jnp.ones((2,))
    elif case == "3-d x":
        x = jnp.ones((4, 1, 2))
    elif case == "not Sequential":
        model = lambda p, xn: MODEL(p, xn)  # noqa: E731
    elif case == "no Dense":
        model, params = fl.nn.Sequential([fl.nn.Tanh()]), []
    elif case == "params short":
        params = [(W1, b1)]
    elif case == "params not pairs":
        params = [(W1, b1, b1), (W2, b2)]
    elif case == "W shape":
        params = [(W1.T, b1), (W2, b2)]
    elif case == "b shape":
        params = [(W1, b1[:-1]), (W2, b2)]
    else:
        params = {"0": (W1, b1), "1": (W2, b2)}
    assert not _layerwise.supports(model, params, x)


def _units_rows(o, units):
    """Rows ``(o, p)`` of a layer's diagonal products: ``p`` in the unit or a later one."""
    return sum((e - s) * (o - s) for s, e in units)


@pytest.mark.parametrize("unit_params", [384, 10])
@pytest.mark.parametrize("num_samples", [1, 4])
def test_per_example_entries_count_the_kernels_intermediates(monkeypatch, unit_params,
                                                             num_samples):
    monkeypatch.setattr(_layerwise, "UNIT_PARAMS", unit_params)
    m1, m2, o1, o2, c = 3, 6, 5, 3, 3
    big_o = o1 + o2
    if unit_params == 384:  # every layer is one unit: all o^2 pairs of a layer
        units = ([(0, 5)], [(0, 3)])
    else:  # about 10 parameters per unit: o m / 10 = 1.5 -> 2 units, 18 / 10 -> 2 units
        units = ([(0, 2), (2, 5)], [(0, 2), (2, 3)])  # np.round: 2.5 -> 2, 1.5 -> 2
    assert [layer.units for layer in _layerwise._layout(MODEL)] == [tuple(u) for u in units]
    rows = _units_rows(o1, units[0]) + _units_rows(o2, units[1])
    expected = (2 * big_o ** 2  # D = B^T Lambda B (O x O) and its einsum intermediate
                + 2 * c * big_o  # the output Jacobians B (C x O) and Lambda B
                + 2 * (m1 * m1 + m1 * m2 + m2 * m2)  # abar_k (x) abar_l for k <= l, twice
                + rows + o1 * o2  # the rows of D multiplied out: diagonal units, then k < l
                + c * (c + num_samples))  # Lambda (C x C) and the S sampled scores
    assert _layerwise.per_example_entries(MODEL, c, num_samples) == expected


def test_compact_entries_count_the_products_above_the_diagonal(monkeypatch):
    monkeypatch.setattr(_layerwise, "UNIT_PARAMS", 10)
    m1, m2, o1, o2 = 3, 6, 5, 3
    rows = _units_rows(o1, [(0, 2), (2, 5)]) * m1 ** 2 + _units_rows(o2, [(0, 2), (2, 3)]) * m2 ** 2
    assert _layerwise.compact_entries(MODEL) == rows + o1 * o2 * m1 * m2
