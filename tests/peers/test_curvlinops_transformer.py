"""Conformance: curvlinops vs fisherlab on a PyTorch pre-LN transformer block with token outputs.

The same module, weights and data go to curvlinops' ``GGNLinearOperator`` and
``EFLinearOperator`` and to the torch bridge. curvlinops flattens extra output axes into the batch
axis: ``CrossEntropyLoss`` reads outputs ``(N, C, R)`` as ``(N R, C)`` (class axis second, so the
block's ``(N, R, C)`` outputs are transposed for it), the other losses read ``(N, R, C)`` as
``(N R, C)``; with ``reduction="mean"`` it divides by ``N R`` (cross-entropy) or ``N R C``, and its
empirical Fisher is ``(1/R) sum_t g_t g_t^T`` over per-token gradients of the unreduced loss --
exactly the bridge's convention for token outputs (``tokens="flatten"``), so the matrices must
agree to rounding.

curvlinops multiplies with forward-mode AD (``torch.func.jvp``), which PyTorch's fused CPU
attention kernel does not implement; the curvlinops side runs with the ``MATH`` backend of
``scaled_dot_product_attention`` (the same numbers, composed of differentiable operations).
"""

import numpy as np
import pytest

from fisherlab.testing import relative_error

torch = pytest.importorskip("torch")
cl = pytest.importorskip("curvlinops")
from fisherlab.testing import torch as flt  # noqa: E402
from _torch_blocks import Block, ClassesSecond  # noqa: E402

pytestmark = pytest.mark.peers
nn = torch.nn
RTOL = 1e-10
D, HEADS, R, N, C = 4, 2, 3, 3, 3


def _case(loss_name, reduction, causal):
    torch.manual_seed(0)
    block = Block(D, HEADS, 8, C, R, causal).double()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(N, R, D, dtype=torch.float64, generator=g)
    if loss_name == "CrossEntropyLoss":
        y = torch.randint(0, C, (N, R), generator=g)
    else:
        y = torch.randn(N, R, C, dtype=torch.float64, generator=g)
    loss = getattr(nn, loss_name)(reduction=reduction)
    return block, X, y, loss


def _dense(op, d):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        return (op @ torch.eye(d, dtype=torch.float64)).detach().numpy()


CASES = [("CrossEntropyLoss", "mean", True), ("CrossEntropyLoss", "sum", False),
         ("MSELoss", "mean", False), ("MSELoss", "sum", True)]


@pytest.mark.parametrize("loss_name,reduction,causal", CASES)
def test_transformer_block_ggn_and_empirical_fisher(loss_name, reduction, causal):
    block, X, y, loss = _case(loss_name, reduction, causal)
    net = ClassesSecond(block) if loss_name == "CrossEntropyLoss" else block
    params = list(net.parameters())
    d = sum(p.numel() for p in params)
    P = flt.problem(block, X, y, loss)
    for name, Op in (("ggn", cl.GGNLinearOperator), ("empirical_fisher", cl.EFLinearOperator)):
        M = _dense(Op(net, loss, params, [(X, y)], check_deterministic=False), d)
        err = relative_error(P.reference(name), M)
        assert err <= RTOL, (name, err)
        print(f"{loss_name}({reduction}) causal={causal} {name}: max relative error {err:.2e}")


def test_per_token_and_per_sequence_empirical_fisher_differ():
    """Control: curvlinops' EF is the per-token one; the per-sequence EF (fisherlab's default
    ``tokens="sum"``, rescaled) is a different matrix, so the agreement above is not vacuous."""
    import fisherlab as fl

    block, X, y, loss = _case("CrossEntropyLoss", "mean", True)
    net = ClassesSecond(block)
    params = list(net.parameters())
    d = sum(p.numel() for p in params)
    M = _dense(cl.EFLinearOperator(net, loss, params, [(X, y)], check_deterministic=False), d)
    P = flt.problem(block, X, y, loss)
    per_sequence = np.asarray(fl.empirical_fisher(P.f, P.params, P.x, P.y, P.likelihood)) / R
    assert relative_error(per_sequence, M) > 1e-2
