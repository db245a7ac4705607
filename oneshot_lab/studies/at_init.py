"""Pruning at initialisation (notebook 07): masks chosen before any training, trained from the same initial weights
with the sanity checks of Frankle and colleagues (ICLR 2021), beside IMP tickets and magnitude pruning after training.

Every arm of one seed starts from the same initial weights and trains with the same recipe and data order, and
every arm keeps exactly the weights IMP keeps at each of its levels (global scope), so arms are paired on the seed
and compared at equal weights remaining.
"""

from __future__ import annotations

import copy
import copy
from dataclasses import dataclass
from typing import Mapping

import pandas as pd
import torch
from torch import nn

from ..core.data import Dataset
from ..core.masks import Masks, working_copy
from ..core.models import build
from ..pruning import registry
from ..pruning.prune import check_request, prune
from ..training import train
from ..training.train import TrainConfig, evaluate
from ..util import checks, parallel
from ..util.config import Config, option
from ..util.rules import Rule
from .lottery.rewinding import CONTROL_TAG, PRUNE_TAG, IMPConfig, derived_seed, dense_run, imp, reinitialize, \
    shuffled_mask

CONTROLS = ("shuffled", "reinit", "inverted")  # Frankle et al. 2021: shuffle within layers, re-init, invert scores
IMP_ARM, ONE_SHOT_ARM, FINETUNED_ARM = "IMP ticket", "magnitude after training", "magnitude after training, fine-tuned"
SHUFFLE_TAG = 13  # the purpose of `derived_seed` drawing a shuffled mask
KEPT = (nn.Flatten, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)
FRACTION_LIST = Rule("list", item=Rule("float", 0.0, 1.0), distinct=True, note="sparsities in [0, 1]")


@dataclass(frozen=True)
class AtInitConfig(Config):
    """Pruning at initialisation with its sanity checks, IMP tickets and magnitude after training, over seeds."""

    methods: tuple = option(("snip/global", "grasp/global", "synflow/global", "magnitude/global", "random/global"),
                            "method/scope labels pruning the network at initialisation (ol.METHODS)")
    control_methods: tuple = option(("snip/global", "grasp/global", "synflow/global"),
                                    "methods whose masks get the sanity checks (each among methods)")
    controls: tuple = option(CONTROLS, "sanity checks: shuffled (within layers), reinit (fresh weights), inverted "
                                       "(keep the lowest scores; the method needs an `invert` option)")
    rate: float = option(0.8, "IMP's per-level rate; every arm keeps what IMP keeps at each level")
    levels: int = option(3, "IMP levels, hence sparsities compared")
    train: TrainConfig = option(TrainConfig(), "the recipe of the dense network and of every mask trained from init")
    finetune: TrainConfig | None = option(None, "fine-tuning of magnitude pruning after training (None: none)")
    score_options: dict = option({}, "keyword options per method: {name: {option: value}}")
    collapse_sparsities: tuple = option((0.9, 0.99, 0.999), "sparsities scanned for layer collapse at initialisation",
                                        rule=FRACTION_LIST)
    seed_offsets: tuple = option((0, 1, 2, 3, 4), "replicate seed offsets added to seed")
    seed: int = option(0, "base seed; replicate r runs with seed + seed_offsets[r]")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised (here what depends on the registry and other fields)."""
        super().__post_init__()
        methods = checks.listing("methods", self.methods, lambda n, v: registry.split_label(v) and v, distinct=True)
        controlled = checks.listing("control_methods", self.control_methods, nonempty=False, distinct=True)
        outside = [m for m in controlled if m not in methods]
        if outside:
            raise ValueError(f"control_methods {outside} are not among the methods {methods}")
        controls = checks.listing("controls", self.controls, lambda n, v: checks.one_of("control", v, CONTROLS),
                                  distinct=True, nonempty=False)
        if "inverted" in controls:
            for method in controlled:
                entry = registry.get(registry.split_label(method)[0])
                if "invert" not in {o.name for o in entry.options}:
                    raise ValueError(f"the inverted control keeps a method's lowest scores, which needs an `invert` "
                                     f"option; {entry.name!r} has none: drop it from control_methods or 'inverted' "
                                     f"from controls")
        self.store("methods", tuple(methods))
        self.store("control_methods", tuple(controlled))
        self.store("controls", tuple(controls))
        self.store("score_options", registry.check_options(self.score_options))
        names = {registry.split_label(m)[0] for m in methods}
        stray = sorted(set(self.score_options) - names)
        if stray:
            raise ValueError(f"score_options names {stray[0]!r}, which is not among the methods {methods}")
        inverted = sorted(n for n, o in self.score_options.items() if o.get("invert"))
        if inverted:
            raise ValueError(f"score_options sets invert=True for {inverted[0]!r}, which would make its mask its own "
                             f"inverted control: leave invert to the 'inverted' control")
        self.imp()  # IMP's own checks

    @property
    def seeds(self) -> list[int]:
        """The replicate seeds: seed + offset for each offset."""
        return [self.seed + offset for offset in self.seed_offsets]

    def imp(self) -> IMPConfig:
        """The IMP run giving the tickets: magnitude, global scope, rewound to the initialisation."""
        return IMPConfig(train=self.train, levels=self.levels, rate=self.rate, scope="global")

    def sparsities(self, model: nn.Module) -> list[float]:
        """The sparsity of each level for `model` (`level_sparsities` of its prunable weights)."""
        return level_sparsities(Masks.ones(model).count()[1], self.rate, self.levels)

    def options(self, method: str) -> dict:
        """The keyword options of a method label."""
        return dict(self.score_options.get(registry.split_label(method)[0], {}))

    def check(self, model: nn.Module, dataset: Dataset) -> None:
        """Raise a ValueError if a method cannot prune `model` on `dataset`, or if IMP's levels do not give distinct
        sparsities below 1 on it (before any work)."""
        sparsities = self.sparsities(model)
        if not sparsities or any(b <= a for a, b in zip([0.0, *sparsities], sparsities)) or sparsities[-1] >= 1:
            raise ValueError(f"rate={self.rate!r} over levels={self.levels} gives the sparsities "
                             f"{[round(s, 6) for s in sparsities]} on this network ({Masks.ones(model).count()[1]} "
                             f"prunable weights): each level must prune more and keep at least one weight; lower "
                             f"the rate or the levels")
        for method in self.methods:
            entry = registry.get(registry.split_label(method)[0])
            check_request(entry, model, dataset, entry.check_options(self.options(method)))
        self.imp().check(model, dataset)


def level_sparsities(total: int, rate: float, levels: int) -> list[float]:
    """The sparsity of each IMP level (global scope) of a network with `total` prunable weights.

    A level prunes round(rate * kept) of the kept weights; round(s * total) of these sparsities gives back exactly
    the count IMP pruned, so a one-shot mask at them keeps exactly IMP's number of weights.
    """
    kept, out = total, []
    for _ in range(levels):
        kept -= round(rate * kept)
        out.append((total - kept) / total)
    return out


def arm(method: str, condition: str = "mask") -> str:
    """The arm of a mask trained from initialisation: 'snip/global', or 'snip/global shuffled' for a control."""
    return method if condition in ("mask", "dense") else f"{method} {condition}"


def row(seed: int, level: int, sparsity: float, method: str, condition: str, masks: Masks | None,
        accuracy: dict) -> dict:
    """One metrics row: the arm (method and condition), where it stands (level, sparsity, weights remaining) and its
    accuracies at the end of training."""
    density = masks.density() if masks is not None else 1.0
    return {"seed": seed, "level": level, "sparsity": sparsity, "weights_remaining": round(100 * density, 4),
            "density": density, "arm": arm(method, condition), "method": method, "condition": condition,
            "collapsed_layers": len(masks.collapsed_layers()) if masks else 0,
            "val_accuracy": accuracy["val_accuracy"], "test_accuracy": accuracy["test_accuracy"]}


def evaluated(model: nn.Module, dataset: Dataset) -> dict:
    """Validation and test accuracy of `model` as it is."""
    return {f"{s}_accuracy": evaluate(model, dataset, s)["accuracy"] for s in ("val", "test")}


@torch.no_grad()
def paths(model: nn.Module, masks: Masks, input_shape: tuple[int, ...]) -> float:
    """The number of input-to-output paths `masks` leave: the network with its weights set to their masks, biases
    to 0 and every parameter-free module but flattening and pooling replaced by the identity, on an all-ones input.

    Zero means the network is disconnected: no input can reach an output through the kept weights.
    """
    net = working_copy(model).double()
    for name, module in list(net.named_modules()):
        if name and not list(module.children()) and not list(module.parameters()) and not isinstance(module, KEPT):
            parent, _, attr = name.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, attr, nn.Identity())
    for name, parameter in net.named_parameters():
        value = masks[name] if name in masks else torch.zeros(()) if name.endswith("bias") else torch.ones(())
        parameter.copy_(value.double().expand_as(parameter))
    return float(net(torch.ones(1, *input_shape, dtype=torch.float64)).sum())


def collapse_rows(method: str, net: nn.Module, dataset: Dataset, sparsities: tuple, seed: int,
                  options: Mapping) -> list[dict]:
    """Per scanned sparsity and layer: weights kept and whether the layer is empty, and whether paths remain."""
    name, scope = registry.split_label(method)
    rows = []
    for sparsity in sparsities:
        masks = prune(net, dataset, sparsity, name, scope, seed=seed, **options).masks
        connected = paths(net, masks, dataset.input_shape) > 0
        rows += [{**r, "method": method, "sparsity": sparsity, "connected": connected, "seed": seed}
                 for r in masks.table().to_dict("records")]
    return rows


def control_start(control: str, method: str, net: nn.Module, dataset: Dataset, masks: Masks, sparsity: float,
                  seed: int, level: int, options: Mapping) -> tuple[str, Masks, nn.Module]:
    """(control, its mask, its starting network) for the sanity check `control` of `method`'s `masks` (Frankle et al.
    2021): the mask shuffled within each layer, the mask on re-drawn initial weights, or the inverted scores' mask."""
    if control == "shuffled":
        return control, shuffled_mask(masks, torch.Generator().manual_seed(derived_seed(seed, level, SHUFFLE_TAG))), net
    if control == "reinit":
        return control, masks, reinitialize(net, derived_seed(seed, level, CONTROL_TAG))
    name, scope = registry.split_label(method)
    inverted = prune(net, dataset, sparsity, name, scope, seed=derived_seed(seed, level, PRUNE_TAG),
                     **{**options, "invert": True})
    return control, inverted.masks, net


def method_seed(config: AtInitConfig, model: str, dataset: Dataset, model_options: Mapping | None, seed: int,
                method: str, progress: bool = False) -> dict:
    """One seed of one method: its mask at every level trained from the initial weights, its controls, collapse."""
    net = build(model, dataset, seed=seed, **dict(model_options or {}))
    name, scope = registry.split_label(method)
    options, recipe = config.options(method), config.train.replace(seed=seed)
    sparsities = config.sparsities(net)
    rows, layers = [], []
    for level, sparsity in enumerate(sparsities, start=1):
        masks = prune(net, dataset, sparsity, name, scope, seed=derived_seed(seed, level, PRUNE_TAG), **options).masks
        controls = config.controls if method in config.control_methods else ()
        starts = [("mask", masks, net)] + [control_start(c, method, net, dataset, masks, sparsity, seed, level, options)
                                           for c in controls]
        for condition, mask, start in starts:
            trained = mask.apply(copy.deepcopy(start))
            history = train.fit(trained, dataset, recipe, masks=mask, progress=progress)
            rows.append(row(seed, level, sparsity, method, condition, mask, history.final()))
            layers.append(mask.table(seed=seed, level=level, sparsity=sparsity, arm=arm(method, condition),
                                     method=method, condition=condition))
    collapse = collapse_rows(method, net, dataset, config.collapse_sparsities, seed, options)
    return {"metrics": rows, "layers": layers, "collapse": collapse}


def trained_seed(config: AtInitConfig, model: str, dataset: Dataset, model_options: Mapping | None, seed: int,
                 progress: bool = False) -> dict:
    """One seed of the arms that train first: the dense network, magnitude after training, IMP tickets."""
    net = build(model, dataset, seed=seed, **dict(model_options or {}))
    recipe = config.train.replace(seed=seed)
    trained, history = dense_run(net, dataset, recipe, (0,), progress)
    rows = [row(seed, 0, 0.0, "dense", "dense", None, history.final())]
    layers = []
    sparsities = config.sparsities(net)
    for level, sparsity in enumerate(sparsities, start=1):
        pruned = prune(trained, dataset, sparsity, "magnitude", "global")
        rows.append(row(seed, level, sparsity, ONE_SHOT_ARM, "mask", pruned.masks, evaluated(pruned.model, dataset)))
        if config.finetune is not None:
            history_ft = train.fit(pruned.model, dataset, config.finetune.replace(seed=seed), masks=pruned.masks,
                                   progress=progress)
            rows.append(row(seed, level, sparsity, FINETUNED_ARM, "mask", pruned.masks, history_ft.final()))
        layers.append(pruned.masks.table(seed=seed, level=level, sparsity=sparsity, arm=ONE_SHOT_ARM,
                                         method=ONE_SHOT_ARM, condition="mask"))
    tickets = imp(net, dataset, config.imp().with_seed(seed), progress=progress, dense=(trained, history))
    for level, sparsity in enumerate(sparsities, start=1):
        found = tickets.metrics[(tickets.metrics.level == level) & (tickets.metrics.condition == "ticket")].iloc[0]
        accuracy = {"val_accuracy": found.final_val_accuracy, "test_accuracy": found.final_test_accuracy}
        rows.append(row(seed, level, sparsity, IMP_ARM, "mask", tickets.masks[level], accuracy))
        layers.append(tickets.masks[level].table(seed=seed, level=level, sparsity=sparsity, arm=IMP_ARM,
                                                 method=IMP_ARM, condition="mask"))
    return {"metrics": rows, "layers": layers, "collapse": []}


def job(kind: str, *args) -> dict:
    """One job of `run`: 'method' (`method_seed`) or 'trained' (`trained_seed`)."""
    return (method_seed if kind == "method" else trained_seed)(*args)


@dataclass(frozen=True)
class AtInitResult:
    """The tables of a study: `metrics` (one row per seed, level and arm), `layers` (per-layer densities of every
    mask), `collapse` (per method, seed, scanned sparsity and layer: kept weights, empty, network connected)."""

    metrics: pd.DataFrame
    layers: pd.DataFrame
    collapse: pd.DataFrame


def run(config: AtInitConfig, model: str, dataset: Dataset, model_options: Mapping | None = None,
        progress: bool = True, workers: int | None = None) -> AtInitResult:
    """Every arm of `config` over its replicate seeds, on `workers` processes (one torch thread each).

    Jobs are (seed, method) and (seed, trained arms), the longest first, so two cores stay busy; results do not
    depend on `workers`. The config is checked against the model and data before any work.
    """
    AtInitConfig.checked("config", config).check(build(model, dataset, **dict(model_options or {})), dataset)
    workers = registry.workers_for([registry.split_label(m)[0] for m in config.methods], workers)
    ordered = sorted(config.methods, key=lambda m: m not in config.control_methods)
    jobs = [("method", config, model, dataset, model_options, s, m) for m in ordered for s in config.seeds]
    jobs += [("trained", config, model, dataset, model_options, s) for s in config.seeds]
    done = parallel.map_jobs(job, jobs, workers, progress=progress, desc="seed x method")
    metrics = pd.DataFrame([r for d in done for r in d["metrics"]])
    layers = pd.concat([t for d in done for t in d["layers"]], ignore_index=True)
    collapse = pd.DataFrame([r for d in done for r in d["collapse"]],
                            columns=["method", "seed", "sparsity", "layer", "entries", "kept", "density", "collapsed",
                                     "connected"])
    return AtInitResult(metrics.sort_values(["seed", "level"], kind="stable", ignore_index=True), layers, collapse)
