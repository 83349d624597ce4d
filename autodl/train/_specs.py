"""What the training loop accepts (torch-free): optimizers, lr schedules, training options."""

from __future__ import annotations

from autodl.space._params import ParamSpec as P

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_COMMON",
    "SCHEDULES",
    "SCHEDULE_COMMON",
    "TRAINING",
]

OPTIMIZER_COMMON = {
    "lr": P("float", 1e-3, low=0.0, low_open=True, high=10.0, help="learning rate"),
    "weight_decay": P("float", 0.0, low=0.0, high=1.0),
}

_BETAS = {
    "beta1": P("float", 0.9, low=0.0, high=1.0, high_open=True),
    "beta2": P("float", 0.999, low=0.0, high=1.0, high_open=True),
    "eps": P("float", 1e-8, low=0.0, low_open=True, high=1.0),
}

OPTIMIZERS = {
    "sgd": {
        "momentum": P("float", 0.9, low=0.0, high=1.0, high_open=True),
        "nesterov": P("bool", False),
    },
    "adam": dict(_BETAS),
    "adamw": dict(_BETAS),
    "rmsprop": {
        "momentum": P("float", 0.0, low=0.0, high=1.0, high_open=True),
        "alpha": P("float", 0.99, low=0.0, high=1.0, high_open=True),
    },
}

SCHEDULE_COMMON = {
    "warmup_epochs": P("int", 0, low=0, high=1000, help="linear warm-up from lr/10"),
}

SCHEDULES = {
    "constant": {},
    "cosine": {"min_lr_factor": P("float", 0.0, low=0.0, high=1.0)},
    "step": {
        "step_size": P("int", 10, low=1, high=10000, help="epochs between decays"),
        "gamma": P("float", 0.1, low=0.0, low_open=True, high=1.0),
    },
    "onecycle": {
        "pct_start": P("float", 0.3, low=0.0, low_open=True, high=1.0, high_open=True),
    },
}

TRAINING = {
    "batch_size": P("int", 64, low=1, high=1 << 20),
    "label_smoothing": P("float", 0.0, low=0.0, high=1.0, high_open=True),
    "grad_clip": P("float", 0.0, low=0.0, help="max gradient norm; 0: off"),
    "early_stopping": P("int", 0, low=0, high=10000,
                        help="stop after this many epochs without improvement; 0: off"),
    "augment": P("bool", False,
                 help="modality's standard augmentation (image: shifts; sequence/tabular: noise)"),
    "hflip": P("bool", False, help="with augment, images: random horizontal flips too (photos, "
               "not digits)"),
}
