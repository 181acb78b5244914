"""K-FAC factor formulas: ``A`` or ``G`` built from the wrong per-layer quantity.

The factors are recomputed from the per-layer quantities of :mod:`._network` (NumPy, float64)
in every setting -- ``bias`` augmented/separate, ``G`` exact (``E_y[g g^T]`` through
``F_out``) or empirical (data labels), ``approx`` expand/reduce when a layer is shared over
``P > 1`` positions -- and the setting whose factors reproduce ``desired`` (up to one scalar
``c0``, the problem's scaling) is the one ``desired`` was computed in. Each wrong formula is then
the same computation with one ingredient replaced, scaled by ``c0``, and tested exactly
(``kfac_factor_formula``):

* ``G`` from the gradients with respect to the post-activations ``phi(s)`` (the layer output
  after its activation) instead of the pre-activations ``s``;
* ``A`` from the pre-activations of the previous layer instead of its activations;
* ``A`` without the homogeneous coordinate: ``[a; 0]`` for ``[a; 1]`` (the bias block empty);
* the factor of the other weight-sharing approximation (expand where reduce was expected, or
  the other way round).

On the dense ``kfac`` matrix each formula is applied to every layer (a systematic bug) and the
matrix assembled with :func:`fisherlab.kfac.matrix`. The same machinery serves the activation
and output-matrix families (:func:`assemble`).

References:
  J. Martens, R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
  curvature", ICML 2015; R. Eschenhagen, A. Immer, R. E. Turner, F. Schneider, P. Hennig,
  "Kronecker-factored approximate curvature for modern neural network architectures",
  NeurIPS 2023.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from fisherlab import kfac as _fl_kfac
from fisherlab.kfac._layers import blocks as kfac_blocks
from fisherlab.testing._compare import relative_error
from fisherlab.testing._diagnose import _network
from fisherlab.testing._diagnose._finding import fit

__all__ = ["Setting", "assemble", "a_factor", "g_factor", "run", "setting"]


def a_factor(a, bias, approx, homogeneous=1.0):
    """``A`` from inputs ``a (N, P, in')``."""
    N, P = a.shape[:2]
    if bias == "augmented":
        a = np.concatenate([a, np.full(a.shape[:-1] + (1,), homogeneous)], -1)
    if approx == "expand":
        return np.einsum("npi,npj->ij", a, a) / (N * P)
    m = a.mean(axis=1)
    return np.einsum("ni,nj->ij", m, m) / N


def g_factor(J, M, approx):
    """``G`` from output Jacobians ``J (N, K, P, out)`` and output matrices ``M (N, K, K)``."""
    N = J.shape[0]
    if approx == "expand":
        return np.einsum("nkpi,nkl,nlpj->ij", J, M, J) / N
    Js = J.sum(axis=2)
    return np.einsum("nki,nkl,nlj->ij", Js, M, Js) / N


@dataclasses.dataclass
class Setting:
    """The K-FAC setting ``desired`` was computed in, and its factors (unscaled)."""

    what: str  # "A", "G" or "kfac"
    layer: int | None
    bias: str
    fisher_type: str
    approx: str
    c0: float
    A: list
    G: list

    @property
    def output_kind(self):
        return "fisher" if self.fisher_type == "exact" else "empirical"


def _approxes(L):
    return ("expand", "reduce") if any(a.shape[1] > 1 for a in L["a"]) else ("expand",)


def _match(Y, Z, tol):
    if Z.shape != Y.shape:
        return None
    c, res = fit(Y, Z)
    return c if c is not None and c > 0 and res <= tol else None


def setting(ctx):
    """The :class:`Setting` of ``desired`` (cached on the context), or None."""
    if hasattr(ctx, "_kfac_setting"):
        return ctx._kfac_setting
    ctx._kfac_setting = st = _infer(ctx)
    return st


def _infer(ctx):
    q, problem = ctx.quantity, ctx.problem
    if problem is None or problem.model is None or q not in ("kfac", "kfac_factor_A",
                                                               "kfac_factor_G"):
        return None
    L = _layers(problem)
    if L is None:
        return None
    Ms = {"exact": _network.output_matrices(problem, "fisher")}
    try:
        Ms["empirical"] = _network.output_matrices(problem, "empirical")
    except (TypeError, ValueError):
        pass
    approxes = _approxes(L)
    nl = len(L["a"])
    if q == "kfac_factor_A":
        for k, bias, approx in itertools.product(range(nl), ("augmented", "separate"), approxes):
            A = a_factor(L["a"][k], bias, approx)
            c0 = _match(ctx.Y, A, ctx.tol)
            if c0 is not None:
                As = [a_factor(a, bias, approx) for a in L["a"]]
                return Setting("A", k, bias, "exact", approx, c0, As, [None] * nl)
        return None
    if q == "kfac_factor_G":
        for k, ft, approx in itertools.product(range(nl), Ms, approxes):
            c0 = _match(ctx.Y, g_factor(L["Js"][k], Ms[ft], approx), ctx.tol)
            if c0 is not None:
                Gs = [g_factor(J, Ms[ft], approx) for J in L["Js"]]
                return Setting("G", k, "augmented", ft, approx, c0, [None] * nl, Gs)
        return None
    for bias, ft, approx in itertools.product(("augmented", "separate"), Ms, approxes):
        As = [a_factor(a, bias, approx) for a in L["a"]]
        Gs = [g_factor(J, Ms[ft], approx) for J in L["Js"]]
        st = Setting("kfac", None, bias, ft, approx, 1.0, As, Gs)
        c0 = _match(ctx.Y, assemble(ctx, st, As, Gs), ctx.tol)
        if c0 is not None:
            st.c0 = c0
            return st
    return None


def assemble(ctx, st, As=None, Gs=None):
    """The quantity of setting ``st`` from factor lists (None: the setting's own), times ``c0``."""
    As = st.A if As is None else As
    Gs = st.G if Gs is None else Gs
    if st.what == "A":
        return st.c0 * As[st.layer]
    if st.what == "G":
        return st.c0 * Gs[st.layer]
    facs = [_fl_kfac.KFACFactors(A, G) for A, G in zip(As, Gs)]
    return st.c0 * np.asarray(_fl_kfac.matrix(facs, ctx.problem.model, bias=st.bias))


def g_list(st, Js, M, approx=None):
    """``G`` of every layer from Jacobians ``Js`` and output matrices ``M``."""
    return [g_factor(J, M, approx or st.approx) for J in Js]


def _previous_preacts(problem, L, k):
    """The pre-activations of layer ``k - 1`` when only elementwise layers separate them."""
    if k == 0:
        return None
    layers = problem.model.layers
    idx = [i for i, l in enumerate(layers) if l.has_params]
    between = layers[idx[k - 1] + 1:idx[k]]
    if not all(isinstance(l, _network._ELEMENTWISE) for l in between):
        return None
    s = L["s"][k - 1]
    return s if s.shape == L["a"][k].shape else None


def _by_reference(ctx):
    """For a model whose layers the factor formulas above do not take apart (token models:
    Embedding, attention, norms, Residual blocks): find desired's setting among fisherlab's
    own K-FAC references, then test the other weight-sharing approximation."""
    q, problem = ctx.quantity, ctx.problem
    if problem is None or problem.model is None or q not in ("kfac", "kfac_factor_A",
                                                               "kfac_factor_G"):
        return
    layers = [None] if q == "kfac" else range(len(kfac_blocks(problem.model)))
    for k, ft, approx in itertools.product(layers, ("exact", "empirical"), ("expand", "reduce")):
        opts = {"fisher_type": ft} if k is None else {"fisher_type": ft, "layer": k}
        Z = ctx.ref(q, approx=approx, **opts)  # None for a norm's ExactBlock
        c0 = None if Z is None else _match(ctx.Y, Z, ctx.tol)
        if c0 is None:
            continue
        other = "reduce" if approx == "expand" else "expand"
        Zo = ctx.ref(q, approx=other, **opts)
        if Zo is not None:
            layer_txt = "" if k is None else f" (block {k})"
            ctx.col.test("kfac_factor_formula", c0 * np.asarray(Zo),
                         f"K-FAC-{other} where K-FAC-{approx} was expected (the weight-sharing "
                         f"scaling of Eschenhagen et al., 2023){layer_txt}", 43,
                         data={"formula": f"{other}_for_{approx}"})
        return


def _layers(problem):
    """``_network.layers(problem)``, or None for layers it does not take apart (token models)."""
    try:
        return _network.layers(problem)
    except (TypeError, ValueError, NotImplementedError):
        return None


def run(ctx):
    st = setting(ctx)
    if st is None:
        if ctx.problem is not None and ctx.problem.model is not None \
                and _layers(ctx.problem) is None:
            _by_reference(ctx)
        return
    problem, col = ctx.problem, ctx.col
    L = _network.layers(problem)
    nl = len(L["a"])
    layer_txt = "" if st.what == "kfac" else f" (layer {st.layer})"
    if st.what in ("G", "kfac"):
        M = _network.output_matrices(problem, "fisher" if st.fisher_type == "exact"
                                     else "empirical")
        Gs = g_list(st, L["Ja"], M)
        col.test("kfac_factor_formula", assemble(ctx, st, Gs=Gs),
                 f"K-FAC with G built from the gradients with respect to the post-activations "
                 f"phi(s) (the layer outputs after the activation) instead of the "
                 f"pre-activations s{layer_txt}", 40, data={"formula": "G_post_activation"})
    if st.what in ("A", "kfac"):
        pre = [_previous_preacts(problem, L, k) for k in range(nl)]
        if any(p is not None for p in pre):
            As = [st.A[k] if p is None else a_factor(p, st.bias, st.approx)
                  for k, p in enumerate(pre)]
            col.test("kfac_factor_formula", assemble(ctx, st, As=As),
                     f"K-FAC with A built from the pre-activations of the previous layer "
                     f"instead of its activations (the inputs phi(s)){layer_txt}", 41,
                     data={"formula": "A_pre_activation"})
        if st.bias == "augmented":
            As = [a_factor(a, st.bias, st.approx, homogeneous=0.0) for a in L["a"]]
            col.test("kfac_factor_formula", assemble(ctx, st, As=As),
                     f"K-FAC with A built from [a; 0] instead of the augmented input [a; 1] "
                     f"(the homogeneous coordinate 1 missing: empty bias rows){layer_txt}", 42,
                     data={"formula": "A_without_homogeneous_coordinate"})
    if len(_approxes(L)) > 1:
        other = "reduce" if st.approx == "expand" else "expand"
        As = [a_factor(a, st.bias, other) for a in L["a"]]
        Gs = None
        if st.what != "A":
            M = _network.output_matrices(problem, st.output_kind)
            Gs = g_list(st, L["Js"], M, approx=other)
        for which, (A_, G_) in (("A", (As, None)), ("G", (None, Gs)), ("A and G", (As, Gs))):
            if (st.what == "A" and which != "A") or (st.what == "G" and which != "G"):
                continue
            col.test("kfac_factor_formula", assemble(ctx, st, As=A_, Gs=G_),
                     f"K-FAC-{other} {which} where K-FAC-{st.approx} was expected (the "
                     f"weight-sharing scaling of Eschenhagen et al., 2023){layer_txt}", 43,
                     data={"formula": f"{which}_{other}_for_{st.approx}"})


def check_against_reference(ctx, st) -> float:
    """Relative error of the recomputed factors against fisherlab's ``kfac.factors`` (a test hook)."""
    p = ctx.problem
    ref = _fl_kfac.factors(p.model, p.params, p.x, p.y, p.likelihood, bias=st.bias,
                           fisher_type=st.fisher_type, approx=st.approx)
    errs = [relative_error(A, np.asarray(r.A)) for A, r in zip(st.A, ref) if A is not None]
    errs += [relative_error(G, np.asarray(r.G)) for G, r in zip(st.G, ref) if G is not None]
    return max(errs)
