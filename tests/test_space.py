"""Search-space YAML: every shipped file loads and samples; every rule names line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import optuna
import pytest

from autodl.errors import UsageError
from autodl.models import get_family
from autodl.space import (
    Categorical,
    Fixed,
    Float,
    Int,
    Objective,
    Section,
    flatten_config,
    list_spaces,
    load_space,
    parse_space,
    resolve_objectives,
)
from autodl.space._load import SHIPPED_DIR
from autodl.space._yaml import load_yaml
from autodl.train._specs import OPTIMIZER_COMMON, OPTIMIZERS, SCHEDULE_COMMON, SCHEDULES, TRAINING

optuna.logging.set_verbosity(optuna.logging.WARNING)

SHIPPED = sorted(p for p in SHIPPED_DIR.iterdir() if p.suffix in (".yaml", ".yml"))


def parse(text: str):
    return parse_space(textwrap.dedent(text).lstrip("\n"), source="space.yaml")


def parse_error(text: str) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse(text)
    return info.value


def _assert_config_valid(space, config) -> None:
    assert set(config) == {"family", "model", "optimizer", "schedule", "training"}
    family = get_family(config["family"])
    assert config["family"] in space.families.options
    for key, value in config["model"].items():
        assert family.params[key].accepts(value), (key, value)
    opt = dict(config["optimizer"])
    opt_specs = {**OPTIMIZER_COMMON, **OPTIMIZERS[opt.pop("name")]}
    assert all(opt_specs[k].accepts(v) for k, v in opt.items()), opt
    sched = dict(config["schedule"])
    sched_specs = {**SCHEDULE_COMMON, **SCHEDULES[sched.pop("name")]}
    assert all(sched_specs[k].accepts(v) for k, v in sched.items()), sched
    assert all(TRAINING[k].accepts(v) for k, v in config["training"].items())


# ---------------------------------------------------------------- shipped spaces


def test_shipped_directory_has_the_promised_spaces():
    names = {p.stem for p in SHIPPED}
    assert {"quickstart", "tabular", "image", "sequence", "all_families"} <= names
    assert Path("search_spaces").resolve() == SHIPPED_DIR or not Path("search_spaces").exists()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_space_loads_and_samples(path):
    space = load_space(str(path))
    assert space.name == path.stem
    assert space.description
    assert space.source == str(path)
    assert space.source_text == path.read_text(encoding="utf-8")
    assert space.defaults.data
    study = optuna.create_study(
        directions=[o.direction for o in space.objectives] or ["maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for _ in range(5):
        trial = study.ask()
        config = space.sample(trial)
        _assert_config_valid(space, config)
        assert flatten_config(config)["family"] == config["family"]


@pytest.mark.parametrize("name", [p.stem for p in SHIPPED])
def test_load_space_by_name(name):
    assert load_space(name).name == name


def test_list_spaces_describes_every_shipped_file():
    listed = dict(list_spaces())
    assert set(listed) == {p.stem for p in SHIPPED}
    assert all(listed.values())


def test_load_space_unknown_name_lists_shipped():
    with pytest.raises(UsageError) as info:
        load_space("quickstrat")
    assert "quickstart" in str(info.value) and "did you mean 'quickstart'" in str(info.value)


def test_load_space_missing_path_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no search-space file"):
        load_space(str(tmp_path / "nope.yaml"))


def test_load_space_refuses_a_file_over_the_size_limit_before_parsing(tmp_path):
    """A file over the limit is refused unread (a 50 MB list took minutes and gigabytes to
    parse before the node limit applied); a raised limit lets the same file through."""
    path = tmp_path / "big.yaml"
    path.write_text("families:\n  mlp: {}\n# " + "x" * 3000 + "\n")
    with pytest.raises(UsageError, match=r"over the 0.000954 MB limit.*--max-yaml-mb") as info:
        load_space(str(path), max_bytes=1000)
    assert info.value.file == str(path)
    assert load_space(str(path), max_bytes=4000).families.options.keys() == {"mlp"}


def test_load_space_error_names_the_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("families:\n  mlp:\n    widht: 3\n")
    with pytest.raises(UsageError) as info:
        load_space(str(path))
    assert info.value.file == str(path) and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3:5: families.mlp.widht:")


def test_quickstart_matches_the_brief():
    space = load_space("quickstart")
    assert set(space.families.options) == {"mlp", "cnn"}
    assert set(space.optimizer.options) == {"adamw", "sgd"}
    assert space.defaults.trials == 20 and space.defaults.epochs == 20
    assert space.defaults.data == "digits"
    assert space.training["batch_size"] == Categorical((32, 64, 128))


# ---------------------------------------------------------------- typed result


def test_parse_space_builds_typed_distributions():
    space = parse("""
        name: demo
        families:
          mlp:
            depth: {type: int, low: 1, high: 3}
            width: {low: 64, high: 512, log: true}
            activation: [relu, gelu]
            dropout: {low: 0, high: 0.3}
            norm: none
            residual: {type: categorical, choices: [true, false]}
          cnn: {}
          rnn:
        optimizer:
          lr: {low: 1.0e-4, high: 1.0e-2, log: true}
          options:
            sgd: {momentum: {low: 0.8, high: 0.99, step: 0.01}, nesterov: [true, false]}
        training:
          batch_size: {type: fixed, value: 32}
          grad_clip: {low: 0.5, high: 2}
    """)
    mlp = space.families.options["mlp"]
    assert mlp["depth"] == Int(1, 3)
    assert mlp["width"] == Int(64, 512, log=True)
    assert mlp["activation"] == Categorical(("relu", "gelu"))
    assert mlp["dropout"] == Float(0.0, 0.3)  # a float param: int bounds make a float range
    assert mlp["norm"] == Fixed("none")
    assert mlp["residual"] == Categorical((True, False))
    assert space.families.options["cnn"] == {} and space.families.options["rnn"] == {}
    assert space.optimizer.shared == {"lr": Float(1e-4, 1e-2, log=True)}
    assert space.optimizer.options["sgd"]["momentum"] == Float(0.8, 0.99, step=0.01)
    assert space.training == {"batch_size": Fixed(32), "grad_clip": Float(0.5, 2.0)}
    assert space.name == "demo" and space.source == "space.yaml"


def test_parse_space_default_sections():
    space = parse("families: {mlp: {}}")
    assert space.optimizer == Section(options={"adamw": {}}, shared={})
    assert space.schedule == Section(options={"constant": {}})
    assert space.training == {} and space.objectives == ()
    assert space.name == "space"  # the stem of the source
    assert space.defaults.sampler == "tpe" and space.defaults.pruner == "hyperband"


def test_parse_space_reads_defaults_and_objectives():
    space = parse("""
        defaults: {data: iris, trials: 5, epochs: 3, timeout: 60, sampler: nsga2,
                   pruner: none, seed: 7}
        objectives: [accuracy, {metric: params}, {metric: latency_ms, direction: minimize}]
        families: {mlp: null}
    """)
    d = space.defaults
    assert (d.data, d.trials, d.epochs, d.timeout, d.sampler, d.pruner, d.seed) == (
        "iris", 5, 3, 60.0, "nsga2", "none", 7)
    assert space.objectives == (Objective("accuracy", "maximize"),
                                Objective("params", "minimize"),
                                Objective("latency_ms", "minimize"))
    assert space.multi_objective


def test_parse_space_option_lists_and_overrides():
    space = parse("""
        families: {mlp: {}}
        optimizer:
          lr: {low: 1.0e-4, high: 1.0e-2, log: true}
          options: {adamw: , sgd: {lr: {low: 0.01, high: 0.1, log: true}}}
        schedule: {warmup_epochs: {low: 0, high: 2}, options: [cosine, step]}
    """)
    assert space.optimizer.options["sgd"] == {"lr": Float(0.01, 0.1, log=True)}
    assert space.optimizer.options["adamw"] == {}
    assert space.schedule.shared == {"warmup_epochs": Int(0, 2)}
    assert list(space.schedule.options) == ["cosine", "step"]


# ---------------------------------------------------------------- YAML 1.1 traps


def test_yaml_floats_read_the_yaml_1_2_way():
    root = load_yaml("a: 1e-5\nb: 1E-5\nc: .5\nd: -2.5e3\ne: 012\nf: 1:30\ng: '1e-5'\n")
    values = {k: n.value for k, n in root.value.items()}
    assert values == {"a": 1e-5, "b": 1e-5, "c": 0.5, "d": -2500.0, "e": 12, "f": "1:30",
                      "g": "1e-5"}
    assert all(type(values[k]) is float for k in "abcd")


def test_yaml_booleans_only_true_and_false():
    root = load_yaml("a: true\nb: FALSE\nc: yes\nd: no\ne: on\nf: off\ng: True\n")
    values = {k: n.value for k, n in root.value.items()}
    assert values == {"a": True, "b": False, "c": "yes", "d": "no", "e": "on", "f": "off",
                      "g": True}


def test_parse_space_log_range_with_exponent_floats():
    space = parse("families: {mlp: {}}\noptimizer: {lr: {low: 1e-5, high: 1E-1, log: true}}")
    assert space.optimizer.shared["lr"] == Float(1e-5, 0.1, log=True)


def test_parse_space_no_for_a_bool_param_fails():
    err = parse_error("""
        families:
          mlp:
            residual: no
    """)
    assert (err.line, err.column, err.key) == (3, 15, "families.mlp.residual")
    assert "got 'no' (a string); write true or false" in str(err)


# ---------------------------------------------------------------- errors: line, key, value

ERROR_CASES = {
    "log_needs_positive_low": ("""
        families: {mlp: {}}
        optimizer:
          lr: {low: 0, high: 0.1, log: true}
    """, 3, "optimizer.lr", ["`low > 0` must hold for log=True", "got low=0"]),
    "low_above_high": ("""
        families:
          mlp:
            depth: {low: 5, high: 2}
    """, 3, "families.mlp.depth", ["`low <= high`", "low=5, high=2"]),
    "step_not_positive": ("""
        families:
          mlp:
            dropout: {low: 0.0, high: 0.5, step: 0}
    """, 3, "families.mlp.dropout", ["`step > 0`", "step=0"]),
    "float_log_and_step": ("""
        families: {mlp: {}}
        optimizer:
          lr: {low: 1.0e-4, high: 0.1, log: true, step: 0.001}
    """, 3, "optimizer.lr", ["log and step", "step=0.001"]),
    "int_log_needs_step_1": ("""
        families:
          mlp:
            width: {low: 16, high: 256, log: true, step: 2}
    """, 3, "families.mlp.width", ["`step == 1`", "step=2"]),
    "int_param_float_range": ("""
        families:
          mlp:
            depth: {low: 1.5, high: 3}
    """, 3, "families.mlp.depth", ["integer parameter", "float range", "low=1.5"]),
    "low_outside_spec": ("""
        families:
          mlp:
            dropout: {low: -0.1, high: 0.5}
    """, 3, "families.mlp.dropout", ["low must be a number >= 0 and < 1", "low=-0.1"]),
    "high_outside_spec": ("""
        families:
          mlp:
            dropout: {low: 0.0, high: 1.0}
    """, 3, "families.mlp.dropout", ["high must be", "high=1.0"]),
    "bad_choice": ("""
        families:
          mlp:
            activation: [relu, gelux]
    """, 3, "families.mlp.activation", ["'gelux' (a string)", "did you mean 'gelu'"]),
    "bad_fixed_value": ("""
        families:
          cnn:
            pool: maxx
    """, 3, "families.cnn.pool", ["one of max, avg, none", "'maxx'"]),
    "empty_choices": ("""
        families:
          mlp:
            activation: []
    """, 3, "families.mlp.activation", ["at least one choice"]),
    "duplicate_choices": ("""
        families:
          mlp:
            activation: [relu, gelu, relu]
    """, 3, "families.mlp.activation", ["distinct", "'relu'"]),
    "quoted_number": ("""
        families: {mlp: {}}
        optimizer:
          lr: {low: "1e-5", high: 0.1}
    """, 3, "optimizer.lr", ["low must be a number", "'1e-5' (a string)"]),
    "word_for_number": ("""
        families: {mlp: {}}
        optimizer:
          lr: {low: 1.0e-5, high: abc}
    """, 3, "optimizer.lr", ["high must be a number", "'abc' (a string)"]),
    "unknown_dist_key": ("""
        families:
          mlp:
            width: {low: 64, hi: 512}
    """, 3, "families.mlp.width", ["unknown distribution key 'hi'", "did you mean 'high'"]),
    "log_not_bool": ("""
        families:
          mlp:
            width: {low: 64, high: 512, log: yes}
    """, 3, "families.mlp.width", ["log must be true or false", "'yes'"]),
    "range_for_choice_param": ("""
        families:
          mlp:
            activation: {low: 1, high: 2}
    """, 3, "families.mlp.activation", ["one of relu"]),
    "unknown_param": ("""
        families:
          mlp:
            depth: 2
            widht: 128
    """, 4, "families.mlp.widht", ["unknown parameter 'widht'", "did you mean 'width'"]),
    "unknown_family": ("""
        families:
          mlp: {}
          resnet: {}
    """, 3, "families.resnet", ["unknown family 'resnet'", "valid families: cnn, inception, mlp"]),
    "no_family": ("""
        families: {}
    """, 1, "families", ["at least one family"]),
    "families_missing": ("""
        name: x
    """, 1, "families", ["'families' is required"]),
    "unknown_top_key": ("""
        families: {mlp: {}}
        trainng: {batch_size: 32}
    """, 2, "trainng", ["unknown top-level key 'trainng'", "did you mean 'training'"]),
    "unknown_optimizer": ("""
        families: {mlp: {}}
        optimizer:
          options: [adamw, adagrod]
    """, 3, "optimizer.options[1]", ["unknown option 'adagrod'", "sgd", "Adagrad",
                                     "did you mean 'Adagrad'"]),
    "torch_optimizer_typo": ("""
        families: {mlp: {}}
        optimizer:
          options:
            radam: {bettas: [0.9, 0.99]}
    """, 4, "optimizer.options.radam.bettas", ["unknown parameter 'bettas'",
                                                "did you mean 'betas'", "decoupled_weight_decay"]),
    "torch_optimizer_bad_tuple": ("""
        families: {mlp: {}}
        optimizer:
          options:
            nadam: {betas: [0.9, 0.99, 0.999]}
    """, 4, "optimizer.options.nadam.betas", ["a list of 2 numbers"]),
    "torch_optimizer_managed_argument": ("""
        families: {mlp: {}}
        optimizer:
          options:
            adagrad: {fused: true}
    """, 4, "optimizer.options.adagrad.fused", ["cannot be set", "AUTODL_OPTIM=torch"]),
    "torch_optimizer_unsupported": ("""
        families: {mlp: {}}
        optimizer:
          options: [lbfgs]
    """, 3, "optimizer.options[0]", ["'lbfgs' cannot be used", "closure"]),
    "torch_schedule_required_argument": ("""
        families: {mlp: {}}
        schedule:
          options:
            StepLR: {gamma: 0.5}
    """, 4, "schedule.options.StepLR", ["needs 'step_size'"]),
    "torch_schedule_bad_choice": ("""
        families: {mlp: {}}
        schedule:
          options:
            ReduceLROnPlateau: {threshold_mode: relative}
    """, 4, "schedule.options.ReduceLROnPlateau.threshold_mode", ["one of rel, abs"]),
    "torch_schedule_mode_is_the_objectives": ("""
        families: {mlp: {}}
        schedule:
          options:
            ReduceLROnPlateau: {mode: max}
    """, 4, "schedule.options.ReduceLROnPlateau.mode", ["objective's direction"]),
    "unknown_optimizer_param": ("""
        families: {mlp: {}}
        optimizer:
          options:
            sgd: {momentum: 0.9, betas: 0.9}
    """, 4, "optimizer.options.sgd.betas", ["unknown parameter 'betas'", "momentum"]),
    "option_param_at_section_level": ("""
        families: {mlp: {}}
        optimizer:
          momentum: 0.9
    """, 3, "optimizer.momentum", ["belongs to an option", "options.sgd"]),
    "bad_option_value": ("""
        families: {mlp: {}}
        optimizer:
          options:
            sgd: {momentum: {low: 0.8, high: 1.0}}
    """, 4, "optimizer.options.sgd.momentum", ["high must be", "high=1.0"]),
    "unknown_schedule": ("""
        families: {mlp: {}}
        schedule: {options: {cosin: {}}}
    """, 2, "schedule.options.cosin", ["unknown option 'cosin'", "did you mean 'cosine'"]),
    "unknown_training_key": ("""
        families: {mlp: {}}
        training:
          batchsize: 32
    """, 3, "training.batchsize", ["did you mean 'batch_size'"]),
    "unknown_defaults_key": ("""
        defaults:
          trails: 10
        families: {mlp: {}}
    """, 2, "defaults.trails", ["unknown key in 'defaults' 'trails'", "did you mean 'trials'"]),
    "bad_sampler": ("""
        defaults:
          sampler: tpee
        families: {mlp: {}}
    """, 2, "defaults.sampler", ["one of tpe, random", "'tpee'"]),
    "bad_pruner": ("""
        defaults: {pruner: asha}
        families: {mlp: {}}
    """, 1, "defaults.pruner", ["hyperband", "'asha'"]),
    "trials_not_positive": ("""
        defaults:
          trials: 0
        families: {mlp: {}}
    """, 2, "defaults.trials", ["positive integer", "got 0"]),
    "epochs_not_int": ("""
        defaults:
          epochs: 2.5
        families: {mlp: {}}
    """, 2, "defaults.epochs", ["positive integer", "got 2.5"]),
    "unknown_metric": ("""
        objectives: [acuracy]
        families: {mlp: {}}
    """, 1, "objectives[0]", ["unknown metric 'acuracy'", "did you mean 'accuracy'"]),
    "bad_direction": ("""
        objectives:
          - {metric: accuracy, direction: up}
        families: {mlp: {}}
    """, 2, "objectives[0].direction", ["maximize, minimize", "'up'"]),
    "only_cost_objective": ("""
        objectives: [params]
        families: {mlp: {}}
    """, 1, "objectives", ["quality metric"]),
    "null_param_value": ("""
        families:
          mlp:
            depth:
    """, 3, "families.mlp.depth", ["needs a value", "default (2)"]),
    "int_param_float_fixed": ("""
        training:
          batch_size: 32.5
        families: {mlp: {}}
    """, 2, "training.batch_size", ["an integer", "32.5"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_parse_space_error_names_line_key_and_value(case):
    text, line, key, fragments = ERROR_CASES[case]
    err = parse_error(text)
    assert (err.line, err.key, err.file) == (line, key, "space.yaml"), str(err)
    assert err.column is not None and err.column >= 1
    message = str(err)
    assert message.startswith(f"space.yaml:{line}:{err.column}: {key}: ")
    for fragment in fragments:
        assert fragment in message, message


def test_parse_space_message_matches_the_design_format():
    err = parse_error("""
        families: {mlp: {}}
        optimizer:
          lr: {low: 0, high: 0.1, log: true}
    """)
    assert str(err) == ("space.yaml:3:13: optimizer.lr: `low > 0` must hold for log=True, "
                        "but got low=0")


def test_parse_space_duplicate_key_points_at_second():
    err = parse_error("""
        families:
          mlp:
            depth: 2
            width: 64
            depth: 3
    """)
    assert (err.line, err.column, err.key) == (5, 5, "families.mlp.depth")
    assert "duplicate key 'depth' (first defined on line 3)" in str(err)


def test_parse_space_syntax_error_has_position():
    err = parse_error("""
        families:
          mlp: {depth: 2
          cnn: {}
    """)
    assert err.file == "space.yaml" and err.line == 3 and err.column is not None
    assert "not valid YAML" in str(err)


def test_parse_space_control_character_has_position():
    with pytest.raises(UsageError, match="#x0007") as info:
        parse_space("families: {mlp: {}}\nname: a\x07\n", "space.yaml")
    assert (info.value.line, info.value.column) == (2, 8)


@pytest.mark.parametrize("text", ["- mlp\n- cnn\n", "just a string\n", "", "# only a comment\n"])
def test_parse_space_top_level_must_be_mapping(text):
    with pytest.raises(UsageError, match="top level must be a mapping") as info:
        parse_space(text, "space.yaml")
    assert info.value.line == 1


def test_parse_space_python_tag_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = parse_error("""
        families:
          mlp: !!python/object/apply:os.system ["touch CANARY"]
    """)
    assert not (tmp_path / "CANARY").exists()
    assert err.line == 2 and err.key == "families.mlp"
    assert "!!python/object/apply:os.system" in str(err)


@pytest.mark.parametrize("tagged", ["!!binary aGVsbG8=", "!custom 3", "!!set {a: null}",
                                    "!!timestamp 2024-01-01"])
def test_parse_space_other_tags_rejected(tagged):
    err = parse_error(f"families:\n  mlp:\n    depth: {tagged}\n")
    assert err.line == 3 and "is not allowed" in str(err)


def test_parse_space_core_tags_allowed():
    space = parse("families:\n  mlp:\n    depth: !!int '2'\n    dropout: !!float 0\n")
    assert space.families.options["mlp"] == {"depth": Fixed(2), "dropout": Fixed(0.0)}


def test_parse_space_aliases_work_but_billion_laughs_is_stopped():
    space = parse("""
        families:
          mlp: &small {depth: {low: 1, high: 2}}
          cnn: *small
    """)
    assert space.families.options["cnn"] == {"depth": Int(1, 2)}
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(UsageError, match=r"too large|aliases"):
        parse_space("\n".join([*lines, "families: {mlp: {}}"]), "bomb.yaml")


def test_parse_space_recursive_alias_rejected():
    with pytest.raises(UsageError, match=r"recursive|too large"):
        parse_space("x: &a [*a]\nfamilies: {mlp: {}}\n", "loop.yaml")


# ---------------------------------------------------------------- sampling


def test_sample_conditional_params_follow_choices():
    space = parse("""
        families:
          mlp: {depth: {low: 1, high: 3}, width: {low: 16, high: 64}}
          cnn: {channels: {low: 8, high: 32}}
        optimizer:
          lr: {low: 1.0e-4, high: 1.0e-1, log: true}
          options:
            adamw: {beta2: [0.99, 0.999]}
            sgd: {momentum: {low: 0.8, high: 0.99}, nesterov: [true, false]}
    """)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        config = space.sample(trial)
        family, opt = config["family"], config["optimizer"]["name"]
        seen |= {family, opt}
        params = trial.params
        assert ("optimizer.sgd.momentum" in params) == (opt == "sgd")
        assert ("optimizer.adamw.beta2" in params) == (opt == "adamw")
        assert ("momentum" in config["optimizer"]) == (opt == "sgd")
        assert ("mlp.depth" in params) == (family == "mlp")
        assert ("cnn.channels" in params) == (family == "cnn")
        # every family parameter is present: sampled ones, the rest at their defaults
        assert set(config["model"]) == set(get_family(family).params)
        for key, spec in get_family(family).params.items():
            if key not in space.families.options[family]:
                assert config["model"][key] == spec.default
        assert "optimizer.lr" in params
        study.tell(trial, 0.5)
    assert seen == {"mlp", "cnn", "sgd", "adamw"}


def test_grid_runs_with_optuna_grid_sampler():
    space = parse("""
        families:
          mlp: {depth: {low: 1, high: 2}, activation: [relu, gelu]}
        optimizer: {options: [adamw, sgd]}
        training: {batch_size: [32, 64]}
    """)
    grid = space.grid()
    assert grid == {"optimizer": ["adamw", "sgd"], "mlp.depth": [1, 2],
                    "mlp.activation": ["relu", "gelu"], "training.batch_size": [32, 64]}
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(grid, seed=0))
    seen = set()

    def objective(trial: optuna.Trial) -> float:
        config = space.sample(trial)
        seen.add((config["optimizer"]["name"], config["model"]["depth"],
                  config["model"]["activation"], config["training"]["batch_size"]))
        return 0.0

    study.optimize(objective, n_trials=20)  # the sampler stops the study after 16
    assert len(seen) == 16 and len(study.trials) == 16


# ---------------------------------------------------------------- objectives


def test_resolve_objectives_defaults_by_task():
    space = parse("families: {mlp: {}}")
    assert resolve_objectives(space, "classification") == (Objective("accuracy", "maximize"),)
    assert resolve_objectives(space, "regression") == (Objective("rmse", "minimize"),)


def test_resolve_objectives_keeps_fitting_ones():
    space = parse("objectives: [rmse, params]\nfamilies: {mlp: {}}")
    assert resolve_objectives(space, "regression") == (
        Objective("rmse", "minimize"), Objective("params", "minimize"))


def test_resolve_objectives_mismatch_names_file_and_key():
    space = parse("""
        families: {mlp: {}}
        objectives: [rmse]
    """)
    with pytest.raises(UsageError) as info:
        resolve_objectives(space, "classification")
    err = info.value
    assert (err.file, err.line, err.key) == ("space.yaml", 2, "objectives")
    assert "'rmse' does not fit a classification task" in str(err)
    assert "accuracy" in str(err)
