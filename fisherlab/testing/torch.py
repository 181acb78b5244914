"""PyTorch bridge (``fl.testing.torch``): fisherlab references for a torch network and loss.

Given a ``torch.nn.Sequential`` of ``Linear`` layers and ``Tanh``/``Sigmoid``/``ReLU``/
``Identity`` activations, a batch ``(X, y)`` of torch tensors and a loss module, it builds the
equivalent ``fl.nn.Sequential`` + parameters + likelihood and returns fisherlab's float64
reference matrices **in PyTorch's ``parameters()`` order** (``W_1`` row-major as stored, ``b_1``,
``W_2``, ...; identical to fisherlab's order, CONVENTIONS.md § Parameter order) and **in the
loss's own scaling**, so a PyTorch user compares with no conversion of their own::

    from fisherlab.testing import torch as flt

    ref = flt.reference(net, X, y, torch.nn.MSELoss(), "ggn")   # (d, d) float64 NumPy
    fl.testing.assert_curvature_close(my_ggn, ref, problem=flt.problem(net, X, y, loss),
                                      quantity="ggn")

Loss conventions. Write each loss as ``L = (1/R) sum_n l_n`` with ``l_n`` the per-example loss
*summed over outputs* and ``R`` its normaliser, and as ``kappa`` times fisherlab's negative
log-likelihood ``l_n = kappa * (-log p(y_n | f_n))``:

=================================  ==========================  ==========  =========  =======
loss                               fisherlab likelihood        ``kappa``   R (mean)   R (sum)
=================================  ==========================  ==========  =========  =======
``CrossEntropyLoss``               ``Categorical``             1           N          1
``MSELoss``                        ``Gaussian(variance=1)``    2           N C        1
``BCEWithLogitsLoss``              ``Bernoulli``               1           N C        1
=================================  ==========================  ==========  =========  =======

(``MSELoss`` uses ``(y - f)^2 = 2 * ½(y - f)^2``; its ``reduction="mean"`` averages over the
``N C`` entries: ``L = (2/C) * (1/N) sum_n ½||y_n - f_n||^2``.) Then, with fisherlab's
mean-reduction references:

* ``hessian``, ``ggn``, ``fisher``, ``kfac`` (and its factors' product): ``(kappa N / R)`` times
  fisherlab's -- ``2/C`` for ``MSELoss(mean)``, ``2N`` for ``MSELoss(sum)``, ``1/C`` for
  ``BCEWithLogitsLoss(mean)``, ``N`` for ``sum``, ``1`` / ``N`` for ``CrossEntropyLoss``.
  The Fisher is that of the likelihood the loss *is* (for ``MSELoss`` a Gaussian of variance
  ½), so Fisher = GGN holds in the loss's convention too.
* ``empirical_fisher``, ``gradient_covariance``: ``(1/R) sum_n grad l_n grad l_n^T`` =
  ``(kappa^2 N / R)`` times fisherlab's -- ``4/C`` for ``MSELoss(mean)``, ``4N`` for ``sum``,
  ``1/C`` / ``N`` for ``BCEWithLogitsLoss``, ``1`` / ``N`` for ``CrossEntropyLoss``. This is
  curvlinops' ``EFLinearOperator`` normalisation, the one for which the expectation of the
  empirical Fisher under the model equals the GGN. The same factor scales ``kfac`` and
  ``kfac_factor_G`` with ``fisher_type="empirical"`` (built from gradient outer products), so
  ``kron(G, A)`` of the bridge's factors is the bridge's dense K-FAC for every loss, reduction
  and ``fisher_type``.

Requires the optional ``torch`` extra (``python3 -m pip install torch==2.13.0``); ``torch`` is
imported lazily, so importing this module without it only fails when it is used.
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing._problem import QUANTITIES, Problem

__all__ = ["LOSS_FACTORS", "TorchProblem", "from_torch", "problem", "reference", "references",
           "loss_factors"]

_TORCH_HINT = ("fisherlab.testing.torch needs PyTorch: install it with "
               "`python3 -m pip install torch==2.13.0` (or the extra: pip install 'fisherlab[peers]')")


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_TORCH_HINT) from exc
    return torch


#: loss name -> (kappa, output-averaged under reduction="mean")
LOSS_FACTORS = {"CrossEntropyLoss": (1.0, False), "MSELoss": (2.0, True),
                "BCEWithLogitsLoss": (1.0, True)}


def loss_factors(loss, num_examples: int, num_outputs: int) -> tuple[float, float]:
    """``(curvature_factor, empirical_fisher_factor)`` relating fisherlab's mean-reduction
    references to the loss's own scaling (module docstring table)."""
    name = type(loss).__name__
    if name not in LOSS_FACTORS:
        raise TypeError(f"loss must be one of {sorted(LOSS_FACTORS)}, got {name}")
    kappa, over_outputs = LOSS_FACTORS[name]
    N, C = num_examples, num_outputs
    reduction = getattr(loss, "reduction", None)
    if reduction == "mean":
        R = N * C if over_outputs else N
    elif reduction == "sum":
        R = 1
    else:
        raise ValueError(f"loss.reduction must be 'mean' or 'sum', got {reduction!r} "
                         "(a curvature matrix needs a scalar loss)")
    return kappa * N / R, kappa ** 2 * N / R


def _convert_module(module):
    torch = _torch()
    from fisherlab import nn

    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"module must be a torch.nn.Sequential, got {type(module).__name__}")
    acts = {torch.nn.Tanh: nn.Tanh, torch.nn.Sigmoid: nn.Sigmoid, torch.nn.ReLU: nn.ReLU,
            torch.nn.Identity: nn.Identity}
    layers, params = [], []
    for i, m in enumerate(module):
        if isinstance(m, torch.nn.Linear):
            if m.bias is None:
                raise ValueError(f"module[{i}] is Linear(bias=False); only Linear layers with a "
                                 "bias are supported (fisherlab's params are [(W, b), ...])")
            layers.append(nn.Dense(m.in_features, m.out_features))
            params.append((m.weight.detach().cpu().double().numpy().copy(),
                           m.bias.detach().cpu().double().numpy().copy()))
        elif type(m) in acts:
            layers.append(acts[type(m)]())
        else:
            raise TypeError(f"module[{i}] is {type(m).__name__}; supported: Linear, Tanh, "
                            "Sigmoid, ReLU, Identity")
    if not params:
        raise ValueError("module must contain at least one torch.nn.Linear layer")
    n_params = sum(p.numel() for p in module.parameters())
    if n_params != sum(W.size + b.size for W, b in params):  # pragma: no cover - defensive
        raise ValueError("module has parameters outside its Linear layers")
    return nn.Sequential(layers), params


def _convert_loss(loss, y, num_outputs):
    torch = _torch()
    import fisherlab as fl

    y = y.detach().cpu() if isinstance(y, torch.Tensor) else torch.as_tensor(y)
    if isinstance(loss, torch.nn.CrossEntropyLoss):
        if loss.weight is not None:
            raise ValueError("CrossEntropyLoss(weight=...) is not supported (class weights)")
        if getattr(loss, "label_smoothing", 0.0):
            raise ValueError(f"CrossEntropyLoss(label_smoothing={loss.label_smoothing}) is not "
                             "supported")
        if y.dtype.is_floating_point:
            raise ValueError("CrossEntropyLoss with probability (float) targets is not supported: "
                             f"pass class indices (int64), got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"CrossEntropyLoss targets must have shape (N,), got {tuple(y.shape)}")
        if torch.any(y == loss.ignore_index):
            raise ValueError(f"targets contain ignore_index={loss.ignore_index}: not supported")
        return fl.Categorical(), y.numpy().astype(np.int64)
    if isinstance(loss, torch.nn.MSELoss):
        return fl.Gaussian(variance=1.0), y.double().numpy()
    if isinstance(loss, torch.nn.BCEWithLogitsLoss):
        if loss.weight is not None or loss.pos_weight is not None:
            raise ValueError("BCEWithLogitsLoss(weight=..., pos_weight=...) is not supported")
        yy = y.double().numpy()
        if not np.all((yy == 0) | (yy == 1)):
            raise ValueError("BCEWithLogitsLoss targets must be 0/1 (soft targets are not a "
                             "Bernoulli sample)")
        return fl.Bernoulli(), yy
    raise TypeError(f"loss must be CrossEntropyLoss, MSELoss or BCEWithLogitsLoss, got "
                    f"{type(loss).__name__}")


class TorchProblem(Problem):
    """A :class:`~fisherlab.testing.Problem` converted from PyTorch whose ``reference`` is in the
    loss's own scaling (module docstring). ``curvature_factor`` and ``empirical_fisher_factor``
    are the factors applied to fisherlab's mean-reduction references; ``loss`` the torch loss.
    """

    def __init__(self, model, params, x, y, likelihood, *, loss, curvature_factor,
                 empirical_fisher_factor):
        super().__init__(model, params, x, y, likelihood, reduction="mean")
        self.loss = loss
        self.curvature_factor = float(curvature_factor)
        self.empirical_fisher_factor = float(empirical_fisher_factor)
        self._scales = {"curvature": self.curvature_factor, "empirical": self.empirical_fisher_factor}

    def reference(self, quantity, **options):
        M = super().reference(quantity, **options)
        if quantity in ("empirical_fisher", "gradient_covariance"):
            return M * self.empirical_fisher_factor
        if quantity == "kfac_factor_A":
            return M
        if (quantity in ("kfac", "kfac_factor_G")
                and options.get("fisher_type") == "empirical"):
            # the empirical K-FAC is built from gradient outer products: kappa^2 N / R, on G
            # (so kron(G, A) of the factors reproduces the dense "kfac" reference)
            return M * self.empirical_fisher_factor
        return M * self.curvature_factor  # hessian, ggn, fisher, kfac, kfac_factor_G

    def __repr__(self):
        return f"Torch{super().__repr__()[:-1]}, loss={self.loss!r})"


def problem(module, X, y, loss) -> TorchProblem:
    """Convert ``(module, X, y, loss)`` to a :class:`TorchProblem` (float64 copies; the torch
    objects are not modified)."""
    torch = _torch()
    model, params = _convert_module(module)
    x = X.detach().cpu().double().numpy() if isinstance(X, torch.Tensor) else np.asarray(X, np.float64)
    if x.ndim != 2 or x.shape[1] != model.in_features:
        raise ValueError(f"X must have shape (N, {model.in_features}), got {tuple(x.shape)}")
    C = model.out_features
    lik, yy = _convert_loss(loss, y, C)
    if yy.shape[0] != x.shape[0]:
        raise ValueError(f"batch sizes differ: X has {x.shape[0]} rows, y has {yy.shape[0]}")
    if not isinstance(loss, torch.nn.CrossEntropyLoss) and yy.shape != (x.shape[0], C):
        raise ValueError(f"y must have shape (N, C) = ({x.shape[0]}, {C}) for "
                         f"{type(loss).__name__}, got {yy.shape}")
    cf, ef = loss_factors(loss, x.shape[0], C)
    return TorchProblem(model, params, x, yy, lik, loss=loss, curvature_factor=cf,
                        empirical_fisher_factor=ef)


from_torch = problem  # alias


def reference(module, X, y, loss, quantity: str, **options) -> np.ndarray:
    """fisherlab's float64 reference ``quantity`` for a PyTorch problem, in the loss's scaling.

    Args:
      module: ``torch.nn.Sequential`` of ``Linear`` + ``Tanh``/``Sigmoid``/``ReLU``/``Identity``.
      X, y: the batch (torch tensors or arrays); ``y`` as the loss expects it (class indices for
        ``CrossEntropyLoss``, ``(N, C)`` floats for ``MSELoss`` / 0-1 for ``BCEWithLogitsLoss``).
      loss: ``CrossEntropyLoss`` | ``MSELoss`` | ``BCEWithLogitsLoss`` with ``reduction`` mean/sum.
      quantity: ``"hessian"``, ``"ggn"``, ``"fisher"``, ``"empirical_fisher"``,
        ``"gradient_covariance"``, ``"kfac"`` (dense, parameter order; ``bias="augmented"`` or
        ``"separate"``, ``fisher_type="exact"|"empirical"``), ``"kfac_factor_A"`` /
        ``"kfac_factor_G"`` (``layer=k``; the loss factor is put on ``G``: ``kappa N / R``,
        or ``kappa^2 N / R`` for ``fisher_type="empirical"``, as for the dense ``kfac``).

    Returns:
      ``(d, d)`` float64 NumPy in ``module.parameters()`` order (``torch.from_numpy`` to compare
      in torch).
    """
    return problem(module, X, y, loss).reference(quantity, **options)


def references(module, X, y, loss, quantities=("hessian", "ggn", "fisher", "empirical_fisher",
                                                "kfac")) -> dict:
    """Several references at once (one conversion): ``{quantity: matrix}``."""
    P = problem(module, X, y, loss)
    for q in quantities:
        if q not in QUANTITIES:
            raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {q!r}")
    return {q: P.reference(q) for q in quantities}
