"""The lab's notebooks: finding them, their declared parameters, validating values, running one headlessly.

Reading a notebook's parameters parses its JSON and its `parameters` cell here (no papermill import), so the
command line can reject a bad parameter in milliseconds; papermill is imported only to execute a notebook.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import json
import os
import threading
import tokenize
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..util import checks, plugins, project, rules, strict_yaml
from ..util.project import PROJECT_DIR
from .notebook_json import read_notebook
from ..util.progress import HEADLESS_ENV

NOTEBOOK_DIR = PROJECT_DIR / "notebooks"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
PARAMETERS_TAG = "parameters"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]  # none of the kernel's own log: its TCP notice, the SIGINT every shutdown sends

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


def parameters_source(notebook: str | os.PathLike) -> str:
    """The source of the notebook's one cell tagged `parameters`; ValueError if it has none or several."""
    path = resolve_notebook(notebook)
    cells = read_notebook(path)["cells"]
    tagged = [c for c in cells if PARAMETERS_TAG in c["metadata"].get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"{path} has {len(tagged) or 'no'} cell(s) tagged {PARAMETERS_TAG!r}; it needs exactly one")
    if tagged[0]["cell_type"] != "code":
        raise ValueError(f"{path}: the cell tagged {PARAMETERS_TAG!r} is a {tagged[0]['cell_type']} cell, not code")
    source = tagged[0]["source"]
    return source if isinstance(source, str) else "".join(source)


def _comments(source: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line (without '#')."""
    found: dict[int, str] = {}
    with contextlib.suppress(tokenize.TokenError, IndentationError, SyntaxError):
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                found[token.start[0]] = token.string[1:].strip()
    return found


def declared_parameters(notebook: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The notebook's parameters, name -> {name, inferred_type_name, default, help}, as papermill.inspect_notebook.

    Every statement of the `parameters` cell must be one line `name: type = literal  # help`; anything else
    is a ValueError naming the notebook and the line.
    """
    path = resolve_notebook(notebook)
    source = parameters_source(path)
    lines = source.splitlines()

    def bad(lineno: int, why: str) -> ValueError:
        """The error for line `lineno` of the cell."""
        text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
        return ValueError(f"{path.name}: parameters cell line {lineno} {text!r}: {why}; "
                          f"write one `name: type = literal  # help` per line")

    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise bad(err.lineno or 0, f"not valid Python ({err.msg})") from None
    comments = _comments(source)
    found: dict[str, dict[str, Any]] = {}
    for stmt in tree.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None):
            raise bad(stmt.lineno, "not an annotated assignment")
        if stmt.end_lineno != stmt.lineno:
            raise bad(stmt.lineno, "spans several lines")
        try:
            ast.literal_eval(stmt.value)
        except ValueError:
            raise bad(stmt.lineno, "the value is not a literal") from None
        name = stmt.target.id
        if name in found:
            raise bad(stmt.lineno, f"{name!r} is declared twice")
        found[name] = {"name": name, "inferred_type_name": ast.get_source_segment(source, stmt.annotation).strip(),
                       "default": ast.get_source_segment(source, stmt.value).strip(),
                       "help": comments.get(stmt.lineno, "")}
    return found


def declared(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """{name: value} of every parameter the running notebook declared; call as `declared(globals())`.

    Call it right after the parameters cell: the names are those annotated at module level so far (the
    parameters cell's `name: type = value` lines; papermill's injected cell assigns without annotations), the
    values the effective ones, copied so that later changes in the notebook do not reach them.
    """
    names = namespace.get("__annotations__")
    if not names:
        raise ValueError("no annotated parameters in this namespace: call declared(globals()) in the notebook, "
                         "after its parameters cell of `name: type = value  # help` lines")
    return {name: _json_copy(name, namespace[name]) for name in names}


def _json_copy(name: str, value: Any) -> Any:
    """A copy of a JSON-like value (lists and tuples become lists); TypeError for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_copy(name, v) for v in value]
    if isinstance(value, dict):
        return {k: _json_copy(name, v) for k, v in value.items()}
    raise TypeError(f"parameter {name!r} holds a {type(value).__name__}; parameters are JSON-like literals")


def _as_float(value: Any) -> Any:
    """An int, or a numeric string such as '1e-3', as a float; anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return value
    if isinstance(value, str) and strict_yaml.FLOAT.match(value.strip()):
        return float(value)
    return value


def _check_value(notebook: Path, name: str, type_name: str, value: Any) -> None:
    """Raise ValueError unless `value` suits a parameter declared `type_name` (JSON-like, finite) and the rule
    of its name in `rules.RULES` (seeds in range, lr > 0, fractions in [0, 1], ...)."""
    try:
        strict_yaml.check_json_like(value, f"parameter {name!r}")
    except ValueError as err:
        raise ValueError(f"{notebook.name}: {err}") from None
    check = _TYPE_CHECKS.get(type_name)
    if check is not None and not check(value):
        raise ValueError(f"parameter {name!r} of {notebook.name} must be {type_name}, "
                         f"got {checks.shown(value)} ({type(value).__name__}){strict_yaml.hint(value, type_name)}")
    if type_name == "float":
        try:
            checks.number(name, value)  # an int too large for a float
        except ValueError as err:
            raise ValueError(f"parameter {name!r} of {notebook.name}: {err}") from None
    rule = rules.for_name(name)
    if rule is None or not (type_name in (rule.kind, "list") or {type_name, rule.kind} <= {"int", "float"}):
        return
    try:
        if rule.kind == "list" or type_name != "list":
            rule.check(name, value)
        else:  # a list of values of a scalar rule (e.g. finetune_epochs: list, to sweep in one run)
            checks.listing(name, value, rule.check, nonempty=False)
    except ValueError as err:
        raise ValueError(f"parameter {name!r} of {notebook.name}: {err}") from None


def check_parameters(notebook: str | os.PathLike, params: Mapping[str, Any]) -> dict:
    """`params` with float parameters made floats (1 -> 1.0, '1e-3' -> 0.001); ValueError for unknown names,
    wrong types, values that are not JSON-like or non-finite, and values outside the rule of their name."""
    path = resolve_notebook(notebook)
    known = declared_parameters(path)
    unknown = sorted(set(map(str, params)) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {path.name}; "
                         f"valid parameters: {', '.join(known)}")
    params = {k: _as_float(v) if known[k]["inferred_type_name"] == "float" else v for k, v in params.items()}
    for name, value in params.items():
        _check_value(path, name, known[name]["inferred_type_name"], value)
    _check_together(path, known, params)
    return params


def _check_together(notebook: Path, known: Mapping[str, dict], params: Mapping[str, Any]) -> None:
    """Raise ValueError for values that are bad together with others (given or default): the seeds derived from
    `seed` and `seeds`, and `model_options` by the rules of `model`'s builder."""
    given = set(params) & {"seed", "seeds", "model", "model_options"}
    if not given:
        return
    effective = {name: params[name] if name in params else ast.literal_eval(known[name]["default"])
                 for name in ("seed", "seeds", "model", "model_options") if name in known}
    checked = [("seed", lambda: rules.derived_seeds(effective["seed"], effective.get("seeds") or [0])),
               ("model_options", lambda: rules.model_options(effective["model"], effective["model_options"]))]
    for name, check in checked:
        if name in effective and (name != "model_options" or "model" in effective):
            try:
                check()
            except ValueError as err:
                raise ValueError(f"parameter {name!r} of {notebook.name}: {err}") from None


def defaults(notebook: str | os.PathLike) -> dict[str, Any]:
    """The notebook's declared default values, float parameters as floats."""
    return {name: _as_float(value) if info["inferred_type_name"] == "float" else value
            for name, info in declared_parameters(notebook).items()
            for value in [ast.literal_eval(info["default"])]}


def identity(notebook: str | os.PathLike) -> dict[str, Any]:
    """What identifies a notebook's code: its path relative to the project (else absolute), a hash of its code
    cells (sha256, 16 hex digits) and the installed plug-ins it may call (`util.plugins.installed`)."""
    path = resolve_notebook(notebook).resolve()
    try:
        name = path.relative_to(PROJECT_DIR).as_posix()
    except ValueError:
        name = path.as_posix()
    code = [c["source"] for c in read_notebook(path)["cells"] if c["cell_type"] == "code"]
    text = json.dumps(["".join(c) if isinstance(c, list) else c for c in code])
    identified = {"path": name, "code_hash": hashlib.sha256(text.encode()).hexdigest()[:16]}
    found = plugins.installed()
    return {**identified, "plugins": found} if found else identified


def set_kernel_environment() -> None:
    """Set what a kernel started from this process inherits: no widget bars, one thread, no malloc trim."""
    os.environ[HEADLESS_ENV] = "1"
    for name in THREAD_ENV:
        os.environ[name] = "1"  # one thread per kernel: no oversubscription, the same numbers in every run
    # Dask's nanny sets this for its workers; inherited by a kernel it made torch training 2.3x slower here.
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)


ENVIRONMENT = {"users": 0, "saved": {}, "lock": threading.Lock()}  # blocks inside kernel_environment, any thread


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """Within the block, kernels start headless and single-threaded; the caller's environment is restored after
    the last such block ends (blocks may overlap in threads: the demo runs notebooks side by side)."""
    with ENVIRONMENT["lock"]:
        if ENVIRONMENT["users"] == 0:
            ENVIRONMENT["saved"] = dict(os.environ)
            set_kernel_environment()
        ENVIRONMENT["users"] += 1
    try:
        yield
    finally:
        with ENVIRONMENT["lock"]:
            ENVIRONMENT["users"] -= 1
            if ENVIRONMENT["users"] == 0:
                os.environ.clear()
                os.environ.update(ENVIRONMENT["saved"])


def default_out_dir(notebook: str | os.PathLike) -> str | None:
    """The notebook's default `out_dir`, or None if it declares none."""
    info = declared_parameters(notebook).get("out_dir")
    return None if info is None else str(ast.literal_eval(info["default"]))


def check_timeout(timeout: Any) -> int | None:
    """A per-cell timeout in seconds (an integer >= 1) or None (no limit); ValueError otherwise."""
    return rules.RULES["timeout"].check("timeout (seconds per cell)", timeout)


def run_notebook(notebook: str | os.PathLike, params: Mapping[str, Any] | None = None,
                 output: str | os.PathLike | None = None, timeout: int | None = None) -> Path:
    """Execute `notebook` headlessly with `params` and return the path of the executed copy.

    A failing cell raises papermill's PapermillExecutionError; the executed notebook is still written.
    """
    path = resolve_notebook(notebook)
    params = check_parameters(path, dict(params or {}))
    timeout = check_timeout(timeout)
    default_out = default_out_dir(path)
    # A path given here is the caller's (from its working directory); the notebook's default is the project's.
    out_dir = Path(params["out_dir"]).resolve() if "out_dir" in params else project.path(default_out or "runs")
    if default_out is not None:
        params["out_dir"] = str(out_dir)  # the kernel may run elsewhere: hand it an absolute path
    output = Path(output) if output else out_dir / path.name
    output.parent.mkdir(parents=True, exist_ok=True)
    import papermill  # imported here: a second of start-up that checking parameters does not need

    with kernel_environment():
        papermill.execute_notebook(str(path), str(output), parameters=params, kernel_name="python3",
                                   progress_bar=False, execution_timeout=timeout,
                                   extra_arguments=list(KERNEL_ARGUMENTS))
    return output
