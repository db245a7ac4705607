"""The smoke settings: the same shrunk values the notebooks once wrote by hand, nothing when smoke is False,
and only names each notebook declares."""

import ast

import pytest

from oneshot_lab.runner import notebooks
from oneshot_lab.studies import smoke


def _defaults(number):
    """The notebook's declared parameters at their defaults."""
    return {name: ast.literal_eval(info["default"]) for name, info in notebooks.declared_parameters(number).items()}


@pytest.mark.parametrize("number", sorted(smoke.SHRINK))
def test_overrides_name_declared_parameters_and_are_empty_without_smoke(number):
    params = _defaults(number)
    assert params["smoke"] is False and smoke.overrides(number, params) == {}
    shrunk = smoke.overrides(number, {**params, "smoke": True})
    assert shrunk and set(shrunk) <= set(params)


def test_notebook_01_values_are_those_of_its_former_smoke_cell():
    params = {**_defaults("01"), "smoke": True}
    assert smoke.overrides("01", params) == {
        "iterations": 60, "finetune_epochs": 1, "budgets": [2], "sparsities": [0.5, 0.9], "seeds": [0, 1],
        "layer_report_sparsity": 0.9, "control_sparsities": [0.9]}
    shrunk = smoke.overrides("01", {**params, "finetune_epochs": 0, "budgets": [], "seeds": [3]})
    assert (shrunk["finetune_epochs"], shrunk["budgets"], shrunk["seeds"]) == (0, [], [3])


def test_notebook_02_03_05_06_values_are_those_of_their_former_smoke_cells():
    assert smoke.overrides("02", {**_defaults("02"), "smoke": True}) == {
        "iterations": 40, "curvature_samples": 256, "probes": 4, "seeds": [0, 1], "sparsities": [0.5, 0.9],
        "calibration_fractions": [0.1, 0.5], "finetune_epochs": 1, "iterative_epochs": 1}
    assert smoke.overrides("03", {**_defaults("03"), "smoke": True}) == {
        "iterations": 100, "eval_every": 25, "levels": 2, "seeds": [0, 1], "points": 3, "budget_levels": [2],
        "late_rewind": 10, "instability_iterations": [0, 10], "instability_level": 2}
    assert smoke.overrides("05", {**_defaults("05"), "smoke": True}) == {
        "settings": ["mnist1d_mlp"], "mnist1d_sparsities": [0.9], "mnist_sparsities": [0.9], "seeds": [0, 1],
        "iterations": 60, "finetune_iterations": 10, "samples": 128, "woodfisher_samples": 64, "mlp_widths": [8, 8]}
    assert smoke.overrides("06", {**_defaults("06"), "smoke": True}) == {
        "epochs": 1, "ticket_iterations": 100, "levels": 2, "sparsities": [0.9, 0.95]}


def test_notebook_04_sweeps_tiny_only_without_a_runs_dir():
    params = {**_defaults("04"), "smoke": True, "seed": 3, "out_dir": "out"}
    assert smoke.overrides("04", params) == {"spec": {
        "notebook": "01_magnitude_pruning", "runs_dir": "out/smoke_runs",
        "params": {"smoke": True, "dataset": "synthetic", "model": "mlp", "seeds": [0]}, "grid": {"seed": [3, 4]}}}
    assert smoke.overrides("04", {**params, "runs_dir": "runs/mine"}) == {}


def test_unknown_notebook_is_a_value_error():
    with pytest.raises(ValueError, match="no smoke settings for notebook '08'; notebooks: 01, 02, 03, 04, 05, 06, 07"):
        smoke.overrides("08", {"smoke": True})
