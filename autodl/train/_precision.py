"""Mixed precision on GPUs: bf16 autocast where the GPU supports it, fp16 with loss scaling
elsewhere, full fp32 on CPU (where autocast is slower for these model sizes)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import cast

import torch

from autodl.train._optim import Optimizer

__all__ = ["Precision"]


class Precision:
    def __init__(self, device: torch.device, amp: bool) -> None:
        self.device = device
        self.dtype: torch.dtype | None = None
        if amp and device.type == "cuda":
            self.dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = (torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None)

    @property
    def name(self) -> str:
        names: dict[torch.dtype | None, str] = {torch.bfloat16: "bf16", torch.float16: "fp16"}
        return names.get(self.dtype, "fp32")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield

    def step(self, loss: torch.Tensor, optimizer: Optimizer,
             before_step: Callable[[], None]) -> None:
        """backward + optimizer step; ``before_step`` (gradient clipping) sees true-scale
        gradients."""
        if self.scaler is None:
            loss.backward()
            before_step()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        # GradScaler is annotated for torch.optim.Optimizer but reads only param_groups and
        # step(), which autodl's Optimizer has: the annotation is narrower than the code.
        scaled = cast(torch.optim.Optimizer, optimizer)
        self.scaler.unscale_(scaled)
        before_step()
        self.scaler.step(scaled)
        self.scaler.update()
