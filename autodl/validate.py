"""``autodl spaces validate``: check a space, then build one model per family and run one
training batch on the data, and take one step with every optimizer and schedule option
(torch's constructors check their values), so mistakes show up before trial 1, not at
trial 40."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autodl.errors import UsageError

__all__ = ["validate_space"]


class _Corner:
    """A suggester that picks the upper end of every range (the biggest model) and a
    forced value for the family choice; used to smoke-test each family."""

    def __init__(self, family: str, **forced: str) -> None:
        self.family, self.forced = family, forced

    def suggest_float(self, name: str, low: float, high: float, **_: Any) -> float:
        return high

    def suggest_int(self, name: str, low: int, high: int, **_: Any) -> int:
        return high

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        if name == "family":
            return self.family
        return self.forced.get(name, next(iter(choices)))


def validate_space(path: str, data: str | None = None, target: str | None = None,
                   text_column: str | None = None, max_yaml_mb: float = 1.0) -> Iterator[str]:
    from autodl.runner import prepare
    from autodl.settings import SearchSettings

    space, prepared, notes, _ = prepare(SearchSettings(space=path, data=data, target=target,
                                                       text_column=text_column,
                                                       max_yaml_mb=max_yaml_mb))
    yield f"{space.source}: valid ({len(space.families.options)} families fit "\
          f"{prepared.name}: {prepared.modality}, {prepared.task})"
    yield from (f"note: {n}" for n in notes)
    yield from _installed_families()
    yield _step_each_option(space)  # before the families: their smoke test builds one
    for family in space.families.options:
        yield _smoke(space, prepared, family)


def _installed_families() -> Iterator[str]:
    """Every family a space may name here, and which installed package added each plugin
    family (the ``autodl.families`` entry points)."""
    from autodl.models import list_families, plugin_families

    plugins = plugin_families()
    yield f"families installed: {', '.join(list_families())}"
    yield from (f"  plugin family {name}: {where}" for name, where in sorted(plugins.items()))


def _smoke(space: Any, prepared: Any, family: str) -> str:
    import torch

    from autodl.models import create_model
    from autodl.train import TensorData, Trainer

    config = space.sample(_Corner(family))
    data = TensorData.from_prepared(prepared, "cpu")
    model = create_model(family, config["model"], data.input_shape, data.n_outputs,
                         data.modality)
    trainer = Trainer(model, data, config, epochs=1, metric="loss", maximize=False)
    xb, yb = next(data.train_batches(int(config["training"]["batch_size"]),
                                     torch.Generator().manual_seed(0)))
    loss = trainer.batch_loss(xb, yb)
    loss.backward()
    if not torch.isfinite(loss):
        raise UsageError(f"{space.source}: family {family!r}: the first batch gave a "
                         f"non-finite loss ({loss.item()})", key=f"families.{family}")
    n = sum(p.numel() for p in model.parameters())
    return f"  {family}: ok (largest model in the space: {n:,} parameters, one batch trained)"


def _step_each_option(space: Any) -> str:
    """One optimizer step and schedule step for every optimizer x schedule option, with
    the upper end of each range: a value torch refuses (betas past 1) names its option."""
    import torch

    from autodl.train import build_optimizer, build_schedule

    family = next(iter(space.families.options))
    for opt in space.optimizer.options:
        for sched in space.schedule.options:
            config = space.sample(_Corner(family, optimizer=opt, schedule=sched))
            model = torch.nn.Linear(2, 2)
            try:
                optimizer = build_optimizer(model, config["optimizer"])
                schedule = build_schedule(optimizer, config["schedule"], 2, 2)
                model(torch.ones(1, 2)).sum().backward()
                optimizer.step()
                schedule.step()
                schedule.epoch_end(0.0)
            except (ValueError, TypeError, RuntimeError) as exc:
                raise UsageError(f"optimizer {opt!r} with schedule {sched!r}: {exc}",
                                 file=space.source, key=f"optimizer.options.{opt}") from None
    return (f"  optimizers {', '.join(space.optimizer.options)}; schedules "
            f"{', '.join(space.schedule.options)}: ok (one step each)")
