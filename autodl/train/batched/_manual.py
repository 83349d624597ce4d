"""A hand-written training step for a ``BatchedMLP`` without normalisation layers.

Autograd works for every stacked MLP, but for these small models its bookkeeping and
temporaries cost as much as the arithmetic. Here the forward keeps exactly what the backward
needs, activations and their gradients live in buffers reused from step to step (fresh
multi-megabyte tensors every step cost page faults), ReLU, dropout and the activations'
backward run in place, and each layer's weight and bias gradients are written straight into
their slices of the ``[K, P]`` gradient. The arithmetic is autograd's (same kernels for the
activations' backward), so results agree up to floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autodl.train.batched._mlp import BatchedMLP, Layer

__all__ = ["Tape", "manual_backward", "manual_eval", "manual_forward", "supports_manual"]

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh)


@dataclass
class _Saved:
    h: torch.Tensor  # the layer's input
    z: torch.Tensor | None  # pre-activation (activations whose backward reads it)
    a: torch.Tensor  # activation output (ReLU: after dropout, in place)
    noise: torch.Tensor | None  # dropout's 0 or 1/keep (ReLU: None, ``a`` has its zeros)


@dataclass
class Tape:
    layers: list[_Saved]
    h: torch.Tensor  # the output layer's input


def supports_manual(model: BatchedMLP) -> bool:
    hidden = model.layers[:-1]
    return all(layer.norm == "none" and isinstance(layer.act, _ACTIVATIONS) for layer in hidden)


def _buffer(model: BatchedMLP, tag: str, like: torch.Tensor, shape: tuple[int, ...] | None = None
            ) -> torch.Tensor:
    """A tensor reused across steps, one per (tag, shape); cleared when members leave."""
    shape = tuple(like.shape) if shape is None else shape
    key = (tag, shape)
    buf = model.workspace.get(key)
    if buf is None:
        buf = model.workspace[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
    return buf


@torch.no_grad()
def manual_forward(model: BatchedMLP, x: torch.Tensor) -> tuple[torch.Tensor, Tape]:
    """Training-mode forward of ``x`` (``[K, B, features]``) and what the backward needs."""
    saved, h = [], x
    for i, layer in enumerate(model.layers[:-1]):
        z = _linear(model, layer.linear, h, f"z{i}")
        if isinstance(layer.act, nn.ReLU):  # in place: dropped entries join ReLU's zeros
            a = z.relu_()
            if model.any_dropout:
                a.mul_(model.noise(z, _buffer(model, "noise", z)))
            saved.append(_Saved(h, None, a, None))
            out = a
        else:
            assert layer.act is not None
            a = layer.act(z)
            noise = model.noise(z, _buffer(model, f"noise{i}", z)) if model.any_dropout else None
            saved.append(_Saved(h, z, a, noise))
            out = a if noise is None else torch.mul(a, noise, out=_buffer(model, f"d{i}", a))
        h = torch.add(h, out, out=_buffer(model, f"h{i}", out)) if layer.skip else out
    return _linear(model, model.layers[-1].linear, h, "out"), Tape(saved, h)


@torch.inference_mode()
def manual_eval(model: BatchedMLP, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode outputs of ``x`` (``[K, N, features]``); the result is a reused buffer."""
    h = x
    for i, layer in enumerate(model.layers[:-1]):
        z = _linear(model, layer.linear, h, f"eval_z{i}")
        assert layer.act is not None
        a = z.relu_() if isinstance(layer.act, nn.ReLU) else layer.act(z)
        h = torch.add(h, a, out=_buffer(model, f"eval_h{i}", a)) if layer.skip else a
    return _linear(model, model.layers[-1].linear, h, "eval_out")


def _linear(model: BatchedMLP, prefix: str, h: torch.Tensor, tag: str) -> torch.Tensor:
    w, b = model.params[f"{prefix}.weight"], model.params[f"{prefix}.bias"]
    out = _buffer(model, tag, h, (h.shape[0], h.shape[1], w.shape[2]))
    return torch.baddbmm(b.unsqueeze(1), h, w, out=out)


@torch.no_grad()
def manual_backward(model: BatchedMLP, tape: Tape, dout: torch.Tensor) -> None:
    """Given d(sum of member losses)/d(outputs), fill ``model.grad`` (every entry)."""
    n = len(tape.layers)
    dh = _linear_backward(model, model.layers[-1].linear, tape.h, dout, n)
    for i in range(n - 1, -1, -1):
        layer, s = model.layers[i], tape.layers[i]
        assert dh is not None
        g = _dropout_backward(model, layer, dh, s, i)
        _activation_backward_(layer.act, g, s)
        dh_in = _linear_backward(model, layer.linear, s.h, g, i)
        if layer.skip and dh_in is not None:
            dh_in += dh
        dh = dh_in


def _dropout_backward(model: BatchedMLP, layer: Layer, dh: torch.Tensor, s: _Saved, i: int
                      ) -> torch.Tensor:
    """The gradient through dropout, in a tensor the activation's backward may overwrite
    (``dh`` itself is still needed when a skip connection reuses it)."""
    factor = None
    if model.any_dropout:
        factor = model.scale if s.noise is None else s.noise  # ReLU's backward zeroes drops
    if not layer.skip:
        return dh if factor is None else dh.mul_(factor)
    g = _buffer(model, f"g{i}", dh)
    return g.copy_(dh) if factor is None else torch.mul(dh, factor, out=g)


def _linear_backward(model: BatchedMLP, prefix: str, h: torch.Tensor, dz: torch.Tensor,
                     index: int) -> torch.Tensor | None:
    """Weight and bias gradients into ``model.grads``; the input's gradient unless this is
    the first layer (``index`` 0)."""
    torch.bmm(h.transpose(1, 2), dz, out=model.grads[f"{prefix}.weight"])
    torch.sum(dz, dim=1, out=model.grads[f"{prefix}.bias"])
    if index == 0:
        return None
    w = model.params[f"{prefix}.weight"].detach()
    out = _buffer(model, f"dh{index}", h)
    return torch.bmm(dz, w.transpose(1, 2), out=out)


def _activation_backward_(act: nn.Module | None, g: torch.Tensor, s: _Saved) -> None:
    """Turn ``g`` (the gradient of the activation's output) into that of its input."""
    aten = torch.ops.aten
    if isinstance(act, nn.ReLU):
        aten.threshold_backward.grad_input(g, s.a, 0, grad_input=g)
    elif isinstance(act, nn.Tanh):
        aten.tanh_backward.grad_input(g, s.a, grad_input=g)
    elif isinstance(act, nn.LeakyReLU):
        aten.leaky_relu_backward.grad_input(g, s.z, act.negative_slope, False, grad_input=g)
    elif isinstance(act, nn.GELU):
        aten.gelu_backward.grad_input(g, s.z, approximate=act.approximate, grad_input=g)
    else:
        aten.silu_backward.grad_input(g, s.z, grad_input=g)
