"""Relative record paths are the project's, wherever the kernel runs: JupyterLab starts a notebook's kernel in
notebooks/, and its records must still land in the project's runs/ (as they do from the command line)."""

from pathlib import Path

import pytest

from oneshot_lab.records import writing
from oneshot_lab.runner import spec
from oneshot_lab.util import project


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A stand-in for the lab's clone (a folder with notebooks/), made the project for the test."""
    root = tmp_path / "lab"
    (root / "notebooks").mkdir(parents=True)
    monkeypatch.setattr(project, "PROJECT_DIR", root)
    return root


def test_a_kernel_in_notebooks_writes_its_record_to_the_projects_runs(clone, monkeypatch):
    monkeypatch.chdir(clone / "notebooks")
    run = writing.start("runs/01_magnitude_pruning", {"seed": 0})
    assert run.out_dir == clone / "runs" / "01_magnitude_pruning"
    assert (clone / "runs" / "01_magnitude_pruning" / "manifest.json").is_file()
    assert not (clone / "notebooks" / "runs").exists()


def test_relative_paths_outside_the_clone_stay_the_working_directorys(clone, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert project.path("runs/x") == elsewhere / "runs" / "x"
    assert project.path(tmp_path / "abs") == tmp_path / "abs"


def test_without_a_clone_relative_paths_are_the_working_directorys(tmp_path, monkeypatch):
    monkeypatch.setattr(project, "PROJECT_DIR", tmp_path / "site-packages")  # installed: no notebooks/ beside
    monkeypatch.chdir(tmp_path)
    assert project.path("runs/x") == tmp_path / "runs" / "x"


def test_a_specs_runs_dir_is_the_projects_from_inside_the_clone(clone, monkeypatch):
    monkeypatch.chdir(clone / "notebooks")
    assert spec.spec_runs_dir({"notebook": "01", "runs_dir": "runs/sweep"}) == clone / "runs" / "sweep"
    with pytest.raises(spec.SpecError, match="runs_dir must be a directory name"):
        spec.spec_runs_dir({"notebook": "01", "runs_dir": 3})
