"""The lottery-ticket study of notebook 03 as one validated config: IMP with controls, late rewinding,
retraining modes and instability, over replicate seeds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import pandas as pd
from torch import nn

from ...pruning import registry
from ...util import checks, parallel
from . import stability
from ...util.config import Config, option
from ...core.data import Dataset
from .rewinding import RETRAIN_MODES, IMPConfig, IMPResult, budget_controls, dense_run, imp
from ...core.models import build
from .stability import Instability, InstabilityConfig
from ...training.train import History

Dense = tuple[nn.Module, History]


@dataclass(frozen=True)
class TicketStudy(Config):
    """Every experiment of a lottery-ticket study, validated together before anything trains."""

    imp: IMPConfig = option(IMPConfig(), "IMP with its controls, rewound to the initialisation")
    late_rewind: int = option(100, "the late rewind iteration k compared with rewinding to the initialisation")
    retrain_modes: tuple = option(("lr_rewind", "finetune"), "retraining modes compared with weight rewinding")
    instability: InstabilityConfig = option(InstabilityConfig(), "the instability analysis")
    instability_level: int = option(5, "IMP level whose ticket mask (found rewinding to each k) is tested")
    control_budget: int = option(3, "the controls' longer budget: this many times the iterations")
    budget_levels: tuple = option((), "levels whose controls are also trained with the longer budget")
    match_tolerance: float = option(0.0, "'matches dense': early-stop val accuracy at most this far below dense")
    seed_offsets: tuple = option((0, 1, 2), "replicate seed offsets added to seed")
    seed: int = option(0, "base seed; replicate r runs with seed + seed_offsets[r]")

    def __post_init__(self) -> None:
        """Validate every field and store it normalised (imp, instability and the counts, levels, tolerance and
        seeds by their rules in `rules.RULES`; here what depends on other fields)."""
        super().__post_init__()
        modes = checks.listing("retrain_modes", self.retrain_modes, lambda n, v: checks.one_of(n, v, RETRAIN_MODES),
                               distinct=True, nonempty=False)
        self.store("retrain_modes", tuple(modes))
        checks.integer("instability_level", self.instability_level, 0, self.imp.levels)  # a level IMP reaches
        checks.listing("budget_levels", self.budget_levels, lambda n, v: checks.integer(n, v, 1, self.imp.levels),
                       nonempty=False)
        for s in self.seeds:
            checks.seed("replicate seed", s)
            checks.seed(f"data-order seed of replicate seed {s} (seed + instability.data_seeds)",
                        s + max(self.instability.data_seeds))

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


def dense_seed(model: str, dataset: Dataset, model_options: Mapping | None, train, ks: tuple, seed: int,
               progress: bool = False) -> Dense:
    """One seed of `dense_runs`."""
    return dense_run(build(model, dataset, seed=seed, **dict(model_options or {})), dataset, train.replace(seed=seed),
                     ks, progress)


def dense_runs(study: TicketStudy, model: str, dataset: Dataset, model_options: Mapping | None = None,
               progress: bool = True, workers: int | None = None) -> dict[int, Dense]:
    """Per replicate seed, the one dense run every experiment shares (snapshots at 0, late_rewind and every
    instability k). Seeds run on `workers` processes (`parallel.map_jobs`), each on one torch thread."""
    ks = tuple(sorted({0, study.late_rewind, *study.instability.rewind_iterations}))
    jobs = [(model, dataset, model_options, study.imp.train, ks, s, progress and workers == 0) for s in study.seeds]
    return dict(zip(study.seeds, parallel.map_jobs(dense_seed, jobs, workers, progress=progress, desc="dense runs")))


def run_seed(config: IMPConfig, model: str, dataset: Dataset, model_options: Mapping | None, seed: int,
             dense: Dense | None, progress: bool = False) -> IMPResult:
    """One IMP run of one seed, from the shared dense run when given."""
    net = build(model, dataset, seed=seed, **dict(model_options or {}))
    return imp(net, dataset, config.with_seed(seed), progress=progress, dense=dense)


def run(study: TicketStudy, experiment: str, model: str, dataset: Dataset, model_options: Mapping | None = None,
        progress: bool = True, dense: Mapping[int, Dense] | None = None,
        workers: int | None = None) -> tuple[dict, pd.DataFrame]:
    """One experiment of `study` over its replicate seeds: the results and their metrics as one table.

    `experiment` is 'controls' or 'late_rewind' (results keyed by seed) or 'retrain_modes' (every mode,
    seed by seed; results keyed by (seed, mode), none when the study has no modes). Rows carry `seed`
    and `experiment` columns. `dense` (from `dense_runs`) shares one dense run per seed. Runs go to
    `workers` processes (`parallel.map_jobs`), each on one torch thread.
    """
    checks.one_of("experiment", experiment, ("controls", "late_rewind", "retrain_modes"))
    configs = study.experiments()
    modes = experiment == "retrain_modes"
    wanted = [(m, f"retrain_{m}") for m in study.retrain_modes] if modes else [(None, experiment)]
    keys = [(s, mode, name) for s in study.seeds for mode, name in wanted]
    workers = registry.workers_for([study.imp.criterion], workers)
    jobs = [(configs[name], model, dataset, model_options, s, dense.get(s) if dense else None,
             progress and workers == 0) for s, mode, name in keys]
    done = parallel.map_jobs(run_seed, jobs, workers, progress=progress, desc=experiment)
    results = {((s, mode) if modes else s): result for (s, mode, _), result in zip(keys, done)}
    tables = [result.metrics.assign(seed=s, experiment=experiment) for (s, _, _), result in zip(keys, done)]
    return results, pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def budget_seed(study: TicketStudy, result: IMPResult, model: str, dataset: Dataset,
                model_options: Mapping | None, seed: int, progress: bool = False) -> pd.DataFrame:
    """One seed of `budget`."""
    net = build(model, dataset, seed=seed, **dict(model_options or {}))
    return budget_controls(net, dataset, study.imp.with_seed(seed), result, list(study.budget_levels),
                           study.control_budget, progress).assign(seed=seed, experiment="budget")


def budget(study: TicketStudy, results: Mapping[int, IMPResult], model: str, dataset: Dataset,
           model_options: Mapping | None = None, progress: bool = True, workers: int | None = None) -> pd.DataFrame:
    """The controls of the 'controls' results at `budget_levels`, retrained with `control_budget` x the iterations."""
    jobs = [(study, result, model, dataset, model_options, s, progress and workers == 0) for s, result in results.items()]
    tables = parallel.map_jobs(budget_seed, jobs, workers, progress=progress, desc="budget")
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def instability_seed(study: TicketStudy, tickets: Mapping[int, IMPResult], model: str, dataset: Dataset,
                     model_options: Mapping | None, seed: int, shared_dense: Dense | None,
                     progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One seed of `instability`: (path, barriers) of the dense network and of the ticket found at each k."""
    options = dict(model_options or {})
    config = study.instability.replace(train=study.instability.train.replace(seed=seed),
                                       data_seeds=tuple(seed + d for d in study.instability.data_seeds))
    shared = shared_dense if shared_dense and config.train == study.imp.train.replace(seed=seed) else None
    parent = shared[1] if shared else None
    runs = [("dense", None, config)]
    for k in config.rewind_iterations:
        found = tickets.get(k)
        if found is None:
            plain = study.imp.replace(controls=(), levels=study.instability_level, rewind_iteration=k)
            found = imp(build(model, dataset, seed=seed, **options), dataset, plain.with_seed(seed), progress, shared)
        runs.append(("ticket", found.masks[study.instability_level], config.replace(rewind_iterations=(k,))))
    paths, barriers = [], []
    for network, masks, part in runs:
        result = stability.instability(build(model, dataset, seed=seed, **options), dataset, part, masks=masks,
                                       progress=progress, parent=parent)
        paths.append(result.path.assign(network=network, seed=seed))
        barriers.append(result.barriers.assign(network=network, seed=seed))
    return pd.concat(paths, ignore_index=True), pd.concat(barriers, ignore_index=True)


def instability(study: TicketStudy, tickets: Mapping[int, Mapping[int, IMPResult]], model: str, dataset: Dataset,
                model_options: Mapping | None = None, progress: bool = True,
                dense: Mapping[int, Dense] | None = None, workers: int | None = None) -> Instability:
    """Instability of the dense network and of the ticket of `instability_level`, per rewind point k and seed.

    The ticket at k is the mask IMP found rewinding to k (Frankle et al. 2020): taken from `tickets[k][seed]`
    (e.g. {0: controls results, late_rewind: late-rewind results}) or, for a k not there, found by an IMP run
    rewound to k up to `instability_level`. Data-order seeds are seed + `instability.data_seeds`. Both tables
    carry `network` ('dense' or 'ticket'), `density` and `seed` columns. Seeds run on `workers` processes.
    """
    jobs = [(study, {k: found[s] for k, found in tickets.items() if s in found}, model, dataset, model_options, s,
             dense.get(s) if dense else None, progress and workers == 0) for s in study.seeds]
    done = parallel.map_jobs(instability_seed, jobs, workers, progress=progress, desc="instability")
    return Instability(pd.concat([d[0] for d in done], ignore_index=True),
                       pd.concat([d[1] for d in done], ignore_index=True))


def combined(results: Mapping[int, IMPResult], table: str) -> pd.DataFrame:
    """One table ('layers' or 'curves') of results by seed, with a `seed` column."""
    checks.one_of("table", table, ("metrics", "layers", "curves"))
    return pd.concat([getattr(r, table).assign(seed=s) for s, r in results.items()], ignore_index=True)
