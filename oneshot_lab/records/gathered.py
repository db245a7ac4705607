"""What a sweep report reads: the complete records of one notebook, split into settings that differ in more
than the seed, with the summary over seeds of each setting."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ..analysis import findings, stats
from ..core.data import Dataset, load
from ..util import checks
from . import integrity, loading

GROUPING = ("stage", "method", "sparsity")  # columns of the metrics table, not run parameters


@dataclass
class Gathered:
    """The records of one notebook under a runs directory, labelled by setting."""

    records: pd.DataFrame  # one row per record (complete or not)
    metrics: pd.DataFrame  # complete runs' metrics rows, with `compression` and `setting`
    layers: pd.DataFrame  # complete runs' layer rows, with `setting`
    varying: list[str]  # run parameters other than the seed that differ between runs
    params: pd.DataFrame | None = None  # the complete runs' parameters, one row per run

    def summary(self, value: str = "test_accuracy", confidence: float = 0.95) -> pd.DataFrame:
        """`stats.summarize` of `value` per setting, stage, method and sparsity, with the compression ratio."""
        out = stats.summarize(self.metrics, [*self.varying, *GROUPING], value, confidence)
        out["compression"] = 1 / (1 - out["sparsity"])
        out["setting"] = loading.setting_labels(out, self.varying)
        return out

    def layers_near(self, sparsity: float) -> tuple[float, pd.DataFrame]:
        """The swept sparsity nearest `sparsity`, and the layer rows of every run at it."""
        available = sorted(set(self.layers["sparsity"]))
        shown = float(min(available, key=lambda s: abs(s - sparsity)))
        return shown, self.layers[checks.same_fraction(self.layers["sparsity"], shown)]

    def layer_summary(self, sparsity: float) -> pd.DataFrame:
        """Per setting, method and layer at `sparsity`: mean density over runs and how many runs collapsed it."""
        _, at = self.layers_near(sparsity)
        return (at.groupby([*self.varying, "method", "layer"], sort=False, dropna=False)
                .agg(density=("density", "mean"), collapsed_runs=("collapsed", "sum")).reset_index())

    def dataset(self) -> Dataset | None:
        """The dataset every run used (seed 0's splits; the test split is the same for every seed), or None when
        the records name none or several."""
        names = set(self.params["dataset"]) if self.params is not None and "dataset" in self.params else set()
        roots = set(self.params["data_root"]) if names and "data_root" in self.params else {""}
        if len(names) != 1 or len(roots) != 1:
            return None
        root = roots.pop()
        return load(names.pop(), root=root or None)

    def findings(self, value: str = "test_accuracy", baselines: tuple = ("magnitude/global", "random/layer"),
                 confidence: float = 0.95) -> findings.Family:
        """Every method against each baseline present, per setting, stage and sparsity, paired on the seed: one
        family. Its floor is `findings.dense_floor` on the runs' test split and chance one over their classes,
        when the runs share one dataset (else no floor and no chance)."""
        present = set(self.metrics["method"]) - {"dense"}
        claims = [findings.Claim(claim=f"{method} beats {baseline}", a=method, b=baseline, value=value,
                                 by=(*self.varying, "stage", "sparsity"))
                  for baseline in baselines if baseline in present
                  for method in sorted(present - {baseline}) if not (method in baselines and
                                                                      baselines.index(method) > baselines.index(baseline))]
        if not claims:
            raise ValueError(f"none of the baselines {list(baselines)} is among the methods {sorted(present)}")
        data = self.dataset() if value.startswith("test_") else None
        floor = 0.0 if data is None else findings.dense_floor(self.metrics, len(data.test.y), value)
        chance = None if data is None else 1 / data.num_classes
        return findings.family(self.metrics[self.metrics["stage"] != "dense"], claims, confidence, floor, chance)

    def headline_stage(self, preferred: str) -> str:
        """`preferred` if the metrics have rows of that stage, else 'one_shot'."""
        return preferred if preferred in set(self.metrics["stage"]) else "one_shot"


def _of_notebook(frame: pd.DataFrame, notebook: str) -> pd.DataFrame:
    """The rows of `frame` from `notebook` (all rows when the records do not name their notebook)."""
    if "notebook" in frame and frame["notebook"].notna().any():
        return frame[frame["notebook"] == notebook]
    return frame


def _usable(notebook: str, text: tuple[str, ...], numbers: tuple[str, ...]) -> Callable[[pd.DataFrame], str | None]:
    """A `loading.load` check: a table of `notebook` must hold `text` and finite `numbers` in every row."""
    def check(frame: pd.DataFrame) -> str | None:
        """Why this record's table cannot be reported (records of other notebooks are left to `_of_notebook`)."""
        if "notebook" in frame and (frame["notebook"] != notebook).all():
            return None
        return "the table has no rows" if frame.empty else loading.columns_problem(frame, text, numbers)
    return check


def gather(runs_dir: str | os.PathLike, notebook: str, value: str = "test_accuracy") -> Gathered:
    """The records of `notebook` under `runs_dir`; ValueError if none of them is complete.

    Runs that differ in any parameter besides the seed (and the bookkeeping out_dir and smoke) are
    different settings, labelled 'name=value, ...' in a `setting` column and never averaged together.
    A record whose metrics lack stage and method as text or sparsity, density, seed and `value` as finite
    numbers in any row (or whose layers lack method, layer, sparsity, density, collapsed) is skipped with one
    RecordWarning naming its file and what is wrong, so a broken record never turns into missing seeds or an
    'inf ± nan' mean.
    """
    with integrity.warnings_once():  # manifests, metrics and layers each read every manifest
        records = _of_notebook(loading.manifests(runs_dir), notebook)
        metrics = loading.load(runs_dir, check=_usable(notebook, ("stage", "method"), ("sparsity", "density", "seed", value)))
        skipped = len(metrics.attrs["skipped"])
        metrics = _of_notebook(metrics, notebook)
        layers = _of_notebook(loading.load(runs_dir, table="layers", check=_usable(
            notebook, ("method", "layer"), ("sparsity", "density", "collapsed"))), notebook)
        params = _of_notebook(loading.run_parameters(runs_dir), notebook)
    if metrics.empty:
        note = f" ({skipped} records skipped: see the warnings)" if skipped else ""
        raise ValueError(f"no complete runs of {notebook} under {runs_dir}{note}")
    if layers.empty:  # the report's per-layer figures need at least one record's layers
        raise ValueError(f"no usable layers table of {notebook} under {runs_dir} (see the warnings)")
    params = params[params["run"].isin(set(metrics["run"]))]
    varying = [n for n in loading.varying_parameters(params) if n not in GROUPING]
    metrics = metrics.assign(compression=1 / metrics["density"], setting=loading.setting_labels(metrics, varying))
    layers = layers.assign(setting=loading.setting_labels(layers, varying))
    return Gathered(records, metrics, layers, varying, params)
