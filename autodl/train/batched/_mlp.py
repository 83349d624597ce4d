"""K ``mlp`` family models of one architecture as one stacked model.

Every member's parameters live in one row of a ``[K, P]`` matrix (the optimizer updates
them all at once); each linear layer's weight is a ``[K, in, out]`` view of it (stored
transposed, so ``torch.baddbmm`` and its backward need no transposed copies). A member's
``member_state`` has exactly the keys and shapes of the sequential model's ``state_dict``,
so saved weights load into ``create_model(...)``.

Dropout draws one random 16-bit number per activation (four from each 64-bit draw, a
quarter of the RNG work of ``torch.rand``) from one generator for the group; each member's
keep probability is rounded to a multiple of 1/65536 and its scale uses that rounded
probability, so activations stay unbiased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autodl.train._norm_stats import stat_chunks

__all__ = ["BatchedMLP"]

_BN_MOMENTUM, _NORM_EPS = 0.1, 1e-5
_LEVELS = 65536  # dropout draws are uniform int16: P(draw < t) = (t + 32768) / 65536


@dataclass(frozen=True)
class Layer:
    linear: str  # state_dict prefix of the nn.Linear
    norm: str  # "batch" | "layer" | "none"
    norm_prefix: str
    act: nn.Module | None  # stateless activation module (None: the output layer)
    skip: bool


def _plan(model: nn.Module) -> list[Layer]:
    """The layers of an ``autodl.models.mlp`` model (Flatten, _Dense..., Linear)."""
    layers = []
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            layers.append(Layer(name, "none", "", None, False))
        elif hasattr(module, "body"):
            body = module.body
            assert isinstance(body, nn.Sequential)  # _Dense: Linear, norm, activation...
            norm = body[1]
            kind = ("batch" if isinstance(norm, nn.BatchNorm1d)
                    else "layer" if isinstance(norm, nn.LayerNorm) else "none")
            layers.append(Layer(f"{name}.body.0", kind, f"{name}.body.1", body[2],
                                 bool(module.skip)))
        elif not isinstance(module, nn.Flatten):
            raise TypeError(f"not an mlp layer: {type(module).__name__}")
    return layers


class BatchedMLP:
    """Stacks ``models`` (same architecture); ``dropout[k]`` is member k's dropout rate,
    drawn from a generator seeded with ``seed``."""

    def __init__(self, models: Sequence[nn.Module], dropout: Sequence[float],
                 device: torch.device, seed: int = 0) -> None:
        ref = models[0]
        self.layers = _plan(ref)
        self.keys = list(ref.state_dict())
        self.transposed = {f"{layer.linear}.weight" for layer in self.layers}
        self.shapes = {n: tuple(p.shape[::-1] if n in self.transposed else p.shape)
                       for n, p in ref.named_parameters()}
        rows = [torch.cat([self._stored(n, p).reshape(-1) for n, p in m.named_parameters()])
                for m in models]
        self._bind(torch.stack(rows).to(device))
        self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]).to(device)
                        for n, _ in ref.named_buffers()}
        self._set_keep([min(max(round((1.0 - p) * _LEVELS), 1), _LEVELS) for p in dropout])
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.stat_factor: float | None = None  # set while precise_batch_norm runs

    def _stored(self, name: str, p: torch.Tensor) -> torch.Tensor:
        return p.detach().t() if name in self.transposed else p.detach()

    def _bind(self, flat: torch.Tensor) -> None:
        """Make each parameter a leaf view of ``flat``; ``backward`` writes their gradients
        into ``self.grad``, laid out as ``flat``."""
        self.flat, self.grad = flat.contiguous(), torch.zeros_like(flat)
        self.workspace: dict[tuple[str, Any], torch.Tensor] = {}  # reused step buffers
        self.params: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}  # views of self.grad, as the parameters
        start, k = 0, flat.shape[0]
        for name, shape in self.shapes.items():
            size = int(torch.Size(shape).numel())
            self.params[name] = self.flat[:, start : start + size].view(k, *shape)
            self.params[name].requires_grad_()
            self.grads[name] = self.grad[:, start : start + size].view(k, *shape)
            start += size

    def keep(self, rows: list[int]) -> None:
        """Keep members ``rows`` (indices into the current K), dropping the others."""
        index = torch.as_tensor(rows, device=self.flat.device)
        self._bind(self.flat.detach().index_select(0, index))
        self.buffers = {n: b.index_select(0, index) for n, b in self.buffers.items()}
        self._set_keep([self.levels[k] for k in rows])

    def _set_keep(self, levels: list[int]) -> None:
        """Dropout thresholds and scales (``[K, 1, 1]``) from each member's keep probability
        in 1/65536 steps."""
        self.levels = levels
        self.any_dropout = any(v < _LEVELS for v in levels)
        device = self.flat.device
        dtype = self.flat.dtype
        self.threshold = torch.tensor([v - 32768.5 for v in levels], dtype=dtype,
                                      device=device)[:, None, None]
        self.scale = torch.tensor([_LEVELS / v for v in levels], dtype=dtype,
                                  device=device)[:, None, None]
        self.scale2 = self.scale * 2

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of ``loss`` (a scalar) into ``self.grad`` (``[K, P]``), in one copy."""
        grads = torch.autograd.grad(loss, list(self.params.values()))
        k = self.grad.shape[0]
        torch.cat([g.reshape(k, -1) for g in grads], dim=1, out=self.grad)

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s ``state_dict`` (CPU copies, the sequential model's keys)."""
        tensors = {**self.params, **self.buffers}
        return {n: (tensors[n][k].t() if n in self.transposed else tensors[n][k]).detach()
                .to("cpu").clone(memory_format=torch.contiguous_format) for n in self.keys}

    def forward(self, x: torch.Tensor, train: bool, dropout: bool = True) -> torch.Tensor:
        """``x`` is ``[K, B, features]``; returns ``[K, B, outputs]``. ``train``: batch
        statistics (tracked into the running ones) and, with ``dropout``, dropout."""
        h = x
        for layer in self.layers:
            w, b = self.params[f"{layer.linear}.weight"], self.params[f"{layer.linear}.bias"]
            z = torch.baddbmm(b.unsqueeze(1), h, w)
            if layer.act is None:
                return z
            z = layer.act(self._norm(layer, z, train))
            if train and dropout:
                z = self._dropout(z)
            h = h + z if layer.skip else z
        return h

    def _dropout(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.noise(z) if self.any_dropout else z

    def noise(self, z: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """A dropout mask shaped like ``z`` (written into ``out`` when given): 0 (dropped)
        or 1/keep (kept), per member.

        Float arithmetic only (bool tensors take slow conversion paths): with ``d`` the
        int16 draw, ``clamp(t + 0.5 - d, 0, 0.5) * 2 * scale`` is exactly ``scale`` where
        ``d <= t`` and 0 elsewhere."""
        n = z.numel()
        bits = self.workspace.get(("bits", n))
        if bits is None:
            bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=z.device)
            self.workspace[("bits", n)] = bits
        bits.random_(-(2**63), None, generator=self.generator)
        noise = torch.empty_like(z) if out is None else out
        noise.copy_(bits.view(torch.int16)[:n].view(z.shape))
        torch.sub(self.threshold, noise, out=noise)
        return noise.clamp_(0.0, 0.5).mul_(self.scale2)

    @torch.no_grad()
    def precise_batch_norm(self, X: torch.Tensor) -> None:
        """``autodl.train._norm_stats.precise_batch_norm`` for every member: the running
        statistics recomputed over the same chunks of ``X`` (``[N, features]``) with the
        current weights, dropout off."""
        prefixes = [layer.norm_prefix for layer in self.layers if layer.norm == "batch"]
        chunks = stat_chunks(X)
        if not prefixes or not chunks:
            return
        for prefix in prefixes:
            self.buffers[f"{prefix}.running_mean"].zero_()
            self.buffers[f"{prefix}.running_var"].fill_(1.0)
            self.buffers[f"{prefix}.num_batches_tracked"].zero_()
        k = self.flat.shape[0]
        try:
            for i, chunk in enumerate(chunks):
                self.stat_factor = 1.0 / (i + 1)  # a cumulative average, as momentum=None
                self.forward(chunk.expand(k, -1, -1), train=True, dropout=False)
        finally:
            self.stat_factor = None

    def _norm(self, layer: Layer, z: torch.Tensor, train: bool) -> torch.Tensor:
        if layer.norm == "none":
            return z
        w = self.params[f"{layer.norm_prefix}.weight"].unsqueeze(1)
        b = self.params[f"{layer.norm_prefix}.bias"].unsqueeze(1)
        if layer.norm == "layer":
            return nn.functional.layer_norm(z, z.shape[-1:], eps=_NORM_EPS) * w + b
        mean_key, var_key = f"{layer.norm_prefix}.running_mean", f"{layer.norm_prefix}.running_var"
        if not train:
            mean, var = self.buffers[mean_key].unsqueeze(1), self.buffers[var_key].unsqueeze(1)
            return (z - mean) * torch.rsqrt(var + _NORM_EPS) * w + b
        mean, var = z.mean(1, keepdim=True), z.var(1, unbiased=False, keepdim=True)
        self._track(layer.norm_prefix, mean.detach(), var.detach(), z.shape[1])
        return (z - mean) * torch.rsqrt(var + _NORM_EPS) * w + b

    @torch.no_grad()
    def _track(self, prefix: str, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
        """BatchNorm1d's running statistics (momentum 0.1, unbiased variance)."""
        unbiased = var.squeeze(1) * (n / max(n - 1, 1))
        factor = _BN_MOMENTUM if self.stat_factor is None else self.stat_factor
        self.buffers[f"{prefix}.running_mean"].lerp_(mean.squeeze(1), factor)
        self.buffers[f"{prefix}.running_var"].lerp_(unbiased, factor)
        self.buffers[f"{prefix}.num_batches_tracked"].add_(1)
