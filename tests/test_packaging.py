"""Packaging: the two README commands exist, CI calls the test one, conda and pip name the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def _pip_name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_names_the_core_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {re.split(r"[<>=]", d, maxsplit=1)[0].lower() for d in env["dependencies"] if isinstance(d, str)}
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip = {_pip_name(d) for d in pip_lines}
    core = {_pip_name(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    missing = {name for name in core if CONDA_NAMES.get(name, name) not in conda | pip}
    assert not missing, f"environment.yml lacks {missing}"
    assert "-e ." in pip_lines


def test_torch_is_pinned_to_the_cpu_build():
    pins = (ROOT / "constraints.txt").read_text()
    assert "torch==2.13.0" in pins and "torchvision==0.28.0" in pins
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_console_script_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["oneshot-lab"] == "oneshot_lab.cli:main"


HEAVY = ("torch", "pandas", "seaborn", "papermill", "matplotlib", "distributed")


def _fresh(code: str) -> str:
    """The stdout of `code` run in a fresh interpreter from the repository root."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return out.stdout.strip()


def test_import_is_lazy_and_imports_no_heavy_library():
    loaded = _fresh(f"import sys, oneshot_lab; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert loaded == "[]", f"`import oneshot_lab` imported {loaded}"


def test_every_module_and_export_resolves_lazily():
    import pkgutil

    import oneshot_lab as ol

    modules = {m.name for m in pkgutil.iter_modules([str(ROOT / "oneshot_lab")]) if not m.name.startswith("_")}
    assert set(ol.LAYERS) <= modules
    exports = {"Dataset", "load", "build", "Masks", "masks_from_scores", "prunable", "History", "TrainConfig",
               "evaluate", "fit", "prune", "Pruned", "Method", "Option", "METHODS", "register", "Rule"}
    aliases = {"stats", "findings", "lottery", "results", "widgets"}
    assert set(ol.__all__) == modules | exports | aliases and ol.__version__
    assert set(ol.__all__) <= set(dir(ol))
    assert _fresh("import oneshot_lab as ol; print(ol.Masks is ol.core.masks.Masks, ol.fit is ol.training.train.fit, "
                  "ol.load.__module__, ol.runner.notebooks.__name__, ol.lottery.imp.__module__)") == \
        "True True oneshot_lab.core.data oneshot_lab.runner.notebooks oneshot_lab.studies.lottery.rewinding"
    assert _fresh("from oneshot_lab.runner import spec; from oneshot_lab import TrainConfig; "
                  "print(spec.__name__, TrainConfig.__module__)") == "oneshot_lab.runner.spec oneshot_lab.training.train"
    try:
        ol.no_such_name
    except AttributeError as err:
        assert "no attribute 'no_such_name'" in str(err)
    else:
        raise AssertionError("an unknown name resolved")
