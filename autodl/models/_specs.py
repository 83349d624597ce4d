"""The built-in families' specs (torch-free). Builders live in one module per family."""

from __future__ import annotations

from autodl.models._registry import FamilySpec, register_family
from autodl.params import ParamSpec as P

_ACT = ("relu", "gelu", "silu", "tanh", "leaky_relu")
_DROPOUT = P("float", 0.1, low=0.0, high=1.0, high_open=True, help="dropout probability")

register_family(FamilySpec(
    name="mlp",
    modalities=frozenset({"tabular", "sequence", "image"}),
    builder="autodl.models.mlp:build",
    description="Multi-layer perceptron; sequences and images are flattened.",
    params={
        "depth": P("int", 2, low=1, high=16, help="hidden layers"),
        "width": P("int", 256, low=1, high=8192, help="units per hidden layer"),
        "activation": P("choice", "relu", choices=_ACT),
        "dropout": _DROPOUT,
        "norm": P("choice", "none", choices=("none", "batch", "layer")),
        "residual": P("bool", False, help="skip connections between equal-width layers"),
    },
))

register_family(FamilySpec(
    name="cnn",
    modalities=frozenset({"sequence", "image"}),
    builder="autodl.models.cnn:build",
    description="Convolutional net: 1-D over time for sequences, 2-D for images.",
    params={
        "depth": P("int", 2, low=1, high=12, help="conv blocks"),
        "channels": P("int", 32, low=1, high=1024, help="channels of the first block"),
        "channel_growth": P("float", 2.0, low=1.0, high=4.0, help="channel multiplier per block"),
        "kernel_size": P("int", 3, low=1, high=65),
        "downsample": P("int", 1, low=0, high=64,
                        help="average-pool the input by this factor before the first block "
                        "(long series, large images); 0: automatic, to at most 256 steps"),
        "pool": P("choice", "max", choices=("max", "avg", "none"), help="pooling between blocks"),
        "global_pool": P("choice", "avg", choices=("avg", "max")),
        "norm": P("choice", "batch", choices=("batch", "layer", "none")),
        "residual": P("bool", False, help="ResNet-style blocks"),
        "activation": P("choice", "relu", choices=_ACT),
        "dropout": _DROPOUT,
        "head_width": P("int", 0, low=0, high=8192, help="hidden units in the head; 0: linear"),
    },
))

register_family(FamilySpec(
    name="inception",
    modalities=frozenset({"sequence"}),
    builder="autodl.models.inception:build",
    description="InceptionTime's network (Ismail Fawaz et al. 2020): Inception modules of "
    "three long-kernel 1-D convolutions and a pool branch, residual every third module.",
    params={
        "depth": P("int", 6, low=1, high=12, help="Inception modules (the paper: 6)"),
        "filters": P("int", 32, low=1, high=256,
                     help="filters per branch; a module outputs 4 x filters channels"),
        "kernel_size": P("int", 40, low=2, high=128,
                         help="longest kernel; the others are 1/2 and 1/4 of it (odd)"),
        "bottleneck": P("int", 32, low=0, high=256, help="1x1 bottleneck channels; 0: none"),
        "residual": P("bool", True, help="a shortcut every third module"),
        "downsample": P("int", 0, low=0, high=64,
                        help="average-pool the input by this factor first; 0: automatic, "
                        "to at most 256 steps"),
        "dropout": P("float", 0.0, low=0.0, high=1.0, high_open=True,
                     help="dropout before the linear head"),
    },
))

register_family(FamilySpec(
    name="rnn",
    modalities=frozenset({"sequence", "image"}),
    builder="autodl.models.rnn:build",
    description="LSTM or GRU; image rows are the time steps.",
    params={
        "cell": P("choice", "lstm", choices=("lstm", "gru")),
        "layers": P("int", 1, low=1, high=8),
        "hidden": P("int", 64, low=1, high=4096),
        "bidirectional": P("bool", False),
        "dropout": _DROPOUT,
        "pool": P("choice", "last", choices=("last", "mean", "max")),
        "downsample": P("int", 1, low=0, high=64,
                        help="sequences: average-pool over time by this factor first; 0: "
                        "automatic, to at most 64 steps (the cell runs step by step)"),
    },
))

register_family(FamilySpec(
    name="transformer",
    modalities=frozenset({"tabular", "sequence", "image", "text"}),
    builder="autodl.models.transformer:build",
    description="Transformer encoder over feature tokens (tabular), time steps or patches "
    "(sequence), image patches, or tokenised text (learned from scratch).",
    params={
        "depth": P("int", 2, low=1, high=24),
        "width": P("int", 64, low=4, high=4096,
                   help="token width (rounded to a multiple of heads)"),
        "heads": P("int", 4, low=1, high=64),
        "ff_mult": P("float", 2.0, low=0.5, high=8.0),
        "dropout": _DROPOUT,
        "patch_size": P("int", 0, low=0, high=256,
                        help="time steps / pixels per token side; 0: automatic"),
        "pool": P("choice", "cls", choices=("cls", "mean")),
        "activation": P("choice", "gelu", choices=("gelu", "relu")),
        "vocab_buckets": P("int", 32768, low=2, high=1 << 20,
                           help="text: embedding rows; token ids wrap around beyond it"),
    },
))

register_family(FamilySpec(
    name="pretrained",
    modalities=frozenset({"text", "image"}),
    builder="autodl.models.pretrained:build",
    preflight="autodl.models._hf:check_params",
    description="Fine-tune a local backbone (Hugging Face model directory, pkg:PACKAGE, or "
    "resnet18/34/50 with a weights file) with a new head; needs autodl[pretrained].",
    params={
        "backbone": P("str", "", help="local model directory, pkg:PACKAGE[/SUBDIR], or "
                      "resnet18 | resnet34 | resnet50"),
        "weights": P("str", "default", help="default: the directory's own weights; a local "
                     ".safetensors/.pt/.pth file; none: random initialisation"),
        "head_lr_mult": P("float", 1.0, low=0.0, low_open=True, high=1000.0,
                          help="the head learns at optimizer.lr times this"),
        "layer_decay": P("float", 1.0, low=0.0, low_open=True, high=1.0,
                         help="layer-wise lr decay: lr x decay^(layers below the top)"),
        "freeze_layers": P("int", 0, low=0, high=1000,
                           help="lowest layers frozen, the embeddings (stem) counting first"),
        "head_depth": P("int", 0, low=0, high=4, help="hidden layers in the head"),
        "head_width": P("int", 256, low=1, high=8192, help="units per hidden head layer"),
        "dropout": _DROPOUT,
        "pool": P("choice", "mean", choices=("mean", "cls"),
                  help="token pooling: attention-masked mean, or the first (CLS) token"),
    },
))
