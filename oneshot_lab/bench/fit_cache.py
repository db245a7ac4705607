"""The fit cache's cost: its key, a miss (train, then write the entry) and a hit (read, check, load) against `fit`."""

from __future__ import annotations

import copy
import itertools
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..training import fit_cache, fit_key, fit_store, train
from . import measure
from .training import FIT_CASES, QUICK_FIT


def case_rows(label: str, case: dict, quick: bool, repeats: int, root: Path) -> dict[str, Any]:
    """Median seconds of `fit`, the key, a miss into an empty cache and a hit, for one of FIT_CASES."""
    import oneshot_lab as ol

    data = measure.dataset("mnist1d")
    steps = {**case, **(QUICK_FIT if quick else {})}
    config = ol.TrainConfig(optimizer="adam", lr=0.002, batch_size=64, iterations=steps["iterations"],
                            eval_every=steps["eval_every"], seed=0)
    start = ol.build(case["model"], data, seed=0, **case["options"])
    masks = ol.masks_from_scores(ol.pruning.criteria.random(start, seed=1), 0.9)
    fresh, inside = itertools.count(), []

    def timed_fit(*args, **kwargs) -> train.History:
        """`train.fit`, its CPU seconds noted: a miss's overhead is the rest of the call, measured in the call."""
        begin = measure.CLOCK()
        try:
            return train.fit(*args, **kwargs)
        finally:
            inside.append(measure.CLOCK() - begin)

    def in_cache(directory: Path) -> torch.nn.Module:
        """A copy of the start after `cached_fit` with the cache at `directory`."""
        os.environ[fit_store.ENV] = str(directory)
        model = copy.deepcopy(start)
        fit_cache.cached_fit(model, data, config, masks=masks)
        return model

    hit_dir = root / f"{label}-hit"
    in_cache(hit_dir)  # the entry every hit reads
    entry = next(hit_dir.glob("*.pt"))
    trained = copy.deepcopy(start)
    train.fit(trained, data, config, masks=masks, progress=False)
    same = all(torch.equal(a, b) for a, b in zip(in_cache(hit_dir).state_dict().values(),
                                                  trained.state_dict().values()))
    fit_cache.fit = timed_fit
    try:
        runs = measure.interleaved({
            "fit": lambda: train.fit(copy.deepcopy(start), data, config, masks=masks, progress=False),
            "key": lambda: fit_key.key(start, data, config, masks),
            "miss": lambda: in_cache(root / f"{label}-miss-{next(fresh)}"),
            "hit": lambda: in_cache(hit_dir)}, repeats)
    finally:
        fit_cache.fit = train.fit
    times = measure.medians(runs)
    overhead = statistics.median(total - fit for total, fit in zip(runs["miss"], inside))
    return {"case": label, "steps": config.iterations, "entry_kB": round(entry.stat().st_size / 1e3, 1),
            "fit_s": round(times["fit"], 4), "key_ms": round(times["key"] * 1e3, 2),
            "miss_overhead_ms": round(overhead * 1e3, 2),
            "hit_ms": round(times["hit"] * 1e3, 2), "hit_vs_fit": measure.ratio(times["hit"], times["fit"]),
            "hit_identical_weights": same}


def run(quick: bool = False, repeats: int = 7) -> dict[str, Any]:
    """The fit cache's costs on the training benchmark's cases, with their markdown."""
    before = {name: os.environ.get(name) for name in (fit_store.ENV, "XDG_CONFIG_HOME")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")  # its own key file: no writable HOME needed
            rows = [case_rows(label, case, quick, 2 if quick else repeats, Path(tmp))
                    for label, case in FIT_CASES.items()]
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    markdown = ("### The fit cache against `train.fit` (same run; a miss trains and writes the entry, its overhead "
                "is the call less the training inside it; a hit reads, checks and loads the entry)\n\n"
                + measure.markdown_table(rows))
    return {"rows": rows, "markdown": markdown}
