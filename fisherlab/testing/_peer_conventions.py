"""Peer convention presets: how other curvature libraries' results relate to fisherlab's.

The one place where the peers' conventions are written down: :meth:`Problem.reference` applies
them (``convention="curvlinops"``), :func:`fisherlab.testing.diagnose` names them when a
candidate matches one, and the documentation's peer table is rendered from the same entries.

A preset maps fisherlab's float64 reference on a problem to what the library returns on the
same model, parameters and data. Write the library's per-example loss as ``kappa`` times
fisherlab's negative log-likelihood and its batch normaliser as ``R_n`` (``N``, ``N C`` for a
mean over all output entries, or 1 for a sum). With ``F`` fisherlab's reference for the *mean*
reduction (``reduction="mean"``):

* curvature (``hessian``, ``ggn``, ``fisher``, K-FAC ``exact``/``mc`` and its ``G``):
  ``kappa N / R_n * F``;
* gradient outer products (``empirical_fisher``, ``gradient_covariance``, K-FAC
  ``empirical`` and its ``G``): ``kappa_e N / R_n * F`` when the library normalises the
  per-example gradients' outer products once (``empirical="once"``), or ``kappa_e N / R_n^2 *
  F`` when it takes the outer products of the gradients of the *reduced* loss's terms
  (``empirical="reduced"``), ``kappa_e`` being ``kappa^2`` except where stated;
* a Gaussian's declared variance ``v``: no peer's loss carries it (unit-variance or squared
  error losses), so the Gaussian factors above are multiplied by ``v`` (curvature) and ``v^2``
  (gradient outer products);
* K-FAC's bias: ``"separate"`` (no weight-bias cross terms) or ``"augmented"``;
* weight layout: ``"out_in"`` (PyTorch, fisherlab) or ``"in_out"`` (``w`` of shape
  ``(in, out)``: the rows of every dense matrix are permuted accordingly; the K-FAC factors
  ``A`` and ``G`` are not).

Every preset supposes the parameters in fisherlab's order (per layer the weight, then the
bias); the evidence field says where each fact comes from -- *measured* (a test or script
compares the real library with these presets) or *read from the source*.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

__all__ = ["PEER_CONVENTIONS", "LossConvention", "PeerConvention", "applicable", "get",
           "layout_permutation", "problem_scale"]

_CURVATURE = ("hessian", "ggn", "fisher")
_OUTER = ("empirical_fisher", "gradient_covariance")


@dataclasses.dataclass(frozen=True)
class LossConvention:
    """The library's loss for one fisherlab likelihood.

    ``name``: the loss (``"MSELoss"``); ``kappa``/``kappa_empirical``: its per-example loss
    over fisherlab's negative log-likelihood, in the curvature and in gradient outer products
    (``kappa_empirical`` defaults to ``kappa**2``); ``over_outputs``: whether its mean also
    averages over the ``C`` outputs.
    """

    name: str
    kappa: float = 1.0
    kappa_empirical: float | None = None
    over_outputs: bool = False

    @property
    def kappa_e(self) -> float:
        return self.kappa ** 2 if self.kappa_empirical is None else self.kappa_empirical


@dataclasses.dataclass(frozen=True)
class PeerConvention:
    """A named map from fisherlab's reference to what a peer library returns on the same problem.

    With ``F`` fisherlab's reference for the mean reduction, the library's curvature is
    ``kappa N / R_n * F`` and its gradient outer products ``kappa_e N / R_n * F`` (``"once"``)
    or ``kappa_e N / R_n^2 * F`` (``"reduced"``), ``kappa`` the library's loss over the
    negative log-likelihood and ``R_n`` its batch normaliser; then its K-FAC bias and weight
    layout. Apply it with ``problem.reference(quantity, convention=name)``.

    Attributes:
      name: the preset's name (``convention=`` of :meth:`Problem.reference`).
      losses: fisherlab likelihood class name -> :class:`LossConvention`; a likelihood not
        listed is not offered by the library.
      reduction: ``"loss"`` (the problem's reduction is the loss's ``reduction``), or the
        library's fixed ``"mean"`` / ``"sum"``.
      empirical: ``"once"`` or ``"reduced"`` (module docstring).
      kfac_bias: ``"separate"`` | ``"augmented"``; weight_layout: ``"out_in"`` | ``"in_out"``.
      kfac_input: ``"mean"`` (K-FAC's ``A`` is the mean over examples whatever the reduction,
        as fisherlab's) or ``"reduced"`` (``A`` carries the reduction too: ``N`` times
        fisherlab's for a sum, so the K-FAC matrix of a sum is ``N`` times fisherlab's).
      library, doc_reduction, doc_squared_error, doc_parameters, doc_kfac, doc_to_fisherlab,
      evidence: the documentation table's text (docs/peer_conventions.py renders it).
    """

    name: str
    losses: Mapping[str, LossConvention] = dataclasses.field(repr=False)
    reduction: str
    empirical: str
    kfac_bias: str
    weight_layout: str
    library: str = dataclasses.field(repr=False)
    doc_reduction: str = dataclasses.field(repr=False)
    doc_squared_error: str = dataclasses.field(repr=False)
    doc_parameters: str = dataclasses.field(repr=False)
    doc_kfac: str = dataclasses.field(repr=False)
    doc_to_fisherlab: str = dataclasses.field(repr=False)
    evidence: str = dataclasses.field(repr=False)
    kfac_input: str = "mean"

    # ------------------------------------------------------------------ the map
    def loss(self, problem) -> LossConvention:
        lik = type(problem.likelihood).__name__
        if lik not in self.losses:
            raise ValueError(f"convention {self.name!r} offers no loss for the likelihood {lik} "
                             f"(it has: {', '.join(sorted(self.losses))})")
        return self.losses[lik]

    def factors(self, problem) -> tuple[float, float]:
        """``(curvature, outer)``: the scalars applied to fisherlab's reference *on this
        problem* (its reduction included) for curvature and gradient-outer-product quantities."""
        loss = self.loss(problem)
        n = _examples(problem, self.name)
        C = problem.num_outputs
        reduction = problem.reduction if self.reduction == "loss" else self.reduction
        if reduction == "mean":
            r_n = n * C if loss.over_outputs else n
        else:
            r_n = 1.0
        var = float(getattr(problem.likelihood, "variance", 1.0))
        curv = loss.kappa * var * n / r_n
        outer = loss.kappa_e * var ** 2 * n / (r_n if self.empirical == "once" else r_n ** 2)
        to_mean = 1.0 if problem.reduction == "mean" else 1.0 / n  # problem's reference -> mean
        return curv * to_mean, outer * to_mean

    def _input_scale(self, problem) -> float:
        """The factor on K-FAC's ``A`` (module docstring, ``kfac_input``)."""
        if self.kfac_input == "reduced" and problem.reduction == "sum":
            return float(_examples(problem, self.name))
        return 1.0

    def options(self, quantity, options) -> dict:
        """The reference options this preset fixes (K-FAC's bias), merged with ``options``."""
        out = dict(options)
        if quantity in ("kfac", "kfac_factor_A", "kfac_factor_G"):
            out.setdefault("bias", self.kfac_bias)
        return out

    def apply(self, problem, quantity, M, options) -> np.ndarray:
        """The library's ``quantity`` from fisherlab's reference ``M`` computed with
        :meth:`options`."""
        curv, outer = self.factors(problem)
        if quantity == "kfac_factor_G":  # fisherlab's factors are the mean whatever the reduction
            mean = 1.0 if problem.reduction == "mean" else float(_examples(problem, self.name))
            curv, outer = curv * mean, outer * mean
        empirical = options.get("fisher_type") == "empirical"
        if quantity in _OUTER or (quantity in ("kfac", "kfac_factor_G") and empirical):
            M = M * outer
        elif quantity != "kfac_factor_A":
            M = M * curv
        if quantity in ("kfac", "kfac_factor_A"):
            M = M * self._input_scale(problem)
        if self.weight_layout == "in_out" and quantity not in ("kfac_factor_A", "kfac_factor_G"):
            p = layout_permutation(problem, self.name)
            M = M[np.ix_(p, p)]
        return M

    def describe(self, problem, quantity, fisher_type=None) -> str:
        """One line: what this preset changes for ``quantity`` on ``problem``."""
        curv, outer = self.factors(problem)
        loss = self.loss(problem)
        parts = [f"{loss.name}"]
        c = outer if quantity in _OUTER or fisher_type == "empirical" else curv
        if quantity != "kfac_factor_A" and abs(c - 1.0) > 1e-12:
            parts.append(f"factor {_fraction(c)}")
        if quantity == "kfac" and self.kfac_bias != "augmented":
            parts.append(f"K-FAC bias {self.kfac_bias}")
        if self.weight_layout == "in_out" and quantity not in ("kfac_factor_A", "kfac_factor_G"):
            parts.append("weights stored (in, out)")
        return f"the {self.name} convention ({', '.join(parts)})"


def problem_scale(problem, quantity, fisher_type=None) -> float:
    """The factor ``problem.reference`` applies on top of fisherlab's own reference (1, or a
    PyTorch loss's scaling for a problem converted by ``fisherlab.testing.torch``)."""
    scales = getattr(problem, "_scales", {"curvature": 1.0, "empirical": 1.0})
    if quantity == "kfac_factor_A":
        return 1.0
    if quantity in _OUTER or fisher_type == "empirical":
        return float(scales["empirical"])
    return float(scales["curvature"])


def _examples(problem, name) -> int:
    """``N`` -- the ``N R`` tokens for a problem on flattened tokens; other token models are
    not covered by the presets."""
    tokens = getattr(problem, "tokens", None)
    R = problem.num_positions
    if tokens == "flatten":
        return problem.num_examples * R
    if R != 1:
        raise ValueError(f"convention {name!r} is defined for outputs (C,) or PyTorch losses on "
                         f"flattened tokens; this problem has R={R} output positions per example")
    return problem.num_examples


def _fraction(c: float) -> str:
    for den in range(1, 10001):
        num = c * den
        if abs(num - round(num)) < 1e-9 * max(1.0, abs(num)) and round(num) != 0:
            return f"{int(round(num))}" if den == 1 else f"{int(round(num))}/{den}"
    return f"{c:.6g}"


def layout_permutation(problem, name="this convention") -> np.ndarray:
    """``p`` with ``(in, out)``-layout matrix ``= M[np.ix_(p, p)]`` for fisherlab-layout ``M``:
    entry ``i * out + j`` of a weight stored ``(in, out)`` is fisherlab's ``W[j, i]``."""
    if getattr(problem, "model", None) is None:
        raise ValueError(f"{name} stores weights (in, out): needs a fl.nn.Sequential problem "
                         f"(its layers say which parameters are weights)")
    p = np.arange(problem.num_params)
    for leaf in problem.leaves():
        if leaf.role == "W" and len(leaf.shape) == 2:
            out, inp = leaf.shape
            block = np.arange(leaf.start, leaf.stop).reshape(out, inp)
            p[leaf.start:leaf.stop] = block.T.reshape(-1)
    return p


def _torch_losses(bce=True, poisson=False):
    out = {"Categorical": LossConvention("CrossEntropyLoss"),
           "Gaussian": LossConvention("MSELoss", kappa=2.0, over_outputs=True)}
    if bce:
        out["Bernoulli"] = LossConvention("BCEWithLogitsLoss", over_outputs=True)
    if poisson:
        out["Poisson"] = LossConvention("PoissonNLLLoss(log_input=True)", over_outputs=True)
    return out


class _Presets(dict):
    """The presets by name (a dict whose repr lists the names only)."""

    def __repr__(self) -> str:
        return f"<peer convention presets: {', '.join(self)}>"


#: the presets, by name
PEER_CONVENTIONS: dict[str, PeerConvention] = _Presets((c.name, c) for c in (
    PeerConvention(
        name="curvlinops", losses=_torch_losses(), reduction="loss", empirical="once",
        kfac_bias="separate", weight_layout="out_in",
        library="curvlinops (PyTorch)",
        doc_reduction="the loss's `reduction`: `mean` divides by N (`CrossEntropyLoss`) or by "
                      "N·C (`MSELoss`, `BCEWithLogitsLoss`: the mean over all entries); `sum` by 1",
        doc_squared_error="`MSELoss` without ½: output Hessian 2I",
        doc_parameters="the `params` list passed, usually `model.parameters()`: W (out, in) "
                       "row-major, then b — fisherlab's order",
        doc_kfac="`KFACLinearOperator`: input and gradient covariances, block G ⊗ A; "
                 "`separate_weight_and_bias=True` by default (fisherlab `bias=\"separate\"`); "
                 "`fisher_type` type-2 / mc / empirical; `kfac_approx` expand / reduce",
        doc_to_fisherlab="`problem.reference(q, convention=\"curvlinops\")`; by hand: "
                         "`MSELoss(reduction=\"mean\")` = (2/C) × `fl.Gaussian()` with mean "
                         "reduction, the empirical Fisher (4/C) ×",
        evidence="measured: `tests/peers/test_curvlinops.py` and `tests/peers/test_presets.py` "
                 "(Hessian, GGN, empirical Fisher, K-FAC; relative error below 1e-10)"),
    PeerConvention(
        name="backpack", losses=_torch_losses(), reduction="loss", empirical="reduced",
        kfac_bias="separate", weight_layout="out_in",
        library="BackPACK (PyTorch)",
        doc_reduction="the loss's `reduction` (as curvlinops); `BatchGrad`'s `grad_batch` holds "
                      "(1/R)∇ℓₙ (R = N, or N·C for `MSELoss`/`BCEWithLogitsLoss` mean)",
        doc_squared_error="`MSELoss` without ½: output Hessian 2I; `BCEWithLogitsLoss` only with "
                          "one output",
        doc_parameters="`model.parameters()`: W (out, in) row-major, then b",
        doc_kfac="`KFLR` (exact) / `KFAC` (Monte-Carlo): `weight.kflr = [G, A]`, block G ⊗ A; "
                 "`bias.kflr = [G]` (bias separate)",
        doc_to_fisherlab="`convention=\"backpack\"`: the dense matrices whose diagonals "
                         "`DiagGGNExact`/`DiagHessian` return, K-FAC with `bias=\"separate\"`, "
                         "and the empirical Fisher as Σₙ grad_batchₙ grad_batchₙᵀ (1/R of "
                         "curvlinops')",
        evidence="measured: `tests/peers/test_backpack.py` and `tests/peers/test_presets.py` "
                 "(diagonal GGN and Hessian, KFLR, grad_batch outer products)"),
    PeerConvention(
        name="kfac-jax",
        losses={"Categorical": LossConvention("register_softmax_cross_entropy_loss"),
                "Gaussian": LossConvention("register_squared_error_loss", kappa=2.0),
                "Bernoulli": LossConvention("register_sigmoid_cross_entropy_loss")},
        reduction="mean", empirical="reduced", kfac_bias="augmented", weight_layout="in_out",
        library="kfac-jax (JAX)",
        doc_reduction="mean over the batch (every loss registration divides by the batch size)",
        doc_squared_error="`register_squared_error_loss` is a Gaussian of variance ½: G is 2× "
                          "fisherlab's `Gaussian()` (empirical: 4/N ×)",
        doc_parameters="`w` of shape (in, out), s = a @ w + b: the transpose of fisherlab's W",
        doc_kfac="bias appended as the last input column (cross terms kept, fisherlab "
                 "`bias=\"augmented\"`); block `kron(A, G)` in `w`-row-major order; "
                 "`fisher_empirical` G is (1/N) × fisherlab's",
        doc_to_fisherlab="`convention=\"kfac-jax\"`: fisherlab's index j·in + i (W[j, i]) is "
                         "kfac-jax's i·out + j (w[i, j]); the bias keeps its place; G scaled "
                         "as stated",
        evidence="measured: [kfac-jax comparison](peers/kfac_jax.md) (kfac-jax 0.0.8, "
                 "relative error at most 6.4e-16 after the mapping); this preset itself against "
                 "kfac-jax's dense layer blocks in `benchmarks/kfac_jax_compare.py` (45 blocks, "
                 "exact and empirical, at most 6.8e-16)"),
    PeerConvention(
        name="asdl",
        losses={"Categorical": LossConvention("LOSS_CROSS_ENTROPY"),
                "Gaussian": LossConvention("LOSS_MSE (½‖y − f‖²)")},
        reduction="loss", empirical="once", kfac_bias="separate", weight_layout="out_in",
        kfac_input="reduced", library="ASDL (PyTorch)",
        doc_reduction="per-example losses summed, then scaled by `scale / data_size` (the mean "
                      "when `data_size` = N, the sum when it is 1)",
        doc_squared_error="`LOSS_MSE` is ½‖y − f‖²: the exact Fisher is JᵀJ (unit variance, as "
                          "`fl.Gaussian()`; `FisherConfig.var` only enters Monte-Carlo "
                          "sampling); the empirical Fisher with the same ½-loss",
        doc_parameters="PyTorch modules: W (out, in), then b",
        doc_kfac="`kron.A` on the layer inputs *without* a ones column, `kron.B` on the output "
                 "gradients; the bias block is `kron.B` alone (no cross terms: fisherlab "
                 "`bias=\"separate\"`); both factors carry `scale / data_size`, so with "
                 "`data_size` = 1 (a sum) A is N × fisherlab's and the block N × the sum's",
        doc_to_fisherlab="`convention=\"asdl\"`: fisherlab's reference with `data_size` = N "
                         "(mean) or 1 (sum), K-FAC with `bias=\"separate\"`, A ↔ `kron.A`, "
                         "G ↔ `kron.B`",
        evidence="measured: `tests/peers/test_presets.py` (ASDL 0.1a4: full Fisher, empirical "
                 "Fisher and Kronecker factors, relative error below 1e-10)"),
    PeerConvention(
        name="nngeometry",
        losses={"Categorical": LossConvention("variant=\"classif_logits\""),
                "Gaussian": LossConvention("variant=\"regression\""),
                "Bernoulli": LossConvention("variant=\"classif_binary_logits\"")},
        reduction="mean", empirical="once", kfac_bias="augmented", weight_layout="out_in",
        library="nngeometry (PyTorch)",
        doc_reduction="the average over the loader's examples",
        doc_squared_error="`FIM(..., variant=\"regression\")`: Gaussian with identity "
                          "covariance (as `fl.Gaussian()`)",
        doc_parameters="`LayerCollection` order: per layer the weight, then the bias",
        doc_kfac="`PMatKFAC`: inputs with a ones column appended (cross terms kept, fisherlab "
                 "`bias=\"augmented\"`); `to_torch()` orders W then b as fisherlab, "
                 "`to_torch(split_weight_bias=False)` in the [W | b] row-major layout",
        doc_to_fisherlab="`convention=\"nngeometry\"` (fisherlab's mean reference itself); "
                         "`FIM_MonteCarlo(trials=S)` averages S samples (1/S), as "
                         "`fl.fisher_mc`; in float64 set `torch.set_default_dtype(torch.float64)` "
                         "(`classif_logits` allocates in the default dtype)",
        evidence="measured: `tests/peers/test_presets.py` (nngeometry 0.4: dense Fisher and "
                 "K-FAC, relative error below 1e-10)"),
    PeerConvention(
        name="laplace-torch",
        losses={"Categorical": LossConvention("likelihood=\"classification\" "
                                              "(CrossEntropyLoss, sum)"),
                "Gaussian": LossConvention("likelihood=\"regression\" (½ MSELoss, sum)",
                                           kappa=1.0, kappa_empirical=2.0)},
        reduction="sum", empirical="once", kfac_bias="separate", weight_layout="out_in",
        library="laplace-torch (PyTorch)",
        doc_reduction="**sum** over the data (losses built with `reduction=\"sum\"`)",
        doc_squared_error="`likelihood=\"regression\"` is `MSELoss(sum)` times ½: GGN JᵀJ; its "
                          "empirical Fisher applies the ½ once to outer products of MSELoss "
                          "gradients, 2 Σ gₙgₙᵀ (twice `fl.Gaussian()`'s); the noise variance "
                          "enters later, in the posterior precision",
        doc_parameters="`model.parameters()` order (through its BackPACK, ASDL or curvlinops "
                       "backend)",
        doc_kfac="the backend's K-FAC (see its row; separate bias with curvlinops)",
        doc_to_fisherlab="`convention=\"laplace-torch\"`: N × fisherlab's mean reference (the "
                         "empirical Fisher of a regression 2N ×)",
        evidence="measured: `benchmarks/laplace_torch_compare.py` (laplace-torch 0.3: "
                 "BackPACK empirical Fisher and curvlinops K-FAC at most 3.8e-16; the full "
                 "curvlinops GGN and EF 2.8e-8, built with a float32 `torch.eye`) and "
                 "`tests/peers/test_presets.py` where laplace-torch imports"),
    PeerConvention(
        name="pytorch", losses=_torch_losses(poisson=True), reduction="loss", empirical="once",
        kfac_bias="augmented", weight_layout="out_in",
        library="PyTorch losses (torch.nn)",
        doc_reduction="the loss's `reduction`: `mean` over N (`CrossEntropyLoss`) or over all "
                      "N·C entries (`MSELoss`, `BCEWithLogitsLoss`, `PoissonNLLLoss`)",
        doc_squared_error="`MSELoss` without ½",
        doc_parameters="`model.parameters()`: W (out, in), then b",
        doc_kfac="not defined by PyTorch: fisherlab's K-FAC in the loss's scaling",
        doc_to_fisherlab="`convention=\"pytorch\"`: the scaling of `fisherlab.testing.torch`",
        evidence="measured: `tests/testing/test_torch_bridge.py` (torch.func float64) for "
                 "CrossEntropyLoss, MSELoss and BCEWithLogitsLoss; PoissonNLLLoss(log_input="
                 "True) is the Poisson negative log-likelihood less log y!, read from its "
                 "formula"),
))


def _from_torch_loss(loss) -> PeerConvention:
    """The ``"pytorch"`` preset for one PyTorch loss module: its kind, its ``reduction``."""
    base = PEER_CONVENTIONS["pytorch"]
    kind = type(loss).__name__
    losses = {lik: lc for lik, lc in base.losses.items() if lc.name.split("(")[0] == kind}
    if not losses:
        offered = ", ".join(lc.name for lc in base.losses.values())
        raise ValueError(f"convention: the PyTorch loss {kind} is not covered (covered: "
                         f"{offered})")
    reduction = getattr(loss, "reduction", None)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"convention: {kind}(reduction={reduction!r}) is not covered; a "
                         "curvature matrix needs reduction 'mean' or 'sum'")
    if getattr(loss, "weight", None) is not None or getattr(loss, "pos_weight", None) is not None:
        raise ValueError(f"convention: {kind} with weight/pos_weight is not covered")
    if getattr(loss, "label_smoothing", 0.0) != 0.0:
        raise ValueError(f"convention: {kind}(label_smoothing={loss.label_smoothing}) is not "
                         "covered")
    if kind == "PoissonNLLLoss" and (not loss.log_input or loss.full):
        raise ValueError("convention: PoissonNLLLoss is covered with log_input=True, full=False")
    return dataclasses.replace(base, name=f"pytorch ({kind}, reduction={reduction!r})",
                               losses=losses, reduction=reduction)


def get(name) -> PeerConvention:
    """The preset called ``name`` (a :class:`PeerConvention` is returned as is; a PyTorch loss
    module gives the ``"pytorch"`` preset for that loss and its ``reduction``)."""
    if isinstance(name, PeerConvention):
        return name
    if not isinstance(name, str) and type(name).__module__.startswith("torch."):
        return _from_torch_loss(name)
    if name not in PEER_CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(PEER_CONVENTIONS)}, got {name!r}")
    return PEER_CONVENTIONS[name]


def applicable(problem):
    """The presets that cover ``problem`` (its likelihood, its output positions)."""
    out = []
    for c in PEER_CONVENTIONS.values():
        try:
            c.factors(problem)
        except ValueError:
            continue
        if c.weight_layout == "in_out" and getattr(problem, "model", None) is None:
            continue
        out.append(c)
    return out
