"""Fixed examples for the layouts: each named order written here as an explicit index list on
fixed problems (N=5, C=3), asserting the kind, the layout reported and the message; and the
transposed weight guessed from the size alone, without a problem."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import Problem, diagnose


def _two_layer_problem():
    rng = np.random.default_rng(5)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
              (rng.normal(size=(3, 4)), rng.normal(size=3))]
    return Problem(model, params, rng.normal(size=(5, 3)), rng.integers(0, 3, 5),
                   fl.Categorical())


def _layers(P):
    ls = P.leaves()
    return [(np.arange(w.start, w.stop).reshape(w.shape), np.arange(b.start, b.stop))
            for w, b in zip(ls[::2], ls[1::2])]


def _fisher(P):
    m, params, x, y, lik = no.problem_arrays(P)
    return no.fisher(no.batch(m, params, x), lik)


ORDERS = {
    "reversed/std": (lambda L: [q for W, b in L[::-1] for q in (W.ravel(), b)],
                     "layers in reverse order"),
    "weights_then_biases/std": (lambda L: [W.ravel() for W, _ in L] + [b for _, b in L],
                                "all weights first, then all biases"),
    "biases_then_weights/T": (lambda L: [b for _, b in L] + [W.T.ravel() for W, _ in L],
                              "all biases first, then all weights (weights stored transposed)"),
    "standard/bias_first_T": (lambda L: [q for W, b in L for q in (b, W.T.ravel())],
                              "Flax's {'bias', 'kernel'} order"),
}


@pytest.mark.parametrize("layers", [2, 3])
@pytest.mark.parametrize("layout", sorted(ORDERS))
def test_named_parameter_order(layout, layers):
    """Two- and three-layer networks: the named order is reported (not only found by the
    general search) with its description."""
    P = _two_layer_problem() if layers == 2 else problem_factory(fl.Categorical(), 3)()
    build, words = ORDERS[layout]
    p = np.concatenate(build(_layers(P)))
    F = _fisher(P)
    f = diagnose(F[np.ix_(p, p)], P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "parameter_order", [str(x) for x in f]
    assert f[0].data["layout"] == layout
    assert words in f[0].message
    np.testing.assert_array_equal(f[0].data["permutation"], p)


def test_kronecker_order_swapped_read_with_augmented_labels():
    """kron(A, G) for kron(G, A), permuted to parameter order as if it were G (x) A: the layout
    ``standard/agx`` (not the plain transposed weight, which keeps the bias apart)."""
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    facs = no.kfac_factors(b, no.output_fisher(lik, b["f"]))
    f = diagnose(no.kfac_matrix(facs, kron_order="AG"), P.reference("kfac"), problem=P,
                 quantity="kfac")
    assert f[0].kind == "kronecker_order_swapped", [str(x) for x in f]
    assert f[0].data["layout"] == "standard/agx"
    assert "A ⊗ G for G ⊗ A, then permuted to parameter order" in f[0].message


def _spd(n, seed):
    B = np.random.default_rng(seed).normal(size=(n, n))
    return B @ B.T


@pytest.mark.parametrize("bias", [False, True])
def test_transposed_weight_without_a_problem(bias):
    """A (3, 4) weight, possibly followed by its 3 biases (n = 12 or 15), stored as (in, out):
    named from the size alone; without a quantity the same permutation is also the swapped
    Kronecker order, and the tie is stated; with quantity="kfac" it is that reading."""
    n = 15 if bias else 12
    Y = _spd(n, 6)
    p = np.concatenate([np.arange(12).reshape(3, 4).T.ravel(), np.arange(12, n)])
    X = Y[np.ix_(p, p)]
    shape = "[a (3, 4) weight followed by its bias]" if bias else "[a (3, 4) weight]"
    f = diagnose(X, Y)
    assert f[0].kind == "transposed_weight_layout", [str(x) for x in f]
    assert shape in f[0].message and "column-major / transposed W" in f[0].message
    assert f[0].data["ties"] == ["kronecker_order_swapped"]
    assert f[1].kind == "kronecker_order_swapped"
    assert f[1].message.startswith("actual equals the same permutation read as A (x) G "
                                   "instead of G (x) A " + shape)
    np.testing.assert_array_equal(f[0].data["permutation"], p)
    (g,) = diagnose(X, Y, quantity="kfac")
    assert g.kind == "kronecker_order_swapped" and shape in g.message
    assert "A (x) G instead of G (x) A" in g.message


def test_size_that_is_no_weight_shape_is_not_called_transposed():
    """n = 7 = 2·3 + 1: the last entry is no bias of a (2, 3) weight, so a transposed (2, 3)
    block is not a named layout; the general search finds the permutation."""
    Y = _spd(7, 7)
    p = np.array([0, 3, 1, 4, 2, 5, 6])
    f = diagnose(Y[np.ix_(p, p)], Y)
    assert f[0].kind == "parameter_order", [str(x) for x in f]
    assert "general search" in f[0].message
