"""Which code path each update takes, and the rarer argument types and boundaries.

Value tests alone pass when a fast path falls back to another one that happens to agree on the
test problem. Here spies record what ran -- the curvature each step builds, whether its solve
is the positive-semi-definite (Cholesky) one, which product Hessian-free multiplies by, which
K-FAC solve method is used -- and each rejection is matched by its message. Ground truth is
NumPy on closed-form problems (``update_problems.py``).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from update_problems import flat, linear, logistic_problem, rel

import fisherlab as fl
from fisherlab.updates import _dense, _diagonal, _hessian_free, _precondition, _problem


@pytest.fixture(scope="module")
def P():
    return logistic_problem(seed=4, N=10, D=2)


def _args(P):
    return (linear, P["params"], P["X"], P["y"], fl.Bernoulli())


@pytest.fixture
def kinds(monkeypatch):
    """The curvature kinds built by ``curvature_matrix`` (the dense steps' one source)."""
    seen = []
    original = _problem.curvature_matrix

    def spy(step, kind, **kw):
        seen.append(kind)
        return original(step, kind, **kw)

    monkeypatch.setattr(_dense, "curvature_matrix", spy)
    monkeypatch.setattr(_diagonal, "curvature_matrix", spy)
    return seen


@pytest.fixture
def solves(monkeypatch):
    """``(psd, name)`` of every dense solve of a dense step."""
    seen = []
    original = _dense.dense_solve

    def spy(M, b, damping, *, psd, name="curvature"):
        seen.append((psd, name))
        return original(M, b, damping, psd=psd, name=name)

    monkeypatch.setattr(_dense, "dense_solve", spy)
    return seen


# ----------------------------------------------------------------------------- dense steps


@pytest.mark.parametrize("fn, kind, psd, name", [
    (fl.updates.natural_gradient, "fisher", True, "the Fisher"),
    (fl.updates.empirical_fisher_update, "empirical_fisher", True, "the empirical Fisher"),
    (fl.updates.newton, "hessian", False, "the Hessian"),
    (fl.updates.gauss_newton, "ggn", True, "the GGN"),
])
def test_each_dense_step_builds_its_curvature_and_solves_it_as_it_should(P, kinds, solves, fn,
                                                                          kind, psd, name):
    delta = fn(*_args(P), lr=0.5, damping=0.1)
    assert kinds == [kind] and solves == [(psd, name)]
    M = P["E"] if kind == "empirical_fisher" else P["F"]  # F = H = G for the logistic loss
    expected = -0.5 * np.linalg.solve(M + 0.1 * np.eye(3), P["grad"])
    assert rel(flat(delta), expected) < 1e-10


def test_monte_carlo_natural_gradient_uses_the_sampled_fisher(P, kinds):
    key = jax.random.key(5)
    delta = fl.updates.natural_gradient(*_args(P), lr=1.0, damping=0.1, fisher_type="mc",
                                        key=key, num_samples=3)
    assert kinds == ["fisher_mc"]
    F_mc = np.asarray(fl.fisher_mc(linear, P["params"], P["X"], fl.Bernoulli(), key=key,
                                   num_samples=3))
    expected = -np.linalg.solve(F_mc + 0.1 * np.eye(3), P["grad"])
    assert rel(flat(delta), expected) < 1e-10
    exact = -np.linalg.solve(P["F"] + 0.1 * np.eye(3), P["grad"])
    assert rel(flat(delta), exact) > 1e-3  # really the sampled matrix, not the exact one


def test_gauss_newton_rejects_an_indefinite_ggn_with_a_psd_solve():
    """The mean-variance Gaussian's output Hessian is indefinite when y != mu, so its GGN can
    be: ``gauss_newton`` must refuse it (a PSD solve), ``newton`` solves its own indefinite H."""
    W = jnp.asarray([[0.3], [0.2]])
    params = [(W, jnp.zeros(2))]
    x = jnp.asarray([[1.0]])
    y = jnp.asarray([[3.0]])  # far from the mean 0.3: H_out = [[e^-s, r e^-s], [., z^2/2]]
    lik = fl.GaussianMeanVariance()
    G = np.asarray(fl.ggn(linear, params, x, y, lik))
    assert np.linalg.eigvalsh(G)[0] < -1e-3  # the premise: indefinite
    with pytest.raises(ValueError, match=r"the GGN must be positive semi-definite, but its "
                                         r"smallest eigenvalue -"):
        fl.updates.gauss_newton(linear, params, x, y, lik, lr=1.0, damping=0.0)
    with pytest.raises(ValueError, match=r"the Fisher .*positive semi-definite|singular"):
        # the Fisher is PSD but rank-deficient here (one example): undamped it is singular
        fl.updates.natural_gradient(linear, params, x, y, lik, lr=1.0, damping=0.0)


def test_fisher_type_message_lists_the_choices(P):
    with pytest.raises(ValueError, match=r"fisher_type must be one of \['exact', 'mc'\], "
                                         r"got 'empirical'"):
        fl.updates.natural_gradient(*_args(P), lr=0.1, damping=0.1, fisher_type="empirical")


def test_scalars_are_checked_before_any_work(P, monkeypatch):
    calls = []
    monkeypatch.setattr(_dense, "prepare_step", lambda *a: calls.append(a))
    for fn in (fl.updates.natural_gradient, fl.updates.newton):
        with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got -1"):
            fn(*_args(P), lr=-1, damping=0.1)
        with pytest.raises(TypeError, match=r"damping must be a real number, got True"):
            fn(*_args(P), lr=0.1, damping=True)
    assert calls == []


# ----------------------------------------------------------------------------- diagonal


@pytest.mark.parametrize("estimator, kind", [("exact", "fisher"), ("mc", "fisher_mc"),
                                             ("empirical", "empirical_fisher")])
def test_diagonal_estimators_build_their_curvature(P, kinds, estimator, kind):
    key = jax.random.key(1) if estimator == "mc" else None
    delta, state = fl.updates.diagonal_update(*_args(P), lr=1.0, damping=0.05,
                                              estimator=estimator, key=key)
    assert kinds == [kind]
    if estimator != "mc":
        d = np.diag(P["F"] if estimator == "exact" else P["E"])
        # first step with bias correction: s_hat = d_1 exactly
        assert rel(flat(delta), -P["grad"] / (d + 0.05)) < 1e-10
        assert rel(state.second_moment, 0.05 * d) < 1e-10  # (1 - 0.95) d_1
        assert int(state.count) == 1


def test_diagonal_default_is_bias_corrected_and_decay_095(P):
    d = np.diag(P["F"])
    delta, state = fl.updates.diagonal_update(*_args(P), lr=1.0, damping=0.01)
    assert rel(state.second_moment, (1 - 0.95) * d) < 1e-12
    assert rel(flat(delta), -P["grad"] / (d + 0.01)) < 1e-10
    delta2, state2 = fl.updates.diagonal_update(*_args(P), lr=1.0, damping=0.01, state=state)
    s2 = 0.95 * (0.05 * d) + 0.05 * d
    assert rel(state2.second_moment, s2) < 1e-12
    assert rel(flat(delta2), -P["grad"] / (s2 / (1 - 0.95 ** 2) + 0.01)) < 1e-10


@pytest.mark.parametrize("decay, exc, msg", [
    (True, TypeError, r"decay must be a real number in \[0, 1\), got True"),
    (np.array(0.9), TypeError, r"decay must be a real number in \[0, 1\), got array\(0.9\)"),
    ("0.9", TypeError, r"decay must be a real number in \[0, 1\), got '0.9'"),
    (-0.1, ValueError, r"decay must be in \[0, 1\), got -0.1"),
    (1.0, ValueError, r"decay must be in \[0, 1\), got 1.0"),
])
def test_diagonal_decay_type_and_range(P, decay, exc, msg):
    with pytest.raises(exc, match=msg):
        fl.updates.diagonal_update(*_args(P), lr=0.1, damping=0.1, decay=decay)


def test_diagonal_decay_zero_uses_the_current_estimate_only(P):
    d = np.diag(P["F"])
    old = fl.updates.DiagonalState(jnp.asarray(100.0 * d), jnp.asarray(4))
    delta, state = fl.updates.diagonal_update(*_args(P), lr=1.0, damping=0.01, decay=0.0,
                                              state=old)
    assert rel(state.second_moment, d) < 1e-12 and int(state.count) == 5
    assert rel(flat(delta), -P["grad"] / (d + 0.01)) < 1e-10


def test_diagonal_state_checks(P):
    with pytest.raises(TypeError, match=r"state must be a DiagonalState \(or None\), got tuple"):
        fl.updates.diagonal_update(*_args(P), lr=0.1, damping=0.1, state=(jnp.zeros(3), 0))
    bad = fl.updates.DiagonalState(jnp.zeros(4), jnp.asarray(0))
    with pytest.raises(ValueError, match=r"state.second_moment must have shape \(3,\) like the "
                                         r"flattened params, got \(4,\)"):
        fl.updates.diagonal_update(*_args(P), lr=0.1, damping=0.1, state=bad)


def test_diagonal_zero_entry_with_zero_damping_is_singular():
    # the bias of an output no example's target... a parameter the curvature does not see:
    # a zero input column gives a zero diagonal entry of F
    params = [(jnp.asarray([[0.5, -0.3]]), jnp.asarray([0.1]))]
    X = jnp.asarray([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0]])
    y = jnp.asarray([[1.0], [0.0], [1.0]])
    with pytest.raises(ValueError, match=r"the diagonal preconditioner s_hat \+ damping is "
                                         r"singular: entry 1 is 0 with damping = 0.0"):
        fl.updates.diagonal_update(linear, params, X, y, fl.Bernoulli(), lr=1.0, damping=0.0)
    # tiny but nonzero entries relative to the largest are accepted
    delta, _ = fl.updates.diagonal_update(linear, params, X, y, fl.Bernoulli(), lr=1.0,
                                          damping=1e-6)
    assert np.all(np.isfinite(flat(delta)))


# ----------------------------------------------------------------------------- Hessian-free


@pytest.mark.parametrize("curvature, product", [("ggn", "ggn_vp"), ("fisher", "fisher_vp"),
                                                ("hessian", "hvp")])
def test_hessian_free_multiplies_by_the_chosen_product(P, monkeypatch, curvature, product):
    seen = []
    original = _hessian_free.product_on

    def spy(problem, name, **kw):
        seen.append(name)
        return original(problem, name, **kw)

    monkeypatch.setattr(_hessian_free, "product_on", spy)
    delta = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, curvature=curvature)
    assert seen == [product]
    assert rel(flat(delta), -np.linalg.solve(P["F"] + 0.1 * np.eye(3), P["grad"])) < 1e-8


def test_hessian_free_default_maxiter_is_50():
    """61 distinct curvature eigenvalues and a tolerance CG cannot reach: it stops at 50."""
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(80, 60)) * np.logspace(0, 3, 60))
    y = jnp.asarray(rng.normal(size=(80, 1)))
    params = [(jnp.asarray(0.01 * rng.normal(size=(1, 60))), jnp.zeros(1))]
    _, info = fl.updates.hessian_free(linear, params, X, y, fl.Gaussian(), lr=1.0, damping=0.0,
                                      tol=1e-300, return_info=True)
    assert int(info.iterations) == 50 and not bool(info.converged)


def test_hessian_free_warm_start_is_used_and_checked(P):
    exact = -np.linalg.solve(P["F"] + 0.1 * np.eye(3), P["grad"])
    # started at the solution p = -exact (delta = -p), CG takes no step
    delta, info = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, x0=jnp.asarray(-exact),
                                          return_info=True)
    assert int(info.iterations) == 0 and rel(flat(delta), exact) < 1e-12
    # started elsewhere with one iteration allowed, the result depends on the start
    a = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, maxiter=1)
    b = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, maxiter=1,
                                x0=jnp.asarray([1.0, -1.0, 0.5]))
    assert rel(flat(a), flat(b)) > 1e-3
    with pytest.raises(ValueError, match=r"x0 must have 3 entries like params, got 2"):
        fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, x0=jnp.zeros(2))


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(maxiter=1.5), TypeError, r"maxiter must be an int, got 1.5"),
    (dict(maxiter=0), ValueError, r"maxiter must be >= 1, got 0"),
    (dict(tol=0.0), ValueError, r"tol must be a finite number > 0, got 0.0"),
    (dict(tol="1e-3"), TypeError, r"tol must be a real number, got '1e-3'"),
    (dict(curvature="kfac"), ValueError,
     r"curvature must be one of \['fisher', 'ggn', 'hessian'\], got 'kfac'"),
])
def test_hessian_free_options_are_checked(P, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1, **kwargs)


def test_hessian_free_lr_scales_the_step(P):
    a = fl.updates.hessian_free(*_args(P), lr=1.0, damping=0.1)
    b = fl.updates.hessian_free(*_args(P), lr=0.25, damping=0.1)
    assert rel(flat(b), 0.25 * flat(a)) < 1e-12
    assert np.dot(flat(a), P["grad"]) < 0  # a descent direction (PSD GGN)


# ----------------------------------------------------------------------------- K-FAC


def test_kfac_update_passes_the_method_to_the_solve(P, monkeypatch):
    import fisherlab.kfac as kfac_pkg

    seen = []
    original = kfac_pkg.solve

    def spy(factors, grads, damping, **kw):
        seen.append(kw.get("method"))
        return original(factors, grads, damping, **kw)

    monkeypatch.setattr(kfac_pkg, "solve", spy)
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    for method in ("exact", "factored"):
        fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=1.0,
                               damping=0.1, method=method)
    assert seen == ["exact", "factored"]
    with pytest.raises(ValueError, match=r"method must be one of \['exact', 'factored'\], got "
                                         r"'diagonal'"):
        fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=1.0,
                               damping=0.1, method="diagonal")


def test_kfac_update_monte_carlo_defaults_to_one_sample(P):
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    key = jax.random.key(2)
    a = fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=1.0,
                               damping=0.1, fisher_type="mc", key=key)
    factors = fl.kfac.factors(model, P["params"], P["X"], P["y"], fl.Bernoulli(),
                              fisher_type="mc", key=key, num_samples=1)
    b = fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=1.0,
                               damping=0.1, factors=factors)
    assert rel(flat(a), flat(b)) < 1e-13
    # one example, a single output: K-FAC is exact (J = x_a^T), so the step is the natural
    # gradient with the same factors' Fisher; lr scales it
    c = fl.updates.kfac_update(model, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=0.5,
                               damping=0.1, factors=factors)
    assert rel(flat(c), 0.5 * flat(b)) < 1e-13
    assert np.dot(flat(b), P["grad"]) < 0


# ----------------------------------------------------------------------------- damping rule


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(decay=True), ValueError, r"decay must be a number in \(0, 1\), got True"),
    (dict(decay=np.array(0.9)), ValueError, r"decay must be a number in \(0, 1\), got array"),
    (dict(decay=0.0), ValueError, r"decay must be a number in \(0, 1\), got 0.0"),
    (dict(decay=1.0), ValueError, r"decay must be a number in \(0, 1\), got 1.0"),
    (dict(interval=True), TypeError, r"interval must be an int, got True"),
    (dict(interval=0), ValueError, r"interval must be >= 1, got 0"),
    (dict(min_damping=-1.0), ValueError, r"min_damping must be a finite number >= 0, got -1.0"),
    (dict(max_damping="big"), ValueError, r"max_damping must be a number >= min_damping, "
                                          r"got 'big'"),
    (dict(min_damping=2.0, max_damping=1.0), ValueError, r"max_damping must be a number >= "
                                                         r"min_damping, got 1.0"),
    (dict(damping=0.0), ValueError, r"damping must be a finite number > 0, got 0.0"),
    (dict(actual=True), TypeError, r"actual must be a real number, got True"),
    (dict(predicted=np.ones(2)), TypeError, r"predicted must be a real number, got array"),
    (dict(predicted=math.inf), ValueError, r"predicted must be finite, got inf"),
    (dict(actual=-math.inf), ValueError, r"actual must be finite, got -inf"),
    (dict(predicted=0.0), ValueError, r"predicted must be < 0 \(the quadratic model's change "
                                      r"for a descent step\), got 0.0"),
])
def test_adaptive_damping_argument_checks(kwargs, exc, msg):
    call = dict(damping=1.0, actual=-1.0, predicted=-1.0)
    call.update(kwargs)
    with pytest.raises(exc, match=msg):
        fl.updates.adaptive_damping(**call)


def test_adaptive_damping_defaults_and_zero_dimensional_arrays():
    # the default omega = 0.95 ** 5 (Martens & Grosse, 2015)
    assert fl.updates.adaptive_damping(1.0, -1.0, -1.0) == pytest.approx(0.95 ** 5, rel=1e-15)
    assert fl.updates.adaptive_damping(1.0, 0.0, -1.0) == pytest.approx(0.95 ** -5, rel=1e-15)
    lam, rho = fl.updates.adaptive_damping(1.0, np.float64(-0.5), np.array(-2.0),
                                           return_ratio=True)
    assert (lam, rho) == (1.0, 0.25)
    assert fl.updates.adaptive_damping(2.0, -1.0, -1.0, decay=0.5, interval=2) == 0.5
    assert fl.updates.adaptive_damping(2.0, 1.0, -1.0, decay=0.5, interval=2) == 8.0


def test_adaptive_damping_clips_to_both_bounds():
    assert fl.updates.adaptive_damping(1.0, 5.0, -1.0, decay=0.5, interval=1,
                                       max_damping=1.5) == 1.5
    assert fl.updates.adaptive_damping(1.0, -1.0, -1.0, decay=0.5, interval=1,
                                       min_damping=0.75) == 0.75
    # inside the bounds nothing is clipped
    assert fl.updates.adaptive_damping(1.0, -1.0, -1.0, decay=0.5, interval=1, min_damping=0.1,
                                       max_damping=10.0) == 0.5


def test_predicted_change_with_damping_and_a_matvec_equal_the_closed_form():
    g = np.array([1.0, -2.0, 0.5])
    M = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]])
    d = np.array([-0.3, 0.7, 0.1])
    expected = g @ d + 0.5 * d @ (M + 0.4 * np.eye(3)) @ d
    dense = fl.updates.predicted_change(jnp.asarray(g), jnp.asarray(M), jnp.asarray(d),
                                        damping=0.4)
    free = fl.updates.predicted_change(jnp.asarray(g), lambda v: jnp.asarray(M) @ v,
                                       jnp.asarray(d), damping=0.4)
    assert float(dense) == pytest.approx(expected, rel=1e-14)
    assert float(free) == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match=r"matrix_or_matvec must have shape \(3, 3\), got \(3,\)"):
        fl.updates.predicted_change(jnp.asarray(g), jnp.ones(3), jnp.asarray(d))


# ----------------------------------------------------------------------------- precondition


def test_precondition_default_maxiter_allows_more_than_d_iterations():
    """An ill-conditioned 3 x 3 system: CG needs more than d = 3 steps in floating point to
    reach tol = 1e-10, and the default 10 d allows them."""
    w = jnp.asarray([1.0, 1e4, 1e8])
    g = jnp.asarray([1.0, 1.0, 1.0])
    p = fl.updates.precondition(lambda v: w * v, g, damping=1e-3)
    np.testing.assert_allclose(np.asarray(p), 1.0 / (np.asarray(w) + 1e-3), rtol=1e-8)
    with pytest.raises(ValueError, match=r"did not reach relative residual tol=1e-10 in "
                                         r"maxiter=1 iterations"):
        fl.updates.precondition(lambda v: w * v, g, damping=1e-3, maxiter=1)


def test_precondition_zero_damping_materialises_only_then(monkeypatch):
    seen = []
    original = _precondition._check_matrix_free_nonsingular
    monkeypatch.setattr(_precondition, "_check_matrix_free_nonsingular",
                        lambda mv, d: (seen.append(d), original(mv, d)))
    g = jnp.asarray([1.0, 2.0])
    fl.updates.precondition(lambda v: 2.0 * v, g, damping=0.5)
    assert seen == []
    p = fl.updates.precondition(lambda v: 2.0 * v, g, damping=0.0)
    assert seen == [2]
    np.testing.assert_allclose(np.asarray(p), [0.5, 1.0], rtol=1e-12)


def test_precondition_zero_damping_above_the_materialise_limit(monkeypatch):
    monkeypatch.setattr(_precondition, "MATERIALISE_MAX_DIM", 2)
    with pytest.raises(ValueError, match=r"checking it needs the dense \(3, 3\) matrix, too "
                                         r"large \(d > 2\)"):
        fl.updates.precondition(lambda v: v, jnp.ones(3), damping=0.0)
    # at the limit it is materialised and checked
    p = fl.updates.precondition(lambda v: 4.0 * v, jnp.ones(2), damping=0.0)
    np.testing.assert_allclose(np.asarray(p), [0.25, 0.25], rtol=1e-12)


def test_precondition_dense_psd_and_indefinite_paths():
    A = jnp.asarray([[2.0, 0.0], [0.0, -1.0]])
    g = jnp.asarray([1.0, 1.0])
    with pytest.raises(ValueError, match=r"matrix_or_matvec must be positive semi-definite, but "
                                         r"its smallest eigenvalue -1 < 0 \(largest magnitude 2\)"):
        fl.updates.precondition(A, g, damping=0.5)
    p = fl.updates.precondition(A, g, damping=0.5, psd=False)
    np.testing.assert_allclose(np.asarray(p), [1 / 2.5, 1 / -0.5], rtol=1e-13)
    with pytest.raises(ValueError, match=r"matrix_or_matvec has shape \(3, 3\) but the gradient "
                                         r"has 2 entries"):
        fl.updates.precondition(jnp.eye(3), g, damping=0.1)
    with pytest.raises(ValueError, match=r"must be a square \(d, d\) matrix, got shape \(2, 3\)"):
        fl.updates.precondition(jnp.ones((2, 3)), g, damping=0.1)
    with pytest.raises(ValueError, match=r"must be a square \(d, d\) matrix, got shape \(2,\)"):
        fl.updates.precondition(jnp.ones(2), g, damping=0.1)


def test_precondition_pytree_gradient_keeps_its_structure():
    g = {"a": jnp.asarray([1.0, 2.0]), "b": jnp.asarray(3.0)}
    p = fl.updates.precondition(jnp.diag(jnp.asarray([1.0, 2.0, 4.0])), g, damping=0.0)
    assert set(p) == {"a", "b"}
    np.testing.assert_allclose(np.asarray(p["a"]), [1.0, 1.0], rtol=1e-14)
    np.testing.assert_allclose(float(p["b"]), 0.75, rtol=1e-14)


@pytest.mark.parametrize("psd", [True, False])
def test_a_dense_solve_uses_the_symmetric_part_so_it_is_transpose_invariant(psd):
    # an asymmetry of relative size 1e-9 (within the symmetry check's tolerance) is rounding noise
    # in a curvature matrix: M and M^T precondition alike, as (M + M^T) / 2 does
    rng = np.random.default_rng(3)
    B = rng.normal(size=(4, 4))
    S = B @ B.T + 4.0 * np.eye(4)
    E = rng.normal(size=(4, 4))
    M = S + 1e-9 * np.linalg.norm(S) * (E - E.T) / np.linalg.norm(E - E.T)
    g = rng.normal(size=4)
    expected = np.linalg.solve((M + M.T) / 2 + 0.5 * np.eye(4), g)
    for A in (M, M.T):
        got = fl.updates.precondition(jnp.asarray(A), jnp.asarray(g), damping=0.5, psd=psd)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("psd, factorisation", [(True, "cholesky"), (False, "lu")])
def test_a_psd_dense_solve_is_a_cholesky_solve_and_a_general_one_is_lu(monkeypatch, psd,
                                                                         factorisation):
    # which factorisation ran: a PSD solve must not quietly become a general one
    seen = []
    cho_factor, solve = jax.scipy.linalg.cho_factor, jnp.linalg.solve
    monkeypatch.setattr(jax.scipy.linalg, "cho_factor",
                        lambda *a, **k: seen.append("cholesky") or cho_factor(*a, **k))
    monkeypatch.setattr(jnp.linalg, "solve", lambda *a, **k: seen.append("lu") or solve(*a, **k))
    M = jnp.array([[2.0, 1.0], [1.0, 3.0]])
    g = jnp.array([1.0, -1.0])
    got = fl.updates.precondition(M, g, damping=0.0, psd=psd)
    assert seen == [factorisation]
    # the closed-form inverse of [[2, 1], [1, 3]] is [[3, -1], [-1, 2]] / 5
    np.testing.assert_allclose(got, np.array([4.0, -3.0]) / 5, rtol=1e-14)
