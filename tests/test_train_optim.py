"""The optimizers and schedules: the same updates, learning rates and momenta as
``torch.optim`` and its schedulers, resumable from their state, without ``torch._dynamo``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import autodl.train._optim as optim_module
import autodl.train._torch_private as private
from autodl.cli import main
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


@pytest.mark.parametrize("kernels", ["fused", "single-tensor", "kernel-missing"])
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("optimizer", sorted(CONFIGS))
def test_optimizer_matches_torch_optim(optimizer: str, schedule: str, kernels: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """On CPU and CUDA the fused kernels run; elsewhere (MPS) the single-tensor updates;
    where the installed torch's kernel fails autodl's check at import, torch.optim's
    class (``kernel-missing``: the check's result says so)."""
    if kernels == "single-tensor":
        monkeypatch.setattr(optim_module, "_FUSED_DEVICES", ())
    if kernels == "kernel-missing":
        for name in private.FUSED:
            monkeypatch.setitem(private.FUSED, name, False)
    cfg, sched_cfg = CONFIGS[optimizer], SCHEDULES[schedule]
    ours_model, ref_model = _model(), _model()
    ours = build_optimizer(ours_model, cfg)
    ours_sched = build_schedule(ours, sched_cfg, EPOCHS, STEPS)
    ref = _torch_optimizer(ref_model.parameters(), cfg)
    ref_sched = _torch_schedule(ref, sched_cfg, ours_sched.factor)
    steps = range(EPOCHS * STEPS)
    ours_seen, ref_seen = _train(ours_model, ours, ours_sched, steps), _train(
        ref_model, ref, ref_sched, steps)
    fell_back = kernels == "kernel-missing" and cfg["name"] != "rmsprop"  # rmsprop: no kernel
    assert isinstance(ours, torch.optim.Optimizer) == fell_back
    if fell_back:
        assert ours.defaults["fused"] is True
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
    process that trains with autodl's optimizers never pays it, torch's lr_scheduler
    classes included."""
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
        "    for cfg in ({'name': 'ReduceLROnPlateau'}, {'name': 'StepLR', 'step_size': 1}):\n"
        "        sched = build_schedule(opt, cfg, 2, 3)\n"  # torch's, on autodl's optimizer
        "        sched.step(); sched.epoch_end(0.5)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_kernel_check_refuses_a_kernel_whose_signature_changed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The import-time check calls each kernel once: a renamed argument (as a torch
    release may do to a private kernel) makes it fail, so the optimizer falls back."""
    assert private._check(private._probe_sgd) and private._check(lambda: private._probe_adam(True))

    def renamed(params, grads, bufs, *, wd, momentum, lr, dampening, nesterov, maximize,
                is_first_step):
        raise AssertionError("not reached: the call's keywords do not fit")

    monkeypatch.setattr(private, "_FUSED_SGD", renamed)
    assert not private._check(private._probe_sgd)
    monkeypatch.setattr(private, "_FUSED_ADAMW", lambda *a, **k: None)  # runs, updates nothing
    assert not private._check(lambda: private._probe_adam(True))


def test_optimizer_switch_builds_torch_optim(monkeypatch: pytest.MonkeyPatch) -> None:
    """``AUTODL_OPTIM=torch``: every optimizer is torch.optim's, fused."""
    monkeypatch.setenv("AUTODL_OPTIM", "torch")
    for cfg in CONFIGS.values():
        opt = build_optimizer(_model(), cfg)
        assert type(opt).__name__.lower() == cfg["name"]
        assert opt.defaults.get("fused") or opt.defaults.get("foreach")


TORCH_ONLY = {
    "nadam": ({"name": "nadam", "lr": 0.01, "momentum_decay": 0.01, "beta2": 0.99},
              lambda p: torch.optim.NAdam(p, lr=0.01, momentum_decay=0.01, betas=(0.9, 0.99))),
    "radam-decoupled": ({"name": "radam", "lr": 0.01, "weight_decay": 0.1,
                         "decoupled_weight_decay": True},
                        lambda p: torch.optim.RAdam(p, lr=0.01, weight_decay=0.1,
                                                    decoupled_weight_decay=True)),
    "adagrad": ({"name": "adagrad", "lr": 0.05, "lr_decay": 0.01},
                lambda p: torch.optim.Adagrad(p, lr=0.05, lr_decay=0.01)),
    "adamax": ({"name": "Adamax", "lr": 0.01, "betas": [0.8, 0.99]},
               lambda p: torch.optim.Adamax(p, lr=0.01, betas=(0.8, 0.99))),
    "rprop": ({"name": "rprop", "lr": 0.01, "weight_decay": 0.0, "etas": [0.4, 1.3]},
              lambda p: torch.optim.Rprop(p, lr=0.01, etas=(0.4, 1.3))),
    "adam-amsgrad": ({"name": "adam", "lr": 0.01, "amsgrad": True, "beta1": 0.8},
                     lambda p: torch.optim.Adam(p, lr=0.01, amsgrad=True, betas=(0.8, 0.999))),
    "rmsprop-centered": ({"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "centered": True},
                         lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, centered=True)),
}


@pytest.mark.parametrize("case", sorted(TORCH_ONLY))
def test_optimizer_any_torch_optim_class_trains_as_torch_does(case: str) -> None:
    """An optimizer autodl has no update of its own for (or an argument its own update
    lacks, ``amsgrad``) is torch.optim's class with the config's arguments."""
    cfg, make_ref = TORCH_ONLY[case]
    ours_model, ref_model = _model(), _model()
    ours = build_optimizer(ours_model, cfg)
    ref = make_ref(ref_model.parameters())
    assert type(ours) is type(ref)
    _train(ours_model, ours, build_schedule(ours, {"name": "constant"}, EPOCHS, STEPS),
           range(12))
    _train(ref_model, ref, torch.optim.lr_scheduler.LambdaLR(ref, lambda s: 1.0), range(12))
    for p, q in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, kwargs, per_batch", [
    ("StepLR", {"step_size": 1, "gamma": 0.5}, False),
    ("CosineAnnealingLR", {"eta_min": 1e-4, "T_max": 3}, False),
    ("OneCycleLR", {"pct_start": 0.25}, True),
    ("ExponentialLR", {"gamma": 0.7}, False),
])
def test_schedule_torch_lr_scheduler_steps_per_epoch_or_per_batch(
        name: str, kwargs: dict, per_batch: bool) -> None:
    """A torch.optim.lr_scheduler class drives autodl's (fast) optimizer: OneCycleLR and
    CyclicLR once per batch, the others once per epoch, as their documentation says."""
    ours_model, ref_model = _model(), _model()
    cfg = CONFIGS["sgd"]
    ours = build_optimizer(ours_model, cfg)
    assert isinstance(ours, optim_module.Optimizer)
    sched = build_schedule(ours, {"name": name, **kwargs}, EPOCHS, STEPS)
    ref = _torch_optimizer(ref_model.parameters(), cfg)
    extra = {"max_lr": cfg["lr"], "total_steps": EPOCHS * STEPS} if name == "OneCycleLR" else {}
    ref_sched = getattr(torch.optim.lr_scheduler, name)(ref, **kwargs, **extra)
    for t in range(EPOCHS * STEPS):
        ours_seen = _train(ours_model, ours, sched, range(t, t + 1))
        ref_seen = _train(ref_model, ref, _NoStep(), range(t, t + 1))
        if per_batch or (t + 1) % STEPS == 0:
            ref_sched.step()
        assert ours_seen[0]["lr"] == pytest.approx(ref_seen[0]["lr"], rel=1e-12)
        assert ours_seen[0]["m"] == pytest.approx(ref_seen[0]["m"], rel=1e-12)
    for p, q in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


class _NoStep:
    def step(self) -> None:
        pass


@pytest.mark.parametrize("maximize", [True, False])
def test_schedule_reduce_lr_on_plateau_follows_the_validation_objective(maximize: bool) -> None:
    """ReduceLROnPlateau steps once per epoch on the objective, in its direction; the
    batches in between leave the lr alone."""
    model = _model()
    opt = build_optimizer(model, CONFIGS["adamw"])
    sched = build_schedule(opt, {"name": "ReduceLROnPlateau", "factor": 0.5, "patience": 1},
                           EPOCHS, STEPS, maximize=maximize)
    better_then_flat = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6]  # accuracy; rmse below
    values = better_then_flat if maximize else [1.1 - v for v in better_then_flat]
    lrs = []
    for value in values:
        _train(model, opt, sched, range(STEPS))
        sched.epoch_end(value)
        lrs.append(opt.param_groups[0]["lr"])
    lr = CONFIGS["adamw"]["lr"]
    assert lrs == pytest.approx([lr, lr, lr, lr / 2, lr / 2, lr / 4])


def test_schedule_warm_up_precedes_a_torch_lr_scheduler() -> None:
    """warmup_epochs rises from lr/10 to lr over its steps, then the scheduler starts
    from the lr (StepLR's first decay one epoch after the warm-up)."""
    model = _model()
    opt = build_optimizer(model, CONFIGS["adam"])
    sched = build_schedule(opt, {"name": "StepLR", "step_size": 1, "gamma": 0.5,
                                 "warmup_epochs": 1}, EPOCHS, STEPS)
    seen = [s["lr"] for s in _train(model, opt, sched, range(EPOCHS * STEPS))]
    lr = CONFIGS["adam"]["lr"]
    assert seen[0] == pytest.approx(lr / 10)
    assert seen[STEPS - 1] < lr and seen[STEPS] == pytest.approx(lr)
    assert seen[2 * STEPS] == pytest.approx(lr / 2)
    state = sched.state_dict()
    again = build_schedule(opt, {"name": "StepLR", "step_size": 1, "gamma": 0.5,
                                 "warmup_epochs": 1}, EPOCHS, STEPS)
    again.load_state_dict(state)
    assert again.last_epoch == sched.last_epoch


TORCH_SPACE = """
families:
  mlp: {depth: 1, width: {low: 8, high: 16}}
optimizer:
  lr: {low: 1.0e-3, high: 3.0e-2, log: true}
  options:
    radam: {decoupled_weight_decay: true, weight_decay: {low: 1.0e-4, high: 1.0e-2, log: true},
            beta2: {low: 0.99, high: 0.999}}
schedule:
  options:
    ReduceLROnPlateau: {factor: 0.5, patience: 0}
"""


def test_search_with_radam_and_reduce_lr_on_plateau_runs(tmp_path: Path) -> None:
    """A space naming a torch.optim optimizer and ReduceLROnPlateau searches end to end
    (Optuna's journal storage, iris); the ranges are sampled by Optuna."""
    import optuna

    space = tmp_path / "torch_optim.yaml"
    space.write_text(TORCH_SPACE)
    assert main(["search", str(space), "--data", "iris", "--trials", "3", "--epochs", "3",
                 "--pruner", "none", "--study", "torchopt", "--no-tracking", "--no-export",
                 "--quiet"]) == 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend("autodl.journal"))
    trials = optuna.load_study(study_name="torchopt", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:
        config = t.user_attrs["config"]
        assert config["optimizer"]["name"] == "radam"
        assert config["optimizer"]["decoupled_weight_decay"] is True
        assert config["schedule"]["name"] == "ReduceLROnPlateau"
        assert {"optimizer.lr", "optimizer.radam.weight_decay",
                "optimizer.radam.beta2"} <= set(t.params)  # sampled, not fixed
    assert len({t.params["optimizer.radam.beta2"] for t in trials}) == 3
    summary = json.loads(Path("runs/torchopt/summary.json").read_text())
    assert summary["trials"]["complete"] == 3


def test_search_misspelt_torch_optimizer_argument_exits_2(tmp_path: Path, capsys) -> None:
    space = tmp_path / "typo.yaml"
    space.write_text("families: {mlp: {}}\noptimizer:\n  options:\n"
                     "    radam: {bettas: [0.9, 0.99]}\n")
    assert main(["search", str(space), "--data", "iris", "--no-tracking"]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml:4:13: optimizer.options.radam.bettas: unknown parameter 'bettas'" in err
    assert "did you mean 'betas'" in err
    assert not Path("autodl.journal").exists()  # no trial ran
