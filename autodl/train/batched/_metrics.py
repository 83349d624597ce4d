"""``autodl.train._metrics`` for K members at once: outputs ``[K, N, outputs]``, one host
sync for the whole group. Same formulas as the per-model functions (class counts are exact,
so accuracy, balanced accuracy and F1 are equal; the mean loss may differ in the last bit).
"""

from __future__ import annotations

import torch

__all__ = ["group_classification_metrics", "group_regression_metrics"]

_CLASSIFICATION = ("loss", "accuracy", "balanced_accuracy", "f1_macro")
_REGRESSION = ("loss", "rmse", "mae", "r2")


def group_classification_metrics(
    logits: torch.Tensor, y: torch.Tensor, n_classes: int
) -> list[dict[str, float]]:
    k, n, c = logits.shape
    loss = torch.nn.functional.cross_entropy(
        logits.float().reshape(k * n, c), y.repeat(k), reduction="none").view(k, n).mean(1)
    pred = logits.argmax(dim=2)
    correct = pred == y
    offset = torch.arange(k, device=y.device)[:, None] * n_classes
    support = torch.bincount(y, minlength=n_classes).float()
    tp = torch.bincount((y + offset)[correct], minlength=k * n_classes).view(k, -1).float()
    predicted = torch.bincount((pred + offset).reshape(-1), minlength=k * n_classes)
    predicted = predicted.view(k, -1).float()
    present = support > 0
    recall = tp / support.clamp(min=1)
    precision = tp / predicted.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    values = torch.stack([loss, correct.float().mean(1), recall[:, present].mean(1),
                          f1[:, present].mean(1)], dim=1)
    return [dict(zip(_CLASSIFICATION, row, strict=True)) for row in values.tolist()]


def group_regression_metrics(
    pred: torch.Tensor, y: torch.Tensor, y_mean: torch.Tensor, y_std: torch.Tensor
) -> list[dict[str, float]]:
    """``pred`` in normalised units, ``[K, N, outputs]``; ``y`` in original units."""
    k = pred.shape[0]
    pred = pred.float().reshape(k, *y.shape) * y_std + y_mean
    err = pred - y
    dims = tuple(range(1, err.ndim))
    mse = (err**2).mean(dim=dims)
    var = ((y - y.mean(dim=0)) ** 2).mean().clamp(min=1e-12)
    loss = ((err / y_std) ** 2).mean(dim=dims)
    values = torch.stack([loss, mse.sqrt(), err.abs().mean(dim=dims), 1 - mse / var], dim=1)
    return [dict(zip(_REGRESSION, row, strict=True)) for row in values.tolist()]
