"""The peer convention presets (``Problem.reference(q, convention=...)``) against the real peers.

Each preset maps fisherlab's own reference -- on a plain :class:`fisherlab.testing.Problem`
with the loss's reduction, not the PyTorch bridge's rescaled one -- to the library's output;
here the library computes on the same network, parameters and data (float64) and the two must
agree to rounding. A peer that is not installed (or does not import) is skipped.
"""

import numpy as np
import pytest
import scipy.linalg

import fisherlab as fl
from fisherlab.testing import Problem, diagnose

from _peer_cases import all_cases, case, case_id, make_net, rel

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.peers
RTOL = 1e-10


def _plain(c):
    """The torch case and the plain fisherlab problem with the loss's reduction."""
    net, X, y, loss, P = case(*c)
    return net, X, y, loss, Problem(P.model, P.params, P.x, P.y, P.likelihood,
                                    reduction=loss.reduction)


def _dense(op, d):
    return (op @ torch.eye(d, dtype=torch.float64)).detach().numpy()


# ---------------------------------------------------------------------------------- curvlinops
@pytest.mark.parametrize("c", all_cases(), ids=case_id)
def test_curvlinops_preset(c):
    cl = pytest.importorskip("curvlinops")
    net, X, y, loss, P = _plain(c)
    params, data, d = list(net.parameters()), [(X, y)], P.num_params
    kw = dict(check_deterministic=False)
    ops = {"hessian": cl.HessianLinearOperator, "ggn": cl.GGNLinearOperator,
           "empirical_fisher": cl.EFLinearOperator}
    for q, Op in ops.items():
        M = _dense(Op(net, loss, params, data, **kw), d)
        assert rel(M, P.reference(q, convention="curvlinops")) <= RTOL, q
    for ft, flt in (("type-2", "exact"), ("empirical", "empirical")):
        op = cl.KFACLinearOperator(net, loss, params, data, fisher_type=ft, **kw)  # its default
        ref = P.reference("kfac", convention="curvlinops", fisher_type=flt)
        assert rel(_dense(op, d), ref) <= RTOL, ft


# ---------------------------------------------------------------------------------- BackPACK
def _backpack_cases():
    return [c for c in all_cases() if not (c[1] == "BCEWithLogitsLoss" and c[3] > 1)]


@pytest.mark.parametrize("c", _backpack_cases(), ids=case_id)
def test_backpack_preset(c):
    backpack = pytest.importorskip("backpack")
    from backpack.extensions import KFLR, BatchGrad, DiagGGNExact

    kind, loss_name, red, C = c
    net, X, y, loss, P = _plain(c)
    m = backpack.extend(make_net(torch, kind, C))
    m.load_state_dict(net.state_dict())
    lossf = backpack.extend(getattr(torch.nn, loss_name)(reduction=red))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with backpack.backpack(DiagGGNExact(), KFLR(), BatchGrad()):
            lossf(m(X), y).backward()
    ps = list(m.parameters())
    diag = np.concatenate([p.diag_ggn_exact.flatten().numpy() for p in ps])
    assert rel(diag, np.diag(P.reference("ggn", convention="backpack"))) <= RTOL
    blocks = [np.kron(p.kflr[0].numpy(), p.kflr[1].numpy()) if len(p.kflr) == 2
              else p.kflr[0].numpy() for p in ps]
    assert rel(scipy.linalg.block_diag(*blocks), P.reference("kfac", convention="backpack")) <= RTOL
    bg = np.concatenate([p.grad_batch.reshape(X.shape[0], -1).numpy() for p in ps], axis=1)
    EF = P.reference("empirical_fisher", convention="backpack")
    assert rel(bg.T @ bg, EF) <= RTOL
    if red == "mean" and rel(EF, P.reference("empirical_fisher")) > 1e-6:
        # compared with fisherlab's own reference, diagnose names the preset
        f = diagnose(bg.T @ bg, P.reference("empirical_fisher"), problem=P,
                     quantity="empirical_fisher")
        assert f[0].kind == "scalar_factor" and "backpack" in f[0].message, f[0].message


# ---------------------------------------------------------------------------------- ASDL
def _asdl():
    asdl = pytest.importorskip("asdl")
    if not hasattr(asdl, "FisherConfig"):
        pytest.skip("the installed 'asdl' is not ASDL (kazukiosawa/asdl)")
    return asdl


def _half_mse(out, target, reduction="sum"):
    return 0.5 * torch.nn.functional.mse_loss(out, target, reduction=reduction)


@pytest.mark.parametrize("red", ["mean", "sum"])
@pytest.mark.parametrize("loss_name", ["CrossEntropyLoss", "MSELoss"])
def test_asdl_preset(loss_name, red):
    asdl = _asdl()
    net, X, y, loss, P = _plain(("tanh", loss_name, red, 3))
    N = X.shape[0]
    ce = loss_name == "CrossEntropyLoss"
    loss_type = asdl.LOSS_CROSS_ENTROPY if ce else asdl.LOSS_MSE
    lossfn = torch.nn.functional.cross_entropy if ce else _half_mse
    for ftype, q, ft in ((asdl.FISHER_EXACT, "fisher", "exact"),
                         (asdl.FISHER_EMP, "empirical_fisher", "empirical")):
        got = {}
        for shape in (asdl.SHAPE_FULL, asdl.SHAPE_KRON):
            cfg = asdl.FisherConfig(fisher_type=ftype, fisher_shapes=[shape], loss_type=loss_type,
                                    data_size=N if red == "mean" else 1)
            fm = asdl.get_fisher_maker(net, cfg)
            dummy = fm.setup_model_call(net, X)
            fm.setup_loss_call(lossfn, dummy, y, reduction="sum")
            fm.forward_and_backward()
            if shape == asdl.SHAPE_FULL:
                got["full"] = fm.get_fisher_tensor(net, "data").numpy().copy()
            else:
                got["kron"] = [(lay.fisher.kron.A.numpy().copy(), lay.fisher.kron.B.numpy().copy())
                               for lay in (net[0], net[2])]
            for mod in net.modules():  # the next maker starts from no stored Fisher
                if hasattr(mod, "fisher"):
                    del mod.fisher
        assert rel(got["full"], P.reference(q, convention="asdl")) <= RTOL, q
        for k, (A, B) in enumerate(got["kron"]):
            refA = P.reference("kfac_factor_A", convention="asdl", layer=k, fisher_type=ft)
            refG = P.reference("kfac_factor_G", convention="asdl", layer=k, fisher_type=ft)
            assert rel(A, refA) <= RTOL and rel(B, refG) <= RTOL, (q, k)


# ---------------------------------------------------------------------------------- nngeometry
@pytest.mark.parametrize("loss_name,C", [("CrossEntropyLoss", 3), ("MSELoss", 3),
                                         ("BCEWithLogitsLoss", 1)])
def test_nngeometry_preset(loss_name, C):
    pytest.importorskip("nngeometry")
    from nngeometry.metrics import FIM
    from nngeometry.object import PMatDense, PMatKFAC
    from torch.utils.data import DataLoader, TensorDataset

    variant = {"CrossEntropyLoss": "classif_logits", "MSELoss": "regression",
               "BCEWithLogitsLoss": "classif_binary_logits"}[loss_name]
    net, X, y, loss, P = _plain(("tanh", loss_name, "mean", C))
    loader = DataLoader(TensorDataset(X, y), batch_size=X.shape[0])
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # nngeometry allocates in the default dtype
    try:
        F = FIM(net, loader, PMatDense, variant=variant).to_torch().detach().numpy()
        K = FIM(net, loader, PMatKFAC, variant=variant)
        KF = K.to_torch().detach().numpy()
        KF_wb = K.to_torch(split_weight_bias=False).detach().numpy()
    finally:
        torch.set_default_dtype(old)
    assert rel(F, P.reference("fisher", convention="nngeometry")) <= RTOL
    ref = P.reference("kfac", convention="nngeometry")
    assert rel(KF, ref) <= RTOL
    # the [W | b] row-major layout is a permutation, which diagnose names
    f = diagnose(KF_wb, ref, problem=P, quantity="kfac")
    assert f[0].kind == "parameter_order", [str(x) for x in f]


# ---------------------------------------------------------------------------------- laplace
@pytest.mark.parametrize("loss_name,likelihood", [("CrossEntropyLoss", "classification"),
                                                  ("MSELoss", "regression")])
def test_laplace_torch_preset(loss_name, likelihood):
    try:
        from laplace.curvature import BackPackEF, CurvlinopsGGN
    except Exception as exc:  # noqa: BLE001 - e.g. a torchvision built for another torch
        pytest.skip(f"laplace-torch does not import here: {type(exc).__name__}: {exc}")
    net, X, y, loss, P = _plain(("tanh", loss_name, "mean", 3))
    _, EF = BackPackEF(net, likelihood).full(X, y)
    assert rel(EF.numpy(), P.reference("empirical_fisher", convention="laplace-torch")) <= RTOL
    _, K = CurvlinopsGGN(net, likelihood).kron(X, y, N=X.shape[0])
    assert rel(K.to_matrix().detach().numpy(),
               P.reference("kfac", convention="laplace-torch")) <= RTOL
    # the full GGN multiplies the operator with torch.eye in the default dtype (float32)
    _, H = CurvlinopsGGN(net, likelihood).full(X, y)
    assert rel(H.detach().numpy(), P.reference("ggn", convention="laplace-torch")) <= 1e-6


def test_presets_cover_every_documented_peer_and_refuse_what_they_lack():
    names = set(fl.testing.PEER_CONVENTIONS)
    assert {"curvlinops", "backpack", "kfac-jax", "asdl", "nngeometry", "laplace-torch",
            "pytorch"} <= names
    net, X, y, loss, P = _plain(("tanh", "CrossEntropyLoss", "mean", 3))
    with pytest.raises(ValueError, match="convention must be one of"):
        P.reference("ggn", convention="jax")
    pois = Problem(P.model, P.params, P.x, np.ones((X.shape[0], 3)), fl.Poisson())
    with pytest.raises(ValueError, match="no loss for the likelihood Poisson"):
        pois.reference("ggn", convention="curvlinops")
    assert pois.reference("ggn", convention="pytorch").shape == (P.num_params,) * 2
