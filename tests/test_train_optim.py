"""The optimizers and schedules: the same updates, learning rates and momenta as
``torch.optim`` and its schedulers, resumable from their state, without ``torch._dynamo``."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch

import autodl.train._optim as optim_module
from autodl.train._optim import build_optimizer, build_schedule

EPOCHS, STEPS = 3, 7  # 21 steps: warm-up, a step decay and one-cycle's both phases

CONFIGS = {
    "sgd": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-3},
    "sgd-nesterov": {"name": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True},
    "sgd-plain": {"name": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 1e-2},
    "adam": {"name": "adam", "lr": 0.01, "weight_decay": 1e-2, "beta1": 0.8, "eps": 1e-6},
    "adamw": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1, "beta2": 0.99},
    "rmsprop": {"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "weight_decay": 1e-3},
    "rmsprop-momentum": {"name": "rmsprop", "lr": 0.01, "momentum": 0.5},
}
SCHEDULES = {
    "constant": {"name": "constant", "warmup_epochs": 1},
    "cosine": {"name": "cosine", "warmup_epochs": 1, "min_lr_factor": 0.1},
    "step": {"name": "step", "step_size": 1, "gamma": 0.5},
    "onecycle": {"name": "onecycle", "pct_start": 0.3},
}


def _torch_optimizer(params: Any, cfg: dict) -> torch.optim.Optimizer:
    """What autodl built before, with torch.optim."""
    lr, wd = cfg["lr"], cfg.get("weight_decay", 0.0)
    betas = (cfg.get("beta1", 0.9), cfg.get("beta2", 0.999))
    if cfg["name"] == "sgd":
        m = cfg.get("momentum", 0.9)
        return torch.optim.SGD(params, lr=lr, momentum=m, weight_decay=wd,
                               nesterov=bool(cfg.get("nesterov")) and m > 0)
    if cfg["name"] == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=cfg.get("alpha", 0.99),
                                   momentum=cfg.get("momentum", 0.0), weight_decay=wd)
    kind = torch.optim.Adam if cfg["name"] == "adam" else torch.optim.AdamW
    return kind(params, lr=lr, betas=betas, eps=cfg.get("eps", 1e-8), weight_decay=wd)


def _torch_schedule(opt: torch.optim.Optimizer, cfg: dict,
                    factor: Callable[[int], float]) -> Any:
    if cfg["name"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=EPOCHS * STEPS,
            pct_start=cfg["pct_start"])
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def _train(model: torch.nn.Module, opt: Any, sched: Any, steps: range) -> list[dict[str, float]]:
    """Steps on fixed batches; each step's lr and momentum (or beta1) before it."""
    seen = []
    for t in steps:
        g = torch.Generator().manual_seed(t)
        x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
        group = opt.param_groups[0]
        seen.append({"lr": group["lr"],
                     "m": group["betas"][0] if "betas" in group else group.get("momentum")})
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
    return seen


@pytest.mark.parametrize("kernels", ["fused", "single-tensor"])
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("optimizer", sorted(CONFIGS))
def test_optimizer_matches_torch_optim(optimizer: str, schedule: str, kernels: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU and CUDA the fused kernels run; elsewhere (MPS) the single-tensor updates."""
    if kernels == "single-tensor":
        monkeypatch.setattr(optim_module, "_FUSED_DEVICES", ())
    cfg, sched_cfg = CONFIGS[optimizer], SCHEDULES[schedule]
    ours_model, ref_model = _model(), _model()
    ours = build_optimizer(ours_model, cfg)
    ours_sched = build_schedule(ours, sched_cfg, EPOCHS, STEPS)
    ref = _torch_optimizer(ref_model.parameters(), cfg)
    ref_sched = _torch_schedule(ref, sched_cfg, ours_sched.factor)
    steps = range(EPOCHS * STEPS)
    ours_seen, ref_seen = _train(ours_model, ours, ours_sched, steps), _train(
        ref_model, ref, ref_sched, steps)
    for a, b in zip(ours_seen, ref_seen, strict=True):
        assert a["lr"] == pytest.approx(b["lr"], rel=1e-12, abs=1e-15)
        assert a["m"] == pytest.approx(b["m"], rel=1e-12)
    assert ours.param_groups[0]["lr"] == pytest.approx(ref.param_groups[0]["lr"], rel=1e-12)
    for p, q in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "rmsprop-momentum"])
def test_optimizer_resumes_from_its_state_dict(optimizer: str) -> None:
    """A checkpoint (saved and loaded as a trial's, weights_only) continues the same run."""
    cfg, sched_cfg = CONFIGS[optimizer], SCHEDULES["onecycle"]
    whole_model = _model()
    whole = build_optimizer(whole_model, cfg)
    whole_sched = build_schedule(whole, sched_cfg, EPOCHS, STEPS)
    _train(whole_model, whole, whole_sched, range(EPOCHS * STEPS))

    first_model = _model()
    first = build_optimizer(first_model, cfg)
    first_sched = build_schedule(first, sched_cfg, EPOCHS, STEPS)
    _train(first_model, first, first_sched, range(10))
    buf = io.BytesIO()
    torch.save({"model": first_model.state_dict(), "optimizer": first.state_dict(),
                "scheduler": first_sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    model = _model()
    opt = build_optimizer(model, cfg)
    sched = build_schedule(opt, sched_cfg, EPOCHS, STEPS)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    _train(model, opt, sched, range(10, EPOCHS * STEPS))
    for p, q in zip(model.parameters(), whole_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd-plain", "sgd-nesterov"])
def test_optimizer_loads_a_torch_optim_checkpoint(optimizer: str) -> None:
    """Checkpoints written while autodl trained with torch.optim still resume."""
    cfg = CONFIGS[optimizer]
    ref_model, model = _model(), _model()
    ref = _torch_optimizer(ref_model.parameters(), cfg)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref, lambda s: 1.0)
    _train(ref_model, ref, ref_sched, range(5))
    opt = build_optimizer(model, cfg)
    sched = build_schedule(opt, SCHEDULES["step"] | {"step_size": 100}, EPOCHS, STEPS)
    model.load_state_dict(ref_model.state_dict())
    opt.load_state_dict(ref.state_dict())
    _train(ref_model, ref, ref_sched, range(5, 9))
    _train(model, opt, sched, range(5, 9))
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_optimizer_per_group_learning_rates_follow_the_schedule() -> None:
    model = _model()
    groups = [{"params": model[0].parameters(), "lr": 1e-3},
              {"params": model[2].parameters(), "weight_decay": 0.5}]
    opt = build_optimizer(groups, {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0})
    sched = build_schedule(opt, SCHEDULES["cosine"], EPOCHS, STEPS)
    _train(model, opt, sched, range(12))
    lrs = [g["lr"] for g in opt.param_groups]
    assert lrs[0] == pytest.approx(lrs[1] / 10)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.5]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizer_under_a_grad_scaler_matches_unscaled_training(optimizer: str) -> None:
    """fp16 training on older GPUs scales the loss (GradScaler): the scaler unscales the
    gradients before the step, and skips the step when they overflow."""
    cfg = CONFIGS[optimizer]
    plain_model, scaled_model = _model(), _model()
    plain = build_optimizer(plain_model, cfg)
    scaled = build_optimizer(scaled_model, cfg)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    for t in range(6):
        g = torch.Generator().manual_seed(t)
        x, y = torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)
        for model, opt in ((plain_model, plain), (scaled_model, scaled)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            if opt is plain:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
    for p, q in zip(scaled_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    before = [p.detach().clone() for p in scaled_model.parameters()]
    scaled.zero_grad()
    (scaled_model(torch.ones(2, 5)).sum() * float("inf")).backward()
    scaler.step(scaled)
    scaler.update()
    assert all(torch.equal(p, b) for p, b in zip(scaled_model.parameters(), before, strict=True))
    assert scaler.get_scale() < 2.0**10  # the overflow halved the scale


def test_optimizer_first_steps_do_not_import_dynamo() -> None:
    """torch.optim imports torch._dynamo (about 2 s) on its first optimizer; a trial
    process that trains with autodl's optimizers never pays it."""
    code = (
        "import sys, torch\n"
        "from autodl.train._optim import build_optimizer, build_schedule\n"
        "for name in ('sgd', 'adam', 'adamw', 'rmsprop'):\n"
        "    model = torch.nn.Linear(4, 2)\n"
        "    opt = build_optimizer(model, {'name': name, 'lr': 0.1})\n"
        "    sched = build_schedule(opt, {'name': 'onecycle'}, 2, 3)\n"
        "    model(torch.ones(2, 4)).sum().backward()\n"
        "    opt.step(); sched.step(); opt.zero_grad()\n"
        "    opt.load_state_dict(opt.state_dict())\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
