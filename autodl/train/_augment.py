"""Each modality's standard, cheap augmentation, applied per batch on the device."""

from __future__ import annotations

import torch

__all__ = ["augment_batch"]


def augment_batch(x: torch.Tensor, modality: str, generator: torch.Generator,
                  hflip: bool = False) -> torch.Tensor:
    """Images: random shift by up to 1/8 of the side (zero fill: a random crop of the padded
    image), plus random horizontal flips per sample when ``hflip``. Text (token ids): none.
    Others: Gaussian noise of 0.05 (inputs are standardised), plus a random time shift for
    sequences."""
    if modality == "text":
        return x
    if modality == "image" and hflip:
        flip = torch.rand(x.shape[0], generator=generator).to(x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if modality == "image":
        h, w = x.shape[-2:]
        max_dy, max_dx = max(1, h // 8), max(1, w // 8)
        dy = int(torch.randint(-max_dy, max_dy + 1, (1,), generator=generator))
        dx = int(torch.randint(-max_dx, max_dx + 1, (1,), generator=generator))
        padded = torch.nn.functional.pad(x, (max_dx, max_dx, max_dy, max_dy))
        return padded[..., max_dy + dy : max_dy + dy + h, max_dx + dx : max_dx + dx + w]
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return x + 0.05 * noise
