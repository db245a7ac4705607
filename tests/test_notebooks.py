"""Every numbered notebook: hygiene, and a headless papermill run with smoke=True that writes its records."""

import ast
import json
import re

import pandas as pd
import pytest

from oneshot_lab import results, sweep

NOTEBOOKS = sweep.notebooks()
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
    declared = sweep.parameters(path)
    assert REQUIRED <= set(declared), f"missing {REQUIRED - set(declared)}"
    source = "".join(next(c for c in _cells(path) if "parameters" in c.get("metadata", {}).get("tags", []))["source"])
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) == len(declared), "papermill could not parse every parameter line"
    for name, info in declared.items():
        assert info["inferred_type_name"] != "None", f"{name} needs a type annotation"
        assert info["help"].strip(), f"{name} needs a trailing comment saying what it is"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_and_writes_records(path, tmp_path):
    out_dir = tmp_path / path.stem
    executed = sweep.run_notebook(path, {"smoke": True, "out_dir": str(out_dir)}, timeout=300)
    assert executed.is_file()
    manifest = results.read_manifest(out_dir)
    assert manifest["status"] == "complete" and manifest["params"]["smoke"] is True
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
