"""Headless, parameterized notebook runs through papermill, with parameters checked before a kernel starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .progress import HEADLESS_ENV

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"

_TYPE_CHECKS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
    "dict": lambda v: isinstance(v, dict),
}


def notebooks(directory: str | os.PathLike = NOTEBOOK_DIR) -> list[Path]:
    """The lab's numbered notebooks in reading order."""
    return sorted(Path(directory).glob(NOTEBOOK_GLOB))


def resolve_notebook(name: str | os.PathLike) -> Path:
    """A notebook path from a path, a file name or a number/stem such as '01' or '01_magnitude_pruning'."""
    path = Path(name)
    if path.is_file():
        return path
    matches = [p for p in notebooks() if p.name == str(name) or p.stem == str(name) or p.stem.startswith(f"{name}_")]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(p.name for p in notebooks()) or "(none)"
    raise FileNotFoundError(f"no notebook {str(name)!r}; known notebooks: {known}")


def parameters(notebook: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The notebook's parameters (name -> type, default, help) read from its `parameters` cell."""
    import papermill

    path = resolve_notebook(notebook)
    found = papermill.inspect_notebook(str(path))
    if not found:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    return found


def check_parameters(notebook: str | os.PathLike, params: Mapping[str, Any]) -> None:
    """Raise ValueError for unknown parameter names or values of the wrong type."""
    declared = parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {Path(notebook).name}; "
                         f"valid parameters: {', '.join(declared)}")
    for name, value in params.items():
        type_name = declared[name]["inferred_type_name"]
        check = _TYPE_CHECKS.get(type_name)
        if check is not None and not check(value):
            raise ValueError(f"parameter {name!r} of {Path(notebook).name} must be {type_name}, "
                             f"got {value!r} ({type(value).__name__})")


def run_notebook(notebook: str | os.PathLike, params: Mapping[str, Any] | None = None,
                 output: str | os.PathLike | None = None, timeout: int | None = None) -> Path:
    """Execute `notebook` headlessly with `params` and return the path of the executed copy.

    A failing cell raises papermill's PapermillExecutionError; the executed notebook is still written.
    """
    import papermill

    path = resolve_notebook(notebook)
    params = dict(params or {})
    check_parameters(path, params)
    default_out = parameters(path).get("out_dir", {}).get("default", "'runs'").strip("\"'")
    out_dir = Path(params.get("out_dir", default_out)).resolve()
    if "out_dir" in parameters(path):
        params["out_dir"] = str(out_dir)  # the kernel may run elsewhere: hand it an absolute path
    output = Path(output) if output else out_dir / path.name
    output.parent.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(HEADLESS_ENV)
    os.environ[HEADLESS_ENV] = "1"  # inherited by the kernel: no widget progress bars in saved output
    try:
        papermill.execute_notebook(str(path), str(output), parameters=params, kernel_name="python3",
                                   progress_bar=False, execution_timeout=timeout)
    finally:
        if previous is None:
            os.environ.pop(HEADLESS_ENV, None)
        else:
            os.environ[HEADLESS_ENV] = previous
    return output
