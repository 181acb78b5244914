"""A table of planted bugs: each wrong candidate, the quantity it stands for and the finding
kind ``fl.testing.diagnose`` must name first.

Every candidate is computed independently of fisherlab (the NumPy engine of
``numpy_oracle.py``: back-propagation, likelihood formulas, K-FAC factors, sampling with fixed
seeds) on one fixed problem per likelihood, so the table is deterministic. Used by
``test_diagnose_table.py`` and by ``benchmarks/bench_diagnose.py`` (which times it).
"""

from __future__ import annotations

import numpy as np

import fisherlab as fl
import numpy_oracle as no

__all__ = ["cases", "problem_factory", "token_problem"]


def token_problem(N=5, R=4, C=3):
    """A ``Dense`` layer shared over ``R`` tokens with per-token outputs ``(R, C)``."""
    rng = np.random.default_rng(7)
    model = fl.nn.Sequential([fl.nn.Dense(3, C)])
    params = [(rng.normal(size=(C, 3)), rng.normal(size=C))]
    x, y = rng.normal(size=(N, R, 3)), rng.integers(0, C, (N, R))
    return lambda: fl.testing.Problem(model, params, x, y, fl.Categorical())


def per_token_ef(P):
    """``(1/N) sum_{n,r} g_{n,r} g_{n,r}^T`` with the per-token gradients of a one-layer
    categorical model written out: ``dW = (p - e_y) x^T``, ``db = p - e_y``."""
    (W, b), = [(np.asarray(w), np.asarray(c)) for w, c in P.params]
    x, y = np.asarray(P.x), np.asarray(P.y)
    N, R, C = y.shape + (W.shape[0],)
    e = no.softmax(x @ W.T + b) - np.eye(C)[y]
    g = np.concatenate([np.einsum("nro,nri->nroi", e, x).reshape(N, R, -1), e], -1)
    return np.einsum("nri,nrj->ij", g, g) / N


def problem_factory(lik, C, N=5, seed=0):
    """A function building the fixed problem (a fresh ``Problem`` per call, same arrays)."""
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 4), fl.nn.Sigmoid(),
                              fl.nn.Dense(4, C)])
    params = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
              (rng.normal(size=(4, 4)) * 1.5, rng.normal(size=4)),
              (rng.normal(size=(C, 4)), rng.normal(size=C))]
    x = rng.normal(size=(N, 3))
    name = type(lik).__name__
    y = {"Categorical": lambda: rng.integers(0, C, N),
         "Bernoulli": lambda: (rng.random((N, C)) < 0.5) * 1.0,
         "Poisson": lambda: rng.poisson(1.5, (N, C)) * 1.0}[name]()
    return lambda: fl.testing.Problem(model, params, x, y, lik)


def cases():
    """``[(name, make problem, quantity, build candidate, expected first kind)]``."""
    cat, ber, poi = (problem_factory(fl.Categorical(), 3), problem_factory(fl.Bernoulli(), 3),
                     problem_factory(fl.Poisson(), 3, seed=1))
    out = []

    def case(name, make, quantity, build, kind):
        out.append((name, make, quantity, build, kind))

    def net(P, derivative=None):
        m, params, x, y, lik = no.problem_arrays(P)
        return no.batch(m, params, x, derivative), lik, y

    def fisher_with(M_fn):
        def build(P):
            b, lik, y = net(P)
            return no.sandwich(b["J"], M_fn(b, lik, y))
        return build

    def perm(P, order):
        F = fisher_with(lambda b, lik, y: no.output_fisher(lik, b["f"]))(P)
        return F[np.ix_(order, order)]

    def sizes(P):
        return [(l.start, l.stop, l.shape) for l in P.leaves()]

    def transposed(P):
        idx = []
        for s, e, shape in sizes(P):
            r = np.arange(s, e).reshape(shape)
            idx.append(r.T.ravel() if r.ndim == 2 else r)
        return np.concatenate(idx)

    def flax(P):
        ls = sizes(P)
        idx = []
        for (sw, ew, shw), (sb, eb, _) in zip(ls[::2], ls[1::2]):
            idx += [np.arange(sb, eb), np.arange(sw, ew).reshape(shw).T.ravel()]
        return np.concatenate(idx)

    def reversed_layers(P):
        ls = sizes(P)
        return np.concatenate([np.arange(s, e) for pair in
                               [ls[i:i + 2] for i in range(0, len(ls), 2)][::-1]
                               for s, e, _ in pair])

    F_true = lambda b, lik, y: no.output_fisher(lik, b["f"])  # noqa: E731
    case("sum reduction (N x)", cat, "fisher", lambda P: 5 * fisher_with(F_true)(P),
         "scalar_factor")
    case("empirical Fisher for Fisher", cat, "fisher",
         lambda P: no.empirical_fisher(net(P)[0], P.likelihood, np.asarray(P.y)),
         "empirical_fisher_for_fisher")
    case("W stored (in, out)", cat, "fisher", lambda P: perm(P, transposed(P)),
         "transposed_weight_layout")
    case("Flax order (bias, kernel (in, out))", cat, "fisher", lambda P: perm(P, flax(P)),
         "parameter_order")
    case("layers reversed", cat, "fisher", lambda P: perm(P, reversed_layers(P)), "parameter_order")

    def kfac(P, **kw):
        b, lik, y = net(P)
        return no.kfac_matrix(no.kfac_factors(b, no.output_fisher(lik, b["f"]), **kw))

    case("K-FAC A (x) G", cat, "kfac", lambda P: no.kfac_matrix(
        no.kfac_factors(net(P)[0], no.output_fisher(P.likelihood, net(P)[0]["f"])),
        kron_order="AG"), "kronecker_order_swapped")
    case("K-FAC G from post-activation grads", cat, "kfac", lambda P: kfac(P, jac="Ja"),
         "kfac_factor_formula")
    case("K-FAC A without the homogeneous 1", cat, "kfac", lambda P: kfac(P, homogeneous=0.0),
         "kfac_factor_formula")

    def tanh_at_output(P):
        b, lik, y = net(P, {"Tanh": no.AT_OUTPUT["Tanh"]})
        return no.sandwich(b["J"], no.output_fisher(lik, b["f"]))

    case("tanh' at the output", cat, "fisher", tanh_at_output, "activation_derivative")
    case("softmax diag(p)", cat, "fisher", fisher_with(
        lambda b, lik, y: np.einsum("nc,cd->ncd", no.softmax(b["f"]), np.eye(3))),
         "output_matrix_formula")
    case("Bernoulli p for p(1-p)", ber, "fisher", fisher_with(
        lambda b, lik, y: np.einsum("nc,cd->ncd", no.sigmoid(b["f"]), np.eye(3))),
         "output_matrix_formula")
    case("Poisson rate Fisher 1/lambda", poi, "fisher", fisher_with(
        lambda b, lik, y: np.einsum("nc,cd->ncd", np.exp(-b["f"]), np.eye(3))),
         "output_matrix_formula")
    case("EF with targets rolled by one", cat, "empirical_fisher",
         lambda P: no.empirical_fisher(net(P)[0], P.likelihood, np.roll(np.asarray(P.y), 1)),
         "target_mismatch")
    case("dropped example (mean over N-1)", cat, "fisher", lambda P: no.sandwich(
        net(P)[0]["J"][:-1], no.output_fisher(P.likelihood, net(P)[0]["f"][:-1])),
         "example_weighting")

    def chunks(P):
        b, lik, y = net(P)
        M = no.output_fisher(lik, b["f"])
        return (no.sandwich(b["J"][:2], M[:2]) + no.sandwich(b["J"][2:4], M[2:4])
                + no.sandwich(b["J"][4:], M[4:])) / 3

    case("mean of ragged chunk means [2,2,1]", cat, "fisher", chunks, "example_weighting")

    def labelled(P, labels):
        b, lik, y = net(P)
        return no.sandwich(b["J"], no.outer(no.output_gradient(lik, b["f"], labels)))

    case("argmax labels", cat, "fisher", lambda P: labelled(P, np.argmax(net(P)[0]["f"], 1)),
         "label_sampling")
    case("one shared label draw", cat, "fisher",
         lambda P: labelled(P, np.full(5, no.sample(P.likelihood, net(P)[0]["f"][:1],
                                                    np.random.default_rng(3))[0, 0])),
         "label_sampling")
    case("Bernoulli C=3 one-sample MC", ber, "fisher", lambda P: labelled(
        P, no.sample(P.likelihood, net(P)[0]["f"], np.random.default_rng(4))[0]),
         "monte_carlo_estimate")

    def kfac_mc(P):
        b, lik, y = net(P)
        lab = no.sample(lik, b["f"], np.random.default_rng(5))[0]
        return no.kfac_matrix(no.kfac_factors(b, no.outer(no.output_gradient(lik, b["f"],
                                                                              lab))))

    case("K-FAC one-sample MC G", cat, "kfac", kfac_mc, "monte_carlo_estimate")
    case("float32 candidate upcast", cat, "fisher",
         lambda P: fisher_with(F_true)(P).astype(np.float32).astype(np.float64), "float32_rounding")

    def ddof1(P):
        b, lik, y = net(P)
        g = np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], np.asarray(P.y)))
        return np.cov(g.T, ddof=1)

    case("gradient covariance with ddof=1", cat, "gradient_covariance", ddof1, "scalar_factor")

    # quantity swaps, blocks, a peer preset, the token axis and an unexplained matrix
    def grads(P):
        b, lik, y = net(P)
        return np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], y))

    def centred(P):
        g = grads(P) - grads(P).mean(0)
        return g.T @ g / len(g)

    def mask(P, M, keep):
        """``M`` with the entries between parameter tensors ``u, v`` with ``not keep(u, v)``
        set to zero."""
        leaves = P.leaves()
        owner = np.zeros(P.num_params, int)
        for i, leaf in enumerate(leaves):
            owner[leaf.start:leaf.stop] = i
        k = np.array([[keep(leaves[a], leaves[b]) for b in owner] for a in owner])
        return np.where(k, M, 0.0)

    case("Fisher for empirical Fisher", cat, "empirical_fisher", fisher_with(F_true),
         "fisher_for_empirical_fisher")
    case("GGN for Hessian", cat, "hessian", fisher_with(F_true), "ggn_for_hessian")
    case("gradient covariance for empirical Fisher", cat, "empirical_fisher", centred,
         "gradient_covariance_for_empirical_fisher")
    case("empirical Fisher for gradient covariance", cat, "gradient_covariance",
         lambda P: grads(P).T @ grads(P) / len(grads(P)),
         "empirical_fisher_for_gradient_covariance")
    case("K-FAC for the Fisher", cat, "fisher", lambda P: kfac(P), "kfac_approximation")
    case("K-FAC with the W-b cross terms dropped", cat, "kfac",
         lambda P: mask(P, kfac(P), lambda u, v: not (u.group == v.group and u.role != v.role)),
         "bias_cross_terms_missing")
    case("Fisher without cross-layer blocks", cat, "fisher",
         lambda P: mask(P, fisher_with(F_true)(P), lambda u, v: u.group == v.group),
         "block_diagonal_only")
    case("kfac-jax empirical Fisher (1/N^2, w (in, out))", cat, "empirical_fisher",
         lambda P: (grads(P).T @ grads(P) / 25.0)[np.ix_(transposed(P), transposed(P))],
         "transposed_weight_layout")
    tok = token_problem()
    case("per-token EF for per-sequence EF", tok, "empirical_fisher", per_token_ef,
         "token_reduction")
    case("an unrelated SPD matrix", cat, "fisher", lambda P: (lambda A: A @ A.T)(
        np.random.default_rng(11).normal(size=(P.num_params, P.num_params))),
         "no_known_pattern")
    return out
