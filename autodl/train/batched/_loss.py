"""Per-member training losses of K stacked models, ``Trainer.batch_loss`` for each member.

Classification: cross-entropy with the member's label smoothing (``[K]``, or None when no
member smooths); regression: mean squared error on standardised targets. ``member_losses``
is differentiated by autograd; ``losses_and_grad`` also returns the gradient of their sum
with respect to the outputs, by hand (softmax minus smoothed one-hot, over the batch size).
"""

from __future__ import annotations

import torch

from autodl.train._tensors import TensorData

__all__ = ["losses_and_grad", "member_losses"]


def _regression_target(y: torch.Tensor, data: TensorData) -> torch.Tensor:
    return ((y - data.y_mean) / data.y_std).reshape(y.shape[0], y.shape[1], -1)


def member_losses(out: torch.Tensor, y: torch.Tensor, data: TensorData,
                  smoothing: torch.Tensor | None) -> torch.Tensor:
    """Each member's mean batch loss, ``[K]`` (their sum has independent gradients)."""
    if data.task != "classification":
        target = _regression_target(y, data)
        return (out.reshape(target.shape) - target).square().mean(dim=(1, 2))
    logp = torch.log_softmax(out, dim=-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(1)
    if smoothing is None:
        return nll
    return (1 - smoothing) * nll - logp.sum(-1).mean(1) * (smoothing / out.shape[-1])


@torch.no_grad()
def losses_and_grad(out: torch.Tensor, y: torch.Tensor, data: TensorData,
                    smoothing: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``member_losses`` and the gradient of their sum with respect to ``out``."""
    if data.task != "classification":
        target = _regression_target(y, data)
        diff = out.reshape(target.shape) - target
        loss = diff.square().mean(dim=(1, 2))
        return loss, diff.mul_(2.0 / (diff.shape[1] * diff.shape[2])).view(out.shape)
    logp = torch.log_softmax(out, dim=-1)
    target = y.unsqueeze(-1)
    nll = -logp.gather(-1, target).squeeze(-1).mean(1)
    grad = logp.exp()  # the softmax
    n_classes, batch = out.shape[-1], out.shape[1]
    if smoothing is None:
        grad.scatter_add_(-1, target, torch.full_like(target, -1.0, dtype=grad.dtype))
        return nll, grad.div_(batch)
    loss = (1 - smoothing) * nll - logp.sum(-1).mean(1) * (smoothing / n_classes)
    eps = smoothing[:, None, None]
    grad.scatter_add_(-1, target, (eps - 1).expand(*target.shape))
    return loss, grad.sub_(eps / n_classes).div_(batch)
