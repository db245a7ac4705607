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
