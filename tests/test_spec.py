"""Sweep specs: validation in one line, expansion, de-duplication and run ids that never change."""

import pytest

from oneshot_lab.runner import notebooks, spec
from oneshot_lab.util import project


@pytest.mark.parametrize("bad,match", [
    ({"notebook": "99", "grid": {"seed": [0]}}, "no notebook '99'; known notebooks: 01_magnitude_pruning.ipynb"),
    ({"notebook": "01", "grid": {"sparsity_typo": [0.5]}}, "unknown parameter(s) 'sparsity_typo'"),
    ({"notebook": "01", "grid": {}}, "empty grid"),
    ({"notebook": "01", "grid": {"seed": []}}, "grid parameter 'seed' has no values"),
    ({"notebook": "01", "grid": {"methods": ["magnitude/global"]}}, "parameter 'methods' of 01_magnitude_pruning"),
    ({"notebook": "01", "grid": {"seed": 3}}, "grid values of 'seed' must be a list"),
    ({"notebook": "01", "grid": {"seed": [0]}, "params": {"out_dir": "x"}}, "do not set out_dir"),
    ({"notebook": "01", "grdi": {"seed": [0]}}, "unknown key(s) 'grdi'; valid keys: notebook"),
    ({"grid": {"seed": [0]}}, "no 'notebook'"),
    ({"notebook": "01", "grid": {"seed": [0]}, "timeout": 0}, "timeout (seconds per cell) must be an integer in [1, 604800]"),
    ({"notebook": "01", "list": [3]}, "every 'list' entry must be a mapping"),
    ({"sweeps": []}, "'sweeps' must be a non-empty list"),
    ({"sweeps": [{"notebook": "01", "grid": {"seed": [0]}}, {"notebook": "01", "list": [{"epoch": 1}]}]},
     "sweeps[1]: unknown parameter(s) 'epoch'"),
])
def test_bad_spec_is_one_line_naming_the_bad_value(bad, match):
    with pytest.raises(spec.SpecError) as err:
        spec.expand(bad)
    assert match in str(err.value) and "\n" not in str(err.value)


def test_spec_file_errors(tmp_path):
    with pytest.raises(spec.SpecError, match="no sweep spec 'missing.yaml'"):
        spec.expand("missing.yaml")
    (tmp_path / "bad.yaml").write_text("notebook: [01\n")
    with pytest.raises(spec.SpecError, match="not valid YAML"):
        spec.expand(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- notebook: 01\n")
    with pytest.raises(spec.SpecError, match="a sweep spec is a mapping"):
        spec.expand(tmp_path / "list.yaml")


def test_spec_expansion_and_stable_run_ids(tmp_path):
    (tmp_path / "s.yaml").write_text("notebook: 01\nparams: {lr: 1, dataset: synthetic}\n"
                                     "grid: {seed: [0, 1], finetune_epochs: [0, 2]}\nlist: [{seed: 0, lr: 0.5}]\n")
    tasks = spec.expand(tmp_path / "s.yaml")
    assert len(tasks) == 5 and len({t.run_id for t in tasks}) == 5
    assert all(t.params["lr"] == 1.0 and isinstance(t.params["lr"], float) for t in tasks[:4])
    again = spec.expand({"notebook": "01_magnitude_pruning.ipynb",
                         "list": [{"finetune_epochs": 0, "seed": 0, "dataset": "synthetic", "lr": 1.0}]})
    assert again[0].run_id == tasks[0].run_id  # key order, int vs float and notebook spelling don't matter
    assert tasks[0].run_id.startswith("01_magnitude_pruning-") and len(tasks[0].run_id.split("-")[1]) == 12
    assert spec.expand({"notebook": "01", "grid": {"seed": [0, 0]}})[0].run_id == \
        spec.run_id(notebooks.resolve_notebook("01"), {"seed": 0})
    assert len(spec.expand({"notebook": "01", "grid": {"seed": [0, 0]}})) == 1
    assert spec.expand("sweeps/compare_criteria.yaml")  # the ready spec is valid


def test_run_id_covers_the_notebook_path_its_code_and_every_effective_parameter(notebook_factory, tmp_path):
    params = "seed: int = 0  # s\nlr: float = 0.5  # l\nout_dir: str = 'out'  # o"
    a = notebook_factory("a.ipynb", params, "print(seed)")
    (tmp_path / "other").mkdir()
    same_name = notebooks.Path(notebook_factory("other/a.ipynb", params, "print(seed)"))
    base = spec.run_id(a, {"seed": 1})
    assert spec.run_id(same_name, {"seed": 1}) != base  # same file name, another folder
    assert spec.run_id(a, {"seed": 1, "lr": 0.5}) == base  # the default, given explicitly
    assert spec.run_id(a, {"seed": 1, "lr": 1}) != base
    assert spec.run_id(a, {"seed": 1, "out_dir": "elsewhere"}) == base  # where it goes is not what it is
    notebook_factory("a.ipynb", params.replace("0.5", "0.25"), "print(seed)")  # a changed default
    assert spec.run_id(a, {"seed": 1}) != base
    notebook_factory("a.ipynb", params, "print(seed + 1)")  # changed code
    assert spec.run_id(a, {"seed": 1}) != base
    notebook_factory("a.ipynb", params, "print(seed)")
    assert spec.run_id(a, {"seed": 1}) == base and spec.task(a, {"seed": 1}).run_id == base
    assert spec.task(a, {"seed": 1}).identity == notebooks.identity(a)
    assert notebooks.identity("01")["path"] == "notebooks/01_magnitude_pruning.ipynb"


def test_several_blocks_timeouts_and_runs_dir(tmp_path):
    (tmp_path / "s.yaml").write_text("runs_dir: runs/x\ntimeout: 60\nsweeps:\n"
                                     "  - {notebook: 01, grid: {seed: [0, 1]}}\n"
                                     "  - {notebook: [02, 03], list: [{seed: 0}], timeout: 5}\n")
    tasks = spec.expand(tmp_path / "s.yaml")
    assert [t.timeout for t in tasks] == [60, 60, 5, 5]
    assert [t.run_id.split("-")[0] for t in tasks] == ["01_magnitude_pruning"] * 2 + \
        ["02_obd_saliency", "03_lottery_ticket_rewinding"]
    assert spec.spec_runs_dir(tmp_path / "s.yaml") == project.PROJECT_DIR / "runs/x"  # the tests run in the clone
    assert spec.spec_runs_dir({"notebook": "01"}) is None


def test_ready_spec_uses_known_criteria():
    import oneshot_lab as ol

    for task in spec.expand("sweeps/compare_criteria.yaml"):
        assert {m.split("/")[0] for m in task.params["methods"]} <= set(ol.METHODS)
        assert len(task.params["sparsities"]) >= 5
    assert {t.params["seed"] for t in spec.expand("sweeps/compare_criteria.yaml")} == {0, 1, 2, 3, 4}
