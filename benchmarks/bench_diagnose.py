"""Benchmark: planted bugs -> the first finding of ``fl.testing.diagnose`` and its time.

Every wrong candidate is computed independently of fisherlab (the NumPy engine of
``tests/testing/diagnose/numpy_oracle.py``: back-propagation, likelihood formulas, K-FAC
factors, sampling) on one fixed problem per likelihood; the table lists the bug, the first
finding's kind and the wall time of ``diagnose`` (first call per problem includes the compiles
of the references it needs; the column "warm" repeats the call on a fresh ``Problem`` of the
same shapes, i.e. with compiled programs but no cached results).

Usage: ``python3 benchmarks/bench_diagnose.py`` from the repository root. Prints
``os.getloadavg()``: the figures depend on the load of the machine.
"""

from __future__ import annotations

import os
import sys
import time

import jax
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "testing", "diagnose"))
jax.config.update("jax_enable_x64", True)

import fisherlab as fl  # noqa: E402
import numpy_oracle as no  # noqa: E402


def _problem(lik, C, N=5, seed=0):
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


def _cases():
    cat, ber, poi = (_problem(fl.Categorical(), 3), _problem(fl.Bernoulli(), 3),
                     _problem(fl.Poisson(), 3, seed=1))
    out = []

    def case(name, make, quantity, build):
        out.append((name, make, quantity, build))

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
    case("sum reduction (N x)", cat, "fisher", lambda P: 5 * fisher_with(F_true)(P))
    case("empirical Fisher for Fisher", cat, "fisher",
         lambda P: no.empirical_fisher(net(P)[0], P.likelihood, np.asarray(P.y)))
    case("W stored (in, out)", cat, "fisher", lambda P: perm(P, transposed(P)))
    case("Flax order (bias, kernel (in, out))", cat, "fisher", lambda P: perm(P, flax(P)))
    case("layers reversed", cat, "fisher", lambda P: perm(P, reversed_layers(P)))

    def kfac(P, **kw):
        b, lik, y = net(P)
        return no.kfac_matrix(no.kfac_factors(b, no.output_fisher(lik, b["f"]), **kw))

    case("K-FAC A (x) G", cat, "kfac", lambda P: no.kfac_matrix(
        no.kfac_factors(net(P)[0], no.output_fisher(P.likelihood, net(P)[0]["f"])),
        kron_order="AG"))
    case("K-FAC G from post-activation grads", cat, "kfac", lambda P: kfac(P, jac="Ja"))
    case("K-FAC A without the homogeneous 1", cat, "kfac", lambda P: kfac(P, homogeneous=0.0))

    def tanh_at_output(P):
        b, lik, y = net(P, {"Tanh": no.AT_OUTPUT["Tanh"]})
        return no.sandwich(b["J"], no.output_fisher(lik, b["f"]))

    case("tanh' at the output", cat, "fisher", tanh_at_output)
    case("softmax diag(p)", cat, "fisher", fisher_with(
        lambda b, lik, y: np.einsum("nc,cd->ncd", no.softmax(b["f"]), np.eye(3))))
    case("Bernoulli p for p(1-p)", ber, "fisher", fisher_with(
        lambda b, lik, y: np.einsum("nc,cd->ncd", no.sigmoid(b["f"]), np.eye(3))))
    case("Poisson rate Fisher 1/lambda", poi, "fisher", fisher_with(
        lambda b, lik, y: np.einsum("nc,cd->ncd", np.exp(-b["f"]), np.eye(3))))
    case("EF with targets rolled by one", cat, "empirical_fisher",
         lambda P: no.empirical_fisher(net(P)[0], P.likelihood, np.roll(np.asarray(P.y), 1)))
    case("dropped example (mean over N-1)", cat, "fisher", lambda P: no.sandwich(
        net(P)[0]["J"][:-1], no.output_fisher(P.likelihood, net(P)[0]["f"][:-1])))

    def chunks(P):
        b, lik, y = net(P)
        M = no.output_fisher(lik, b["f"])
        return (no.sandwich(b["J"][:2], M[:2]) + no.sandwich(b["J"][2:4], M[2:4])
                + no.sandwich(b["J"][4:], M[4:])) / 3

    case("mean of ragged chunk means [2,2,1]", cat, "fisher", chunks)

    def labelled(P, labels):
        b, lik, y = net(P)
        return no.sandwich(b["J"], no.outer(no.output_gradient(lik, b["f"], labels)))

    case("argmax labels", cat, "fisher", lambda P: labelled(P, np.argmax(net(P)[0]["f"], 1)))
    case("one shared label draw", cat, "fisher",
         lambda P: labelled(P, np.full(5, no.sample(P.likelihood, net(P)[0]["f"][:1],
                                                    np.random.default_rng(3))[0, 0])))
    case("Bernoulli C=3 one-sample MC", ber, "fisher", lambda P: labelled(
        P, no.sample(P.likelihood, net(P)[0]["f"], np.random.default_rng(4))[0]))

    def kfac_mc(P):
        b, lik, y = net(P)
        lab = no.sample(lik, b["f"], np.random.default_rng(5))[0]
        return no.kfac_matrix(no.kfac_factors(b, no.outer(no.output_gradient(lik, b["f"],
                                                                              lab))))

    case("K-FAC one-sample MC G", cat, "kfac", kfac_mc)
    case("float32 candidate upcast", cat, "fisher",
         lambda P: fisher_with(F_true)(P).astype(np.float32).astype(np.float64))

    def ddof1(P):
        b, lik, y = net(P)
        g = np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], np.asarray(P.y)))
        return np.cov(g.T, ddof=1)

    case("gradient covariance with ddof=1", cat, "gradient_covariance", ddof1)
    return out


def main():
    print(f"load average {os.getloadavg()}")
    rows = [("bug", "first kind", "cold s", "warm s")]
    for name, make, q, build in _cases():
        times, kinds = [], None
        for _ in range(2):
            P = make()
            cand = build(P)
            desired = P.reference(q)
            t0 = time.perf_counter()
            findings = fl.testing.diagnose(cand, desired, problem=P, quantity=q)
            times.append(time.perf_counter() - t0)
            kinds = [f.kind for f in findings]
        rows.append((name, kinds[0] if kinds else "(none)", f"{times[0]:.2f}", f"{times[1]:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
