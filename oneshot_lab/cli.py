"""The `oneshot-lab` command: notebook parameters, one headless run, resumable sweeps, reports, the demo.

Heavy libraries (pandas through `results`, papermill, torch) are imported inside the commands that use them,
so that bad input is rejected in a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from . import notebooks, offline_html, spec, sweep

REPORT_NOTEBOOK = "04"

EPILOG = """examples:
  oneshot-lab demo                          run every notebook with its defaults into runs/demo/
  oneshot-lab params 01                     what notebook 01 accepts (types, defaults, help)
  oneshot-lab run 01 -p sparsities '[0.5, 0.9]' -p seed 1 --out runs/try1
  oneshot-lab sweep sweeps/compare_criteria.yaml          run (or resume) a sweep into the spec's runs_dir
  oneshot-lab sweep my.yaml --runs runs/my --dry-run      list its runs and which are already complete
  oneshot-lab sweep my.yaml --executor dask --scheduler tcp://scheduler-host:8786
  oneshot-lab report runs/compare_criteria                mean +- std table and figures (notebook 04)

A sweep is resumable: re-run the same command and complete runs are skipped, failed or missing
ones run again. See `oneshot-lab sweep --help` for the spec format.
"""

SWEEP_HELP = """Run a notebook over a grid of parameters, one record directory per run.

spec format (YAML):
  notebook: 01                  # path, file name or number; or a list of notebooks
  runs_dir: runs/my_sweep       # optional; --runs overrides it
  timeout: 1800                 # optional per-cell timeout in seconds
  params: {dataset: mnist1d}    # fixed for every run
  grid:                         # cartesian product of these lists
    seed: [0, 1, 2]
    methods: [["magnitude/global"], ["random/layer"]]   # list-valued parameter: a list of lists
  list:                         # and/or explicit settings, each merged over params
    - {seed: 7, epochs: 5}
Several blocks: `sweeps: [{notebook: 01, grid: ...}, {notebook: 02, ...}]`.

Every run goes to RUNS_DIR/<notebook>-<hash of its parameters>/ (executed notebook, CSV tables,
manifest.json). Runs already complete are skipped; failed or missing ones run again; a run whose
kernel dies is retried once. The spec is checked in full before anything runs. The hash covers the
parameters the spec sets, not the notebook's defaults: set explicitly what must not drift.
exit status: 0 all runs complete, 1 some failed, 2 bad input.
"""


def parse_value(text: str) -> Any:
    """A command-line parameter value read as YAML: 0.9 -> float, true -> bool, [1, 2] -> list."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _params(args: argparse.Namespace) -> int:
    """Print a notebook's parameters."""
    for name, info in notebooks.declared_parameters(args.notebook).items():
        print(f"{name}: {info['inferred_type_name']} = {info['default']}    # {info['help']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """Execute one notebook headlessly."""
    params = {name: parse_value(value) for name, value in args.param}
    if args.out:
        params["out_dir"] = args.out
    t0 = time.monotonic()
    output = notebooks.run_notebook(args.notebook, params, timeout=args.timeout)
    print(f"done in {time.monotonic() - t0:.1f}s: {output}")
    if args.html:
        print(f"offline HTML: {offline_html.export(output)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    """Execute every notebook with its default parameters (or smoke=True)."""
    paths = notebooks.notebooks()
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {notebooks.NOTEBOOK_DIR}")
    t_all = time.monotonic()
    for path in paths:
        params: dict[str, Any] = {"out_dir": str(Path(args.out) / path.stem)}
        if args.smoke:
            params["smoke"] = True
        t0 = time.monotonic()
        print(f"running {path.name} ...", flush=True)
        output = notebooks.run_notebook(path, params)
        print(f"  done in {time.monotonic() - t0:.1f}s -> {output.parent}", flush=True)
    print(f"all {len(paths)} notebooks done in {time.monotonic() - t_all:.1f}s; results under {args.out}/")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep and print its summary."""
    if args.dry_run:
        from . import results

        tasks = spec.expand(args.spec)
        runs_dir = Path(args.runs or spec.spec_runs_dir(args.spec) or ".")
        for task in tasks:
            state = "complete" if results.is_complete(runs_dir / task.run_id) else "to run"
            print(f"{task.run_id}  {state:8}  {task.params}")
        print(f"{len(tasks)} runs in {runs_dir}")
        return 0
    outcome = sweep.run_grid(args.spec, args.runs, executor=args.executor, workers=args.workers,
                             scheduler=args.scheduler)
    print(outcome)
    return 0 if outcome.ok else 1


def _report(args: argparse.Namespace) -> int:
    """Execute notebook 04 on a runs directory."""
    from . import results

    runs_dir = Path(args.runs_dir)
    if results.manifests(runs_dir).query("status == 'complete'").empty:
        raise ValueError(f"no complete run records under {runs_dir}")
    out = Path(args.out or f"{runs_dir.resolve()}_report")
    params = {name: parse_value(value) for name, value in args.param}
    params.update(runs_dir=str(runs_dir.resolve()), out_dir=str(out))
    t0 = time.monotonic()
    output = notebooks.run_notebook(REPORT_NOTEBOOK, params, timeout=args.timeout)
    print(f"report done in {time.monotonic() - t0:.1f}s: {output}")
    print(f"tables and figures: {out}/")
    if args.html:
        print(f"offline HTML: {offline_html.export(output)}")
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
    run.add_argument("--html", action="store_true", help="also write the executed notebook as a self-contained HTML page")
    run.set_defaults(func=_run)

    swp = sub.add_parser("sweep", help="run (or resume) a notebook over a grid of parameters from a YAML spec",
                         description=SWEEP_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    swp.add_argument("spec", help="the sweep spec, e.g. sweeps/compare_criteria.yaml")
    swp.add_argument("--runs", metavar="DIR", help="runs directory (default: the spec's runs_dir)")
    swp.add_argument("--executor", choices=sweep.EXECUTORS, default="local",
                     help="local processes (default) or a Dask cluster")
    swp.add_argument("--scheduler", metavar="ADDRESS",
                     help="Dask scheduler address such as tcp://host:8786 (default: start a LocalCluster)")
    swp.add_argument("--workers", type=int, metavar="N", help="worker processes (default: the number of cores)")
    swp.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    swp.set_defaults(func=_sweep)

    rep = sub.add_parser("report", help="mean +- std table and figures over a runs directory (runs notebook 04)")
    rep.add_argument("runs_dir", help="a sweep's runs directory")
    rep.add_argument("--out", help="where the report goes (default: RUNS_DIR_report next to RUNS_DIR)")
    rep.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter of notebook 04, e.g. -p stage one_shot")
    rep.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    rep.add_argument("--html", action="store_true", help="also write the executed notebook as a self-contained HTML page")
    rep.set_defaults(func=_report)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of `oneshot-lab` and `python -m oneshot_lab`."""
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("oneshot-lab: interrupted; complete runs are kept, re-run the same command to resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as err:
        print(f"oneshot-lab: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # papermill's PapermillExecutionError names the failing cell
        if type(err).__name__ != "PapermillExecutionError":
            raise
        print(f"oneshot-lab: notebook failed: {err}", file=sys.stderr)
        return 1
