"""The architecture families: every family x modality builds, trains, and exports."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from autodl.errors import UsageError
from autodl.models import MODALITIES, create_model, get_family, list_families

SHAPES = {"tabular": (6,), "sequence": (12, 3), "image": (1, 8, 8)}
N_OUT = 3
# `pretrained` needs a local backbone and text needs token ids: both are tested in
# tests/test_models_pretrained.py; the shape-generic tests here take the other pairs.
LOCAL_BACKBONE = {"pretrained"}
SUPPORTED = [(f, m) for f in list_families() if f not in LOCAL_BACKBONE
             for m in sorted(get_family(f).modalities) if m in SHAPES]
UNSUPPORTED = [
    (f, m) for f in list_families() for m in MODALITIES
    if m in SHAPES and not get_family(f).supports(m)
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run far faster on one thread than with intra-op threads contending."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(family: str, **overrides: Any) -> dict[str, Any]:
    """The family's defaults shrunk for speed: every int above 16 becomes 16, no dropout."""
    spec = get_family(family)
    params = {k: 16 for k, p in spec.params.items() if p.kind == "int" and p.default > 16}
    if "dropout" in spec.params:
        params["dropout"] = 0.0
    return {**params, **overrides}


def _build(family: str, modality: str, shape: tuple[int, ...] | None = None,
           seed: int = 0, **overrides: Any) -> nn.Module:
    torch.manual_seed(seed)
    shape = SHAPES[modality] if shape is None else shape
    return create_model(family, _tiny(family, **overrides), shape, N_OUT, modality)


def _batch(modality: str, n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *SHAPES[modality], generator=torch.Generator().manual_seed(seed))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("family", "modality"), SUPPORTED)
def test_create_model_forward_backward_shapes(family: str, modality: str) -> None:
    model = _build(family, modality)
    out = model(_batch(modality, 4))
    assert out.shape == (4, N_OUT)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        assert model(_batch(modality, 1)).shape == (1, N_OUT)


@pytest.mark.parametrize(("family", "modality"), SUPPORTED)
def test_create_model_loss_decreases_on_fixed_batch(family: str, modality: str) -> None:
    model = _build(family, modality)
    x = _batch(modality, 16)
    w = torch.randn(x[0].numel(), N_OUT, generator=torch.Generator().manual_seed(2))
    y = (x.flatten(1) @ w).argmax(1)  # a learnable (linear) labelling of the batch
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    assert math.isfinite(losses[-1])
    assert losses[-1] < 0.85 * losses[0], losses  # worst today: rnn-sequence, 0.74


@pytest.mark.parametrize(("family", "modality"), UNSUPPORTED)
def test_create_model_rejects_unsupported_modality(family: str, modality: str) -> None:
    with pytest.raises(UsageError, match="does not take"):
        create_model(family, {}, SHAPES[modality], N_OUT, modality)


@pytest.mark.parametrize(("family", "modality"), SUPPORTED)
def test_create_model_rejects_wrong_input_rank(family: str, modality: str) -> None:
    with pytest.raises(UsageError, match="must have shape"):
        create_model(family, _tiny(family), (*SHAPES[modality], 2), N_OUT, modality)


def test_mlp_residual_batch_norm_is_honoured() -> None:
    plain = _build("mlp", "image", depth=3)
    normed = _build("mlp", "image", depth=3, norm="batch")
    assert sum(isinstance(m, nn.BatchNorm1d) for m in normed.modules()) == 3
    assert _n_params(normed) == _n_params(plain) + 3 * 2 * 16
    skip = _build("mlp", "image", depth=3, norm="batch", residual=True).eval()
    x = _batch("image", 5)
    with torch.no_grad():
        assert not torch.allclose(skip(x), normed.eval()(x))


def test_cnn_residual_layer_norm_adds_blocks_and_projection() -> None:
    plain = _build("cnn", "image", kernel_size=4)
    res = _build("cnn", "image", kernel_size=4, residual=True, norm="layer", head_width=5)
    assert any(isinstance(m, nn.GroupNorm) for m in res.modules())
    projections = [m for m in res.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert len(projections) == 2  # 1 -> 16 and 16 -> 32 channels
    assert _n_params(res) > _n_params(plain)
    assert res(_batch("image", 2)).shape == (2, N_OUT)


@pytest.mark.parametrize("modality", ["sequence", "image"])
def test_cnn_deep_net_on_tiny_input_skips_pooling(modality: str) -> None:
    shape = (3, 2) if modality == "sequence" else (2, 3, 3)
    model = _build("cnn", modality, shape, depth=6, channel_growth=1.5, pool="avg",
                   global_pool="max")
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, N_OUT)
    last = model.head[-1]
    assert last.in_features == round(16 * 1.5**5)


def test_rnn_bidirectional_doubles_recurrent_params() -> None:
    uni = _build("rnn", "sequence", cell="gru")
    bi = _build("rnn", "sequence", cell="gru", bidirectional=True, pool="mean")
    assert isinstance(bi.rnn, nn.GRU)
    assert _n_params(bi.rnn) == 2 * _n_params(uni.rnn)
    assert bi(_batch("sequence", 2)).shape == (2, N_OUT)


def test_rnn_last_pool_takes_forward_end_and_backward_start() -> None:
    model = _build("rnn", "sequence", bidirectional=True, layers=2).eval()
    x = _batch("sequence", 3)
    with torch.no_grad():
        out, _ = model.rnn(x)
        hidden = out.shape[-1] // 2
        z = torch.cat([out[:, -1, :hidden], out[:, 0, hidden:]], dim=1)
        assert torch.allclose(model(x), model.head(z), atol=1e-6)


def test_rnn_image_rows_are_time_steps() -> None:
    model = _build("rnn", "image", (2, 5, 4))
    assert model.rnn.input_size == 2 * 4
    assert model(torch.randn(3, 2, 5, 4)).shape == (3, N_OUT)


def test_transformer_width_rounds_up_to_heads() -> None:
    model = _build("transformer", "tabular", width=10, heads=3)
    assert model.pos.shape == (1, 6 + 1, 12)  # one token per feature, plus CLS


@pytest.mark.parametrize(
    ("modality", "shape", "params", "tokens"),
    [
        ("sequence", (12, 3), {}, 12 + 1),
        ("sequence", (70, 3), {}, 35 + 1),
        ("sequence", (70, 3), {"patch_size": 4, "pool": "mean"}, 18),
        ("image", (1, 8, 8), {}, 16 + 1),
        ("image", (1, 28, 28), {"pool": "mean"}, 49),
        ("image", (3, 32, 32), {}, 64 + 1),
        ("image", (1, 9, 9), {"patch_size": 4}, 9 + 1),
    ],
)
def test_transformer_tokens_follow_patch_size(
    modality: str, shape: tuple[int, ...], params: dict[str, Any], tokens: int
) -> None:
    model = _build("transformer", modality, shape, **params)
    assert model.pos.shape[1] == tokens
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, N_OUT)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # no unused CLS token


@pytest.mark.filterwarnings("ignore:The tensor attributes .*_flat_weights:UserWarning")
@pytest.mark.parametrize(("family", "modality"), SUPPORTED)
def test_create_model_exports_to_onnx_with_dynamic_batch(
    family: str, modality: str, tmp_path: Any
) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = _build(family, modality).eval()
    # example batch >= 2: a batch of 1 makes export specialise the batch dim to 1
    program = torch.export.export(
        model, (_batch(modality, 3),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    path = tmp_path / "model.onnx"
    torch.onnx.export(program, (), path, dynamo=True, verbose=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for n in (1, 5):
        x = _batch(modality, n)
        with torch.no_grad():
            expected = model(x)
        assert torch.allclose(program.module()(x), expected, atol=1e-5)
        np.testing.assert_allclose(
            session.run(None, {name: x.numpy()})[0], expected.numpy(), atol=1e-4
        )


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # nn.LSTM's own shape checks
@pytest.mark.parametrize(("family", "modality"), SUPPORTED)
def test_create_model_traces_with_torchscript(family: str, modality: str) -> None:
    model = _build(family, modality).eval()
    with pytest.warns(DeprecationWarning):  # torch.jit.trace is deprecated but still works
        traced = torch.jit.trace(model, (_batch(modality, 3),))
    x = _batch(modality, 5)
    with torch.no_grad():
        assert torch.allclose(traced(x), model(x), atol=1e-5)


_PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "autodl-{name}"
version = "0.1"

[project.entry-points."autodl.families"]
{name} = "autodl_{name}:families"

[tool.setuptools]
packages = ["autodl_{name}"]
"""

_PLUGIN_SPECS = '''
from autodl.models import FamilySpec, ParamSpec


def families():
    return [FamilySpec(
        name="tinyfam", modalities=frozenset({"tabular"}), builder="autodl_tinyfam.net:build",
        description="a plugin's one-hidden-layer net",
        params={"hidden": ParamSpec("int", 8, low=1, high=64, help="hidden units")})]
'''

_PLUGIN_NET = '''
import math

from torch import nn


def build(params, input_shape, n_outputs, modality):
    width = math.prod(input_shape)
    return nn.Sequential(nn.Flatten(), nn.Linear(width, params["hidden"]), nn.ReLU(),
                         nn.Linear(params["hidden"], n_outputs))
'''

_PLUGIN_SPACE = """
name: plug
defaults: {data: iris, trials: 1, epochs: 2, holdout: true}
families:
  tinyfam:
    hidden: {low: 4, high: 16}
optimizer:
  lr: {low: 1.0e-3, high: 3.0e-2, log: true}
  options:
    adamw: {}
training:
  batch_size: [16]
"""


def _install_plugin(tmp_path: Path, name: str, files: dict[str, str]) -> dict[str, str]:
    """``pip install --target`` a package declaring ``autodl.families``; the environment of
    a process that finds it (its dist-info on PYTHONPATH carries the entry point)."""
    import os
    import subprocess
    import sys

    src = tmp_path / f"src-{name}"
    (src / f"autodl_{name}").mkdir(parents=True)
    (src / "pyproject.toml").write_text(_PLUGIN_PYPROJECT.format(name=name))
    for file, text in files.items():
        (src / f"autodl_{name}" / file).write_text(text)
    site = tmp_path / f"site-{name}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(src.resolve())],
                   check=True, timeout=300)
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _autodl(env: dict[str, str], *args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "autodl", *args], env=env, text=True,
                          capture_output=True, timeout=600)


def test_plugin_family_is_listed_validated_and_searched_in_workers(tmp_path: Path) -> None:
    import json

    env = _install_plugin(tmp_path, "tinyfam", {"__init__.py": _PLUGIN_SPECS,
                                                "net.py": _PLUGIN_NET})
    (tmp_path / "plug.yaml").write_text(_PLUGIN_SPACE)
    validated = _autodl(env, "spaces", "validate", "plug.yaml")
    assert validated.returncode == 0, validated.stderr[-3000:]
    assert ("plugin family tinyfam: autodl.families entry point 'tinyfam' "
            "(autodl_tinyfam:families, from autodl-tinyfam 0.1)") in validated.stdout
    assert "tinyfam: ok" in validated.stdout  # its largest model trained one batch
    searched = _autodl(env, "search", "plug.yaml", "--no-tracking", "--json", "--study", "p")
    assert searched.returncode == 0, searched.stderr[-3000:]
    summary = json.loads(searched.stdout)
    assert summary["trials"]["complete"] == 1  # trained, tested and exported in a worker
    assert summary["best"]["params"]["family"] == "tinyfam"
    assert "onnx" in summary["model"]["files"]


def test_broken_plugin_is_a_usage_error_naming_its_entry_point(tmp_path: Path) -> None:
    env = _install_plugin(tmp_path, "broken", {
        "__init__.py": "def families():\n    raise ImportError('needs torch_geometric')\n"})
    done = _autodl(env, "spaces", "validate", "quickstart")
    assert done.returncode == 2
    assert ("autodl.families entry point 'broken' (autodl_broken:families, from autodl-broken "
            "0.1) failed: ImportError: needs torch_geometric") in done.stderr


def test_ensemble_outputs_the_log_of_its_members_weighted_mean_probability() -> None:
    members = [{"family": "mlp", "model": _tiny("mlp")},
               {"family": "cnn", "model": _tiny("cnn", depth=1)}]
    torch.manual_seed(0)
    ensemble = create_model("ensemble", {"members": members, "weights": [3, 1],
                                         "task": "classification"}, SHAPES["sequence"], N_OUT,
                            "sequence").eval()
    x = _batch("sequence", 5)
    with torch.no_grad():
        probs = [torch.softmax(m(x), 1) for m in ensemble.members]
        want = 0.75 * probs[0] + 0.25 * probs[1]
        got = ensemble(x)
    assert torch.allclose(got.exp(), want, atol=1e-6)
    assert torch.allclose(torch.softmax(got, 1), want, atol=1e-6)  # what predict applies


def test_ensemble_regression_averages_its_members_outputs() -> None:
    members = [{"family": "mlp", "model": _tiny("mlp")}] * 2
    torch.manual_seed(0)
    ensemble = create_model("ensemble", {"members": members, "weights": [0.5, 0.5],
                                         "task": "regression"}, SHAPES["tabular"], 2,
                            "tabular").eval()
    x = _batch("tabular", 4)
    with torch.no_grad():
        want = (ensemble.members[0](x) + ensemble.members[1](x)) / 2
        assert torch.allclose(ensemble(x), want, atol=1e-6)


def test_register_family_refuses_the_reserved_ensemble_name() -> None:
    from autodl.models import FamilySpec, register_family

    with pytest.raises(ValueError, match="reserved"):
        register_family(FamilySpec("ensemble", frozenset({"tabular"}), {}, "x:y"))


def test_inception_has_the_published_modules_kernels_and_shortcuts() -> None:
    from autodl.models.inception import kernel_sizes

    assert kernel_sizes(40) == [39, 19, 9]  # InceptionTime's 40/20/10, centred
    model = create_model("inception", {"depth": 6, "filters": 32}, (100, 3), N_OUT, "sequence")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert sorted({c.kernel_size[0] for c in convs}) == [1, 9, 19, 39]
    assert len(model.shortcuts) == 2  # a residual every third module
    x = _batch("sequence", 2)
    assert create_model("inception", {"depth": 3, "filters": 8}, SHAPES["sequence"], N_OUT,
                        "sequence")(x).shape == (2, N_OUT)
    head = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    assert head[0].in_features == 4 * 32  # four branches of 32 filters, pooled
