"""Cross-check ``fisherlab.kfac.factors`` against the real kfac-jax library (0.0.8).

Runs ONLY inside the separate venv made by ``scripts/kfac_jax_env.sh`` (kfac-jax 0.0.8 needs
JAX 0.9.1; fisherlab's main environment has a newer JAX)::

    bash scripts/kfac_jax_env.sh                       # -> /tmp/fisherlab-kfacjax
    /tmp/fisherlab-kfacjax/bin/python benchmarks/kfac_jax_compare.py [--repeats 11]
        [--no-timing | --only-timing]

What it does (docs/peers/kfac_jax.md states every convention mapping and the measured table):

* builds small MLPs with ``fisherlab.nn.Sequential`` (params ``[(W (out,in), b), ...]``) and the
  same network as a hand-written kfac-jax forward pass ``s = a @ W^T + b`` registered with
  ``kfac_jax.register_dense(s, a, W^T, b)`` (kfac-jax's layout is ``w (in, out)``), plus one
  variant that relies on kfac-jax's automatic graph scanning (``auto_register_tags=True``) instead;
* registers the loss with ``register_softmax_cross_entropy_loss`` (categorical),
  ``register_squared_error_loss`` and ``register_normal_predictive_distribution(variance=1)``
  (Gaussian), ``register_sigmoid_cross_entropy_loss`` (Bernoulli);
* estimates the curvature with ``kfac_jax.BlockDiagonalCurvature`` in the estimation modes
  ``fisher_exact``, ``ggn_exact``, ``fisher_empirical`` (deterministic: compared to a
  fisherlab result after the documented scalar mapping) and ``fisher_gradients``,
  ``fisher_curvature_prop``, ``ggn_curvature_prop`` (Monte-Carlo: compared statistically with
  the exact factors and with fisherlab's ``fisher_type="mc"``), one EMA step from zero
  (``ema_old=0, ema_new=1``), so the block state holds exactly this batch's statistics;
* maps fisherlab's K-FAC matrix with the preset ``Problem.reference("kfac",
  convention="kfac-jax")`` (``fisherlab/testing/_peer_conventions.py``) and compares each
  layer's block with kfac-jax's, unmapped (rows with factor ``pre``);
* reads the Kronecker factors ``state.blocks_states[k].factors[0]`` (inputs, ``[a; 1]``) and
  ``factors[1]`` (pre-activation gradients) of each ``DenseTwoKroneckerFactored`` block and
  prints ``rel = ||mapped(kfac-jax) - fisherlab||_F / ||fisherlab||_F`` per layer / likelihood /
  mode / factor;
* compares a LayerNorm's / RMSNorm's scale-and-shift block (``register_scale_and_shift``,
  ``ScaleAndShiftFull`` and ``ScaleAndShiftDiagonal``, ``fisher_exact``) with fisherlab's
  ``ExactBlock`` (:func:`compare_norm_blocks`);
* times factor estimation for both on the MLP 512-512-512-10, N = 512, float64, categorical:
  fisherlab's public ``fl.kfac.factors`` (validation and finiteness checks included) against
  kfac-jax's jitted ``update_curvature_matrix_estimate``, for ``exact``/``fisher_exact``,
  ``mc``/``fisher_gradients`` (one sample) and ``empirical``/``fisher_empirical``; two untimed
  calls each (compilation), then ``--repeats`` interleaved rounds (fisherlab, kfac-jax, ...),
  the number of compilations during the rounds (0), wall-clock and CPU-time medians, their
  ratios, the load average before and after, and the agreement of the two results.

Everything runs in float64 (``jax_enable_x64``) for both libraries.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

try:
    import kfac_jax  # noqa: E402
except ImportError as exc:  # pragma: no cover - environment guard
    sys.exit(f"kfac_jax is not importable ({exc}); run this with the venv of "
             "scripts/kfac_jax_env.sh: /tmp/fisherlab-kfacjax/bin/python " + __file__)

import fisherlab as fl  # noqa: E402

F64 = jnp.float64

# --------------------------------------------------------------------------- models


ACT = {"tanh": (fl.nn.Tanh, jnp.tanh), "relu": (fl.nn.ReLU, jax.nn.relu),
       "sigmoid": (fl.nn.Sigmoid, jax.nn.sigmoid)}


def make_models(widths, act):
    """The fisherlab ``Sequential`` (Dense layers of ``widths``, ``act`` between them)."""
    fl_act, _ = ACT[act]
    layers = []
    for i, (din, dout) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(fl.nn.Dense(din, dout))
        if i < len(widths) - 2:
            layers.append(fl_act())
    return fl.nn.Sequential(layers)


def to_kfac_jax_params(params):
    """fisherlab ``[(W (out,in), b)]`` -> kfac-jax dense layout ``[(w (in,out), b)]``."""
    return [(W.T, b) for W, b in params]


def kj_forward(params_kj, x, act, register=True):
    """Hand-written forward pass; each dense layer tagged with ``kfac_jax.register_dense``."""
    _, fn = ACT[act]
    h = x
    for i, (w, b) in enumerate(params_kj):
        s = h @ w + b
        if register:
            s = kfac_jax.register_dense(s, h, w, b)
        h = fn(s) if i < len(params_kj) - 1 else s
    return h


# Loss registrations. Each returns the loss value kfac-jax assumes (sum over outputs,
# mean over the batch, times `weight`), so that the function is a proper loss too.
def loss_categorical(out, y):
    kfac_jax.register_softmax_cross_entropy_loss(out, y)
    logp = jax.nn.log_softmax(out)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def loss_squared_error(out, y):
    kfac_jax.register_squared_error_loss(out, y)  # weight 1: sum (y - f)^2 / N  (= 2 x Gaussian)
    return jnp.sum((y - out) ** 2) / out.shape[0]


def loss_normal_var1(out, y):
    kfac_jax.register_normal_predictive_distribution(out, y, variance=1.0)
    return 0.5 * jnp.sum((y - out) ** 2) / out.shape[0]


def loss_bernoulli(out, y):
    kfac_jax.register_sigmoid_cross_entropy_loss(out, y)
    return jnp.sum(jax.nn.softplus(out) - y * out) / out.shape[0]


# name -> (fisherlab likelihood, kfac-jax loss, target maker, exact-G scale, empirical-G scale(N))
# "scale" s means  G_kfacjax = s * G_fisherlab  (A is never rescaled); see docs/peers/kfac_jax.md.
LIKELIHOODS = {
    "categorical": (lambda: fl.Categorical(), loss_categorical,
                    lambda k, n, c: jax.random.randint(k, (n,), 0, c),
                    1.0, lambda n: 1.0 / n),
    "gaussian/squared_error(w=1)": (lambda: fl.Gaussian(), loss_squared_error,
                                    lambda k, n, c: jax.random.normal(k, (n, c), F64),
                                    2.0, lambda n: 4.0 / n),
    "gaussian/normal(var=1)": (lambda: fl.Gaussian(), loss_normal_var1,
                               lambda k, n, c: jax.random.normal(k, (n, c), F64),
                               1.0, lambda n: 1.0 / n),
    "bernoulli": (lambda: fl.Bernoulli(), loss_bernoulli,
                  lambda k, n, c: jax.random.bernoulli(k, 0.5, (n, c)).astype(F64),
                  1.0, lambda n: 1.0 / n),
}


#: the registrations that fisherlab.testing's "kfac-jax" preset describes
PRESET_LIKELIHOODS = ("categorical", "gaussian/squared_error(w=1)", "bernoulli")


# --------------------------------------------------------------------------- kfac-jax side


def kj_estimator(loss_fn, act, mode, num_samples=1, auto=False):
    if auto:
        def func(params_kj, batch):
            x, y = batch
            return loss_fn(kj_forward(params_kj, x, act, register=False), y)
    else:
        def func(params_kj, batch):
            x, y = batch
            return loss_fn(kj_forward(params_kj, x, act), y)
    return kfac_jax.BlockDiagonalCurvature(
        func, default_estimation_mode=mode, auto_register_tags=auto, num_samples=num_samples)


def kj_factors_fn(estimator, params_kj, batch, mode, rng, dense=False):
    """A jitted function ``(params_kj, batch, rng) -> [(A, G), ...]`` (one EMA step from 0).

    With ``dense=True`` it returns ``(factors, blocks)``, ``blocks`` the dense layer blocks of
    kfac-jax's own ``to_diagonal_block_dense_matrix`` (its parameter order: ``w (in,out)``
    row-major, then ``b``).
    """
    n = batch[0].shape[0]
    state0 = estimator.init(rng, (params_kj, batch), None, None)
    for blk in estimator.blocks:
        assert isinstance(blk, kfac_jax.DenseTwoKroneckerFactored), type(blk)

    @jax.jit
    def run(params_kj, batch, rng):
        st = estimator.update_curvature_matrix_estimate(
            state0, ema_old=0.0, ema_new=1.0, identity_weight=0.0, batch_size=n, rng=rng,
            func_args=(params_kj, batch), estimation_mode=mode)
        facs = [(b.factors[0].value, b.factors[1].value) for b in st.blocks_states]
        if dense:
            return facs, estimator.to_diagonal_block_dense_matrix(st)
        return facs

    return run


# --------------------------------------------------------------------------- norm blocks


def compare_norm_blocks():
    """A norm's scale-and-shift block: kfac-jax's ``ScaleAndShiftFull`` (and its default
    ``ScaleAndShiftDiagonal``) against fisherlab's ``ExactBlock``, exact Fisher.

    Model: a norm over ``d`` features of per-token inputs ``(N, R, d)`` followed by a fixed
    ``Dense(d, C)`` head (a constant on the kfac-jax side, so the norm is its only tagged
    layer), categorical per-token targets ``(N, R)`` with the logits ``(N, R, C)`` registered as
    they are, loss = mean over examples of the summed token losses (fisherlab ``tokens="sum"``).
    kfac-jax tags ``y = x_hat * scale + shift`` with ``register_scale_and_shift`` (``x_hat`` the
    normalised input); its per-example gradients sum over the token axis and the block is
    divided by ``N``: fisherlab's definition. For ``R > 1`` the block is also compared with
    ``(1/N) sum_n sum_(r,c) u u^T``, ``u = J_n^T f_(r,c)`` built from the model's Jacobian
    ``J_n`` and the columns ``f_(r,c) = sqrt(p_rc) e_(r,c) - sqrt(p_rc) p`` that kfac-jax's
    ``fisher_exact`` mode uses for logits with a token axis (``p`` all ``R`` tokens'
    probabilities): the exact Fisher's columns carry ``- sqrt(p_rc) p_r`` on token ``r`` only.
    Returns ``[(norm, R, block class, rel err to fisherlab, rel err to the columns), ...]``.
    """
    N, d, C = 4, 5, 3
    rows = []
    for R in (1, 3):
        for name, layer in (("LayerNorm", fl.nn.LayerNorm(d)),
                            ("RMSNorm", fl.nn.RMSNorm(d, eps=1e-6))):
            rows += _norm_rows(name, layer, N, R, d, C)
    return rows


def _norm_rows(name, layer, N, R, d, C):
    model = fl.nn.Sequential([layer, fl.nn.Dense(d, C)])
    k1, k2, k3, k4 = jax.random.split(jax.random.key(5), 4)
    params = model.init(k1)
    norm_p = tuple(p + 0.3 * jax.random.normal(k4, p.shape, F64) for p in params[0])
    params = [norm_p, params[1]]
    x = jax.random.normal(k2, (N, R, d), F64)
    y = jax.random.randint(k3, (N, R), 0, C)
    W, b = params[1]
    eps, has_shift = layer.eps, name == "LayerNorm"

    def func(norm_kj, batch):
        xb, yb = batch
        if has_shift:
            xc = xb - jnp.mean(xb, axis=-1, keepdims=True)
            xh = xc / jnp.sqrt(jnp.mean(xc ** 2, axis=-1, keepdims=True) + eps)
            h = xh * norm_kj[0] + norm_kj[1]
            h = kfac_jax.register_scale_and_shift(h, xh, norm_kj[0], norm_kj[1])
        else:
            xh = xb / jnp.sqrt(jnp.mean(xb ** 2, axis=-1, keepdims=True) + eps)
            h = kfac_jax.register_scale_and_shift(xh * norm_kj[0], xh, norm_kj[0], None)
        out = h @ W.T + b
        kfac_jax.register_softmax_cross_entropy_loss(out, yb)
        return loss_categorical_tokens(out, yb)

    B = np.asarray(fl.kfac.factors(model, params, x, y, fl.Categorical())[0].B)
    cols = _replicated_column_block(model, params, x) if R > 1 else None
    rows = []
    for cls in (kfac_jax.ScaleAndShiftFull, kfac_jax.ScaleAndShiftDiagonal):
        est = kfac_jax.BlockDiagonalCurvature(
            func, default_estimation_mode="fisher_exact",
            layer_tag_to_block_ctor=dict(scale_and_shift=cls))
        st0 = est.init(jax.random.key(0), (norm_p, (x, y)), None, None)
        st = est.update_curvature_matrix_estimate(
            st0, ema_old=0.0, ema_new=1.0, identity_weight=0.0, batch_size=N,
            rng=jax.random.key(1), func_args=(norm_p, (x, y)), estimation_mode="fisher_exact")
        [K] = est.to_diagonal_block_dense_matrix(st)
        full = cls is kfac_jax.ScaleAndShiftFull
        diag = (lambda M: M) if full else (lambda M: np.diag(np.diag(M)))
        rows.append((name, R, cls.__name__, rel(K, diag(B)),
                     rel(K, diag(cols)) if cols is not None else float("nan")))
    return rows


def _replicated_column_block(model, params, x):
    """``(1/N) sum_n sum_(r,c) (J_n^T f_(r,c)) (J_n^T f_(r,c))^T`` for the norm's parameters,
    ``f_(r,c)`` kfac-jax's columns for token-shaped logits (see :func:`compare_norm_blocks`)."""
    N, R = x.shape[:2]
    out = 0.0
    for n in range(N):
        def logits(norm_p, xn=x[n]):
            return model([norm_p, params[1]], xn)
        Jn = jax.jacobian(logits)(params[0])
        C = Jn[0].shape[1]
        Jn = jnp.concatenate([j.reshape(R * C, -1) for j in Jn], axis=1)
        p = jax.nn.softmax(logits(params[0]), axis=-1)
        for r in range(R):
            for c in range(C):
                f = (-jnp.sqrt(p[r, c]) * p).at[r, c].add(jnp.sqrt(p[r, c]))
                u = Jn.T @ f.reshape(-1)
                out = out + jnp.outer(u, u)
    return np.asarray(out) / N


def loss_categorical_tokens(out, y):
    """Mean over examples of the summed token losses."""
    logp = jax.nn.log_softmax(out, axis=-1)
    return -jnp.sum(jnp.take_along_axis(logp, y[..., None], -1)) / out.shape[0]


# --------------------------------------------------------------------------- comparison


def kj_to_fl_permutation(din, dout):
    """``p`` with ``p[i_fisherlab] = i_kfacjax`` for one dense layer's ``W, b``.

    fisherlab: ``W (out,in)`` row-major (``W[j,i]`` at ``j*in + i``) then ``b``;
    kfac-jax: ``w = W^T (in,out)`` row-major (``w[i,j]`` at ``i*out + j``) then ``b``.
    """
    j, i = np.meshgrid(np.arange(dout), np.arange(din), indexing="ij")
    return np.concatenate([(i * dout + j).ravel(), din * dout + np.arange(dout)])


def fl_blocks(factors, model):
    """Per-layer dense blocks of ``fl.kfac.matrix`` (fisherlab parameter order)."""
    M = np.asarray(fl.kfac.matrix(factors, model, bias="augmented"))
    out, off = [], 0
    for f in factors:
        d = f.A.shape[0] * f.G.shape[0]
        out.append(M[off:off + d, off:off + d])
        off += d
    assert off == M.shape[0]
    return out


def rel(x, y):
    x, y = np.asarray(x), np.asarray(y)
    return float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-300))


def compare_small(rows, S_mc):
    """Deterministic + statistical agreement on small MLPs; appends result rows."""
    configs = [("mlp 6-8-5-4 tanh", [6, 8, 5, 4], "tanh", 32),
               ("mlp 5-7-3 relu", [5, 7, 3], "relu", 48)]
    for cname, widths, act, N in configs:
        model = make_models(widths, act)
        params = model.init(jax.random.key(0))
        pkj = to_kfac_jax_params(params)
        x = jax.random.normal(jax.random.key(1), (N, widths[0]), F64)
        C = widths[-1]
        for lname, (mk_lik, loss_fn, mk_y, s_exact, s_emp) in LIKELIHOODS.items():
            lik = mk_lik()
            y = mk_y(jax.random.key(2), N, C)
            batch = (x, y)
            ref = {ft: fl.kfac.factors(model, params, x, y, lik, fisher_type=ft,
                                       bias="augmented")
                   for ft in ("exact", "empirical")}
            # fisherlab.testing's kfac-jax preset: fisherlab's K-FAC mapped to kfac-jax's
            # layout and scaling (compared unmapped with kfac-jax's block, rows "pre")
            if lname in PRESET_LIKELIHOODS:
                prob = fl.testing.Problem(model, params, x, y, lik)
                preset = {ft: prob.reference("kfac", convention="kfac-jax", fisher_type=ft)
                          for ft in ("exact", "empirical")}
            # deterministic modes
            for mode, ft, scale in (("fisher_exact", "exact", s_exact),
                                    ("ggn_exact", "exact", s_exact),
                                    ("fisher_empirical", "empirical", s_emp(N))):
                est = kj_estimator(loss_fn, act, mode)
                kjf, kjb = kj_factors_fn(est, pkj, batch, mode, jax.random.key(3), dense=True)(
                    pkj, batch, jax.random.key(3))
                flb = fl_blocks(ref[ft], model)
                for k, ((A, G), r, B, Bfl) in enumerate(zip(kjf, ref[ft], kjb, flb)):
                    rows.append((cname, lname, mode, ft, k, "A", rel(A, r.A), "1"))
                    rows.append((cname, lname, mode, ft, k, "G", rel(G / scale, r.G),
                                 _fmt_scale(scale, N)))
                    p = kj_to_fl_permutation(widths[k], widths[k + 1])
                    rows.append((cname, lname, mode, ft, k, "blk",
                                 rel(np.asarray(B)[np.ix_(p, p)] / scale, Bfl),
                                 _fmt_scale(scale, N)))
                    if lname in PRESET_LIKELIHOODS:  # the preset maps the whole matrix
                        s0 = sum(b.shape[0] for b in flb[:k])
                        sl = slice(s0, s0 + Bfl.shape[0])
                        rows.append((cname, lname, mode, ft, k, "pre",
                                     rel(np.asarray(B), preset[ft][sl, sl]), "1"))
            # automatic graph scanning instead of manual register_dense (exact mode)
            if lname == "categorical":
                est = kj_estimator(loss_fn, act, "fisher_exact", auto=True)
                kjf = kj_factors_fn(est, pkj, batch, "fisher_exact", jax.random.key(3))(
                    pkj, batch, jax.random.key(3))
                for k, ((A, G), r) in enumerate(zip(kjf, ref["exact"])):
                    rows.append((cname, lname, "fisher_exact[auto-tags]", "exact", k, "A",
                                 rel(A, r.A), "1"))
                    rows.append((cname, lname, "fisher_exact[auto-tags]", "exact", k, "G",
                                 rel(G / s_exact, r.G), _fmt_scale(s_exact, N)))
            # Monte-Carlo modes: S samples per example; compare with the exact factors
            fl_mc = fl.kfac.factors(model, params, x, y, lik, fisher_type="mc",
                                    key=jax.random.key(4), num_samples=S_mc)
            for k, (m, r) in enumerate(zip(fl_mc, ref["exact"])):
                rows.append((cname, lname, f"fisherlab mc S={S_mc}", "exact", k, "G",
                             rel(m.G, r.G), "1"))
            for mode in ("fisher_gradients", "fisher_curvature_prop", "ggn_curvature_prop"):
                est = kj_estimator(loss_fn, act, mode, num_samples=S_mc)
                kjf = kj_factors_fn(est, pkj, batch, mode, jax.random.key(5))(
                    pkj, batch, jax.random.key(5))
                for k, ((A, G), r, m) in enumerate(zip(kjf, ref["exact"], fl_mc)):
                    rows.append((cname, lname, f"{mode} S={S_mc}", "exact", k, "A",
                                 rel(A, r.A), "1"))
                    rows.append((cname, lname, f"{mode} S={S_mc}", "exact", k, "G",
                                 rel(G / s_exact, r.G), _fmt_scale(s_exact, N)))
                    if mode == "fisher_gradients":
                        rows.append((cname, lname, f"{mode} S={S_mc}", "mc (fisherlab)", k,
                                     "G", rel(G / s_exact, m.G), _fmt_scale(s_exact, N)))


def _fmt_scale(scale, N):
    if abs(scale - 1.0) < 1e-15:
        return "1"
    if abs(scale * N - round(scale * N)) < 1e-9 and round(scale * N) in (1, 4):
        return f"{round(scale * N)}/N"
    return f"{scale:g}"


def _median(ts):
    return float(np.median(ts))


def _max_rel(pairs):
    return max(rel(a, b) for a, b in pairs)


def timing(repeats):
    """Interleaved timing of both libraries on the MLP 512-512-512-10, N = 512 (categorical).

    For each fisherlab type and its kfac-jax mode: one warm-up call of each (compiles), one
    more untimed call of each, then ``repeats`` rounds of (fisherlab, kfac-jax), each call
    timed by wall clock and by this process's CPU time and synchronised with
    ``block_until_ready``. The number of XLA compilations during the timed rounds is counted
    (it must be 0 for both). fisherlab is timed through its public ``fl.kfac.factors`` (input
    validation and finiteness checks included); kfac-jax through its jitted
    ``update_curvature_matrix_estimate`` from a fresh state. Returns one row per type with the
    medians and the agreement of the two results after the convention map.
    """
    widths, act, N = [512, 512, 512, 10], "tanh", 512
    model = make_models(widths, act)
    params = model.init(jax.random.key(0))
    pkj = to_kfac_jax_params(params)
    x = jax.random.normal(jax.random.key(1), (N, widths[0]), F64)
    y = jax.random.randint(jax.random.key(2), (N,), 0, widths[-1])
    lik = fl.Categorical()
    key = jax.random.key(7)
    compiles = [0]
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, _secs, **_kw: compiles.__setitem__(0, compiles[0] + 1)
        if event == "/jax/core/compile/backend_compile_duration" else None)

    def timed(fn):
        c0, t0 = time.process_time(), time.perf_counter()
        out = jax.block_until_ready(fn())
        return out, time.perf_counter() - t0, time.process_time() - c0

    rows = []
    for ft, mode, g_scale in (("exact", "fisher_exact", 1.0), ("mc", "fisher_gradients", None),
                              ("empirical", "fisher_empirical", 1.0 / N)):
        def fl_call(ft=ft):
            return fl.kfac.factors(model, params, x, y, lik, fisher_type=ft,
                                   key=key if ft == "mc" else None)

        run = kj_factors_fn(kj_estimator(loss_categorical, act, mode, num_samples=1), pkj,
                            (x, y), mode, key)

        def kj_call(run=run):
            return run(pkj, (x, y), key)

        for _ in range(2):  # compile, then one more call with everything warm
            fl_out, kj_out = timed(fl_call)[0], timed(kj_call)[0]
        before = compiles[0]
        t_fl, t_kj, c_fl, c_kj = [], [], [], []
        for _ in range(repeats):  # interleaved: fisherlab, kfac-jax, fisherlab, ...
            _, w, c = timed(fl_call)
            t_fl.append(w)
            c_fl.append(c)
            _, w, c = timed(kj_call)
            t_kj.append(w)
            c_kj.append(c)
        recompiles = compiles[0] - before
        err_A = _max_rel((A, f.A) for (A, _), f in zip(kj_out, fl_out))
        err_G = (None if g_scale is None else
                 _max_rel((np.asarray(G) / g_scale, f.G) for (_, G), f in zip(kj_out, fl_out)))
        rows.append(dict(ft=ft, mode=mode, wall_fl=_median(t_fl), wall_kj=_median(t_kj),
                         cpu_fl=_median(c_fl), cpu_kj=_median(c_kj), err_A=err_A, err_G=err_G,
                         scale="1" if g_scale == 1.0 else ("1/N" if g_scale else "-"),
                         recompiles=recompiles))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=11,
                    help="interleaved timing rounds (default 11)")
    ap.add_argument("--mc-samples", type=int, default=256)
    ap.add_argument("--no-timing", action="store_true", help="only the agreement tables")
    ap.add_argument("--only-timing", action="store_true",
                    help="only the timing table (skip the small-model agreement tables)")
    args = ap.parse_args()

    print(f"jax {jax.__version__} | kfac_jax {kfac_jax.__version__} | fisherlab "
          f"{fl.__version__} | backend {jax.default_backend()} | x64 "
          f"{jax.config.read('jax_enable_x64')}")
    if not args.only_timing:
        print("rel = ||G_kfacjax/scale - G_fisherlab||_F / ||G_fisherlab||_F (A: scale 1); "
              "fisherlab: bias='augmented'\n")
        rows = []
        compare_small(rows, args.mc_samples)
        hdr = f"{'model':17s} {'likelihood':28s} {'kfac-jax mode':30s} {'fisherlab':15s} " \
              f"{'layer':>5s} {'fac':>3s} {'scale':>5s} {'rel err':>10s}"
        print(hdr)
        print("-" * len(hdr))
        for cname, lname, mode, ft, k, fac, err, scale in rows:
            print(f"{cname:17s} {lname:28s} {mode:30s} {ft:15s} {k:5d} {fac:>3s} {scale:>5s} "
                  f"{err:10.2e}")
        det = [r for r in rows if "S=" not in r[2]]
        print(f"\nmax rel err over the {len(det)} deterministic comparisons (A, G, dense block): "
              f"{max(r[6] for r in det):.2e}")
        print(f"Monte-Carlo G (S = {args.mc_samples} per example; error ~ 1/sqrt(S N), so it "
              "halves when S is multiplied by 4):")
        for mode in sorted({r[2] for r in rows if "S=" in r[2]}):
            for ref in ("exact", "mc (fisherlab)"):
                errs = [r[6] for r in rows if r[2] == mode and r[3] == ref and r[5] == "G"]
                if errs:
                    print(f"  {mode:32s} vs {ref:15s} median {np.median(errs):.2e}  "
                          f"max {max(errs):.2e}  ({len(errs)} layers)")

        print("\nNorm scale-and-shift block, kfac-jax fisher_exact vs fisherlab ExactBlock (exact, "
              "tokens='sum'); for R > 1 also vs the block of kfac-jax's token-shaped columns:")
        hdr = f"{'norm':10s} {'R':>2s} {'kfac-jax block':22s} {'vs fisherlab':>13s} " \
              f"{'vs columns':>11s}"
        print(hdr)
        print("-" * len(hdr))
        for name, R, cls, e_fl, e_cols in compare_norm_blocks():
            cols = f"{e_cols:11.2e}" if np.isfinite(e_cols) else f"{'-':>11s}"
            print(f"{name:10s} {R:2d} {cls:22s} {e_fl:13.2e} {cols}")

    if not args.no_timing:
        load0 = os.getloadavg()
        rows = timing(args.repeats)
        load1 = os.getloadavg()
        print(f"\nTiming: MLP 512-512-512-10 tanh, N = 512, categorical, float64, backend "
              f"{jax.default_backend()}, {os.cpu_count()} cpus; {args.repeats} interleaved "
              f"rounds (fisherlab, kfac-jax) after two untimed calls each; medians.")
        print(f"load average (1, 5, 15 min): before {_fmt_load(load0)}, after "
              f"{_fmt_load(load1)}")
        hdr = (f"{'fisherlab':10s} {'kfac-jax mode':17s} {'fisherlab s':>11s} {'kfac-jax s':>11s} "
               f"{'ratio':>6s} {'cpu fl s':>9s} {'cpu kj s':>9s} {'ratio':>6s} "
               f"{'max rel A':>10s} {'max rel G':>10s} {'G scale':>7s} {'recompiles':>10s}")
        print(hdr)
        print("-" * len(hdr))
        for r in rows:
            g = "indep." if r["err_G"] is None else f"{r['err_G']:.2e}"
            print(f"{r['ft']:10s} {r['mode']:17s} {r['wall_fl']:11.4f} {r['wall_kj']:11.4f} "
                  f"{r['wall_kj'] / r['wall_fl']:6.2f} {r['cpu_fl']:9.4f} {r['cpu_kj']:9.4f} "
                  f"{r['cpu_kj'] / r['cpu_fl']:6.2f} {r['err_A']:10.2e} {g:>10s} "
                  f"{r['scale']:>7s} {r['recompiles']:10d}")
        print("ratio = kfac-jax time / fisherlab time (wall clock, then this process's CPU "
              "time); > 1 means fisherlab is faster.")
        print("max rel = max over layers of ||mapped kfac-jax - fisherlab||_F / ||fisherlab||_F; "
              "mc: A is deterministic, G of S = 1 draw is compared statistically above.")


def _fmt_load(load):
    return "(" + ", ".join(f"{v:.2f}" for v in load) + ")"


if __name__ == "__main__":
    main()
