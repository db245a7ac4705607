"""Dense recipes chosen on validation: the search, its summary and choice, the `oneshot-lab recipes` command, and
the committed specs and records (every choice recomputes from the committed per-seed rows)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from oneshot_lab import cli
from oneshot_lab.analysis import recipes
from oneshot_lab.runner import recipes as recipe_runner
from oneshot_lab.studies import recipe_search
from oneshot_lab.studies.recipe_search import GRID_FIELDS, RecipeSearchConfig

ROOT = Path(__file__).resolve().parent.parent
TINY = RecipeSearchConfig(settings={"a": {"dataset": "synthetic", "model": "mlp", "model_options": {"widths": [4]}}},
                          train=recipe_search.TrainConfig(iterations=3, batch_size=64), grid={"lr": [0.01, 0.001]},
                          seeds=[0, 1, 2])
SPEC = """settings:
  a: {dataset: synthetic, model: mlp, model_options: {widths: [4]}}
train: {iterations: 3, batch_size: 64}
grid: [{lr: 0.01}, {lr: 0.001}]
seeds: [0, 1]
"""


def test_every_point_trains_on_every_seed_and_the_summary_is_the_t_interval():
    rows = recipe_search.search(TINY, workers=0, progress=False)
    assert len(rows) == 2 * 3 and list(rows[["point", "seed"]].itertuples(index=False, name=None)) == [
        (0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert list(rows["lr"]) == [0.01] * 3 + [0.001] * 3 and set(rows["iterations"]) == {3}
    summary = recipes.summary(rows)
    for split in ("val", "test"):
        values = rows[rows.point == 1][f"{split}_accuracy"].to_numpy()
        low, high = scipy_stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values))
        row = summary[summary.point == 1].iloc[0]
        assert np.isclose(row[f"{split}_mean"], values.mean()) and np.isclose(row[f"{split}_ci_low"], low)
        assert np.isclose(row[f"{split}_ci_high"], high)


def test_the_choice_follows_validation_even_when_test_disagrees(monkeypatch):
    lrs = []
    monkeypatch.setattr(recipe_search, "cached_fit", lambda net, data, recipe, progress: lrs.append(recipe.lr))
    # lr 0.01: better on validation, worse on test; lr 0.001 the other way round
    monkeypatch.setattr(recipe_search, "split_metrics", lambda net, data: {
        "val_loss": 0.0, "val_accuracy": 0.9 if lrs[-1] == 0.01 else 0.8,
        "test_loss": 0.0, "test_accuracy": 0.5 if lrs[-1] == 0.01 else 0.99})
    chosen = recipes.choose(recipes.summary(recipe_search.search(TINY, workers=0, progress=False)))
    assert list(chosen["point"]) == [0] and chosen["recipe"].iloc[0] == "lr=0.01"
    assert chosen["val_mean"].iloc[0] == pytest.approx(0.9) and chosen["test_mean"].iloc[0] == pytest.approx(0.5)


def test_a_tie_goes_to_the_earlier_point_and_several_settings_share_one_recipe():
    # 1e-15 apart: a rounding difference of two means of accuracies, which are multiples of 1 / examples
    summary = pd.DataFrame({"setting": ["a", "a", "b", "b"], "point": [1, 0, 0, 1], "recipe": ["y", "x", "x", "y"],
                            "n": 3, "val_mean": [0.7 + 1e-15, 0.7, 0.6, 0.9], "test_mean": [0.1, 0.2, 0.3, 0.4]})
    chosen = recipes.choose(summary).set_index("setting")
    assert chosen.loc["a", "point"] == 0 and chosen.loc["b", "point"] == 1
    assert chosen.loc[recipes.ALL, "point"] == 1 and chosen.loc[recipes.ALL, "val_mean"] == pytest.approx(0.8)


@pytest.mark.parametrize("changes,match", [
    ({"grid": [{"learning_rate": 0.1}]}, "grid point 0 has unknown field(s) learning_rate; grid fields: optimizer, lr"),
    ({"grid": {"seed": [1, 2]}}, "unknown field(s) seed; grid fields:"),
    ({"grid": [{"lr": -1.0}]}, "lr must be"),
    ({"grid": [{"model_options": {"depth": 3}}]}, "has no option 'depth'; its options: widths, activation"),
    ({"settings": {"a": {"dataset": "mnist1d"}}}, "it needs dataset and model"),
    ({"settings": {"a": {"dataset": "imagenet", "model": "mlp"}}}, "unknown dataset 'imagenet'; valid choices: mnist1d"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"evaluations": 0}, "evaluations"),
])
def test_bad_configs_are_refused_with_one_line(changes, match):
    with pytest.raises(ValueError) as error:
        TINY.replace(**changes)
    assert match in str(error.value) and "\n" not in str(error.value)


def test_the_grid_fields_are_the_recipe_fields_and_model_options():
    assert "seed" not in GRID_FIELDS and {"lr", "weight_decay", "iterations", "schedule", "model_options"} <= set(
        GRID_FIELDS)


def test_the_command_writes_a_record_and_resumes_without_training_again(tmp_path, monkeypatch, capsys):
    spec, out = tmp_path / "tiny.yaml", tmp_path / "out"
    spec.write_text(SPEC)
    assert cli.main(["recipes", str(spec), "--out", str(out)]) == 0
    first = {name: pd.read_csv(out / f"{name}.csv") for name in ("seeds", "summary", "chosen")}
    assert len(first["seeds"]) == 4 and len(first["summary"]) == 2 and "chosen on validation" in capsys.readouterr().out
    monkeypatch.setattr(recipe_search, "train_point", lambda *a: pytest.fail("a complete grid point trained again"))
    assert cli.main(["recipes", str(spec), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "chosen.csv"), first["chosen"])
    spec.write_text(SPEC.replace("seeds: [0, 1]", "seeds: [0, 2]"))  # another spec: its record is not overwritten
    assert cli.main(["recipes", str(spec), "--out", str(out)]) == 2
    assert "holds the record of another recipe spec" in capsys.readouterr().err


@pytest.mark.parametrize("text,match", [
    ("grid: [{lr: 0.1}]\nsteps: 3\n", "unknown key(s) steps; keys: settings, train, grid"),
    ("train: {learning_rate: 0.1}\n", "TrainConfig has no field(s) learning_rate"),
    ("- 1\n", "a recipe spec is a mapping"),
])
def test_bad_specs_exit_2_before_any_training(tmp_path, text, match, capsys, monkeypatch):
    monkeypatch.setattr(recipe_search, "train_point", lambda *a: pytest.fail("trained on a bad spec"))
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    assert cli.main(["recipes", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


SPECS = sorted((ROOT / "sweeps" / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_each_committed_spec_loads_and_its_record_recomputes(path):
    config, spec, _ = recipe_runner.load(path)
    record = ROOT / "results" / "recipes" / path.stem
    seeds = pd.read_csv(record / "seeds.csv")
    assert len(seeds) == len(config.settings) * len(config.grid) * len(config.seeds)
    summary = recipes.summary(seeds)
    pd.testing.assert_frame_equal(summary, pd.read_csv(record / "summary.csv"), check_dtype=False, atol=1e-12)
    chosen = recipes.choose(summary)
    pd.testing.assert_frame_equal(chosen, pd.read_csv(record / "chosen.csv"), check_dtype=False, atol=1e-12)
