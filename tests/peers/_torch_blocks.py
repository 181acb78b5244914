"""The PyTorch modules the transformer conformance tests share (imported after
``pytest.importorskip("torch")``)."""

import torch

nn = torch.nn


class Block(nn.Module):
    """Pre-LN transformer block with a per-token head, ``(N, R, d) -> (N, R, C)``; ``causal``
    masks the future of each of the ``R`` tokens."""

    def __init__(self, d: int, heads: int, hidden: int, C: int, R: int, causal: bool = False):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
        self.head = nn.Linear(d, C)
        self.causal = causal
        self.register_buffer("mask", torch.triu(torch.ones(R, R, dtype=torch.bool), 1))

    def forward(self, x):
        h = self.ln1(x)
        mask = self.mask if self.causal else None
        x = x + self.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        return self.head(x + self.mlp(self.ln2(x)))


class ClassesSecond(nn.Module):
    """``(N, R, C) -> (N, C, R)``: PyTorch's (and curvlinops') layout for cross-entropy."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block(x).transpose(1, 2)
