"""What the interactive explorers show, computed on demand and cached: the masks and evaluations of one trained
model per (criterion, sparsity, scope), and the levels and conditions of an IMP result. No widgets here."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..util import checks
from ..pruning import curvature, reconstruction, criteria
from ..training import train
from ..core.data import Dataset
from ..studies.lottery.rewinding import IMPResult
from ..core.masks import SCOPES, Masks, check_scope, check_sparsity, masks_from_scores, prunable
from ..training.train import TrainConfig

SPLITS = ("test", "val")
DECIMALS = 4  # slider positions closer than this share one cache entry


def unsupported(model: nn.Module, name: str) -> str | None:
    """Why criterion `name` cannot score `model`, or None if it can."""
    entry = criteria.criterion(name)
    if entry.name.startswith("obd"):
        wanted = entry.name[len("obd_"):] if entry.name != "obd" else "ggn"
        if wanted not in curvature.supported_curvatures(model):
            return f"curvature {wanted!r} is not supported for this model"
    if entry.name == "wanda":
        try:
            for param in prunable(model):
                reconstruction.check_layer(param, model.get_submodule(param.rpartition(".")[0]))
        except ValueError as error:
            return str(error)
    return None


def supported_criteria(model: nn.Module) -> list[str]:
    """The names in `criteria.CRITERIA` that can score `model`, in registry order."""
    return [name for name in criteria.CRITERIA if unsupported(model, name) is None]


@dataclass(frozen=True)
class Setting:
    """One position of the pruning explorer's controls."""

    criterion: str
    sparsity: float
    scope: str

    @property
    def method(self) -> str:
        """'criterion/scope', the method label of the one-shot tables."""
        return f"{self.criterion}/{self.scope}"


@dataclass
class PruningView:
    """What the pruning explorer shows for one setting: metrics, per-layer table, masks, finetuned metrics if any."""

    setting: Setting
    metrics: dict
    layers: pd.DataFrame
    masks: Masks
    finetuned: dict | None = None


class PruningState:
    """Scores once per criterion, masks and evaluations once per setting, of a trained model it never modifies."""

    def __init__(self, model: nn.Module, dataset: Dataset, seed: int = 0, finetune: TrainConfig | None = None,
                 score_options: Mapping[str, Mapping] | None = None):
        if not isinstance(model, nn.Module):
            raise ValueError(f"the explorer needs a trained torch model, got {type(model).__name__}")
        if not isinstance(dataset, Dataset):
            raise ValueError(f"the explorer needs a Dataset (oneshot_lab.load), got {type(dataset).__name__}")
        if finetune is not None and not isinstance(finetune, TrainConfig):
            raise ValueError(f"finetune must be a TrainConfig or None, got {finetune!r}")
        self.dataset, self.seed, self.finetune_config = dataset, checks.seed("seed", seed), finetune
        self.score_options = criteria.check_options(score_options)
        self.criteria = supported_criteria(model)
        self.layer_names = prunable(model)
        self.trained = train.snapshot(model)
        self.work = copy.deepcopy(model)
        self.dense = self._evaluate(Masks.ones(model))
        self.computed = {"scores": 0, "masks": 0, "evaluations": 0, "finetunes": 0}  # cache misses, for tests
        self._scores: dict[str, dict[str, torch.Tensor]] = {}
        self._masks: dict[Setting, Masks] = {}
        self._metrics: dict[Setting, dict] = {}
        self._finetuned: dict[Setting, dict] = {}

    def setting(self, criterion: str, sparsity: float, scope: str) -> Setting:
        """A validated setting, the sparsity rounded to the cache's resolution."""
        if criterion not in self.criteria:
            reason = unsupported(self.work, criterion) if criterion in criteria.CRITERIA else None
            raise ValueError(f"criterion {criterion!r} is not available{f' ({reason})' if reason else ''}; "
                             f"criteria for this model: {', '.join(self.criteria)}")
        return Setting(criterion, round(check_sparsity(sparsity), DECIMALS), check_scope(scope))

    def scores(self, criterion: str) -> dict[str, torch.Tensor]:
        """The scores of the trained model under `criterion` (computed on first use)."""
        if criterion not in self._scores:
            self.computed["scores"] += 1
            self._restore(None)
            self._scores[criterion] = criteria.compute(criterion, self.work, self.dataset, seed=self.seed,
                                                       **self.score_options.get(criterion, {}))
        return self._scores[criterion]

    def masks(self, setting: Setting) -> Masks:
        """The masks of `setting` (computed on first use)."""
        if setting not in self._masks:
            self.computed["masks"] += 1
            self._masks[setting] = masks_from_scores(self.scores(setting.criterion), setting.sparsity, setting.scope)
        return self._masks[setting]

    def metrics(self, setting: Setting) -> dict:
        """Test and validation loss and accuracy of the pruned model, density and collapsed layers."""
        if setting not in self._metrics:
            self.computed["evaluations"] += 1
            self._metrics[setting] = self._evaluate(self.masks(setting))
        return self._metrics[setting]

    def finetune(self, setting: Setting) -> dict:
        """The metrics after fine-tuning the pruned model under its binding mask (trained on first use)."""
        if self.finetune_config is None:
            raise ValueError("this explorer has no fine-tuning recipe: pass finetune=TrainConfig(...)")
        if setting not in self._finetuned:
            self.computed["finetunes"] += 1
            masks = self.masks(setting)
            self._restore(masks)
            train.fit(self.work, self.dataset, self.finetune_config, masks=masks)
            self._finetuned[setting] = self._measure(masks)
        return self._finetuned[setting]

    def view(self, setting: Setting) -> PruningView:
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

    def _restore(self, masks: Masks | None) -> nn.Module:
        """The working copy reset to the trained weights, pruned by `masks`."""
        self.work.load_state_dict(self.trained)
        return masks.apply(self.work) if masks is not None else self.work

    def _evaluate(self, masks: Masks) -> dict:
        """The metrics of the trained weights pruned by `masks`."""
        self._restore(masks)
        return self._measure(masks)

    def _measure(self, masks: Masks) -> dict:
        """The metrics of the working copy as it is, labelled with the density of `masks`."""
        out = {}
        for split in SPLITS:
            found = train.evaluate(self.work, self.dataset, split)
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
