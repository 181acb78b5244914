"""PyTorch bridge (``fl.testing.torch``): fisherlab references for a torch network and loss.

Given a ``torch.nn.Module``, a batch ``(X, y)`` and a loss module, it converts the module to the
equivalent ``fl.nn`` model (traced with ``torch.fx``), the loss to a likelihood, and returns
fisherlab's float64 reference matrices **in PyTorch's ``parameters()`` order** and **in the
loss's own scaling**, so a PyTorch user compares with no conversion of their own::

    from fisherlab.testing import torch as flt

    ref = flt.reference(net, X, y, torch.nn.MSELoss(), "ggn")   # (d, d) float64 NumPy
    fl.testing.assert_curvature_close(my_ggn, ref, problem=flt.problem(net, X, y, loss),
                                      quantity="ggn")

Covered modules. Any module whose ``forward(x)`` is a chain of ``Linear`` (with bias),
``Conv2d`` (bias, ``groups=1``, ``dilation=1``, zero padding), ``LayerNorm`` and ``RMSNorm``
(over the last axis), ``Embedding`` (plain: no ``padding_idx``/``max_norm``), batch-first
``MultiheadAttention`` used as self-attention ``attn(x, x, x)[0]`` (unmasked, or with a causal
mask registered as a buffer), ``GELU``/``ReLU``/``Tanh``/``Sigmoid``/``Identity`` (modules,
``torch``/``F`` functions or tensor methods), ``Flatten()``, ``Dropout`` (``p = 0`` or eval
mode), ``x.mean(dim=1)`` (average over tokens) and residual additions ``x + block(x)``, nested
in user modules and ``nn.Sequential`` in any way. The converted model is checked to reproduce
``module(X)`` (float64) before any curvature is computed. Refused, with an error naming the
module (qualified name and type) or the operation and its module: every other layer or function
(``BatchNorm``, ``LSTM``, ``torch.cat``, ...), ``Linear(bias=False)``, attention with different
query/key/value, a ``key_padding_mask`` or a non-causal mask, ``Dropout`` in training mode,
additions that are not residual connections, data-dependent control flow (not traceable), a
``forward`` with more than one input, and parameters that ``forward`` does not use.

Parameter order: ``ravel_pytree(params)`` is ``module.named_parameters()`` order. When the
module registers its layers in the order they run, the model is a ``fl.nn.Sequential`` with
its nested parameter list (K-FAC references available); otherwise a ``TorchOrder`` wrapper
takes the flat tuple in ``named_parameters()`` order (dense references only).

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

Token models. A module whose outputs are ``(N, R, C)`` (one row per token) with targets
``(N, R)`` (``CrossEntropyLoss``) or ``(N, R, C)`` (``MSELoss``, ``BCEWithLogitsLoss``) is
read as PyTorch's loss on flattened tokens, ``loss(out.flatten(0, 1), y.flatten(0, 1))``: the
``N R`` tokens are the examples (fisherlab's ``tokens="flatten"``, docs/CONVENTIONS.md,
"Per-token outputs") and the table above holds with ``N`` replaced by ``N R``. In particular the
empirical Fisher is ``(1/R) sum_{n,r} grad l_{n,r} grad l_{n,r}^T`` over per-token gradients,
curvlinops' convention for outputs with extra axes. Dense references only (hessian, ggn,
fisher, empirical_fisher, gradient_covariance).

Requires the optional ``torch`` extra (``python3 -m pip install torch==2.13.0``); ``torch`` is
imported lazily, so importing this module without it only fails when it is used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import fisherlab as fl
from fisherlab._core.precision import float64
from fisherlab._core.validation import check_finite
from fisherlab.testing._problem import QUANTITIES, Problem
from fisherlab.testing._torch_convert import Converted, TorchOrder, as_numpy, convert

__all__ = ["LOSS_FACTORS", "Converted", "TorchOrder", "TorchProblem", "convert", "from_torch",
           "loss_factors", "problem", "reference", "references"]

#: the dense references a per-token problem offers
_TOKEN_QUANTITIES = ("hessian", "ggn", "fisher", "empirical_fisher", "gradient_covariance")

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


def _convert_loss(loss, y, out_shape):
    """``(likelihood, targets)`` for ``loss`` and targets ``y``; ``out_shape`` is the batched
    output shape ``(N, C)`` or ``(N, R, C)``."""
    torch = _torch()
    tokens = len(out_shape) == 3
    if isinstance(y, (list, tuple)):
        shapes = [tuple(np.shape(as_numpy(t, "y"))) for t in y]
        if len(set(shapes)) > 1:
            raise ValueError(f"y must be one tensor with a leading batch axis, got a "
                             f"{type(y).__name__} of {len(y)} targets of shapes {shapes}: the "
                             "sequence length must not change within a batch")
        y = np.stack([as_numpy(t, "y") for t in y])
    yy = as_numpy(y, "y")
    N = out_shape[0]
    expect_cls = out_shape[:-1]
    if isinstance(loss, torch.nn.CrossEntropyLoss):
        if loss.weight is not None:
            raise ValueError("CrossEntropyLoss(weight=...) is not supported (class weights)")
        if getattr(loss, "label_smoothing", 0.0):
            raise ValueError(f"CrossEntropyLoss(label_smoothing={loss.label_smoothing}) is not "
                             "supported")
        if np.issubdtype(yy.dtype, np.floating):
            raise ValueError("CrossEntropyLoss with probability (float) targets is not supported: "
                             f"pass class indices (int64), got dtype {y.dtype}")
        if yy.shape != tuple(expect_cls):
            what = "(N, R) = " if tokens else "(N,) = "
            raise ValueError(
                f"CrossEntropyLoss targets must have shape {what}{tuple(expect_cls)} (one class "
                f"index per {'token' if tokens else 'example'}) to match outputs of shape "
                f"{tuple(out_shape)}, got {tuple(yy.shape)}")
        if np.any(yy == loss.ignore_index):
            raise ValueError(f"targets contain ignore_index={loss.ignore_index}: not supported")
        return fl.Categorical(), yy.astype(np.int64)
    if isinstance(loss, torch.nn.MSELoss):
        lik = fl.Gaussian(variance=1.0)
    elif isinstance(loss, torch.nn.BCEWithLogitsLoss):
        if loss.weight is not None or loss.pos_weight is not None:
            raise ValueError("BCEWithLogitsLoss(weight=..., pos_weight=...) is not supported")
        if not np.all((yy == 0) | (yy == 1)):
            raise ValueError("BCEWithLogitsLoss targets must be 0/1 (soft targets are not a "
                             "Bernoulli sample)")
        lik = fl.Bernoulli()
    else:
        raise TypeError(f"loss must be CrossEntropyLoss, MSELoss or BCEWithLogitsLoss, got "
                        f"{type(loss).__name__}")
    if yy.shape != tuple(out_shape):
        if yy.ndim >= 1 and yy.shape[0] != N:
            raise ValueError(f"batch sizes differ: X has {N} examples, y has {yy.shape[0]}")
        raise ValueError(f"y must have shape {tuple(out_shape)} (the outputs' shape) for "
                         f"{type(loss).__name__}, got {tuple(yy.shape)}")
    return lik, yy.astype(np.float64)


def _as_batch(model, X):
    """The batch ``X`` as NumPy (float64, or integer token ids), checked by the model."""
    if isinstance(X, (list, tuple)):
        X = [as_numpy(t, "X") for t in X]
    else:
        X = as_numpy(X, "X")
    seq = model.model if isinstance(model, TorchOrder) else model
    with float64():  # float64 inputs stay float64 whatever the caller's x64 flag
        x = np.asarray(seq.check_inputs(X, "X"))
    check_finite(x, "X")
    return x


def _check_reproduces(module, model, params, x):
    """The converted model must give ``module(x)`` (float64) -- else a ValueError, before any
    curvature is computed."""
    torch = _torch()
    import copy

    m64 = copy.deepcopy(module).double()
    xt = torch.from_numpy(np.array(x))
    with torch.no_grad():
        want = m64(xt).numpy()
    with jax.enable_x64(True):
        got = np.asarray(jax.vmap(model, in_axes=(None, 0))(
            jax.tree_util.tree_map(jnp.asarray, params), jnp.asarray(x)))
    if got.shape != want.shape:
        raise ValueError(f"the converted model's outputs have shape {got.shape}, but "
                         f"module(X) has {want.shape}")  # pragma: no cover - defensive
    err = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300))
    if not err <= 1e-9:
        raise ValueError(f"the fisherlab model converted from {type(module).__name__} does not "
                         f"reproduce module(X) in float64 (relative error {err:.3g}): the "
                         "module's forward does something the trace does not capture")


class TorchProblem(Problem):
    """A :class:`~fisherlab.testing.Problem` converted from PyTorch whose ``reference`` is in the
    loss's own scaling (module docstring). ``curvature_factor`` and ``empirical_fisher_factor``
    are the factors applied to fisherlab's mean-reduction references; ``loss`` the torch loss;
    ``tokens`` is ``"flatten"`` for a module with per-token outputs ``(N, R, C)`` (the loss over
    the ``N R`` flattened tokens), else ``None``.
    """

    def __init__(self, model, params, x, y, likelihood, *, loss, curvature_factor,
                 empirical_fisher_factor, tokens=None):
        super().__init__(model, params, x, y, likelihood, reduction="mean")
        if not np.issubdtype(np.asarray(x).dtype, np.floating):
            self.x = jnp.asarray(x)  # integer token ids stay integers
        self.loss = loss
        self.tokens = tokens
        self.curvature_factor = float(curvature_factor)
        self.empirical_fisher_factor = float(empirical_fisher_factor)
        self._scales = {"curvature": self.curvature_factor, "empirical": self.empirical_fisher_factor}

    def _compute(self, quantity, **options):
        if self.tokens is None:
            return super()._compute(quantity, **options)
        if quantity not in _TOKEN_QUANTITIES:
            raise ValueError(f"quantity {quantity!r} is not offered for a module with per-token "
                             f"outputs; offered: {', '.join(_TOKEN_QUANTITIES)}")
        args = (self.f, self.params, self.x)
        kw = dict(tokens=self.tokens, **options)
        if quantity == "fisher":
            return fl.fisher(*args, self.likelihood, **kw)
        return getattr(fl, quantity)(*args, self.y, self.likelihood, **kw)

    def reference(self, quantity, *, convention=None, **options):
        if convention is not None:  # a peer's preset maps fisherlab's own reference
            return super().reference(quantity, convention=convention, **options)
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
    objects are not modified).

    Args:
      module: a ``torch.nn.Module`` built from the covered layers (module docstring).
      X: the inputs, a tensor with a leading batch axis ``N`` (float features, or integer token
        ids for a module starting with ``Embedding``), or a list of per-example tensors of one
        shape.
      y: the targets as the loss expects them: class indices ``(N,)`` / ``(N, R)`` for
        ``CrossEntropyLoss``, floats of the outputs' shape for ``MSELoss``, 0/1 for
        ``BCEWithLogitsLoss``.
      loss: ``CrossEntropyLoss`` | ``MSELoss`` | ``BCEWithLogitsLoss`` with ``reduction``
        ``"mean"`` or ``"sum"``.

    Raises:
      TypeError, ValueError: an unsupported module (named), loss or option; inputs or targets
        of the wrong shape or dtype (a sequence length that changes within the batch, targets
        whose token axis disagrees with the outputs', float class targets).
    """
    _torch()
    converted = convert(module)
    model, params = converted.model, converted.params
    for name, p in module.named_parameters():
        check_finite(p.detach().cpu().double().numpy(), f"module parameter {name!r}")
    x = _as_batch(model, X)
    _check_reproduces(module, model, params, x)
    with jax.enable_x64(True):
        out_shape = tuple(jax.eval_shape(jax.vmap(model, in_axes=(None, 0)), params,
                                         jnp.asarray(x)).shape)
    if len(out_shape) not in (2, 3):
        raise ValueError(f"module outputs must be (N, C) or, per token, (N, R, C), got "
                         f"{out_shape}")
    lik, yy = _convert_loss(loss, y, out_shape)
    tokens = "flatten" if len(out_shape) == 3 else None
    num_examples = out_shape[0] * (out_shape[1] if tokens else 1)
    cf, ef = loss_factors(loss, num_examples, out_shape[-1])
    return TorchProblem(model, params, x, yy, lik, loss=loss, curvature_factor=cf,
                        empirical_fisher_factor=ef, tokens=tokens)


from_torch = problem  # alias


def reference(module, X, y, loss, quantity: str, **options) -> np.ndarray:
    """fisherlab's float64 reference ``quantity`` for a PyTorch problem, in the loss's scaling.

    Args:
      module, X, y, loss: as in :func:`problem`.
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
