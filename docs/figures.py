"""The documentation's figures, each computed with fisherlab's own functions.

``python3 docs/figures.py OUT_DIR [NAME ...]`` writes the four PNG files, or those named (the docs
build calls it; ``docs/images/steepest_descent.png``, shown by the README, is the first of them):

* ``steepest_descent.png`` -- Euclidean vs Fisher steepest-descent directions on a two-parameter
  logistic regression (the picture of M. Johnson, "Natural gradients and K-FAC", 2017, Fig. 1):
  ``fl.gradient``, ``fl.fisher``, ``fl.updates.natural_gradient``;
* ``empirical_fisher.png`` -- gradient descent, natural gradient and the empirical-Fisher update
  on linear regression, as vector fields with trajectories (in the style of Kunstner, Balles &
  Hennig, "Limitations of the empirical Fisher approximation for natural gradient descent",
  NeurIPS 2019, Fig. 1): ``fl.gradient``, ``fl.updates.natural_gradient``,
  ``fl.updates.empirical_fisher_update``;
* ``kfac_blocks.png`` -- the exact Fisher, its K-FAC approximation and their difference for a
  small MLP, with the relative error of each layer block: ``fl.fisher``, ``fl.kfac.factors``,
  ``fl.kfac.matrix`` (the network of ``examples/kfac_mlp.py``);
* ``optimisation.png`` -- training loss against step for SGD, natural gradient, K-FAC and
  Hessian-free on the problem of ``examples/train_mlp.py`` (``fl.updates``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import fisherlab as fl

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
DPI = 110


def _example(name: str):
    """Import ``examples/<name>.py`` as a module (the examples folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"_docs_example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": DPI})
    return plt


def _flat(tree):
    return np.asarray(jax.flatten_util.ravel_pytree(tree)[0])


# --------------------------------------------------------------------------- (a) steepest descent


def _logistic_problem():
    """Two-parameter logistic regression ``p(y = 1 | x) = sigmoid(theta . x)``, correlated inputs."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2)) @ np.array([[1.0, 0.0], [0.8, 0.5]])
    theta_true = np.array([1.0, -1.5])
    y = (rng.uniform(size=200) < 1 / (1 + np.exp(-x @ theta_true))).astype(float)[:, None]

    def f(theta, xi):
        return jnp.atleast_1d(theta @ xi)

    return f, jnp.asarray(x), jnp.asarray(y), fl.Bernoulli()


def steepest_descent(path: Path) -> None:
    f, x, y, lik = _logistic_problem()
    theta = jnp.array([-1.0, 1.0])
    g = np.asarray(fl.gradient(f, theta, x, y, lik))
    F = np.asarray(fl.fisher(f, theta, x, lik))
    nat = np.asarray(fl.updates.natural_gradient(f, theta, x, y, lik, lr=1.0, damping=0.0))  # -F^-1 g
    # Both balls are drawn with the same area: the Fisher metric is rescaled by sqrt(det F), a
    # scalar that changes the length of the steepest-descent step but not its direction.
    F = F / np.sqrt(np.linalg.det(F))
    r = 0.9  # radius of the balls drawn, in each metric
    euclid = -r * g / np.linalg.norm(g)
    fisher_dir = r * nat / np.sqrt(nat @ F @ nat)

    loss = jax.jit(lambda t: jnp.mean(lik.nll(jax.vmap(lambda xi: f(t, xi))(x), y)))
    t0 = np.asarray(theta)
    u = np.linspace(t0[0] - 2.4, t0[0] + 2.4, 120)
    v = np.linspace(t0[1] - 2.4, t0[1] + 2.4, 120)
    U, V = np.meshgrid(u, v)
    Z = np.asarray(jax.vmap(loss)(jnp.stack([U.ravel(), V.ravel()], 1))).reshape(U.shape)

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True)
    angles = np.linspace(0, 2 * np.pi, 200)
    circle = np.stack([np.cos(angles), np.sin(angles)])
    L = np.linalg.cholesky(np.linalg.inv(F))  # {v : v^T F v = 1} = L @ circle
    regions = {"Euclidean": r * circle, "Fisher": r * (L @ circle)}
    directions = {"Euclidean": euclid, "Fisher": fisher_dir}
    for ax, name in zip(axes, ["Euclidean", "Fisher"]):
        ax.contour(U, V, Z, levels=14, colors="0.75", linewidths=0.8)
        # level lines of the linearised loss l(theta_t) + g . v, perpendicular to g
        span = np.linspace(-4, 4, 2)
        perp = np.array([-g[1], g[0]]) / np.linalg.norm(g)
        step = directions[name] @ g / np.linalg.norm(g) ** 2  # g . dir / |g|^2
        for c in np.linspace(-1.5, 1.5, 7):
            base = t0 + (c * abs(step)) * g
            ax.plot(base[0] + span * perp[0], base[1] + span * perp[1], color="#9ecae1", lw=0.7)
        edge = t0 + step * g  # the level line through the chosen direction's end point
        ax.plot(edge[0] + span * perp[0], edge[1] + span * perp[1], color="#2171b5", lw=1.2,
                label="linearised loss at the minimiser")
        region = regions[name]
        ax.fill(t0[0] + region[0], t0[1] + region[1], color="#fdd0a2", alpha=0.6,
                label=f"ball of the {name} metric")
        ax.annotate("", xy=t0 + directions[name], xytext=t0,
                    arrowprops=dict(arrowstyle="-|>", color="#a50f15", lw=2))
        ax.plot(*t0, "ko", ms=4)
        ax.set_title({"Euclidean": "(a) Euclidean steepest descent: $-\\nabla\\ell/\\|\\nabla\\ell\\|$",
                      "Fisher": "(b) Fisher steepest descent: $\\propto -F^{-1}\\nabla\\ell$"}[name])
        ax.set_xlabel(r"$\theta_1$")
        ax.set_xlim(u[0], u[-1])
        ax.set_ylim(v[0], v[-1])
        ax.set_aspect("equal")
    axes[0].set_ylabel(r"$\theta_2$")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle("Steepest descent on a two-parameter logistic regression. Grey: loss contours; "
                 "blue: level lines of the linearised loss;\narrow: the step that minimises the "
                 "linearised loss over the ball (balls of equal area)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- (b) empirical Fisher


def _linear_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 0.6, size=60)  # inputs away from 0: slope and intercept are correlated
    y = 1.0 + 1.5 * x + rng.normal(0.0, 1.0, size=60)

    def f(theta, xi):
        return jnp.atleast_1d(theta[0] + theta[1] * xi)

    return f, jnp.asarray(x), jnp.asarray(y)[:, None], fl.Gaussian()


def empirical_fisher(path: Path) -> None:
    f, x, y, lik = _linear_regression()
    directions = {
        "gradient descent": jax.jit(lambda t: -fl.gradient(f, t, x, y, lik)),
        "natural gradient (Fisher)": jax.jit(
            lambda t: fl.updates.natural_gradient(f, t, x, y, lik, lr=1.0, damping=1e-8)),
        "empirical Fisher": jax.jit(
            lambda t: fl.updates.empirical_fisher_update(f, t, x, y, lik, lr=1.0, damping=1e-8)),
    }
    learning_rates = {"gradient descent": 0.12, "natural gradient (Fisher)": 0.12,
                      "empirical Fisher": 0.12}
    X = np.c_[np.ones(len(x)), np.asarray(x)]
    optimum = np.linalg.lstsq(X, np.asarray(y)[:, 0], rcond=None)[0]
    lo, hi = optimum - np.array([4.0, 2.0]), optimum + np.array([4.0, 2.0])
    gu, gv = np.meshgrid(np.linspace(lo[0], hi[0], 17), np.linspace(lo[1], hi[1], 17))
    grid = np.stack([gu.ravel(), gv.ravel()], 1)
    starts = [optimum + d for d in ([-3.5, 1.6], [3.5, -1.6], [-3.0, -1.5], [3.0, 1.5])]

    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.9))
    ax = axes[0]
    ax.scatter(np.asarray(x), np.asarray(y)[:, 0], s=10, color="0.3")
    xs = np.linspace(float(x.min()), float(x.max()), 2)
    ax.plot(xs, optimum[0] + optimum[1] * xs, color="#a50f15")
    ax.set_title("data and least-squares fit")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    colors = ["#2171b5", "#238b45", "#d94801", "#6a51a3"]
    for ax, (name, direction) in zip(axes[1:], directions.items()):
        field = np.array([np.asarray(direction(jnp.asarray(p))) for p in grid])
        norm = np.linalg.norm(field, axis=1, keepdims=True)
        unit = field / np.where(norm > 0, norm, 1)
        ax.quiver(grid[:, 0], grid[:, 1], unit[:, 0], unit[:, 1], color="0.6", angles="xy",
                  scale=24, width=0.004)
        for start, color in zip(starts, colors):
            p = jnp.asarray(start)
            path_pts = [np.asarray(p)]
            for _ in range(40):
                p = p + learning_rates[name] * direction(p)
                path_pts.append(np.asarray(p))
            path_pts = np.array(path_pts)
            ax.plot(path_pts[:, 0], path_pts[:, 1], "-o", ms=2, lw=1.2, color=color)
        ax.plot(*optimum, "k*", ms=10)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(f"{name}\n40 steps, step size {learning_rates[name]}")
        ax.set_xlabel("intercept")
        ax.set_ylabel("slope")
    fig.suptitle("Linear regression, Gaussian likelihood: step directions (arrows, unit length) and "
                 "trajectories from four starts. The natural gradient goes straight to the optimum "
                 "(star); the empirical Fisher's\ndirections are distorted and its steps shrink "
                 "where the residuals are large; gradient descent drops into the valley, then crawls along it.",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------------- (c) K-FAC blocks


def kfac_blocks(path: Path) -> None:
    ex = _example("kfac_mlp")
    params, x, y = ex.problem()
    F, K, _ = ex.exact_and_kfac(params, x, y)
    F, K = np.asarray(F), np.asarray(K)
    slices = ex.layer_slices(params)
    errors = [np.linalg.norm(K[s, s] - F[s, s]) / np.linalg.norm(F[s, s]) for s in slices]
    total = np.linalg.norm(K - F) / np.linalg.norm(F)

    plt = _pyplot()
    vmax = float(np.quantile(np.abs(F), 0.98))  # a few large entries would wash out the rest
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.9), layout="constrained")
    panels = [("exact Fisher F (fl.fisher)", F),
              ("K-FAC K (fl.kfac.matrix)", K),
              ("difference K - F", K - F)]
    for ax, (title, M) in zip(axes, panels):
        im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        for s in slices[1:]:
            ax.axhline(s.start - 0.5, color="k", lw=0.8)
            ax.axvline(s.start - 0.5, color="k", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("parameter index (W1, b1 | W2, b2)")
    axes[0].set_ylabel("parameter index")
    for k, (s, e) in enumerate(zip(slices, errors)):
        mid = (s.start + s.stop) / 2
        axes[2].text(mid, mid, f"layer {k}\n{e:.0%} error", ha="center", va="center", fontsize=9,
                     bbox=dict(boxstyle="round", fc="white", alpha=0.85))
    axes[2].text((slices[0].start + slices[0].stop) / 2, (slices[1].start + slices[1].stop) / 2,
                 "between layers:\ndropped", ha="center", va="center", fontsize=9,
                 bbox=dict(boxstyle="round", fc="white", alpha=0.85))
    fig.colorbar(im, ax=axes, shrink=0.85, extend="both",
                 label="matrix entry (scale clipped at the 98th percentile of |F|)")
    fig.suptitle(f"{x.shape[1]}-8-3 tanh MLP, categorical likelihood, N = {x.shape[0]}: "
                 "relative Frobenius error per layer block "
                 + ", ".join(f"{e:.1%}" for e in errors) + f"; whole matrix {total:.1%}",
                 fontsize=10)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------------- (d) optimisation


def optimisation(path: Path) -> None:
    ex = _example("train_mlp")
    curves = ex.histories()
    best = ex.best_sgd(curves)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.3))
    styles = {"natural gradient": ("#238b45", "-"), "K-FAC": ("#d94801", "-"),
              "Hessian-free": ("#6a51a3", "--")}
    for name, (color, ls) in styles.items():
        ax.semilogy(curves[name], ls, color=color, lw=2, label=name)
    for name, curve in curves.items():
        if name.startswith("SGD"):
            ax.semilogy(curve, ":", color="#2171b5" if name == best else "#9ecae1",
                        lw=2 if name == best else 1, label=name + (" (best)" if name == best else ""))
    ax.set_xlabel("full-batch step")
    ax.set_ylabel("training loss (mean NLL)")
    ax.set_title("examples/train_mlp.py: 2-16-3 tanh MLP, badly scaled inputs")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


FIGURES = {
    "steepest_descent.png": steepest_descent,
    "empirical_fisher.png": empirical_fisher,
    "kfac_blocks.png": kfac_blocks,
    "optimisation.png": optimisation,
}


def main(argv: list[str]) -> int:
    names = argv[1:] or list(FIGURES)
    if len(argv) < 1 or any(n not in FIGURES for n in names):
        print("usage: python3 docs/figures.py OUT_DIR [NAME ...], NAME one of "
              + ", ".join(FIGURES), file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        make = FIGURES[name]
        make(out / name)
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
