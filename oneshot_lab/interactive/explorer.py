"""What the interactive explorers show, computed on demand and cached: one model (trained, or at initialisation)
pruned by every method of the registry it supports, per (method, sparsity, scope), and the levels and conditions
of an IMP result. No widgets here."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..core.data import Dataset
from ..core.masks import SCOPES, Masks, check_scope, check_sparsity, prunable
from ..core.model_checks import check_model
from ..pruning import registry
from ..pruning.prune import Pruned, prune
from ..studies.lottery.rewinding import IMPResult
from ..training import train
from ..training.train import TrainConfig
from ..util import checks

SPLITS = ("test", "val")
DECIMALS = 4  # slider positions closer than this share one cache entry


def unsupported(model: nn.Module, name: str, options: Mapping | None = None) -> str | None:
    """Why the registry method `name` cannot prune `model` (with `options`), or None if it can."""
    return registry.get(name).unsupported(model, options)


def supported_methods(model: nn.Module, options: Mapping[str, Mapping] | None = None) -> list[str]:
    """The registry methods that can prune `model` (each with its `options`), in registry order."""
    options = options or {}
    return [name for name, method in registry.METHODS.items()
            if method.unsupported(model, options.get(name)) is None]


@dataclass(frozen=True)
class Position:
    """One position of the pruning explorer's controls."""

    criterion: str
    sparsity: float
    scope: str

    @property
    def method(self) -> str:
        """'method/scope', the method label of the one-shot tables."""
        return f"{self.criterion}/{self.scope}"


@dataclass
class PruningView:
    """What the pruning explorer shows for one setting: metrics, per-layer table, masks, finetuned metrics if any."""

    setting: Position
    metrics: dict
    layers: pd.DataFrame
    masks: Masks
    finetuned: dict | None = None


class PruningState:
    """A model (never modified) pruned per setting: scores once per method, each setting once."""

    def __init__(self, model: nn.Module, dataset: Dataset, seed: int = 0, finetune: TrainConfig | None = None,
                 score_options: Mapping[str, Mapping] | None = None):
        if not isinstance(model, nn.Module):
            raise ValueError(f"the explorer needs a torch model, got {type(model).__name__}")
        if not isinstance(dataset, Dataset):
            raise ValueError(f"the explorer needs a Dataset (oneshot_lab.load), got {type(dataset).__name__}")
        check_model(model, dataset)  # a model the pruners can take, and data it can take, before any work
        if finetune is not None and not isinstance(finetune, TrainConfig):
            raise ValueError(f"finetune must be a TrainConfig or None, got {finetune!r}")
        self.dataset, self.seed, self.finetune_config = dataset, checks.seed("seed", seed), finetune
        self.score_options = registry.check_options(score_options)
        self.criteria = supported_methods(model, self.score_options)
        self.layer_names = prunable(model)
        self.model = copy.deepcopy(model)
        self.dense = self._measure(self.model, Masks.ones(model))
        self.computed = {"scores": 0, "masks": 0, "evaluations": 0, "finetunes": 0}  # cache misses, for tests
        self._scores: dict[str, dict[str, torch.Tensor]] = {}
        self._pruned: dict[Position, Pruned] = {}
        self._metrics: dict[Position, dict] = {}
        self._finetuned: dict[Position, dict] = {}

    def setting(self, criterion: str, sparsity: float, scope: str) -> Position:
        """A validated setting, the sparsity rounded to the cache's resolution."""
        if criterion not in self.criteria:
            reason = unsupported(self.model, criterion, self.score_options.get(criterion)) \
                if criterion in registry.METHODS else None
            raise ValueError(f"method {criterion!r} is not available{f' ({reason})' if reason else ''}; "
                             f"methods for this model: {', '.join(self.criteria)}")
        return Position(criterion, round(check_sparsity(sparsity), DECIMALS), check_scope(scope))

    def pruned(self, setting: Position) -> Pruned:
        """The model pruned as `setting` says (computed on first use; a method's scores once for every setting)."""
        if setting not in self._pruned:
            self.computed["masks"] += 1
            name = setting.criterion
            result = prune(self.model, self.dataset, setting.sparsity, name, setting.scope, seed=self.seed,
                           scores=self._scores.get(name), **self.score_options.get(name, {}))
            if result.scores is not None and name not in self._scores:
                self.computed["scores"] += 1
                self._scores[name] = result.scores
            self._pruned[setting] = result
        return self._pruned[setting]

    def masks(self, setting: Position) -> Masks:
        """The masks of `setting` (computed on first use)."""
        return self.pruned(setting).masks

    def metrics(self, setting: Position) -> dict:
        """Test and validation loss and accuracy of the pruned model, density and collapsed layers."""
        if setting not in self._metrics:
            self.computed["evaluations"] += 1
            result = self.pruned(setting)
            self._metrics[setting] = self._measure(result.model, result.masks)
        return self._metrics[setting]

    def finetune(self, setting: Position) -> dict:
        """The metrics after fine-tuning the pruned model under its binding mask (trained on first use)."""
        if self.finetune_config is None:
            raise ValueError("this explorer has no fine-tuning recipe: pass finetune=TrainConfig(...)")
        if setting not in self._finetuned:
            self.computed["finetunes"] += 1
            result = self.pruned(setting)
            net = copy.deepcopy(result.model)
            train.fit(net, self.dataset, self.finetune_config, masks=result.masks)
            self._finetuned[setting] = self._measure(net, result.masks)
        return self._finetuned[setting]

    def view(self, setting: Position) -> PruningView:
        """Everything the explorer shows for `setting`."""
        masks = self.masks(setting)
        layers = masks.table(method=setting.method, sparsity=setting.sparsity)
        return PruningView(setting, self.metrics(setting), layers, masks, self._finetuned.get(setting))

    def table(self, criteria: list[str], sparsities: list[float], scopes: list[str] = SCOPES) -> pd.DataFrame:
        """Tidy one-shot rows (method, stage, sparsity, metrics) over a grid of settings, the dense model first."""
        rows = [{"method": "dense", "stage": "dense", "sparsity": 0.0, **self.dense}]
        for criterion in checks.listing("criteria", criteria, distinct=True):
            for scope in checks.listing("scopes", scopes, distinct=True):
                for sparsity in checks.listing("sparsities", sparsities, distinct=True):
                    setting = self.setting(criterion, sparsity, scope)
                    rows.append({"method": setting.method, "stage": "one_shot", "sparsity": setting.sparsity,
                                 **self.metrics(setting)})
        return pd.DataFrame(rows)

    def _measure(self, model: nn.Module, masks: Masks) -> dict:
        """The metrics of `model` as it is, labelled with the density of `masks`."""
        out = {}
        for split in SPLITS:
            found = train.evaluate(model, self.dataset, split)
            out[f"{split}_accuracy"], out[f"{split}_loss"] = found["accuracy"], found["loss"]
        return {**out, "density": masks.density(), "collapsed_layers": len(masks.collapsed_layers())}


# ---------------------------------------------------------------- IMP results

@dataclass
class TicketView:
    """What the ticket explorer shows for one (level, condition): its metrics row, masks and per-layer table."""

    level: int
    condition: str
    row: dict
    masks: Masks
    layers: pd.DataFrame


@dataclass
class TicketState:
    """The levels and conditions of one IMP result, with each (level, condition)'s masks."""

    result: IMPResult
    conditions: list[str] = field(init=False)
    levels: list[int] = field(init=False)

    def __post_init__(self) -> None:
        """Read the conditions (ticket first, then the controls) and levels of the result."""
        if not isinstance(self.result, IMPResult):
            raise ValueError(f"the ticket explorer needs a lottery.IMPResult (lottery.imp), "
                             f"got {type(self.result).__name__}")
        present = list(dict.fromkeys(self.result.metrics["condition"]))
        self.conditions = [c for c in present if c != "dense"]
        if not self.conditions:
            raise ValueError("this IMP result has no pruned level (levels=0): nothing to explore")
        self.levels = sorted(int(level) for level in self.result.metrics["level"].unique())

    @property
    def metrics(self) -> pd.DataFrame:
        """The result's tidy metrics rows."""
        return self.result.metrics

    def masks(self, level: int, condition: str) -> Masks:
        """The masks `condition` trained with at `level` (the ticket's for 'reinit'; all-ones at level 0)."""
        level, condition = self._check(level, condition)
        if level == 0 or condition in ("ticket", "reinit"):
            return self.result.masks[level]
        return self.result.control_masks[condition][level]

    def view(self, level: int, condition: str) -> TicketView:
        """Everything the explorer shows for (`level`, `condition`); level 0 is the dense run."""
        level, condition = self._check(level, condition)
        shown = "dense" if level == 0 else condition
        rows = self.metrics[(self.metrics["level"] == level) & (self.metrics["condition"] == shown)]
        masks = self.masks(level, condition)
        layers = masks.table(condition=shown, sparsity=round(masks.sparsity(), 4))
        return TicketView(level, shown, rows.iloc[0].to_dict(), masks, layers)

    def _check(self, level: int, condition: str) -> tuple[int, str]:
        """(level, condition) if both exist in the result."""
        level = checks.integer("level", level, self.levels[0], self.levels[-1])
        return level, checks.one_of("condition", condition, self.conditions)
