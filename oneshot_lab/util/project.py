"""The lab's project directory, and relative paths taken from it wherever a kernel happens to run."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]


def inside_project(directory: str | os.PathLike) -> bool:
    """Whether `directory` lies in the lab's clone (a project with its notebooks/), the clone itself included."""
    if not (PROJECT_DIR / "notebooks").is_dir():
        return False  # installed without its clone: there is no project to anchor paths to
    try:
        Path(directory).resolve().relative_to(PROJECT_DIR)
    except ValueError:
        return False
    return True


def path(value: str | os.PathLike) -> Path:
    """`value` as an absolute path: a relative one from the project root when working inside the lab's clone.

    A JupyterLab kernel runs in the notebook's folder (notebooks/), so 'runs/01' from there would land in
    notebooks/runs/01; inside the clone it means <project>/runs/01 wherever the kernel runs, as it does for
    `oneshot-lab` started from the project root. Outside the clone a relative path is taken from the working
    directory, as usual.
    """
    given = Path(value).expanduser()
    if given.is_absolute():
        return given
    base = PROJECT_DIR if inside_project(Path.cwd()) else Path.cwd()
    return base / given
