"""fl.testing.torch on modules people write: transformer blocks, token losses, refusals.

Ground truth is computed in PyTorch itself, float64, independently of the bridge: the module is
called through ``torch.func.functional_call`` on a flat parameter vector in ``parameters()``
order; the GGN is ``J^T (d^2 loss / d out^2) J`` with ``torch.func.jacrev``/``hessian`` of the
loss on the flattened tokens, the empirical Fisher ``(1/R) sum_t g_t g_t^T`` from the Jacobian of
the unreduced per-token loss vector (``reduction="none"``), the Hessian ``torch.func.hessian``.
"""

import numpy as np
import pytest

from fisherlab.testing import relative_error

torch = pytest.importorskip("torch")
from fisherlab.testing import torch as flt  # noqa: E402

nn = torch.nn
F = torch.nn.functional
RTOL = 1e-10
D, HEADS, R, N, C, VOCAB = 4, 2, 3, 3, 3, 6


class PreLNBlock(nn.Module):
    """A pre-LN transformer block with a per-token linear head: (N, R, D) -> (N, R, C)."""

    def __init__(self, causal=False, norm="layer"):
        super().__init__()
        Norm = nn.LayerNorm if norm == "layer" else nn.RMSNorm
        self.ln1 = Norm(D)
        self.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
        self.ln2 = Norm(D)
        self.mlp = nn.Sequential(nn.Linear(D, 8), nn.GELU(), nn.Linear(8, D))
        self.head = nn.Linear(D, C)
        self.causal = causal
        if causal:
            self.register_buffer("mask", torch.triu(torch.ones(R, R, dtype=torch.bool), 1))

    def forward(self, x):
        h = self.ln1(x)
        if self.causal:
            x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
        else:
            x = x + self.attn(h, h, h)[0]
        x = x + self.mlp(self.ln2(x))
        return self.head(x)


class TokenLM(nn.Module):
    """Token ids (N, R) -> logits (N, R, VOCAB): embedding, causal pre-LN block, head."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, D)
        self.block = PreLNBlock(causal=True)
        self.block.head = nn.Linear(D, D)
        self.out = nn.Linear(D, VOCAB)

    def forward(self, ids):
        return self.out(self.block(self.emb(ids)))


def _seed(module, seed=0):
    torch.manual_seed(seed)
    for p in module.parameters():
        with torch.no_grad():
            p.copy_(0.5 * torch.randn_like(p))  # LayerNorm weights away from 1, biases non-zero
    return module.double()


def _flat(module):
    names = [n for n, _ in module.named_parameters()]
    shapes = [p.shape for _, p in module.named_parameters()]
    sizes = [p.numel() for _, p in module.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in module.parameters()])

    def f(t, X):
        ps = {n: c.reshape(s) for n, c, s in zip(names, torch.split(t, sizes), shapes)}
        return torch.func.functional_call(module, ps, (X,))

    return f, theta


def _truth(module, X, y, loss, quantities):
    """Ground truth in torch.func for the loss over flattened tokens (or plain (N, C))."""
    f, theta = _flat(module)
    out = f(theta, X)
    tokens = out.ndim == 3

    def flat_out(o):
        return o.flatten(0, 1) if tokens else o

    def flat_y(t):
        return t.flatten(0, 1) if tokens else t

    def total(t):
        return loss(flat_out(f(t, X)), flat_y(y))

    res = {}
    if "hessian" in quantities:
        res["hessian"] = torch.func.hessian(total)(theta).numpy()
    if "ggn" in quantities:
        J = torch.func.jacrev(lambda t: flat_out(f(t, X)))(theta)  # (T, C, d)
        o = flat_out(out)
        lam = torch.func.hessian(lambda oo: loss(oo, flat_y(y)))(o)  # (T, C, T, C)
        res["ggn"] = torch.einsum("tci,tcsd,sdj->ij", J, lam, J).numpy()
    if "empirical_fisher" in quantities:
        unreduced = type(loss)(reduction="none")

        def per_term(t):  # one loss term per token (summed over outputs for MSE/BCE)
            v = unreduced(flat_out(f(t, X)), flat_y(y))
            return v if v.ndim == 1 else v.sum(dim=-1)

        g = torch.func.jacrev(per_term)(theta)  # (T, d)
        T, Cout = flat_out(out).shape
        if loss.reduction == "sum":
            norm = 1
        else:
            norm = T if isinstance(loss, nn.CrossEntropyLoss) else T * Cout
        res["empirical_fisher"] = (g.T @ g / norm).numpy()
    return res


def _float_batch(seed=1, n=N):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, R, D, dtype=torch.float64, generator=g)


def _targets(loss_name, seed=2, n=N, classes=C):
    g = torch.Generator().manual_seed(seed)
    if loss_name == "CrossEntropyLoss":
        return torch.randint(0, classes, (n, R), generator=g)
    return torch.randn(n, R, classes, dtype=torch.float64, generator=g)


# ----------------------------------------------------------------------------- transformer blocks


@pytest.mark.parametrize("loss_name,reduction", [("CrossEntropyLoss", "mean"),
                                                ("MSELoss", "sum")])
def test_pre_ln_block_ggn_and_empirical_fisher_equal_torch_func(loss_name, reduction):
    block = _seed(PreLNBlock())
    X, y = _float_batch(), _targets(loss_name)
    loss = getattr(nn, loss_name)(reduction=reduction)
    truth = _truth(block, X, y, loss, ("ggn", "empirical_fisher"))
    P = flt.problem(block, X, y, loss)
    assert type(P.f).__name__ == "Sequential"
    for q in ("ggn", "empirical_fisher"):
        assert relative_error(P.reference(q), truth[q]) <= RTOL, q
    # natural parameters: Fisher == GGN in the loss's own convention too
    assert relative_error(P.reference("fisher"), truth["ggn"]) <= RTOL


def test_pre_ln_block_hessian_equals_torch_func():
    block = _seed(PreLNBlock(norm="rms"))
    X, y = _float_batch(), _targets("CrossEntropyLoss")
    loss = nn.CrossEntropyLoss()
    truth = _truth(block, X, y, loss, ("hessian",))
    assert relative_error(flt.reference(block, X, y, loss, "hessian"), truth["hessian"]) <= RTOL


def test_causal_token_language_model():
    """Token ids in, next-token logits out, causal mask as a buffer: GGN and EF."""
    lm = _seed(TokenLM())
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (N, R), generator=g)
    y = torch.randint(0, VOCAB, (N, R), generator=g)
    loss = nn.CrossEntropyLoss()
    truth = _truth(lm, ids, y, loss, ("ggn", "empirical_fisher"))
    P = flt.problem(lm, ids, y, loss)
    assert P.tokens == "flatten" and np.issubdtype(np.asarray(P.x).dtype, np.integer)
    for q in ("ggn", "empirical_fisher"):
        assert relative_error(P.reference(q), truth[q]) <= RTOL, q
    # the causal mask matters: without it the module (and the reference) differ
    unmasked = flt.problem(_seed(TokenLM()), ids, y, loss)
    lm2 = _seed(TokenLM())
    lm2.block.causal = False
    assert relative_error(flt.reference(lm2, ids, y, loss, "ggn"), truth["ggn"]) > 1e-3
    assert relative_error(unmasked.reference("ggn"), truth["ggn"]) <= RTOL


# ----------------------------------------------------------------------------- order and sharing


class Reordered(nn.Module):
    """Registers the head before the layers that run first: parameters() order != run order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(D, C)
        self.norm = nn.LayerNorm(D)
        self.fc = nn.Linear(D, D)

    def forward(self, x):
        return self.head(torch.tanh(self.fc(self.norm(x))))


class Shared(nn.Module):
    """The same Linear applied twice (weight sharing across depth)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, D)
        self.head = nn.Linear(D, C)

    def forward(self, x):
        x = x + self.fc(x).tanh()
        x = x + self.fc(x).tanh()
        return self.head(x)


@pytest.mark.parametrize("make", [Reordered, Shared])
def test_parameters_order_without_permutation(make):
    net = _seed(make())
    X, y = _float_batch(), _targets("MSELoss")
    loss = nn.MSELoss()
    P = flt.problem(net, X, y, loss)
    assert isinstance(P.f, flt.TorchOrder)
    flat = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])
    np.testing.assert_array_equal(np.asarray(P.flat_params), flat)
    truth = _truth(net, X, y, loss, ("ggn", "empirical_fisher", "hessian"))
    for q in ("ggn", "empirical_fisher", "hessian"):
        assert relative_error(P.reference(q), truth[q]) <= RTOL, q


# ----------------------------------------------------------------------------- other covered ops


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, stride=1, padding=1)
        self.flat = nn.Flatten()
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(3 * 4 * 4, C)

    def forward(self, x):
        return self.fc(self.drop(self.flat(F.relu(self.conv(x)))))


class Pooled(nn.Module):
    """Functional activations, tensor methods and mean pooling over tokens: (N, R, D) -> (N, C)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, D)
        self.fc2 = nn.Linear(D, D)
        self.out = nn.Linear(D, C)

    def forward(self, x):
        x = F.gelu(self.fc(x), approximate="tanh")
        x = x + torch.sigmoid(self.fc2(x)).relu()
        return self.out(x.mean(dim=1))


def test_conv_flatten_dropout_eval():
    net = _seed(ConvNet()).eval()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, 2, 4, 4, dtype=torch.float64, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    loss = nn.CrossEntropyLoss()
    truth = _truth(net, X, y, loss, ("ggn", "empirical_fisher"))
    P = flt.problem(net, X, y, loss)
    assert P.tokens is None
    for q in ("ggn", "empirical_fisher"):
        assert relative_error(P.reference(q), truth[q]) <= RTOL, q


def test_functional_activations_and_token_mean():
    net = _seed(Pooled())
    X = _float_batch()
    y = torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(5))
    loss = nn.CrossEntropyLoss(reduction="sum")
    truth = _truth(net, X, y, loss, ("ggn", "hessian", "empirical_fisher"))
    P = flt.problem(net, X, y, loss)
    for q in ("ggn", "hessian", "empirical_fisher"):
        assert relative_error(P.reference(q), truth[q]) <= RTOL, q


# ----------------------------------------------------------------------------- refusals


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(D, D), nn.BatchNorm1d(R))])
        self.head = nn.Linear(D, C)

    def forward(self, x):
        return self.head(self.blocks[0](x))


class WithCat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * D, C)

    def forward(self, x):
        return self.fc(torch.cat([x, x.tanh()], dim=-1))


class CrossAttention(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
        self.kind = kind
        self.register_buffer("mask", torch.zeros(R, R, dtype=torch.bool).fill_diagonal_(True))
        self.register_buffer("pad", torch.zeros(N, R, dtype=torch.bool))

    def forward(self, x):
        if self.kind == "cross":
            return self.attn(x, x.tanh(), x)[0]
        if self.kind == "padding":
            return self.attn(x, x, x, key_padding_mask=self.pad)[0]
        if self.kind == "mask":
            return self.attn(x, x, x, attn_mask=self.mask)[0]
        return self.attn(x, x, x)[1]


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(D, C), nn.Linear(D, C)

    def forward(self, x):
        return self.a(x) + self.b(x)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, C)

    def forward(self, x, z):
        return self.fc(x + z)


class Unused(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.spare = nn.Linear(D, C), nn.Linear(D, C)

    def forward(self, x):
        return self.fc(x)


class Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(D, C)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return -self.fc(x)


class NoBias(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(nn.Sequential(nn.Linear(D, D, bias=False)))
        self.head = nn.Linear(D, C)

    def forward(self, x):
        return self.head(self.blocks(x))


@pytest.mark.parametrize("make,error,match", [
    (WithBatchNorm, TypeError, r"module 'blocks\.0\.1' \(BatchNorm1d\) is not supported"),
    (WithCat, TypeError, r"the root module \(WithCat\) applies torch\.cat"),
    (lambda: CrossAttention("cross"), ValueError,
     r"module 'attn' \(MultiheadAttention\) is called with different query, key and value"),
    (lambda: CrossAttention("padding"), ValueError, r"'attn' .*key_padding_mask"),
    (lambda: CrossAttention("mask"), ValueError, r"'attn' .*not a registered causal mask"),
    (lambda: CrossAttention("weights"), ValueError, r"attention weights \(output \[1\]\)"),
    (TwoBranches, ValueError, r"adds two tensors that are not a residual connection"),
    (TwoInputs, ValueError, r"takes more than one input"),
    (Unused, ValueError, r"parameters that forward does not use: spare\.weight, spare\.bias"),
    (Branching, ValueError, r"the root module \(Branching\) could not be traced with torch\.fx"),
    (NoBias, ValueError, r"module 'blocks\.0\.0' \(Linear\) is Linear\(bias=False\)"),
    (lambda: nn.Sequential(nn.Linear(D, C), nn.Dropout(0.1)).train(), ValueError,
     r"module '1' \(Dropout\) is Dropout\(p=0\.1\) in training mode"),
    (lambda: nn.Sequential(nn.MultiheadAttention(D, HEADS)), ValueError, "batch_first=False"),
])
def test_unsupported_modules_are_named(make, error, match):
    net = make().double()
    with pytest.raises(error, match=match):
        flt.problem(net, _float_batch(), _targets("MSELoss"), nn.MSELoss())


# ----------------------------------------------------------------------------- bad input


def test_sequence_length_that_changes_within_a_batch():
    block = _seed(PreLNBlock())
    X = [torch.randn(R, D, dtype=torch.float64), torch.randn(R + 1, D, dtype=torch.float64)]
    with pytest.raises(ValueError, match=r"X: the sequence length changes within the batch: "
                                         r"X\[0\] has R = 3 tokens but X\[1\] has R = 4"):
        flt.problem(block, X, _targets("CrossEntropyLoss", n=2), nn.CrossEntropyLoss())
    y = [torch.zeros(R, dtype=torch.long), torch.zeros(R + 1, dtype=torch.long)]
    with pytest.raises(ValueError, match=r"sequence length must not change within a batch"):
        flt.problem(block, _float_batch(n=2), y, nn.CrossEntropyLoss())


@pytest.mark.parametrize("y,error,match", [
    (torch.zeros(N, R + 1, dtype=torch.long), ValueError,
     r"targets must have shape \(N, R\) = \(3, 3\) \(one class index per token\).*got \(3, 4\)"),
    (torch.zeros(N, dtype=torch.long), ValueError, r"\(N, R\) = \(3, 3\)"),
    (torch.zeros(N, R, dtype=torch.float64), ValueError, "probability"),
])
def test_token_targets_must_match(y, error, match):
    block = _seed(PreLNBlock())
    with pytest.raises(error, match=match):
        flt.problem(block, _float_batch(), y, nn.CrossEntropyLoss())


def test_token_ids_are_checked():
    lm = _seed(TokenLM())
    y = torch.zeros(N, R, dtype=torch.long)
    with pytest.raises(TypeError, match=r"X must be integers"):
        flt.problem(lm, torch.zeros(N, R, dtype=torch.float64), y, nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match=r"X must lie in 0\.\.5"):
        flt.problem(lm, torch.full((N, R), VOCAB), y, nn.CrossEntropyLoss())


def test_k_fac_is_not_offered_for_token_outputs():
    P = flt.problem(_seed(PreLNBlock()), _float_batch(), _targets("MSELoss"), nn.MSELoss())
    with pytest.raises(ValueError, match=r"'kfac' is not offered for a module with per-token"):
        P.reference("kfac")


def test_reproduction_check_fires_on_a_wrong_model():
    from fisherlab.testing._torch_convert import convert
    from fisherlab.testing.torch import _check_reproduces

    net = _seed(Pooled())
    other = _seed(Pooled(), seed=1)
    X = _float_batch().numpy()
    with pytest.raises(ValueError, match=r"does not reproduce module\(X\)"):
        _check_reproduces(net, convert(other).model, convert(other).params, X)
