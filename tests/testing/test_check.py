"""`fisherlab check CANDIDATE PROBLEM`: agreement (0), disagreement with diagnosis (1), bad input (2)."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.cli import main

X = [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5], [0.3, 0.1, -0.2]]
BASE = {"network": {"widths": [3, 4, 2], "activations": ["tanh"]}, "seed": 0,
        "data": {"x": X, "y": [0, 1, 1]}, "likelihood": "categorical", "quantity": "fisher",
        "conventions": {"reduction": "mean"}}


def _model():
    return fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])


def _ref(kind="fisher", **kw):
    model = _model()
    params = model.init(jax.random.key(0))
    x = np.asarray(X)
    y = np.array([0, 1, 1])
    if kind == "fisher":
        return np.asarray(fl.fisher(model, params, x, fl.Categorical()))
    if kind == "empirical_fisher":
        return np.asarray(fl.empirical_fisher(model, params, x, y, fl.Categorical()))
    facs = fl.kfac.factors(model, params, x, y, fl.Categorical(), **kw)
    return np.asarray(fl.kfac.matrix(facs, model, bias=kw.get("bias", "augmented")))


def _write(tmp_path, spec, name="p.json"):
    p = tmp_path / name
    p.write_text(json.dumps(spec))
    return str(p)


def _cand(tmp_path, M, name="c.npy"):
    p = tmp_path / name
    np.save(p, M)
    return str(p)


def _run(capsys, cand, prob):
    code = main(["check", cand, prob])
    return code, capsys.readouterr().out


def test_agreement_exit_0(tmp_path, capsys):
    code, out = _run(capsys, _cand(tmp_path, _ref()), _write(tmp_path, BASE))
    assert code == 0 and out.startswith("agreement")


def test_disagreement_prints_diagnosis_exit_1(tmp_path, capsys):
    code, out = _run(capsys, _cand(tmp_path, _ref("empirical_fisher")), _write(tmp_path, BASE))
    assert code == 1
    assert "DISAGREEMENT" in out and "[empirical_fisher_for_fisher]" in out
    code, out = _run(capsys, _cand(tmp_path, 3 * _ref()), _write(tmp_path, BASE))
    assert code == 1 and "[scalar_factor]" in out and "N=3" in out


def test_kfac_bias_convention(tmp_path, capsys):
    spec = dict(BASE, quantity="kfac", conventions={"bias": "augmented"})
    code, out = _run(capsys, _cand(tmp_path, _ref("kfac", bias="separate")), _write(tmp_path, spec))
    assert code == 1 and "[bias_cross_terms_missing]" in out
    spec = dict(BASE, quantity="kfac", conventions={"bias": "separate"})
    code, _ = _run(capsys, _cand(tmp_path, _ref("kfac", bias="separate")), _write(tmp_path, spec))
    assert code == 0


def test_toml_with_weights_and_data_files(tmp_path, capsys):
    model = _model()
    params = model.init(jax.random.key(0))
    # weights stored (in, out): declared by weight_layout
    np.savez(tmp_path / "w.npz", W1=np.asarray(params[0][0]).T, b1=params[0][1],
             W2=np.asarray(params[1][0]).T, b2=params[1][1])
    np.savez(tmp_path / "d.npz", x=np.asarray(X), y=np.array([0, 1, 1]))
    (tmp_path / "p.toml").write_text(
        'weights = "w.npz"\ndata = "d.npz"\nlikelihood = "categorical"\nquantity = "fisher"\n'
        '[network]\nwidths = [3, 4, 2]\nactivations = "tanh"\n'
        '[conventions]\nweight_layout = "in_out"\n')
    np.savez(tmp_path / "c.npz", fisher=_ref())
    code, out = _run(capsys, str(tmp_path / "c.npz"), str(tmp_path / "p.toml"))
    assert code == 0, out


def test_torch_loss_scaling_without_torch(tmp_path, capsys):
    """MSELoss(mean) = (2/C) x fisherlab's Gaussian(variance=1) GGN (C = 2 -> factor 1)."""
    spec = dict(BASE, network={"widths": [3, 4, 3], "activations": ["tanh"]},
                data={"x": X, "y": [[0.0, 1.0, 2.0]] * 3}, likelihood="gaussian", quantity="ggn",
                conventions={"torch_loss": "MSELoss", "reduction": "mean"})
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
    params = model.init(jax.random.key(0))
    G = np.asarray(fl.ggn(model, params, np.asarray(X), np.array([[0.0, 1.0, 2.0]] * 3),
                          fl.Gaussian()))
    code, out = _run(capsys, _cand(tmp_path, 2 / 3 * G), _write(tmp_path, spec))
    assert code == 0, out
    code, out = _run(capsys, _cand(tmp_path, G), _write(tmp_path, spec))
    assert code == 1 and "C/2" in out


def test_entry_point_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "fisherlab.cli", "check",
                        _cand(tmp_path, _ref()), _write(tmp_path, BASE)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "agreement" in r.stdout


def _with(**kw):
    spec = json.loads(json.dumps(BASE))
    for k, v in kw.items():
        if v is None:
            spec.pop(k, None)
        else:
            spec[k] = v
    return spec


BAD = [
    (_with(colour="red"), "unknown field"),
    (_with(conventions={"reduktion": "mean"}), "unknown field"),
    (_with(conventions={"reduction": "average"}), "unknown convention"),
    (_with(conventions={"bias": "augmented"}), "K-FAC quantities only"),
    (_with(quantity="fisher_information"), "quantity"),
    (_with(network=None), "network"),
    (_with(network={"widths": [3], "activations": []}), "widths"),
    (_with(network={"widths": [3, 4, 2], "activations": ["gelu"]}), "activation"),
    (_with(network={"widths": [3, 4, 2], "activations": ["tanh"], "depth": 2}), "unknown field"),
    (_with(weights="w.npz"), "exactly one"),
    (_with(seed=None), "exactly one"),
    (_with(seed=-1), "seed"),
    (_with(data=None), "data"),
    (_with(data={"x": X}), "'x' and 'y'"),
    (_with(data={"x": X, "y": [0, 1, 5]}), "invalid problem"),
    (_with(data={"x": X, "y": [0, 1]}), "invalid problem"),
    (_with(likelihood="softmax"), "likelihood"),
    (_with(likelihood={"name": "categorical", "variance": 2.0}), "no options"),
    (_with(likelihood={"name": "gaussian", "variance": -1.0}), "variance"),
    (_with(conventions={"torch_loss": "MSELoss"}), "torch_loss"),
    (_with(conventions={"torch_loss": "HuberLoss"}), "unknown convention"),
]


@pytest.mark.parametrize("spec,match", BAD, ids=[m + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_problem_files_exit_2(tmp_path, capsys, spec, match):
    code, out = _run(capsys, _cand(tmp_path, _ref()), _write(tmp_path, spec))
    assert code == 2, out
    assert "error" in out and match in out


@pytest.mark.parametrize("cand,match", [
    (np.eye(3), "shape"), (np.full((26, 26), np.nan), "finite"),
])
def test_bad_candidates_exit_2(tmp_path, capsys, cand, match):
    code, out = _run(capsys, _cand(tmp_path, cand), _write(tmp_path, BASE))
    assert code == 2 and match in out


def test_bad_files_exit_2(tmp_path, capsys):
    prob = _write(tmp_path, BASE)
    code, out = _run(capsys, str(tmp_path / "missing.npy"), prob)
    assert code == 2 and "does not exist" in out
    np.savez(tmp_path / "two.npz", a=_ref(), b=_ref())
    code, out = _run(capsys, str(tmp_path / "two.npz"), prob)
    assert code == 2 and "candidate_key" in out
    (tmp_path / "bad.json").write_text("{not json")
    code, out = _run(capsys, _cand(tmp_path, _ref()), str(tmp_path / "bad.json"))
    assert code == 2 and "not valid JSON" in out
    (tmp_path / "p.yaml").write_text("a: 1")
    code, out = _run(capsys, _cand(tmp_path, _ref()), str(tmp_path / "p.yaml"))
    assert code == 2 and ".json or .toml" in out
    np.savez(tmp_path / "w.npz", W1=np.zeros((4, 3)), b1=np.zeros(4), W2=np.zeros((3, 4)),
             b2=np.zeros(2))
    code, out = _run(capsys, _cand(tmp_path, _ref()),
                     _write(tmp_path, _with(seed=None, weights="w.npz")))
    assert code == 2 and "weight_layout" in out


def test_schema_is_printed_and_in_the_help(capsys):
    from fisherlab.testing._check import SCHEMA

    assert main(["check", "--schema"]) == 0
    out = capsys.readouterr().out
    assert out == SCHEMA
    for field in ("network", "weights", "seed", "data", "likelihood", "quantity",
                  "conventions", "rtol", "candidate_key", "Exit codes"):
        assert field in out
    with pytest.raises(SystemExit) as info:
        main(["check", "--help"])
    assert info.value.code == 0
    assert SCHEMA.splitlines()[0] in capsys.readouterr().out


def test_missing_arguments_are_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check"])
    assert info.value.code == 2
    assert "CANDIDATE and PROBLEM are required" in capsys.readouterr().err


def test_the_schema_example_is_a_valid_problem(tmp_path, capsys):
    """The example printed by --schema runs as it stands."""
    from fisherlab.testing._check import SCHEMA

    text = SCHEMA.split("Example (JSON):", 1)[1].split("Fields:", 1)[0]
    spec = json.loads(text)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    F = np.asarray(fl.fisher(model, model.init(jax.random.key(spec["seed"])),
                             np.asarray(spec["data"]["x"]), fl.Categorical()))
    code, out = _run(capsys, _cand(tmp_path, F), _write(tmp_path, spec))
    assert code == 0, out


def test_docs_page_carries_the_schema():
    from pathlib import Path

    from fisherlab.testing._check import SCHEMA

    page = (Path(__file__).resolve().parents[2] / "docs" / "check.md").read_text()
    assert all(line.strip() in page for line in SCHEMA.splitlines() if line.strip())
