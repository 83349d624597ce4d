"""Small building blocks shared by the family builders (activations, norms, heads, shapes)."""

from __future__ import annotations

from torch import nn

from autodl.errors import UsageError

__all__ = ["activation", "channel_norm", "check_shape", "feature_norm", "make_head"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}
_RANKS = {"tabular": 1, "sequence": 2, "image": 3, "text": 2}
_LAYOUTS = {"tabular": "(features,)", "sequence": "(time, channels)", "image": "(C, H, W)",
            "text": "(2, tokens): input ids and attention mask"}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise UsageError(
            f"unknown activation {name!r}; valid: {', '.join(_ACTIVATIONS)}"
        ) from None


def feature_norm(kind: str, width: int) -> nn.Module:
    """Normalisation over the features of a ``(B, width)`` tensor."""
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def channel_norm(kind: str, channels: int, dims: int) -> nn.Module:
    """Normalisation for a 1-D or 2-D conv feature map; ``layer`` is GroupNorm(1, C)."""
    if kind == "batch":
        return nn.BatchNorm1d(channels) if dims == 1 else nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def make_head(
    n_in: int, n_outputs: int, hidden: int, act: str, dropout: float
) -> nn.Sequential:
    """Dropout then a linear layer, or a one-hidden-layer head when ``hidden > 0``."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, n_outputs))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(n_in, hidden),
        activation(act),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_outputs),
    )


def check_shape(family: str, input_shape: tuple[int, ...], modality: str) -> tuple[int, ...]:
    """``input_shape`` as ints, or UsageError when its rank or sizes cannot be used."""
    shape = tuple(int(s) for s in input_shape)
    rank = _RANKS.get(modality)
    if rank is None:
        raise UsageError(f"family {family!r}: unknown modality {modality!r}")
    if len(shape) != rank or min(shape) < 1:
        raise UsageError(
            f"family {family!r}: {modality} inputs must have shape {_LAYOUTS[modality]} "
            f"(batch excluded) with every size >= 1, but got {shape}"
        )
    return shape


def input_pool(factor: int, sizes: tuple[int, ...], auto_steps: int
               ) -> tuple[nn.Module, tuple[int, ...]]:
    """Average pooling of the input over its 1 or 2 spatial axes by ``factor`` (0: the
    smallest factor that leaves at most ``auto_steps`` per axis), and the pooled sizes."""
    if factor == 0:
        factor = max(1, -(-max(sizes) // auto_steps))
    factor = min(factor, min(sizes))
    if factor <= 1:
        return nn.Identity(), sizes
    pool = (nn.AvgPool1d if len(sizes) == 1 else nn.AvgPool2d)(factor, factor, ceil_mode=True)
    return pool, tuple(-(-s // factor) for s in sizes)
