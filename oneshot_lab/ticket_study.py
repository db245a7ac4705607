"""The lottery-ticket study of notebook 03 as one validated config: IMP with controls, late rewinding,
retraining modes and instability, over replicate seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd
from torch import nn

from . import checks
from .config import Config, option
from .data import Dataset
from .lottery import RETRAIN_MODES, IMPConfig, IMPResult, imp
from .models import build
from .stability import InstabilityConfig


@dataclass(frozen=True)
class TicketStudy(Config):
    """Every experiment of a lottery-ticket study, validated together before anything trains."""

    imp: IMPConfig = option(IMPConfig(), "IMP with its controls, rewound to the initialisation")
    late_rewind: int = option(100, "the late rewind iteration k compared with rewinding to the initialisation")
    retrain_modes: tuple = option(("lr_rewind", "finetune"), "retraining modes compared with weight rewinding")
    instability: InstabilityConfig = option(InstabilityConfig(), "the instability analysis")
    instability_level: int = option(5, "IMP level whose ticket mask is tested for stability (0: dense)")
    match_tolerance: float = option(0.0, "'matches dense': early-stop val accuracy at most this far below dense")
    seed_offsets: tuple = option((0, 1, 2), "replicate seed offsets added to seed")
    seed: int = option(0, "base seed; replicate r runs with seed + seed_offsets[r]")

    def __post_init__(self) -> None:
        if not isinstance(self.imp, IMPConfig) or not isinstance(self.instability, InstabilityConfig):
            raise ValueError("imp must be an IMPConfig and instability an InstabilityConfig")
        self.store("late_rewind", checks.integer("late_rewind", self.late_rewind, 0))
        modes = checks.listing("retrain_modes", self.retrain_modes, lambda n, v: checks.one_of(n, v, RETRAIN_MODES),
                               distinct=True, nonempty=False)
        self.store("retrain_modes", tuple(modes))
        self.store("instability_level", checks.integer("instability_level", self.instability_level, 0,
                                                       self.imp.levels))
        self.store("match_tolerance", checks.number("match_tolerance", self.match_tolerance, 0.0))
        offsets = checks.listing("seeds", self.seed_offsets, lambda n, v: checks.integer(n, v, 0), distinct=True)
        self.store("seed_offsets", tuple(offsets))
        self.store("seed", checks.seed("seed", self.seed))
        for s in self.seeds:
            checks.seed("replicate seed", s)

    @property
    def seeds(self) -> list[int]:
        """The replicate seeds: seed + offset for each offset, so sweeping `seed` moves them all."""
        return [self.seed + offset for offset in self.seed_offsets]

    def experiments(self) -> dict[str, IMPConfig]:
        """The IMP configs of the study: 'controls', 'late_rewind', and 'retrain_<mode>' per mode."""
        plain = self.imp.replace(controls=())
        return {"controls": self.imp, "late_rewind": plain.replace(rewind_iteration=self.late_rewind),
                **{f"retrain_{m}": plain.replace(retrain=m) for m in self.retrain_modes}}

    def check(self, model: nn.Module, dataset: Dataset) -> None:
        """Raise a ValueError, naming the experiment, if any part does not fit `model` and `dataset`."""
        for name, config in self.experiments().items():
            try:
                config.check(model, dataset)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
        self.instability.check(dataset)


def run(study: TicketStudy, experiment: str, model: str, dataset: Dataset, model_options: Mapping | None = None,
        progress: bool = True) -> tuple[dict[int, IMPResult], pd.DataFrame]:
    """One experiment of `study` over its replicate seeds: the results by seed and their metrics as one table.

    `experiment` is 'controls', 'late_rewind' or 'retrain_modes' (every mode, seed by seed). Rows carry
    `seed` and `experiment` columns.
    """
    names = ["controls", "late_rewind", "retrain_modes"]
    checks.one_of("experiment", experiment, names)
    configs = study.experiments()
    wanted = [f"retrain_{m}" for m in study.retrain_modes] if experiment == "retrain_modes" else [experiment]
    results, tables = {}, []
    for s in study.seeds:
        for name in wanted:
            net = build(model, dataset, seed=s, **dict(model_options or {}))
            result = imp(net, dataset, configs[name].with_seed(s), progress=progress)
            results.setdefault(s, result)
            tables.append(result.metrics.assign(seed=s, experiment=experiment))
    return results, pd.concat(tables, ignore_index=True)


def combined(results: Mapping[int, IMPResult], table: str) -> pd.DataFrame:
    """One table ('layers' or 'curves') of results by seed, with a `seed` column."""
    checks.one_of("table", table, ("metrics", "layers", "curves"))
    return pd.concat([getattr(r, table).assign(seed=s) for s, r in results.items()], ignore_index=True)
