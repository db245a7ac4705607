"""The `oneshot-lab` command: list notebook parameters, run one notebook, run them all (demo)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import sweep

EPILOG = """examples:
  oneshot-lab demo                          run every notebook with its defaults into runs/demo/
  oneshot-lab params 01                     what notebook 01 accepts (types, defaults, help)
  oneshot-lab run 01 -p sparsities '[0.5, 0.9]' -p seed 1 --out runs/try1
"""


def parse_value(text: str) -> Any:
    """A command-line parameter value read as YAML: 0.9 -> float, true -> bool, [1, 2] -> list."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _params(args: argparse.Namespace) -> int:
    """Print a notebook's parameters."""
    for name, info in sweep.parameters(args.notebook).items():
        print(f"{name}: {info['inferred_type_name']} = {info['default']}    # {info['help']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """Execute one notebook headlessly."""
    params = {name: parse_value(value) for name, value in args.param}
    if args.out:
        params["out_dir"] = args.out
    t0 = time.monotonic()
    output = sweep.run_notebook(args.notebook, params, timeout=args.timeout)
    print(f"done in {time.monotonic() - t0:.1f}s: {output}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Execute every notebook with its default parameters (or smoke=True)."""
    paths = sweep.notebooks()
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {sweep.NOTEBOOK_DIR}")
    t_all = time.monotonic()
    for path in paths:
        params: dict[str, Any] = {"out_dir": str(Path(args.out) / path.stem)}
        if args.smoke:
            params["smoke"] = True
        t0 = time.monotonic()
        print(f"running {path.name} ...", flush=True)
        output = sweep.run_notebook(path, params)
        print(f"  done in {time.monotonic() - t0:.1f}s -> {output.parent}", flush=True)
    print(f"all {len(paths)} notebooks done in {time.monotonic() - t_all:.1f}s; results under {args.out}/")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of `oneshot-lab`."""
    top = argparse.ArgumentParser(prog="oneshot-lab", description="Run the oneshot_lab notebooks headlessly.",
                                  epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run every notebook with default parameters (the lab's main job)")
    demo.add_argument("--out", default="runs/demo", help="where executed notebooks and results go (default: runs/demo)")
    demo.add_argument("--smoke", action="store_true", help="shrink every run to seconds (smoke=True)")
    demo.set_defaults(func=_demo)

    params = sub.add_parser("params", help="list a notebook's parameters with types, defaults and help")
    params.add_argument("notebook", help="path, file name, or number such as 01")
    params.set_defaults(func=_params)

    run = sub.add_parser("run", help="execute one notebook headlessly with parameters")
    run.add_argument("notebook", help="path, file name, or number such as 01")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a parameter; VALUE is read as YAML (0.9, true, [0.5, 0.9], mnist1d)")
    run.add_argument("--out", help="output directory (sets out_dir)")
    run.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    run.set_defaults(func=_run)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of `oneshot-lab` and `python -m oneshot_lab`."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"oneshot-lab: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # papermill's PapermillExecutionError names the failing cell
        if type(err).__name__ != "PapermillExecutionError":
            raise
        print(f"oneshot-lab: notebook failed: {err}", file=sys.stderr)
        return 1
