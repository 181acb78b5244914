"""fl.testing.torch: references for a PyTorch network and loss in the loss's own scaling.

Ground truth is computed independently in PyTorch itself (``torch.func`` on the torch loss
module, float64): the Hessian of the loss, the GGN ``sum J^T (d^2 loss/d f^2) J`` and the
empirical Fisher ``(1/R) sum_n g_n g_n^T`` of the per-example *unnormalised* losses.
"""

import numpy as np
import pytest

from fisherlab.testing import relative_error

torch = pytest.importorskip("torch")
from fisherlab.testing import torch as flt  # noqa: E402

nn = torch.nn
RTOL = 1e-10


def _net(C):
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2), nn.Sigmoid(),
                         nn.Linear(2, C), nn.Identity()).double()


def _batch(loss_name, N, C):
    g = torch.Generator().manual_seed(7)
    X = torch.randn(N, 3, dtype=torch.float64, generator=g)
    if loss_name == "CrossEntropyLoss":
        y = torch.randint(0, C, (N,), generator=g)
    elif loss_name == "MSELoss":
        y = torch.randn(N, C, dtype=torch.float64, generator=g)
    else:
        y = torch.randint(0, 2, (N, C), generator=g).double()
    return X, y


def _flat_functional(net):
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for p in net.parameters()])

    def f(theta, X):
        chunks = torch.split(theta, sizes)
        params = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes)}
        return torch.func.functional_call(net, params, (X,))

    return f, theta


def _torch_truth(net, X, y, loss):
    f, theta = _flat_functional(net)
    H = torch.func.hessian(lambda t: loss(f(t, X), y))(theta)
    out = f(theta, X)
    J = torch.func.jacrev(f)(theta, X)  # (N, C, d)
    Lam = torch.func.hessian(lambda o: loss(o, y))(out)  # (N, C, N, C)
    N, C = out.shape
    G = torch.einsum("nci,ncmd,mdj->ij", J, Lam, J)
    sum_loss = type(loss)(reduction="sum")
    grads = torch.stack([torch.func.grad(lambda t: sum_loss(f(t, X[n:n + 1]), y[n:n + 1]))(theta)
                         for n in range(N)])
    if loss.reduction == "sum":
        R = 1
    else:
        R = N if isinstance(loss, nn.CrossEntropyLoss) else N * C
    EF = grads.T @ grads / R
    return {"hessian": H.numpy(), "ggn": G.numpy(), "empirical_fisher": EF.numpy()}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss_name,C", [("CrossEntropyLoss", 3), ("MSELoss", 3),
                                         ("BCEWithLogitsLoss", 2)])
def test_references_match_torch_autograd(loss_name, C, reduction):
    net = _net(C)
    X, y = _batch(loss_name, 4, C)
    loss = getattr(nn, loss_name)(reduction=reduction)
    truth = _torch_truth(net, X, y, loss)
    refs = flt.references(net, X, y, loss, quantities=("hessian", "ggn", "fisher",
                                                      "empirical_fisher"))
    for q in ("hessian", "ggn", "empirical_fisher"):
        assert relative_error(refs[q], truth[q]) <= RTOL, q
    # natural-parameter families: Fisher == GGN also in the loss's scaling
    assert relative_error(refs["fisher"], truth["ggn"]) <= RTOL


@pytest.mark.parametrize("loss_name,reduction,C,expected", [
    ("MSELoss", "mean", 3, (2 / 3, 4 / 3)), ("MSELoss", "sum", 3, (2 * 4, 4 * 4)),
    ("BCEWithLogitsLoss", "mean", 2, (1 / 2, 1 / 2)), ("BCEWithLogitsLoss", "sum", 2, (4, 4)),
    ("CrossEntropyLoss", "mean", 3, (1, 1)), ("CrossEntropyLoss", "sum", 3, (4, 4)),
])
def test_documented_loss_factors(loss_name, reduction, C, expected):
    """The factors of the module docstring table, for N = 4 (hand-derived)."""
    loss = getattr(nn, loss_name)(reduction=reduction)
    assert flt.loss_factors(loss, 4, C) == pytest.approx(expected)


def test_kfac_reference_is_exact_for_one_example():
    """K-FAC (exact type) equals the GGN's layer blocks for N = 1 (CONVENTIONS § K-FAC)."""
    net = nn.Sequential(nn.Linear(3, 2)).double()
    X, y = _batch("MSELoss", 1, 2)
    loss = nn.MSELoss()
    P = flt.problem(net, X, y, loss)
    assert relative_error(P.reference("kfac"), P.reference("ggn")) <= RTOL


def test_parameters_order_and_inputs_untouched():
    net = _net(3)
    before = [p.detach().clone() for p in net.parameters()]
    X, y = _batch("CrossEntropyLoss", 4, 3)
    P = flt.problem(net, X, y, nn.CrossEntropyLoss())
    flat = np.concatenate([p.detach().numpy().ravel() for p in net.parameters()])
    np.testing.assert_array_equal(np.asarray(P.flat_params), flat)
    for a, b in zip(before, net.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("make,match", [
    (lambda: (nn.Sequential(nn.Linear(3, 2, bias=False)), nn.MSELoss()), "bias"),
    (lambda: (nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.Linear(2, 2)), nn.MSELoss()),
     r"module '1' \(BatchNorm1d\) is not supported"),
    (lambda: (nn.LSTM(3, 2), nn.MSELoss()), r"the root module \(LSTM\) is not supported"),
    (lambda: (nn.Sequential(nn.Tanh()), nn.MSELoss()), "has no parameters"),
    (lambda: (nn.Sequential(nn.Linear(3, 2)), nn.MSELoss(reduction="none")), "reduction"),
    (lambda: (nn.Sequential(nn.Linear(3, 2)), nn.L1Loss()), "L1Loss"),
    (lambda: (nn.Sequential(nn.Linear(3, 2)), nn.CrossEntropyLoss(label_smoothing=0.1)),
     "label_smoothing"),
    (lambda: (nn.Sequential(nn.Linear(3, 2)),
              nn.CrossEntropyLoss(weight=torch.ones(2, dtype=torch.float64))), "weight"),
    (lambda: (nn.Sequential(nn.Linear(3, 2)), nn.BCEWithLogitsLoss(pos_weight=torch.ones(2))),
     "pos_weight"),
])
def test_unsupported_inputs_raise(make, match):
    net, loss = make()
    net = net.double()
    X = torch.zeros(2, 3, dtype=torch.float64)
    if isinstance(loss, nn.CrossEntropyLoss):
        y = torch.zeros(2, dtype=torch.long)
    else:
        y = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises((TypeError, ValueError), match=match):
        flt.reference(net, X, y, loss, "ggn")


@pytest.mark.parametrize("loss,y,match", [
    (nn.CrossEntropyLoss(), torch.full((2, 2), 0.5, dtype=torch.float64), "probability"),
    (nn.BCEWithLogitsLoss(), torch.full((2, 2), 0.3, dtype=torch.float64), "0/1"),
    (nn.MSELoss(), torch.zeros(2, 3, dtype=torch.float64), "shape"),
    (nn.MSELoss(), torch.zeros(3, 2, dtype=torch.float64), "batch"),
])
def test_bad_targets_raise(loss, y, match):
    net = nn.Sequential(nn.Linear(3, 2)).double()
    with pytest.raises(ValueError, match=match):
        flt.reference(net, torch.zeros(2, 3, dtype=torch.float64), y, loss, "ggn")


def test_wrong_input_width_raises():
    net = nn.Sequential(nn.Linear(3, 2)).double()
    with pytest.raises(ValueError, match=r"X must have shape \(N, \.\.\., 3\)"):
        flt.reference(net, torch.zeros(2, 4), torch.zeros(2, 2), nn.MSELoss(), "ggn")


def test_mse_mean_mismatch_is_named_by_the_diagnosis():
    """A user comparing a ½-squared-error GGN with MSELoss(mean) gets the 2/C convention named."""
    from fisherlab.testing import diagnose

    net = _net(3)
    X, y = _batch("MSELoss", 4, 3)
    P = flt.problem(net, X, y, nn.MSELoss())
    ref = P.reference("ggn")
    half_se = ref * 3 / 2  # fisherlab's Gaussian(variance=1) GGN, mean over N only
    f = diagnose(half_se, ref, problem=P, quantity="ggn")
    assert f[0].kind == "scalar_factor" and f[0].factor == pytest.approx(1.5)
    assert "C/2" in f[0].message


def _kfac_from_factors(P, **options):
    """Dense K-FAC in parameter order assembled from the bridge's own factors (augmented bias):
    layer block ``G (x) A`` with ``[W b]`` flattened row-major, i.e. index ``o (in+1) + i``."""
    blocks = []
    for k, layer in enumerate(P.model.dense_layers):
        A = P.reference("kfac_factor_A", layer=k, **options)
        G = P.reference("kfac_factor_G", layer=k, **options)
        out, inp = G.shape[0], A.shape[0] - 1
        K = np.kron(G, A)
        order = [o * (inp + 1) + i for o in range(out) for i in range(inp)]  # W (out, in)
        order += [o * (inp + 1) + inp for o in range(out)]  # then b
        blocks.append(K[np.ix_(order, order)])
    d = sum(b.shape[0] for b in blocks)
    M, at = np.zeros((d, d)), 0
    for b in blocks:
        M[at:at + b.shape[0], at:at + b.shape[0]] = b
        at += b.shape[0]
    return M


@pytest.mark.parametrize("fisher_type", ["exact", "empirical", "mc"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss_name,C", [("CrossEntropyLoss", 3), ("MSELoss", 3),
                                         ("BCEWithLogitsLoss", 2)])
def test_kfac_factors_kron_to_the_dense_kfac(loss_name, C, reduction, fisher_type):
    """Review defect 5: kron(G, A) of the bridge's factors is the bridge's dense K-FAC.

    Before the fix the empirical ``G`` was scaled by ``kappa N / R`` while the dense empirical
    K-FAC was scaled by ``kappa^2 N / R``: half the dense matrix for ``MSELoss`` (kappa = 2).
    The dense K-FAC is also checked against the loss-scaled closed form: ``kappa^2 N / R``
    (empirical) or ``kappa N / R`` (exact, mc) times fisherlab's mean-reduction K-FAC.
    """
    import jax

    import fisherlab as fl

    net = _net(C)
    X, y = _batch(loss_name, 4, C)
    loss = getattr(nn, loss_name)(reduction=reduction)
    P = flt.problem(net, X, y, loss)
    options = {"fisher_type": fisher_type}
    if fisher_type == "mc":
        options.update(key=jax.random.key(0), num_samples=3)
    dense = P.reference("kfac", **options)
    assert relative_error(_kfac_from_factors(P, **options), dense) <= RTOL
    cf, ef = flt.loss_factors(loss, 4, C)
    facs = fl.kfac.factors(P.model, P.params, P.x, P.y, P.likelihood, **options)
    plain = np.asarray(fl.kfac.matrix(facs, P.model))
    factor = ef if fisher_type == "empirical" else cf
    assert relative_error(dense, factor * plain) <= RTOL


def test_references_with_jax_default_float32(x32):
    """With JAX's default configuration (x64 off) and PyTorch's default float32 module and
    batch, the references are those of the float64 copy (not a dtype error, not inputs
    rounded to float32)."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))  # float32, as users build
    X, y = _batch("CrossEntropyLoss", 4, 3)  # float64 inputs, not representable in float32
    loss = nn.CrossEntropyLoss()
    truth = _torch_truth(net.double(), X, y, loss)
    net.float()
    for Xin in (X, X.float()):
        want = truth if Xin.dtype == torch.float64 else _torch_truth(net.double(), X.float().double(), y, loss)
        net.float()
        ref = flt.reference(net, Xin, y, loss, "ggn")
        assert ref.dtype == np.float64
        assert relative_error(ref, want["ggn"]) <= RTOL


def test_non_finite_inputs_or_parameters_are_named():
    """A NaN in X or in a parameter is named, not reported as a conversion that does not
    reproduce module(X)."""
    net = nn.Sequential(nn.Linear(3, 2)).double()
    X = torch.zeros(2, 3, dtype=torch.float64)
    X[1, 2] = float("nan")
    y = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"X must be finite, got nan at index \(1, 2\)"):
        flt.reference(net, X, y, nn.CrossEntropyLoss(), "ggn")
    with torch.no_grad():
        net[0].bias[1] = float("inf")
    with pytest.raises(ValueError, match=r"module parameter '0.bias' must be finite"):
        flt.reference(net, X.nan_to_num(), y, nn.CrossEntropyLoss(), "ggn")
