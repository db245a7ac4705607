"""Second-order methods side by side: one one-shot study over several (dataset, model) settings and seeds.

Its claims are built by `analysis.claims.second_order`, the tables read from its records by `analysis.second_order`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
from torch import nn

from ..util import checks, rules
from ..pruning import registry
from ..util.config import Config, option
from ..core.data import sample
from ..core.masks import working_copy
from ..core.data import load
from ..core.models import BUILDERS, build
from .oneshot import OneShotConfig, replicate
from ..training.train import TrainConfig

REFERENCE = "backward pass (reference)"  # the method label of the reference cost row


@dataclass(frozen=True)
class Setting(Config):
    """One (dataset, model, dense recipe) on which every method is compared."""

    name: str = option("mnist1d_mlp", "the setting's label in every table", rule="label")
    dataset: str = option("mnist1d", "a name `data.load` knows")
    model: str = option("mlp", "a name `models.build` knows")
    model_options: dict = option({}, "keyword options of the model, e.g. {'widths': [32, 32]}")
    train: TrainConfig = option(TrainConfig(), "the dense training recipe")
    sparsities: tuple = option((), "sparsities of this setting (empty: the study's)", rule=rules.FRACTIONS_OR_EMPTY)

    def __post_init__(self) -> None:
        """Validate every field and store it normalised (name, train and sparsities by their rules)."""
        super().__post_init__()
        checks.one_of("model", self.model, BUILDERS)
        self.store("model_options", rules.model_options(self.model, self.model_options))


# name -> (dataset, model, model options, which sparsity list of `standard` applies)
STANDARD = {
    "mnist1d_mlp": ("mnist1d", "mlp", {"widths": [32, 32]}, "mnist1d"),  # small enough for exact obs
    "mnist1d_conv1d": ("mnist1d", "conv1d", {}, "mnist1d"),
    "mnist_mlp": ("mnist_subset", "mlp", {"widths": [40, 20]}, "mnist"),  # the published MLP 784-40-20-10
}


def standard(names: list[str], train: TrainConfig, mnist1d_sparsities: tuple = (), mnist_sparsities: tuple = (),
             mlp_widths: tuple | None = None, mnist_dataset: str = "mnist_subset") -> list[Setting]:
    """The named `STANDARD` settings with one dense recipe.

    `mlp_widths` replaces the MNIST-1D MLP's widths; `mnist_dataset="mnist"` runs the MNIST MLP on the full
    MNIST IDX files (pass their directory as `root` to `run`).
    """
    checks.one_of("mnist_dataset", mnist_dataset, ("mnist_subset", "mnist"))
    names = checks.listing("settings", names, lambda n, v: checks.one_of(n, v, STANDARD), distinct=True)
    lists = {"mnist1d": tuple(mnist1d_sparsities), "mnist": tuple(mnist_sparsities)}
    out = []
    for name in names:
        dataset, model, options, which = STANDARD[name]
        if name == "mnist1d_mlp" and mlp_widths is not None:
            options = {"widths": list(mlp_widths)}
        if name == "mnist_mlp":
            dataset = mnist_dataset
        out.append(Setting(name=name, dataset=dataset, model=model, model_options=options, train=train,
                           sparsities=lists[which]))
    return out


@dataclass(frozen=True)
class Comparison:
    """Every setting's one-shot study over seeds: each table carries `setting` and `seed` columns.

    `plan` has one row per (setting, method): whether it ran and, if not, why (e.g. 'obs' above its max_weights).
    """

    metrics: pd.DataFrame
    layers: pd.DataFrame
    histories: pd.DataFrame
    costs: pd.DataFrame
    plan: pd.DataFrame


def applicable(methods: list[str], model: nn.Module, score_options: dict) -> tuple[list[str], list[dict]]:
    """The methods that can prune `model` (the registry's `supports`), and one {method, runs, reason, config} per
    method (config: every option with the value it runs with)."""
    keep, plan = [], []
    for label in methods:
        name, _ = registry.split_label(label)
        entry = registry.get(name)
        reason = entry.unsupported(model, score_options.get(name))
        plan.append({"method": label, "runs": reason is None, "reason": reason or "",
                     "config": entry.configuration(score_options.get(name))})
        if reason is None:
            keep.append(label)
    return keep, plan


def backward_seconds(model: nn.Module, dataset, samples: int | None = 1024, seed: int = 0) -> float:
    """Wall time of one forward and backward pass of the mean cross-entropy over `samples` training examples."""
    clone = working_copy(model)
    x, y = sample(dataset, samples, seed)
    started = time.perf_counter()
    nn.functional.cross_entropy(clone(x), y).backward()
    return time.perf_counter() - started


def run(settings: list[Setting], study: OneShotConfig, seeds: list[int], root: str | None = None,
        progress: bool = True, workers: int | None = None) -> Comparison:
    """Per setting: `oneshot.replicate` of `study` over `seeds` with the methods the model can run
    (at the setting's own sparsities, if it has any).

    Methods are paired on the seed within a setting (same data split, dense model and calibration samples).
    `costs` gains, per setting and seed, the time of one plain forward + backward pass over obc's
    calibration samples (method `REFERENCE`), the yardstick for each method's `prune_seconds`. `workers`: processes
    for the seeds (`oneshot.replicate`; results do not depend on it).
    """
    settings = checks.listing("settings", settings)
    if any(not isinstance(s, Setting) for s in settings):
        raise ValueError(f"settings must be Setting objects, got {[type(s).__name__ for s in settings]}")
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"setting names must be distinct, got {names}")
    OneShotConfig.checked("study", study)
    seeds = checks.listing("seeds", seeds, checks.seed, distinct=True)
    tables: dict[str, list[pd.DataFrame]] = {k: [] for k in ("metrics", "layers", "histories", "costs", "plan")}
    for setting in settings:
        data = load(setting.dataset, seed=seeds[0], root=root)
        net = build(setting.model, data, seed=seeds[0], **setting.model_options)
        methods, plan = applicable(list(study.methods), net, study.score_options)
        if not methods:
            raise ValueError(f"setting {setting.name!r} can run none of the methods: {plan}")
        sparsities = setting.sparsities or study.sparsities
        controls = tuple(c for c in study.control_sparsities if checks.among(c, sparsities))
        if study.control_sparsities and not controls:
            raise ValueError(f"setting {setting.name!r}: none of the control_sparsities "
                             f"{list(study.control_sparsities)} is among its sparsities {list(sparsities)}")
        report = study.report_sparsity
        report = report if report is not None and checks.among(report, sparsities) else None
        local = study.replace(methods=tuple(methods), sparsities=sparsities, control_sparsities=controls,
                              report_sparsity=report)
        result = replicate(setting.dataset, setting.model, setting.train, local, seeds, setting.model_options,
                           root=root, progress=progress, workers=workers)
        samples = registry.get("obc").check_options(study.score_options.get("obc"))["samples"]
        reference = [{"method": REFERENCE, "sparsity": float("nan"), "seed": seed,
                      "prune_seconds": backward_seconds(net, load(setting.dataset, seed=seed, root=root), samples,
                                                        seed)} for seed in seeds]
        costs = pd.concat([result.costs, pd.DataFrame(reference)], ignore_index=True)
        for key, frame in (("metrics", result.metrics), ("layers", result.layers), ("histories", result.histories),
                           ("costs", costs), ("plan", pd.DataFrame(plan))):
            tables[key].append(frame.assign(setting=setting.name))
    return Comparison(**{k: pd.concat(v, ignore_index=True) for k, v in tables.items()})


def test_examples(settings: list[Setting], root: str | None = None) -> dict[str, int]:
    """The size of each setting's test split (the same for every seed), by setting name."""
    return {s.name: len(load(s.dataset, seed=0, root=root).test.y) for s in settings}
