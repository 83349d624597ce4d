"""The exported model as other tools load it: ONNX Runtime, a Python without autodl,
MLflow's pyfunc, and autodl predict."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import autodl
from autodl.data import PreparedData, load_data
from autodl.errors import UsageError
from autodl.export import FORMATS, export_model, load_model_dir, predict, write_predictions
from autodl.models import create_model, get_family, list_families

SPACE = """
families:
  mlp: {width: 64}
optimizer:
  lr: 0.01
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("exp")
    (work / "s.yaml").write_text(SPACE)
    result = autodl.search(str(work / "s.yaml"), data="digits", trials=1, epochs=4,
                           study="exp", storage=str(work / "j.journal"), out=str(work / "run"),
                           tracking=False, seed=0)
    return {"work": work, "result": result, "model": work / "run" / "model"}


def test_search_exports_every_format_listed_in_summary(searched) -> None:
    files = searched["result"].summary["model"]["files"]
    assert set(files) == set(FORMATS)
    for name in files.values():
        assert (searched["model"] / name).exists()


def test_onnx_matches_torch_on_the_test_split(searched) -> None:
    import onnxruntime as ort

    data = PreparedData.load(searched["work"] / "run" / "data.npz")
    loaded = load_model_dir(searched["model"])
    with torch.inference_mode():
        want = loaded.module(torch.as_tensor(data.X_test)).numpy()
    session = ort.InferenceSession(str(searched["model"] / "model.onnx"))
    got = session.run(None, {"x": data.X_test})[0]
    assert np.abs(got - want).max() < 1e-4
    accuracy = (got.argmax(1) == data.y_test).mean()
    assert accuracy == pytest.approx(searched["result"].test_metrics["accuracy"], abs=1e-6)


@pytest.mark.parametrize("name, load", [
    ("model.torchscript.pt", "torch.jit.load(path)"),
    ("model.pt2", "torch.export.load(path).module()"),
])
def test_torch_files_load_in_a_python_without_autodl(searched, name, load) -> None:
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32)
    np.save(searched["work"] / "x.npy", x)
    code = (f"import sys, numpy as np, torch\npath = {str(searched['model'] / name)!r}\n"
            f"m = {load}\nx = torch.as_tensor(np.load({str(searched['work'] / 'x.npy')!r}))\n"
            "print(m(x).detach().numpy().tolist())\nassert 'autodl' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd="/", timeout=300)
    assert out.returncode == 0, out.stderr
    got = np.array(json.loads(out.stdout.strip().splitlines()[-1]))
    with torch.inference_mode():
        want = load_model_dir(searched["model"]).module(torch.as_tensor(x)).numpy()
    assert np.abs(got - want).max() < 1e-4


def test_mlflow_pyfunc_loads_and_predicts(searched) -> None:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(searched["model"] / "mlflow"))
    x = np.zeros((2, 1, 8, 8), dtype=np.float32)
    assert np.asarray(model.predict(x)).shape == (2, 10)


def test_predict_applies_training_preprocessing(searched, tmp_path) -> None:
    import sklearn.datasets

    raw = sklearn.datasets.load_digits()
    result = predict(searched["model"], raw.images)
    assert set(result["class"]) <= {str(i) for i in range(10)}
    assert np.allclose(result["proba"].sum(1), 1.0, atol=1e-5)
    # the training preprocessing is applied: accuracy on all digits is that of the test split
    test_accuracy = searched["result"].test_metrics["accuracy"]
    assert test_accuracy > 0.5
    assert (result["class_id"] == raw.target).mean() == pytest.approx(test_accuracy, abs=0.08)
    write_predictions(result, tmp_path / "p.csv", [str(i) for i in range(10)])
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header.startswith("class,class_id,proba_0")


def test_cli_predict_writes_csv(searched, tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "autodl", "predict", str(searched["model"]),
                          "--data", "digits", "--out", str(tmp_path / "p.csv")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 1798


def test_predict_regression_in_original_units(tmp_path) -> None:
    (tmp_path / "r.yaml").write_text("families:\n  mlp: {width: 32}\noptimizer:\n  lr: 0.01\n")
    result = autodl.search(str(tmp_path / "r.yaml"), data="diabetes", trials=1, epochs=20,
                           tracking=False, seed=0)
    data = load_data("diabetes")
    import sklearn.datasets

    raw = sklearn.datasets.load_diabetes()
    pred = predict(result.out_dir / "model", raw.data)["prediction"]
    rmse = float(np.sqrt(((pred - raw.target) ** 2).mean()))
    assert rmse < float(raw.target.std())  # better than predicting the mean, in units
    assert abs(pred.mean() - data.y_train.mean()) < 30


class _Canary:
    """Unpickling this runs code: it creates the canary file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_predict_refuses_pickled_objects_unless_trusted(searched, tmp_path) -> None:
    import shutil

    bad, canary = tmp_path / "bad", tmp_path / "canary"
    shutil.copytree(searched["model"], bad)
    state = torch.load(bad / "state_dict.pt", weights_only=True)
    torch.save({**state, "extra": _Canary(str(canary))}, bad / "state_dict.pt")
    with pytest.raises(UsageError, match="--trust-pickle"):
        load_model_dir(bad)
    cmd = [sys.executable, "-m", "autodl", "predict", str(bad), "--data", "digits"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "--trust-pickle" in out.stderr
    assert not canary.exists()  # nothing in the file ran
    trusted = subprocess.run([*cmd, "--trust-pickle"], capture_output=True, text=True,
                             timeout=300)
    assert canary.exists()  # the user opted in: the pickle ran
    assert trusted.returncode == 2 and "not a state_dict of tensors" in trusted.stderr


@pytest.mark.parametrize("family, modality", [  # pretrained, text: test_models_pretrained.py
    (f, m) for f in list_families() if f != "pretrained"
    for m in sorted(get_family(f).modalities) if m != "text"])
def test_export_model_every_family_and_modality(tmp_path, family, modality) -> None:
    from autodl.data import Preprocessor

    shape = {"tabular": (6,), "sequence": (10, 3), "image": (1, 8, 8)}[modality]
    small = {"mlp": {"width": 8}, "cnn": {"channels": 4, "depth": 1},
             "rnn": {"hidden": 8}, "transformer": {"width": 8, "heads": 2, "depth": 1},
             "inception": {"filters": 4, "depth": 3, "kernel_size": 8, "bottleneck": 4}
             }.get(family, {})
    model = create_model(family, small, shape, 3, modality)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    pre = Preprocessor(modality, "classification", shape, np.zeros(shape, np.float32),
                       np.ones(shape, np.float32), classes=["a", "b", "c"])
    config = {"family": family, "model": small}
    result = export_model(config, tmp_path / "w.pt", pre, tmp_path / "m",
                          ["state_dict", "onnx", "pt2"])
    assert result.failed == {}
    assert set(result.files) == {"state_dict", "onnx", "pt2"}
    assert load_model_dir(tmp_path / "m").config["family"] == family


def test_export_unknown_format_is_usage_error(searched, tmp_path) -> None:
    with pytest.raises(UsageError, match="valid: state_dict"):
        export_model({"family": "mlp", "model": {}}, searched["model"] / "state_dict.pt",
                     load_model_dir(searched["model"]).preprocessor, tmp_path, ["keras"])


class _NoOnnx(torch.nn.Module):
    """A model with an op ONNX has no translation for (``special_zeta``)."""

    def __init__(self, n_in: int, n_outputs: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(n_in, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.special.zeta(x.abs() + 2, torch.full_like(x, 1.5)))


def build_no_onnx(params, input_shape, n_outputs, modality) -> torch.nn.Module:
    return _NoOnnx(int(np.prod(input_shape)), n_outputs)


def test_export_model_failed_format_never_stops_the_others(tmp_path) -> None:
    from autodl.data import Preprocessor
    from autodl.models import FamilySpec, register_family
    from autodl.models._registry import _REGISTRY

    register_family(FamilySpec("no_onnx", frozenset({"tabular"}), {},
                               "tests.test_export:build_no_onnx"))
    try:
        model = create_model("no_onnx", {}, (4,), 3, "tabular")
        torch.save(model.state_dict(), tmp_path / "w.pt")
        pre = Preprocessor("tabular", "classification", (4,), np.zeros(4, np.float32),
                           np.ones(4, np.float32), classes=["a", "b", "c"])
        dest = tmp_path / "model"
        dest.mkdir()
        (dest / "stale.txt").write_text("from an earlier export")
        (dest / "config.json").write_text("{}")
        result = export_model({"family": "no_onnx", "model": {}}, tmp_path / "w.pt", pre,
                              dest, FORMATS)
    finally:
        _REGISTRY.pop("no_onnx", None)
    assert set(result.failed) == {"onnx"} and "ConversionError" in result.failed["onnx"]
    assert set(result.files) == set(FORMATS) - {"onnx"}
    formats = result.summary()["formats"]
    assert formats["onnx"]["status"] == "failed"
    assert formats["pt2"] == {"status": "written", "file": "model.pt2"}
    # the new export replaced the old one whole: no stale file, no ONNX file, a config
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [*result.files.values(), "config.json", "preprocessor.json"])
    assert not list(tmp_path.glob(".model.*"))  # no staging folder left behind
    loaded = torch.export.load(str(dest / "model.pt2")).module()
    x = torch.randn(5, 4)
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_print_model_names_the_directory_and_each_failed_format() -> None:
    from rich.console import Console

    from autodl.ui import print_model

    console = Console(record=True, width=200)
    print_model(console, {"dir": "runs/s/model", "files": {"onnx": "model.onnx"},
                          "failed": {"pt2": "UnsupportedOp: zeta"}})
    text = console.export_text()
    assert "runs/s/model (onnx)" in text and "export pt2 failed: UnsupportedOp: zeta" in text
