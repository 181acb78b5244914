"""How other curvature libraries' conventions differ from fisherlab's: one data table.

The documentation build renders ``PEERS`` on the Conventions page (:func:`markdown`, one section
per library). It is the only place these differences are written down for the site; each entry
says where its facts come from: *measured* (a fisherlab test or report compares the real
library's numbers with fisherlab's) or *read from the source* (the library's code, not yet run
against fisherlab).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Peer", "PEERS", "COLUMNS", "markdown"]


class Peer(NamedTuple):
    library: str
    reduction: str
    squared_error: str
    parameters: str
    kfac: str
    to_fisherlab: str
    evidence: str


COLUMNS = ("library", "batch reduction", "squared-error loss", "parameter order and layout",
           "K-FAC factors and bias", "to match fisherlab's reference", "evidence")

PEERS = (
    Peer(
        library="curvlinops (PyTorch)",
        reduction="the loss's `reduction`: `mean` divides by N (`CrossEntropyLoss`) or by N·C "
                  "(`MSELoss`, `BCEWithLogitsLoss`: the mean over all entries); `sum` by 1",
        squared_error="`MSELoss` without ½: output Hessian 2I",
        parameters="the `params` list passed, usually `model.parameters()`: W (out, in) "
                   "row-major, then b — fisherlab's order",
        kfac="`KFACLinearOperator`: input and gradient covariances, block G ⊗ A; "
             "`separate_weight_and_bias=True` by default (fisherlab `bias=\"separate\"`); "
             "`fisher_type` type-2 / mc / empirical; `kfac_approx` expand / reduce",
        to_fisherlab="`fisherlab.testing.torch.problem(net, X, y, loss)` gives the reference in "
                     "the loss's own scaling; by hand: `MSELoss(reduction=\"mean\")` = "
                     "(2/C) × `fl.Gaussian()` with mean reduction",
        evidence="measured: `tests/peers/test_curvlinops.py` (Hessian, GGN, empirical Fisher, "
                 "K-FAC; relative error below 1e-10)",
    ),
    Peer(
        library="BackPACK (PyTorch)",
        reduction="the loss's `reduction` (as curvlinops); `BatchGrad`'s `grad_batch` holds "
                  "(1/R)∇ℓₙ (R = N, or N·C for `MSELoss` mean)",
        squared_error="`MSELoss` without ½: output Hessian 2I; `BCEWithLogitsLoss` only with "
                      "one output",
        parameters="`model.parameters()`: W (out, in) row-major, then b",
        kfac="`KFLR` (exact) / `KFAC` (Monte-Carlo): `weight.kflr = [G, A]`, block G ⊗ A; "
             "`bias.kflr = [G]` (bias separate)",
        to_fisherlab="K-FAC with `bias=\"separate\"`; the empirical Fisher is "
                     "R · Σₙ grad_batchₙ grad_batchₙᵀ (the raw outer product is 1/R of it)",
        evidence="measured: `tests/peers/test_backpack.py` (diagonal GGN and Hessian, KFLR, "
                 "empirical Fisher)",
    ),
    Peer(
        library="kfac-jax (JAX)",
        reduction="mean over the batch (every loss registration divides by the batch size)",
        squared_error="`register_squared_error_loss` is a Gaussian of variance ½: G is 2× "
                      "fisherlab's `Gaussian()` (empirical: 4/N ×)",
        parameters="`w` of shape (in, out), s = a @ w + b: the transpose of fisherlab's W",
        kfac="bias appended as the last input column (cross terms kept, fisherlab "
             "`bias=\"augmented\"`); block `kron(A, G)` in `w`-row-major order; "
             "`fisher_empirical` G is (1/N) × fisherlab's",
        to_fisherlab="permute the block: fisherlab's index j·in + i (W[j, i]) is kfac-jax's "
                     "i·out + j (w[i, j]); the bias keeps its place; scale G as stated",
        evidence="measured: [kfac-jax comparison](peers/kfac_jax.md) (kfac-jax 0.0.8, "
                 "relative error at most 6.4e-16 after the mapping)",
    ),
    Peer(
        library="ASDL (PyTorch)",
        reduction="per-example losses summed, then scaled by `scale / data_size` (the mean when "
                  "`data_size` = N)",
        squared_error="exact Fisher of `LOSS_MSE` is JᵀJ (unit variance, as `fl.Gaussian()`); "
                      "the Monte-Carlo Fisher samples with `var` and uses ½‖y − f‖²",
        parameters="PyTorch modules: W (out, in), then b",
        kfac="`kron.A` on the layer inputs with a ones column appended when the layer has a "
             "bias (cross terms kept), `kron.B` on the output gradients",
        to_fisherlab="K-FAC with `bias=\"augmented\"`, A ↔ `kron.A`, G ↔ `kron.B`; "
                     "the factors' scaling is not yet checked",
        evidence="read from the source (`asdl/fisher.py`, `asdl/operations/linear.py`); not "
                 "yet run against fisherlab",
    ),
    Peer(
        library="nngeometry (PyTorch)",
        reduction="the average over the loader's examples",
        squared_error="`FIM(..., variant=\"regression\")`: Gaussian with identity covariance "
                      "(as `fl.Gaussian()`)",
        parameters="`LayerCollection` order: per layer the weight, then the bias",
        kfac="`PMatKFAC` representation of the same generator",
        to_fisherlab="`variant=\"classif_logits\"` ↔ `fl.Categorical()`, "
                     "`\"classif_binary_logits\"` ↔ `fl.Bernoulli()` (one output); "
                     "`FIM_MonteCarlo(trials=S)` averages S samples (1/S), as `fl.fisher_mc`",
        evidence="read from the source (`nngeometry/metrics.py`); not yet run against "
                 "fisherlab",
    ),
    Peer(
        library="laplace-torch (PyTorch)",
        reduction="**sum** over the data (losses built with `reduction=\"sum\"`)",
        squared_error="`likelihood=\"regression\"` is N(f, 1): `MSELoss(sum)` times ½, GGN JᵀJ; "
                      "the noise variance enters later, in the posterior precision",
        parameters="`model.parameters()` order (through its BackPACK, ASDL or curvlinops "
                   "backend)",
        kfac="the backend's K-FAC (see its row)",
        to_fisherlab="`reduction=\"sum\"`: laplace-torch's curvature is N × fisherlab's "
                     "default (mean)",
        evidence="read from the source (`laplace/curvature/curvature.py`); not yet run "
                 "against fisherlab",
    ),
)


def markdown(peers=PEERS, heading: str = "###") -> str:
    """The table as Markdown: one section per library, one line per aspect."""
    out = []
    for p in peers:
        out.append(f"{heading} {p.library}\n")
        out += [f"- **{label}:** {value}" for label, value in zip(COLUMNS[1:], p[1:])]
        out.append("")
    return "\n".join(out)
