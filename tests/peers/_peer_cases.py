"""Shared problem cases for the conformance tests against peer libraries (torch, float64)."""

from __future__ import annotations

import functools

import numpy as np

NETS = ("tanh", "deep")
LOSSES = ("CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss")
REDUCTIONS = ("mean", "sum")
N = 5


def make_net(torch, kind: str, C: int):
    nn = torch.nn
    if kind == "tanh":
        net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, C))
    elif kind == "deep":
        net = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid(), nn.Linear(3, 3), nn.ReLU(),
                            nn.Linear(3, C))
    else:  # pragma: no cover
        raise ValueError(kind)
    return net.double()


@functools.lru_cache(maxsize=None)
def case(kind: str, loss_name: str, reduction: str, C: int = 3, seed: int = 0):
    """``(net, X, y, loss, fisherlab TorchProblem)`` for one configuration (cached)."""
    import torch

    from fisherlab.testing import torch as flt

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = make_net(torch, kind, C)
    loss = getattr(torch.nn, loss_name)(reduction=reduction)
    X = torch.randn(N, 3, dtype=torch.float64, generator=g)
    if loss_name == "CrossEntropyLoss":
        y = torch.randint(0, C, (N,), generator=g)
    elif loss_name == "MSELoss":
        y = torch.randn(N, C, dtype=torch.float64, generator=g)
    else:
        y = torch.randint(0, 2, (N, C), generator=g).double()
    return net, X, y, loss, flt.problem(net, X, y, loss)


def all_cases():
    """(kind, loss, reduction, C): every net x loss x reduction; BCE also with one output."""
    out = []
    for kind in NETS:
        for loss in LOSSES:
            for red in REDUCTIONS:
                out.append((kind, loss, red, 3))
    out += [("tanh", "BCEWithLogitsLoss", red, 1) for red in REDUCTIONS]
    return out


def case_id(c):
    return "-".join(str(v) for v in c)


def rel(a, b) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(np.float64).tiny))
