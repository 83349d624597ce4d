"""Validation metrics computed on whole splits, in torch (one host sync per metric set)."""

from __future__ import annotations

import torch

__all__ = ["classification_metrics", "regression_metrics", "to_predictions"]


def classification_metrics(
    logits: torch.Tensor, y: torch.Tensor, n_classes: int
) -> dict[str, float]:
    loss = torch.nn.functional.cross_entropy(logits.float(), y)
    pred = logits.argmax(dim=1)
    correct = pred == y
    support = torch.bincount(y, minlength=n_classes).float()
    tp = torch.bincount(y[correct], minlength=n_classes).float()
    predicted = torch.bincount(pred, minlength=n_classes).float()
    present = support > 0
    recall = tp / support.clamp(min=1)
    precision = tp / predicted.clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    values = torch.stack([loss, correct.float().mean(), recall[present].mean(), f1[present].mean()])
    loss_v, acc, bal, f1m = values.tolist()
    return {"loss": loss_v, "accuracy": acc, "balanced_accuracy": bal, "f1_macro": f1m}


def regression_metrics(
    pred: torch.Tensor, y: torch.Tensor, y_mean: torch.Tensor, y_std: torch.Tensor
) -> dict[str, float]:
    """``pred`` is in normalised units (what the model outputs); ``y`` in original units."""
    pred = pred.float().reshape(y.shape) * y_std + y_mean
    err = pred - y
    mse = (err**2).mean()
    var = ((y - y.mean(dim=0)) ** 2).mean().clamp(min=1e-12)
    loss = ((err / y_std) ** 2).mean()
    stacked = torch.stack([loss, mse.sqrt(), err.abs().mean(), 1 - mse / var])
    loss_v, rmse, mae, r2 = stacked.tolist()
    return {"loss": loss_v, "rmse": rmse, "mae": mae, "r2": r2}


def to_predictions(out: torch.Tensor, task: str, y_mean: torch.Tensor, y_std: torch.Tensor
                   ) -> torch.Tensor:
    """What a model predicts from its raw outputs ``[N, outputs]``, as a float32 CPU copy:
    class probabilities, or regression values in the targets' units (the inputs of
    ensemble selection, ``autodl.selection``)."""
    out = out.detach().float()
    if task == "classification":
        return torch.softmax(out, dim=-1).cpu()
    return (out.reshape(out.shape[0], -1) * y_std.reshape(-1) + y_mean.reshape(-1)).cpu()
