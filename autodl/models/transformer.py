"""The ``transformer`` family: an encoder over feature, time-step/patch or image-patch tokens."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autodl.models._layers import activation, check_shape

__all__ = ["build"]

_MAX_TOKENS = 64


class _FeatureTokens(nn.Module):
    """FT-Transformer feature tokenizer: token_i = x_i * W_i + b_i, one (W_i, b_i) per feature."""

    def __init__(self, n_features: int, width: int) -> None:
        super().__init__()
        bound = width**-0.5
        self.weight = nn.Parameter(torch.empty(n_features, width).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, width).uniform_(-bound, bound))
        self.n_tokens = n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias


class _StepTokens(nn.Module):
    """``(B, T, C)`` -> one token per ``patch`` time steps (the end zero-padded)."""

    def __init__(self, steps: int, channels: int, width: int, patch: int) -> None:
        super().__init__()
        self.patch, self.pad = patch, (-steps) % patch
        self.n_tokens = (steps + self.pad) // patch
        self.token_in = channels * patch
        self.proj = nn.Linear(self.token_in, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (0, 0, 0, self.pad))
        # reshape with -1 batch: unflatten bakes the batch size into legacy ONNX graphs
        result: torch.Tensor = self.proj(x.reshape(-1, self.n_tokens, self.token_in))
        return result


class _PatchTokens(nn.Module):
    """``(B, C, H, W)`` -> one token per ``patch`` x ``patch`` pixels (bottom/right zero-padded)."""

    def __init__(self, shape: tuple[int, ...], width: int, patch: int) -> None:
        super().__init__()
        c, h, w = shape
        self.pad = (0, (-w) % patch, 0, (-h) % patch)
        self.n_tokens = _n_patches(h, w, patch)
        self.proj = nn.Conv2d(c, width, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        result: torch.Tensor = self.proj(x).flatten(2).transpose(1, 2)
        return result


class _TextTokens(nn.Module):
    """Token ids -> learned embeddings; ids wrap around at ``buckets`` (no vocabulary size
    needed: the default covers BERT's 30,522 ids without collisions)."""

    def __init__(self, length: int, width: int, buckets: int) -> None:
        super().__init__()
        self.buckets, self.n_tokens = buckets, length
        self.embed = nn.Embedding(buckets, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.embed(ids.long() % self.buckets)
        return result


def _n_patches(h: int, w: int, p: int) -> int:
    return math.ceil(h / p) * math.ceil(w / p)


def _image_patch(h: int, w: int, requested: int) -> int:
    """The requested patch side, or one giving ~4..64 tokens, preferring one dividing H and W."""
    if requested > 0:
        return min(requested, max(h, w))
    p0 = max(2, math.ceil(math.sqrt(h * w / _MAX_TOKENS)))
    for p in range(p0, 2 * p0):
        if h % p == 0 and w % p == 0 and _n_patches(h, w, p) >= 4:
            return p
    while _n_patches(h, w, p0) > _MAX_TOKENS:
        p0 += 1
    while p0 > 1 and _n_patches(h, w, p0) < 4:
        p0 -= 1
    return p0


def _step_patch(steps: int, requested: int) -> int:
    """The requested patch length, or 1 when T <= 64, else enough steps for <= 64 tokens."""
    if requested > 0:
        return min(requested, steps)
    return 1 if steps <= _MAX_TOKENS else math.ceil(steps / _MAX_TOKENS)


_Tokens = _TextTokens | _FeatureTokens | _StepTokens | _PatchTokens


def _tokenizer(shape: tuple[int, ...], modality: str, width: int, p: dict[str, Any]
               ) -> _Tokens:
    patch = int(p["patch_size"])
    if modality == "text":
        return _TextTokens(shape[1], width, int(p.get("vocab_buckets", 32768)))
    if modality == "tabular":
        return _FeatureTokens(shape[0], width)
    if modality == "sequence":
        return _StepTokens(shape[0], shape[1], width, _step_patch(shape[0], patch))
    return _PatchTokens(shape, width, _image_patch(shape[1], shape[2], patch))


class _EncoderLayer(nn.Module):
    """Pre-norm encoder layer written out by hand.

    ``nn.TransformerEncoderLayer`` switches to a fused fast path in eval mode without
    grad, which makes ``torch.jit.trace`` fail its check ("graphs differed"); this does not.
    """

    def __init__(self, width: int, p: dict[str, Any]) -> None:
        super().__init__()
        self.heads, self.dropout = int(p["heads"]), float(p["dropout"])
        ff = max(1, round(float(p["ff_mult"]) * width))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.out = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.ff = nn.Sequential(
            nn.Linear(width, ff), activation(p["activation"]), nn.Dropout(self.dropout),
            nn.Linear(ff, width),
        )
        self.drop = nn.Dropout(self.dropout)

    def _attend(self, x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        result: torch.Tensor = self.out(y.transpose(1, 2).flatten(2))
        return result

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``keep``: ``(B, 1, 1, tokens)``, True for the tokens attention may look at."""
        x = x + self.drop(self._attend(self.norm1(x), keep))
        result: torch.Tensor = x + self.drop(self.ff(self.norm2(x)))
        return result


class Transformer(nn.Module):
    """Tokens (+ CLS) + learned positions -> pre-norm encoder -> pool -> LayerNorm -> linear."""

    def __init__(self, tokens: _Tokens, n_outputs: int, width: int, p: dict[str, Any]) -> None:
        super().__init__()
        self.tokens = tokens
        self.use_cls = p["pool"] == "cls"
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if self.use_cls else None
        n = int(tokens.n_tokens) + int(self.use_cls)
        self.pos = nn.Parameter(torch.empty(1, n, width).normal_(0.0, 0.02))
        self.encoder = nn.Sequential(*(_EncoderLayer(width, p) for _ in range(int(p["depth"]))))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Sequential(nn.Dropout(p["dropout"]), nn.Linear(width, n_outputs))

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Text: ``(B, 2, L)`` ids and mask stacked, or ``input_ids, attention_mask``."""
        mask = None
        if isinstance(self.tokens, _TextTokens):
            x, mask = (x, attention_mask) if attention_mask is not None else (x[:, 0], x[:, 1])
        t = self.tokens(x)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)
            if mask is not None:
                mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        keep = None if mask is None else mask[:, None, None, :].bool()
        t = t + self.pos
        for layer in self.encoder:
            t = layer(t, keep)
        result: torch.Tensor = self.head(self.norm(self._pool(t, mask)))
        return result

    def _pool(self, t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.use_cls:
            return t[:, 0]
        if mask is None:
            return t.mean(1)
        weights = mask.unsqueeze(-1).to(t.dtype)
        return (t * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def build(
    params: dict[str, Any], input_shape: tuple[int, ...], n_outputs: int, modality: str
) -> nn.Module:
    """A transformer taking ``(B, F)``, ``(B, T, C)``, ``(B, C, H, W)`` or text ``(B, 2, L)``."""
    shape = check_shape("transformer", input_shape, modality)
    heads = int(params["heads"])
    width = math.ceil(int(params["width"]) / heads) * heads
    tokens = _tokenizer(shape, modality, width, params)
    return Transformer(tokens, n_outputs, width, params)
