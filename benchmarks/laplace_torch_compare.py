"""Cross-check: laplace-torch 0.3's curvature backends against the "laplace-torch" preset
(``fisherlab.testing.PEER_CONVENTIONS``), float64, on the tanh network of tests/peers.

laplace-torch imports torchmetrics, which imports torchvision; where that torchvision does not
load against the installed torch, ``--stub-torchmetrics`` replaces torchmetrics by an empty
module (only laplace-torch's calibration metrics use it, not its curvature backends).

Usage: ``python3 benchmarks/laplace_torch_compare.py [--stub-torchmetrics]`` from the root.
Prints ``rel = ||laplace-torch - preset||_F / ||preset||_F`` per backend and quantity.
"""

from __future__ import annotations

import os
import sys
import types

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def _stub_torchmetrics():
    fake = types.ModuleType("torchmetrics")
    fake.__file__ = os.path.join(ROOT, "torchmetrics-stub", "__init__.py")

    def attr(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})

    fake.__getattr__ = attr
    sys.modules["torchmetrics"] = fake


def main():
    if "--stub-torchmetrics" in sys.argv[1:]:
        _stub_torchmetrics()
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests", "peers"))
    import jax

    jax.config.update("jax_enable_x64", True)
    from laplace.curvature import BackPackEF, CurvlinopsEF, CurvlinopsGGN

    from _peer_cases import case, rel
    from fisherlab.testing import Problem

    for loss_name, lik in (("CrossEntropyLoss", "classification"), ("MSELoss", "regression")):
        net, X, y, loss, TP = case("tanh", loss_name, "mean")
        P = Problem(TP.model, TP.params, TP.x, TP.y, TP.likelihood)
        for backend, q in ((CurvlinopsGGN, "ggn"), (CurvlinopsEF, "empirical_fisher"),
                           (BackPackEF, "empirical_fisher")):
            _, H = backend(net, lik).full(X, y)
            err = rel(H.detach().numpy(), P.reference(q, convention="laplace-torch"))
            print(f"{lik:15s} {backend.__name__:14s} full {q:17s} rel {err:.2e}")
        _, K = CurvlinopsGGN(net, lik).kron(X, y, N=X.shape[0])
        err = rel(K.to_matrix().detach().numpy(), P.reference("kfac", convention="laplace-torch"))
        print(f"{lik:15s} {'CurvlinopsGGN':14s} kron {'kfac':17s} rel {err:.2e}")


if __name__ == "__main__":
    main()
