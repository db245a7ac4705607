"""The notebooks module (discovery, declared parameters, validation, headless runs) and every numbered notebook:
hygiene, and a headless papermill run with smoke=True that writes its records."""

import ast
import json
import re

import pandas as pd
import pytest

from oneshot_lab.runner import notebooks
from oneshot_lab.records import writing

NOTEBOOKS = notebooks.notebooks()
REQUIRED = {"seed", "out_dir", "smoke"}


def _cells(path):
    return json.loads(path.read_text())["cells"]


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "01_magnitude_pruning.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name)
    nb = json.loads(path.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs not stripped"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    for cell in code:
        source = "".join(cell["source"])
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
        defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))]
        assert not defs, f"define functions in oneshot_lab, not in the notebook: {source[:80]!r}"
    # a markdown cell before the first code cell, and before most steps
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert sum(c["cell_type"] == "markdown" for c in nb["cells"]) >= len(code) - 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_is_typed_and_documented(path):
    declared = notebooks.declared_parameters(path)
    assert REQUIRED <= set(declared), f"missing {REQUIRED - set(declared)}"
    source = "".join(next(c for c in _cells(path) if "parameters" in c.get("metadata", {}).get("tags", []))["source"])
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) == len(declared), "a parameter line was not parsed"
    for name, info in declared.items():
        assert info["inferred_type_name"] != "None", f"{name} needs a type annotation"
        assert info["help"].strip(), f"{name} needs a trailing comment saying what it is"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_declared_parameters_equal_papermills_inspection(path):
    import papermill

    assert notebooks.declared_parameters(path) == papermill.inspect_notebook(str(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_the_parameters_cell_annotates(path):
    """`declared(globals())` reads the module-level annotations: only the parameters cell may make any."""
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
            assert not [n for n in tree.body if isinstance(n, ast.AnnAssign)], f"annotation outside parameters: {source[:80]!r}"


def test_resolve_notebook_by_number_stem_and_path():
    first = NOTEBOOKS[0]
    assert notebooks.resolve_notebook("01") == notebooks.resolve_notebook(first.stem) == \
        notebooks.resolve_notebook(first) == notebooks.resolve_notebook(first.name)
    with pytest.raises(FileNotFoundError, match="no notebook '99'; known notebooks: 01_magnitude_pruning.ipynb"):
        notebooks.resolve_notebook("99")


def test_float_parameters_accept_ints_and_exponent_notation():
    params = notebooks.check_parameters("01", {"lr": "1e-3", "layer_report_sparsity": 1, "finetune_epochs": 3})
    assert params["lr"] == 0.001 and isinstance(params["layer_report_sparsity"], float) and params["finetune_epochs"] == 3
    with pytest.raises(ValueError, match="must be float"):
        notebooks.check_parameters("01", {"lr": "fast"})
    with pytest.raises(ValueError, match="unknown parameter.*'nope'.*valid parameters: dataset, "):
        notebooks.check_parameters("01", {"nope": 1})


@pytest.mark.parametrize("source,match", [
    ("x: int = 1  # ok\ny = 2  # no type", "line 2 'y = 2  # no type': not an annotated assignment"),
    ("x: int = f(1)  # call", "line 1 'x: int = f(1)  # call': the value is not a literal"),
    ("x: list = [1,\n  2]  # two lines", "line 1 'x: list = [1,': spans several lines"),
    ("x: int = 1\nx: int = 2", "line 2 'x: int = 2': 'x' is declared twice"),
    ("x: int = = 1", "line 1 'x: int = = 1': not valid Python"),
    ("x: int  # no value", "line 1 'x: int  # no value': not an annotated assignment"),
])
def test_a_bad_parameters_line_is_a_value_error_naming_notebook_and_line(source, match, notebook_factory):
    path = notebook_factory("bad.ipynb", source)
    with pytest.raises(ValueError, match=re.escape(f"bad.ipynb: parameters cell {match}")):
        notebooks.declared_parameters(path)


def test_exactly_one_parameters_cell(notebook_factory):
    path = notebook_factory("none.ipynb", "x: int = 1  # x")
    nb = json.loads(path.read_text())
    nb["cells"][0]["metadata"]["tags"] = []
    path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="none.ipynb has no cell"):
        notebooks.declared_parameters(path)
    nb["cells"] = [nb["cells"][0], dict(nb["cells"][0])]
    for cell in nb["cells"]:
        cell["metadata"] = {"tags": ["parameters"]}
    path.write_text(json.dumps(nb))
    with pytest.raises(ValueError, match="has 2 cell"):
        notebooks.declared_parameters(path)


def test_declared_parameters_beyond_the_lab_notebooks(notebook_factory):
    import papermill

    source = ("\n# a comment line\nname: str = 'a # not a comment'  #   help text  \nn: int = -3\n"
              "table: dict = {'k': [1, 2.5, None]}  # nested\nflag: bool = True  # f\nlst: list[int] = []  # typed\n")
    path = notebook_factory("more.ipynb", source)
    found = notebooks.declared_parameters(path)
    assert found["name"] == {"name": "name", "inferred_type_name": "str", "default": "'a # not a comment'",
                             "help": "help text"}
    assert found["n"]["help"] == "" and found["n"]["default"] == "-3"
    oracle = papermill.inspect_notebook(str(path))
    assert {k: v for k, v in found.items() if k != "name"} == {k: v for k, v in oracle.items() if k != "name"}


def test_declared_reads_annotations_and_copies_values():
    namespace = {"__annotations__": {"a": int, "b": list}, "a": 5, "b": [1, (2, 3), {"c": [4]}], "other": 1}
    values = notebooks.declared(namespace)
    assert values == {"a": 5, "b": [1, [2, 3], {"c": [4]}]}
    namespace["b"].append(9)
    namespace["b"][2]["c"].append(5)
    assert values["b"] == [1, [2, 3], {"c": [4]}]
    with pytest.raises(ValueError, match="declared\\(globals\\(\\)\\)"):
        notebooks.declared({"a": 1})
    with pytest.raises(TypeError, match="parameter 'a' holds a set"):
        notebooks.declared({"__annotations__": {"a": set}, "a": {1}})


def test_declared_in_a_real_kernel_gives_the_effective_parameters(notebook_factory, tmp_path):
    """Under papermill, the kernel's `__annotations__` names exactly the parameters cell's names."""
    path = notebook_factory(
        "decl.ipynb", 'a: int = 1  # an int\nb: list = [1, 2]  # a list\nc: str = "x"  # a string',
        "import json, pathlib\nimport oneshot_lab as ol\nvalues = ol.runner.notebooks.declared(globals())\nb.append(99)",
        "pathlib.Path(out).write_text(json.dumps(values))")
    nb = json.loads(path.read_text())
    nb["cells"][0]["source"] += f"\nout: str = {str(tmp_path / 'values.json')!r}  # where the values go"
    path.write_text(json.dumps(nb))
    notebooks.run_notebook(path, {"a": 5, "b": [3]}, output=tmp_path / "executed.ipynb", timeout=60)
    assert json.loads((tmp_path / "values.json").read_text()) == \
        {"a": 5, "b": [3], "c": "x", "out": str(tmp_path / "values.json")}


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_and_writes_records(path, tmp_path):
    out_dir = tmp_path / path.stem
    sweep = {"workers": 2} if "workers" in notebooks.declared_parameters(path) else {}  # 04's two runs side by side
    executed = notebooks.run_notebook(path, {"smoke": True, "out_dir": str(out_dir), **sweep}, timeout=300)
    assert executed.is_file()
    manifest = writing.read_manifest(out_dir)
    assert manifest["status"] == "complete" and manifest["params"]["smoke"] is True
    declared = notebooks.declared_parameters(path)
    assert set(declared) <= set(manifest["params"]), "a declared parameter is missing from the manifest"
    assert manifest["params"]["out_dir"] == str(out_dir)
    assert "metrics" in manifest["tables"]
    for table in manifest["tables"]:
        frame = pd.read_csv(out_dir / f"{table}.csv")
        assert len(frame) > 0, f"{table}.csv is empty"
    saved = json.loads(executed.read_text())
    outputs = [o for c in saved["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), \
        "a widget (frozen progress bar) was saved in headless output"
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no figure"
    assert not any(o.get("output_type") == "error" for o in outputs)
