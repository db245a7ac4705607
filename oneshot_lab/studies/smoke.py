"""What `smoke=True` does to each notebook: the parameter values that shrink its run to seconds (for tests).

A notebook applies them right after reading its declared parameters, which the manifest records unchanged:

    params = ol.runner.notebooks.declared(globals())
    globals().update(ol.studies.smoke.overrides("01", params))

With `smoke` False the overrides are empty and the run is exactly the declared one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

Params = Mapping[str, Any]


def magnitude_pruning(p: Params) -> dict[str, Any]:
    """Notebook 01: 60 dense steps, at most one fine-tune epoch, two sparsities and two seeds."""
    return {"iterations": 60, "finetune_epochs": min(p["finetune_epochs"], 1), "budgets": p["budgets"][:1] and [2],
            "sparsities": [0.5, 0.9], "seeds": p["seeds"][:2], "layer_report_sparsity": 0.9,
            "control_sparsities": [0.9]}


def obd_saliency(p: Params) -> dict[str, Any]:
    """Notebook 02: 40 dense steps, curvature on 256 examples with 4 probes, two sparsities and two seeds."""
    return {"iterations": 40, "curvature_samples": 256, "probes": 4, "seeds": p["seeds"][:2],
            "sparsities": [0.5, 0.9], "calibration_fractions": [0.1, 0.5], "finetune_epochs": 1,
            "iterative_epochs": 1}


def lottery_ticket_rewinding(p: Params) -> dict[str, Any]:
    """Notebook 03: 100 steps per run, two levels and two seeds, rewinding to k = 10, three interpolation points."""
    return {"iterations": 100, "eval_every": 25, "levels": 2, "seeds": p["seeds"][:2], "points": 3,
            "budget_levels": [2], "late_rewind": 10, "instability_iterations": [0, 10], "instability_level": 2}


def sweep_report(p: Params) -> dict[str, Any]:
    """Notebook 04 without a runs_dir: a sweep of the reported notebook, tiny on synthetic data, over two seeds,
    into out_dir/smoke_runs."""
    if p["runs_dir"]:
        return {}
    return {"spec": {"notebook": p["notebook"], "runs_dir": str(Path(p["out_dir"]) / "smoke_runs"),
                     "params": {"smoke": True, "dataset": "synthetic", "model": "mlp", "seeds": [0]},
                     "grid": {"seed": [p["seed"], p["seed"] + 1]}}}


def beyond_the_diagonal(p: Params) -> dict[str, Any]:
    """Notebook 05: the first setting at sparsity 0.9, two seeds, 60 dense steps, an 8-8 MLP, fewer samples."""
    return {"settings": p["settings"][:1], "mnist1d_sparsities": [0.9], "mnist_sparsities": [0.9],
            "seeds": p["seeds"][:2], "iterations": 60, "finetune_iterations": 10, "samples": 128,
            "woodfisher_samples": 64, "mlp_widths": [8, 8]}


def explorer(p: Params) -> dict[str, Any]:
    """Notebook 06: one epoch, 100 IMP steps, two levels, the two highest sparsities."""
    return {"epochs": 1, "ticket_iterations": 100, "levels": 2, "sparsities": p["sparsities"][-2:]}


def pruning_at_init(p: Params) -> dict[str, Any]:
    """Notebook 07: a 32-32 MLP, 60 steps per run, two levels, two seeds, SynFlow (if it runs) in 10 rounds, two
    collapse sparsities."""
    synflow = {"synflow": {"rounds": 10}} if any(str(m).startswith("synflow/") for m in p["methods"]) else {}
    return {"iterations": 60, "eval_every": 30, "levels": 2, "seeds": p["seeds"][:2], "widths": [32, 32],
            "finetune_iterations": min(p["finetune_iterations"], 20),
            "collapse_sparsities": [0.99, 0.999], "method_options": {**synflow, **p["method_options"]}}


SHRINK: dict[str, Callable[[Params], dict[str, Any]]] = {
    "01": magnitude_pruning, "02": obd_saliency, "03": lottery_ticket_rewinding, "04": sweep_report,
    "05": beyond_the_diagonal, "06": explorer, "07": pruning_at_init}


def overrides(notebook: str, params: Params) -> dict[str, Any]:
    """{name: value} replacing `params` of `notebook` ('01' ... '07') in a smoke run; {} unless params['smoke']."""
    if notebook not in SHRINK:
        raise ValueError(f"no smoke settings for notebook {notebook!r}; notebooks: {', '.join(SHRINK)}")
    if not params.get("smoke"):
        return {}
    return SHRINK[notebook](params)
