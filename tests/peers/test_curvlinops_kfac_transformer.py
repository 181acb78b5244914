"""Conformance: K-FAC expand and reduce inside a PyTorch pre-LN transformer block vs curvlinops.

curvlinops' ``KFACLinearOperator`` factorises the ``Linear`` modules it sees run (here the MLP
and the head of the block; the attention's projections run inside ``multi_head_attention_forward``
and are not hooked, so only the Linear modules' parameters are passed to it). It treats the
``N R`` tokens of ``(N, R, C)`` outputs as the loss terms -- fisherlab's ``tokens="flatten"`` --
and keeps weight and bias apart (``bias="separate"``). fisherlab's K-FAC of the whole block
(norms, attention and embedding-free) is restricted to the same parameters; both are scaled to
the loss's own reduction (the bridge's factors), so the matrices must agree to rounding: for
the exact (curvlinops' ``type-2``) and the empirical expectation with ``kfac_approx="expand"``,
and for the empirical expectation with ``"reduce"``.

Measured difference (curvlinops 3.0.1): its ``type-2`` K-FAC-reduce on per-token outputs is
``R`` times fisherlab's ``tokens="flatten"`` factor on the MLP's second layer and the head
(i.e. fisherlab's ``tokens="sum"`` scaling, not that of the loss averaged over the ``N R``
tokens) and differs by a further ~1e-3 relative on the MLP's first layer; that case is not
asserted.
"""

import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing import relative_error

torch = pytest.importorskip("torch")
cl = pytest.importorskip("curvlinops")
from fisherlab.testing import torch as flt  # noqa: E402
from _torch_blocks import Block, ClassesSecond  # noqa: E402

pytestmark = pytest.mark.peers
nn = torch.nn
RTOL = 1e-10
D, HEADS, R, N, C, HIDDEN = 4, 2, 3, 3, 3, 5


def _case(loss_name, reduction):
    torch.manual_seed(0)
    block = Block(D, HEADS, HIDDEN, C, R).double()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    g = torch.Generator().manual_seed(1)
    X = torch.randn(N, R, D, dtype=torch.float64, generator=g)
    if loss_name == "CrossEntropyLoss":
        y = torch.randint(0, C, (N, R), generator=g)
    else:
        y = torch.randn(N, R, C, dtype=torch.float64, generator=g)
    return block, X, y, getattr(nn, loss_name)(reduction=reduction)


def _linear_rows(block):
    """Parameter-order indices of the Linear modules' weights and biases, from torch's own
    ``named_parameters``."""
    rows, start = [], 0
    for name, p in block.named_parameters():
        if name.startswith(("mlp.", "head.")):
            rows.extend(range(start, start + p.numel()))
        start += p.numel()
    return np.asarray(rows)


CASES = [("CrossEntropyLoss", "mean"), ("CrossEntropyLoss", "sum"), ("MSELoss", "mean")]


@pytest.mark.parametrize("loss_name,reduction", CASES)
@pytest.mark.parametrize("approx", ["expand", "reduce"])
def test_kfac_of_the_linear_layers_of_a_transformer_block(loss_name, reduction, approx):
    block, X, y, loss = _case(loss_name, reduction)
    net = ClassesSecond(block) if loss_name == "CrossEntropyLoss" else block
    linear = [p for n, p in block.named_parameters() if n.startswith(("mlp.", "head."))]
    d = sum(p.numel() for p in linear)
    P = flt.problem(block, X, y, loss)
    rows = _linear_rows(block)
    expectations = [("empirical", "empirical", P.empirical_fisher_factor)]
    if approx == "expand":
        expectations.append(("exact", "type-2", P.curvature_factor))
    for ours, theirs, scale in expectations:
        op = cl.KFACLinearOperator(net, loss, linear, [(X, y)], fisher_type=theirs,
                                   kfac_approx=approx, num_per_example_loss_terms=R,
                                   separate_weight_and_bias=True, check_deterministic=False)
        M = (op @ torch.eye(d, dtype=torch.float64)).detach().numpy()
        f = fl.kfac.factors(P.model, P.params, P.x, P.y, P.likelihood, fisher_type=ours,
                            approx=approx, bias="separate", tokens="flatten")
        K = scale * np.asarray(fl.kfac.matrix(f, P.model))[np.ix_(rows, rows)]
        err = relative_error(K, M)
        assert err <= RTOL, (ours, err)
        print(f"{loss_name}({reduction}) {approx} {ours}: relative error {err:.2e}")
