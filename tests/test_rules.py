"""Validation written once: the catalogue of rules, the config base that checks fields with it, and the agreement
of the command line's parameter checks with every config field of the same rule, at the rule's boundaries."""

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import pytest

import oneshot_lab.analysis.findings
import oneshot_lab.studies.iterative
import oneshot_lab.studies.lottery.ticket_study
import oneshot_lab.studies.second_order  # noqa: F401 (imported for their Config subclasses)
from oneshot_lab.runner import notebooks
from oneshot_lab.runner.spec import task
from oneshot_lab.studies.lottery.rewinding import IMPConfig
from oneshot_lab.studies.oneshot import OneShotConfig
from oneshot_lab.training.train import TrainConfig
from oneshot_lab.util import checks, rules
from oneshot_lab.util.config import Config, field_rules, option
from oneshot_lab.util.rules import RULES, Rule

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- boundaries of a rule

def boundaries(rule: Rule) -> list[tuple[object, bool]]:
    """(value, accepted?) pairs just outside and just inside each bound of `rule` (for lists: of their items)."""
    out: list[tuple[object, bool]] = []
    if rule.kind == "int":
        if rule.minimum is not None:
            out += [(int(rule.minimum) - 1, False), (int(rule.minimum), True)]
        if rule.maximum is not None:
            out += [(int(rule.maximum) + 1, False), (int(rule.maximum), True)]
    elif rule.kind == "float":
        low = rule.minimum
        if low is not None:
            out += [(low, False), (math.nextafter(low, math.inf), True)] if rule.open_minimum else \
                [(math.nextafter(low, -math.inf), False), (low, True)]
        if rule.maximum is not None:
            out += [(math.nextafter(rule.maximum, math.inf), False), (rule.maximum, True)]
    elif rule.kind == "str" and rule.choices:
        out += [(f"not_{rule.choices[0]}", False), (rule.choices[0], True)]
    elif rule.kind == "list" and rule.item is not None:
        items = boundaries(rule.item)
        out += [([value], ok) for value, ok in items]
        out.append(([], not rule.nonempty))
        inside = next((value for value, ok in items if ok), None)
        if rule.distinct and inside is not None:
            out.append(([inside, inside], False))
    return out


def config_classes() -> list[type]:
    """Every Config subclass of the packages imported above."""
    found, todo = [], [Config]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.append(sub)
            todo.append(sub)
    return found


# what a field's check needs from other fields (cross-field rules are not the rule under test)
BASE = {"Claim": dict(claim="a claim", a="a", b="b")}
CONTEXT = {("OneShotConfig", "budgets"): dict(finetune=TrainConfig()),
           ("OneShotConfig", "control_sparsities"): dict(sparsities=(0.0, 0.5, 1.0)),
           ("OneShotConfig", "report_sparsity"): dict(sparsities=(0.0, 0.5, 1.0)),
           ("TicketStudy", "seed"): dict(seed_offsets=(0,)),  # seed + every offset must be a seed
           ("TicketStudy", "budget_levels"): dict(imp=IMPConfig(levels=rules.MAX_LEVELS)),  # levels IMP reaches
           ("TicketStudy", "instability_level"): dict(imp=IMPConfig(levels=rules.MAX_LEVELS))}


def config_accepts(cls: type, field: str, value: object) -> bool:
    """Whether `cls(field=value)` (with other fields at their defaults) is accepted."""
    kwargs = {**BASE.get(cls.__name__, {}), **CONTEXT.get((cls.__name__, field), {}), field: value}
    try:
        cls(**kwargs)
    except ValueError:
        return False
    return True


def cli_accepts(notebook: Path, name: str, value: object) -> bool:
    """Whether the command line's check of `-p name value` for `notebook` accepts it."""
    try:
        notebooks.check_parameters(notebook, {name: value})
    except ValueError:
        return False
    return True


# seeds derived from a base seed need room above it: the command line's `seed` + max(`seeds`) for the offsets the
# lab adds (rules.LAB_SEED_OFFSET), a TicketStudy's replicate seeds for its instability data seeds (2 by default)
ROOM = {("cli", "seed"): rules.LAB_SEED_OFFSET, ("cli", "seeds"): rules.LAB_SEED_OFFSET,
        ("TicketStudy", "seed"): 2, ("TicketStudy", "seed_offsets"): 2}


def room_ok(where: str, name: str, value: object) -> bool:
    """Whether `value` leaves the room for derived seeds that `where` ('cli' or a config class) checks for `name`."""
    room = ROOM.get((where, name))
    top = max(value) if isinstance(value, list) and value and all(isinstance(v, int) for v in value) else value
    return room is None or not isinstance(top, int) or top <= checks.SEED_MAX - room


PARAMETERS = [(path, name) for path in notebooks.notebooks() for name in notebooks.declared_parameters(path)
              if rules.for_name(name) is not None]
FIELDS = [(cls, name, rule) for cls in config_classes() for name, rule in field_rules(cls).items()]


@pytest.mark.parametrize("path, name", PARAMETERS, ids=[f"{p.stem[:2]}-{n}" for p, n in PARAMETERS])
def test_the_command_line_and_every_config_field_of_the_rule_agree_at_its_boundaries(path, name):
    rule = rules.for_name(name)
    declared = notebooks.declared_parameters(path)[name]["inferred_type_name"]
    cases = boundaries(rule)
    assert cases, f"{name}: no boundary to test for {rule.text()}"
    fields = [(cls, field) for cls, field, field_rule in FIELDS if field_rule is rule]
    for value, inside in cases:
        if declared == "float" and isinstance(value, int):
            continue  # the CLI makes ints floats: the int boundaries belong to int rules
        assert cli_accepts(path, name, value) is (inside and room_ok("cli", name, value)), \
            f"-p {name} {value!r} ({rule.text()})"
        for cls, field in fields:
            assert config_accepts(cls, field, value) is (inside and room_ok(cls.__name__, field, value)), \
                f"{cls.__name__}({field}={value!r}) ({rule.text()})"


def test_the_agreement_covers_the_conventional_names():
    compared = {name for _, name in PARAMETERS
                if any(rule is rules.for_name(name) for _, _, rule in FIELDS)}
    assert {"seed", "lr", "finetune_lr", "batch_size", "iterations", "finetune_epochs", "sparsities",
            "calibration_fractions", "control_sparsities", "layer_report_sparsity", "budgets", "seeds", "levels",
            "rate", "output_rate", "points", "late_rewind", "instability_level", "budget_levels", "control_budget",
            "match_tolerance", "instability_iterations", "eval_every", "weight_decay", "schedule"} <= compared
    assert {"Claim", "IMPConfig", "InstabilityConfig", "IterativeConfig", "OneShotConfig", "Setting", "TicketStudy",
            "TrainConfig"} <= {cls.__name__ for cls in config_classes()}


def test_the_disagreements_are_resolved_for_what_the_code_needs():
    nb01, nb02, nb05 = (notebooks.resolve_notebook(n) for n in ("01", "02", "05"))
    assert not cli_accepts(nb01, "lr", 0.0) and not config_accepts(TrainConfig, "lr", 0.0)  # lr > 0
    assert not cli_accepts(nb05, "samples", 0) and not cli_accepts(nb05, "woodfisher_samples", 0)  # samples >= 1
    assert cli_accepts(nb02, "curvature_samples", 0)  # notebook 02's 0 means the whole training split
    assert cli_accepts(nb01, "control_sparsities", []) and config_accepts(OneShotConfig, "control_sparsities", ())
    assert not cli_accepts(nb01, "seeds", [1, 1])  # the notebook's own check: distinct replicate seeds


# ---------------------------------------------------------------- Rule.check / text / for_name

def test_check_normalises_and_rejects_in_one_line():
    assert RULES["batch_size"].check("batch_size", 3.0) == 3 and RULES["lr"].check("lr", 1) == 1.0
    assert RULES["sparsities"].check("s", (0, 0.5)) == [0.0, 0.5]
    for name, value, message in [
        ("batch_size", True, "batch_size must be an integer in [1, 1048576], got True"),
        ("iterations", 10**30, "iterations must be an integer in [0, 100000000], got 1000000000000000000000000000000"),
        ("lr", 10**400, "lr must be a finite number > 0.0, got an integer of 401 digits"),
        ("sparsities", [0.5, 10**400], "sparsities[1] must be a finite number in [0.0, 1.0], got an integer of 401"),
        ("lr", 0.0, "lr must be a number > 0.0, got 0.0"),
        ("sparsity", 1.5, "sparsity must be a number in [0.0, 1.0], got 1.5"),
        ("seed", -1, "seed must be an integer in [0, 4294967295], got -1"),
        ("seeds", [1, 1], "seeds must not repeat a value, got [1, 1] (1 twice)"),
        ("sparsities", [], "sparsities must not be empty"),
        ("sparsities", "0.5", "sparsities must be a list, got '0.5'"),
        ("schedule", "linear", "unknown schedule 'linear'; valid choices: constant, cosine, step"),
        ("lower_is_better", 1, "lower_is_better must be True or False, got 1"),
        ("label", " ", "label must be a non-empty text, got ' '"),
        ("samples", None, "samples must be an integer in [1, 10000000], got None"),
    ]:
        with pytest.raises(ValueError) as err:
            RULES[name].check(name, value)
        assert message in str(err.value) and "\n" not in str(err.value)
    assert RULES["timeout"].check("timeout", None) is None and RULES["samples"].but(optional=True).check("s", None) is None


def test_text_says_what_is_accepted():
    assert RULES["batch_size"].text() == "an integer in [1, 1048576]"
    assert RULES["lr"].text() == "a number > 0.0"
    assert RULES["rate"].text() == "a number in [0.0, 1.0]"
    assert RULES["seeds"].text() == "a non-empty list of distinct values, each an integer in [0, 4294967295]"
    assert RULES["control_sparsities"].text() == "a list, each a number in [0.0, 1.0] (empty: all)"
    assert RULES["timeout"].text() == "an integer in [1, 604800] or None (seconds per cell)"
    assert RULES["optimizer"].text() == "one of sgd, adam" and RULES["lower_is_better"].text() == "True or False"
    with pytest.raises(ValueError, match="unknown rule kind 'dict'"):
        Rule("dict")


def test_for_name_uses_the_exact_name_then_the_last_words():
    assert rules.for_name("seed") is RULES["seed"] and rules.for_name("lr") is RULES["lr"]
    assert rules.for_name("finetune_epochs") is RULES["epochs"]
    assert rules.for_name("report_sparsity") is rules.for_name("layer_report_sparsity") is RULES["sparsity"]
    assert rules.for_name("calibration_fractions") is RULES["sparsities"]
    assert rules.for_name("mnist1d_sparsities") is RULES["sparsities"]
    assert rules.for_name("control_sparsities") is RULES["control_sparsities"] is not RULES["sparsities"]
    assert rules.for_name("obs_max_weights") is RULES["max_weights"]
    assert rules.for_name("finetune_lr") is RULES["lr"] and rules.for_name("ticket_widths") is RULES["widths"]
    assert rules.for_name("curvature_samples") is not rules.for_name("woodfisher_samples") is RULES["samples"]
    assert rules.for_name("dataset") is RULES["dataset"]
    for name in ("methods", "score_options", "out_dir", "", "sparsity_typo"):
        assert rules.for_name(name) is None


# ---------------------------------------------------------------- the config base

@dataclasses.dataclass(frozen=True)
class Recipe(Config):
    """A config with a rule by name, one by option, a nested config and an optional count."""

    lr: float = option(0.1, "a learning rate")
    name: str = option("x", "a label", rule="label")
    train: TrainConfig = option(TrainConfig(), "nested")
    finetune: TrainConfig | None = option(None, "optional nested")
    samples: int | None = option(None, "None: all")
    sparsities: tuple = option((0.5,), "fractions")


def test_the_config_base_checks_fields_by_rule_and_nested_configs():
    recipe = Recipe(lr=1, sparsities=[0, 1])
    assert recipe.lr == 1.0 and isinstance(recipe.lr, float) and recipe.sparsities == (0.0, 1.0)
    assert Recipe(samples=None).samples is None and Recipe(samples=2.0).samples == 2
    for change, message in [(dict(lr=0), "lr must be a number > 0.0, got 0"),
                            (dict(name=""), "name must be a non-empty text, got ''"),
                            (dict(train=None), "train must be a TrainConfig, got None"),
                            (dict(train={"lr": 1}), "train must be a TrainConfig, got a dict"),
                            (dict(finetune=5), "finetune must be a TrainConfig or None, got 5"),
                            (dict(samples=0), "samples must be an integer in [1, 10000000], got 0"),
                            (dict(sparsities=[2]), r"sparsities[0] must be a number in [0.0, 1.0], got 2")]:
        with pytest.raises(ValueError) as err:
            Recipe(**change)
        assert message in str(err.value)
    assert field_rules(Recipe) == {"lr": RULES["lr"], "name": RULES["label"], "samples": RULES["samples"],
                                   "sparsities": RULES["sparsities"]}
    with pytest.raises(ValueError, match="config must be a OneShotConfig, got a TrainConfig"):
        OneShotConfig.checked("config", TrainConfig())


def test_one_timeout_check_and_one_fraction_match():
    assert notebooks.check_timeout(None) is None and notebooks.check_timeout(2.0) == 2
    for bad in (0, -1, True, "60"):
        with pytest.raises(ValueError, match=r"timeout \(seconds per cell\) must be an integer in \[1, 604800\]"):
            task("01", {}, timeout=bad)
    assert checks.among(0.3, [0.1 + 0.2]) and not checks.among(0.3, [0.31]) and not checks.among(0.5, [])


def test_the_cli_rejects_a_rule_without_importing_torch_or_pandas():
    code = ("import json, sys; from oneshot_lab import cli; rc = cli.main(sys.argv[1:]); "
            "print(json.dumps([rc, [m for m in ('torch', 'pandas', 'papermill', 'nbformat') if m in sys.modules]]))")
    probe = subprocess.run([sys.executable, "-c", code, "run", "01", "-p", "lr", "0"], capture_output=True,
                           text=True, cwd=ROOT)
    assert probe.stdout.strip().splitlines()[-1] == "[2, []]", probe.stderr
    assert "lr must be a number > 0.0, got 0.0" in probe.stderr


# ---------------------------------------------------------------- limits, derived seeds, nested options (issue 24)

def test_every_count_has_an_upper_bound_that_its_message_states():
    counts = {name: rule for name, rule in RULES.items() if rule.kind == "int" and name not in ("seed",)}
    counts |= {name: rule.item for name, rule in RULES.items() if rule.kind == "list" and rule.item is not None
               and rule.item.kind == "int" and rule.item is not rules.SEED}
    assert {"iterations", "batch_size", "levels", "workers", "epochs", "samples", "timeout", "max_runs"} <= set(counts)
    for name, rule in counts.items():
        assert rule.maximum is not None, name
        with pytest.raises(ValueError, match=rf"in \[{int(rule.minimum)}, {int(rule.maximum)}\], got "):
            rule.check(name, 10**30)


def test_seeds_derived_from_the_base_seed_are_checked_with_it_at_their_boundary():
    top = checks.SEED_MAX - rules.LAB_SEED_OFFSET  # room for the offsets the lab adds to a replicate seed
    nb01, nb03 = notebooks.resolve_notebook("01"), notebooks.resolve_notebook("03")
    assert cli_accepts(nb01, "seed", top - 4) and not cli_accepts(nb01, "seed", top - 3)  # default seeds [0, ..., 4]
    assert cli_accepts(nb03, "seeds", [0, top]) and not cli_accepts(nb03, "seeds", [0, top + 1])
    assert notebooks.check_parameters(nb01, {"seed": 7, "seeds": [0, 2]}) == {"seed": 7, "seeds": [0, 2]}
    with pytest.raises(ValueError, match=f"seed {top} \\+ replicate offset 1 = {top + 1} is more than {top}"):
        notebooks.check_parameters(nb03, {"seed": top, "seeds": [0, 1]})
    from oneshot_lab.studies.lottery.ticket_study import TicketStudy

    assert TicketStudy(seed=checks.SEED_MAX - 3, seed_offsets=(0, 1)).seeds == [checks.SEED_MAX - 3, checks.SEED_MAX - 2]
    with pytest.raises(ValueError, match="data-order seed of replicate seed 4294967294"):
        TicketStudy(seed=checks.SEED_MAX - 3, seed_offsets=(0, 1, 2))  # its data orders are seed + (1, 2)


def test_model_options_are_checked_by_the_rules_of_each_builder():
    import inspect

    from oneshot_lab.core.models import ACTIVATIONS, BUILDERS

    assert set(rules.MODEL_OPTIONS) == set(BUILDERS) == set(RULES["model"].choices)
    from oneshot_lab.core.data import SOURCES

    assert set(RULES["dataset"].choices) == set(SOURCES)  # an unknown dataset is refused before a kernel starts
    assert set(RULES["activation"].choices) == set(ACTIVATIONS)
    for name, builder in BUILDERS.items():
        assert set(inspect.signature(builder).parameters) - {"dataset"} == set(rules.MODEL_OPTIONS[name])
    assert rules.model_options("mlp", {"widths": [8.0, 4]}) == {"widths": [8, 4]}
    for model, options, message in [("mlp", {"widths": [1.5]}, "widths[0] must be an integer in [1, 100000], got 1.5"),
                                    ("conv1d", {"channels": 0}, "channels must be an integer in [1, 100000], got 0"),
                                    ("lenet5", {"widths": [8]}, "model 'lenet5' has no option 'widths'; its options: "
                                                                "activation"),
                                    ("mlp", {"activation": "gelu"}, "unknown activation 'gelu'"),
                                    ("mlp", [1], "model_options must be a mapping of names to values, got [1]")]:
        with pytest.raises(ValueError) as err:
            rules.model_options(model, options)
        assert message in str(err.value)
        if isinstance(options, dict):  # the command line, with notebook 01's parameters model and model_options
            with pytest.raises(ValueError) as err:
                notebooks.check_parameters(notebooks.resolve_notebook("01"), {"model": model, "model_options": options})
            assert message in str(err.value)
    nb01 = notebooks.resolve_notebook("01")
    assert notebooks.check_parameters(nb01, {"model": "mlp", "model_options": {"widths": [8]}})
    assert not cli_accepts(nb01, "model_options", {"widths": [8]})  # the default model, conv1d, has no widths
