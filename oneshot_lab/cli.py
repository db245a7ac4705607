"""The `oneshot-lab` command: notebook parameters, one headless run, resumable sweeps, reports, the demo.

Heavy libraries (pandas through `records`, papermill, torch) are imported inside the commands that use them,
so that bad input is rejected in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from .runner import notebooks, spec, sweep
from .interactive import offline_html

REPORT_NOTEBOOK = "04"
RUNS = "runs"  # where `run` puts a record by default: RUNS/<run id>
DEMO_OUT, DEMO_SMOKE_OUT = "runs/demo", "runs/demo-smoke"  # where `demo` (and `demo --smoke`) write by default

EPILOG = """examples:
  oneshot-lab demo                          run every notebook with its defaults into runs/demo/
  oneshot-lab params 01                     what notebook 01 accepts (types, defaults, help)
  oneshot-lab run 01 -p sparsities '[0.5, 0.9]' -p seed 1 --out runs/try1
  oneshot-lab sweep sweeps/compare_criteria.yaml          run (or resume) a sweep into the spec's runs_dir
  oneshot-lab sweep my.yaml --runs runs/my --dry-run      list its runs and which are already complete
  oneshot-lab sweep my.yaml --executor dask --scheduler tcp://scheduler-host:8786
  oneshot-lab report runs/compare_criteria                means with Student-t intervals, figures (notebook 04)

A sweep is resumable: re-run the same command and complete runs are skipped, failed or missing
ones run again. See `oneshot-lab sweep --help` for the spec format.
"""

EXIT_CODES = """exit status: 0 done (or already complete); 1 a run failed (a cell raised, the kernel died, a cell
timed out: the failed record is kept); 2 bad input, nothing was run or written; 3 a file-system error
(read-only, full, permission, name too long) or the output is locked by another run; 70 an internal error
(run again with --debug for the traceback); 130 interrupted."""
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OS, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 3, 70, 130


def parse_value(text: str) -> Any:
    """A command-line value read as YAML 1.2 JSON-like data: 0.9 -> float, true -> bool, [1, 2] -> list,
    010 and yes -> text; text that is not YAML at all stays text."""
    from .util import strict_yaml

    try:
        return strict_yaml.loads(text)
    except strict_yaml.YAMLValueError as err:
        if str(err).startswith("not valid YAML"):
            return text
        raise ValueError(f"value {text[:60]!r}: {err}") from None


def _param_values(pairs: list[list[str]]) -> dict[str, Any]:
    """`-p NAME VALUE` pairs as a dict; ValueError for a name given twice."""
    params: dict[str, Any] = {}
    for name, value in pairs:
        if name in params:
            raise ValueError(f"parameter {name!r} is given twice (-p {name} ...); give it once")
        params[name] = parse_value(value)
    return params


def positive_int(text: str) -> int:
    """An argparse type: a positive integer (workers, limits)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _params(args: argparse.Namespace) -> int:
    """Print a notebook's parameters, and the registry's methods when a parameter names them (its help says ol.METHODS)."""
    declared = notebooks.declared_parameters(args.notebook)
    for name, info in declared.items():
        print(f"{name}: {info['inferred_type_name']} = {info['default']}    # {info['help']}")
    if any("ol.METHODS" in info["help"] for info in declared.values()):
        from .pruning import registry  # imports torch and every installed plug-in: only here

        print("\nmethods (ol.METHODS: built in and installed plug-ins; label 'name/scope', scope global or layer):")
        for method in registry.METHODS.values():
            print("  " + method.describe().replace("\n", "\n  "))
    return 0


def _execute(task: spec.Task, out: Path, force: bool, refresh: bool = False) -> dict:
    """Run `task` into the record directory `out` (locked, staged, published by one rename); `refresh` runs it
    again over its own complete record, `force` over anyone's."""
    from .runner import staged_run

    out = Path(os.path.abspath(out))  # `--out .` names a directory; its lock goes beside it
    staged_run.refuse_conflicts([(task, out)], force)
    with notebooks.kernel_environment():
        outcome = staged_run.execute(task, out.parent, out, force=force, refresh=refresh)
        if outcome["status"] == "locked":  # then it ends complete (same run), in conflict, or ours to run
            print(f"oneshot-lab: {outcome['error']}; waiting for it to finish", file=sys.stderr, flush=True)
            outcome = staged_run.execute(task, out.parent, out, force=force, wait=True, refresh=refresh)
        return outcome


def _outcome_code(outcome: dict) -> int:
    """Print what became of one run and return the exit status."""
    out, status = outcome["out_dir"], outcome["status"]
    if status == "done":
        print(f"done in {outcome['wall_s']:.1f}s: {out}")
        return 0
    if status == "skipped":
        from .records.writing import git_revision

        made, now = outcome.get("git_revision"), git_revision()
        other = f"; made by code revision {made[:10]}, this is {now[:10]}" if made and now and made != now else ""
        print(f"already complete: {out} (run id {outcome['run_id']}{other}); pass --force to run it again")
        return 0
    if status == "locked":
        print(f"oneshot-lab: error: {outcome['error']}; wait for it or choose another --out", file=sys.stderr)
        return EXIT_OS
    if status == "conflict":
        print(f"oneshot-lab: error: {outcome['error']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    cell = f" at cell {outcome['error_cell']}" if outcome.get("error_cell") is not None else ""
    kept = f" (the complete record in {outcome['kept']} is kept)" if outcome.get("kept") else ""
    print(f"oneshot-lab: run failed{cell}: {outcome.get('error')}; the failed record is in {out}{kept}",
          file=sys.stderr)
    return EXIT_FAILED


def check_methods(task: spec.Task) -> None:
    """Refuse an unknown method before a kernel starts: the values of the parameters whose help names ol.METHODS
    (labels 'name/scope' or names) must be in the registry, plug-ins included."""
    declared = notebooks.declared_parameters(task.notebook)
    named = {k: v for k, v in task.params.items() if "ol.METHODS" in declared.get(k, {}).get("help", "")}
    if not named:
        return
    from .pruning import registry  # imports torch and the installed plug-ins: only when a method is named

    for name, value in named.items():
        for item in value if isinstance(value, list) else [value]:
            try:
                registry.split_label(item) if "/" in str(item) else registry.get(item)
            except ValueError as error:
                raise ValueError(f"parameter {name!r} of {Path(task.notebook).name}: {error}") from None


def _run(args: argparse.Namespace) -> int:
    """Execute one notebook headlessly into its own record directory."""
    params = _param_values(args.param)
    out = params.pop("out_dir", None)
    if out is not None and args.out:
        raise ValueError("give the output directory once: --out or -p out_dir, not both")
    task = spec.task(args.notebook, params, args.timeout)
    check_methods(task)
    out = Path(args.out or out or Path(RUNS) / task.run_id)
    code = _outcome_code(_execute(task, out, args.force))
    if args.html and not code:
        print(f"offline HTML: {offline_html.export(out / Path(task.notebook).name)}")
    return code


def _demo(args: argparse.Namespace) -> int:
    """Execute every notebook with its default parameters (or smoke=True) into OUT/<notebook>, as `run` would
    (complete records are kept), after checking that no record there is another run's."""
    from .runner import staged_run

    paths = notebooks.notebooks()
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {notebooks.NOTEBOOK_DIR}")
    t_all = time.monotonic()
    root = Path(args.out or (DEMO_SMOKE_OUT if args.smoke else DEMO_OUT))
    runs = [(spec.task(path, {"smoke": True} if args.smoke else {}), root / path.stem) for path in paths]
    staged_run.refuse_conflicts(runs, args.force)
    for path, (task, out) in zip(paths, runs):
        print(f"running {path.name} ...", flush=True)
        code = _outcome_code(_execute(task, out, force=args.force))
        if code:
            return code
    print(f"all {len(paths)} notebooks done in {time.monotonic() - t_all:.1f}s; results under {root}/")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep and print its summary."""
    if args.dry_run:
        from .records import writing
        from .runner import staged_run

        tasks = spec.expand(args.spec, max_runs=args.max_runs)
        runs_dir = Path(args.runs or spec.spec_runs_dir(args.spec) or ".")
        revision = writing.git_revision()
        for task in tasks:
            state, manifest = staged_run.record_state(runs_dir / task.run_id, task.run_id)
            if state == "complete" and revision and manifest.get("git_revision") not in (None, revision):
                state = "complete (other code revision)"
            print(f"{task.run_id}  {state if state.startswith('complete') else 'to run':8}  {task.params}")
        print(f"{len(tasks)} runs in {runs_dir}")
        return 0
    for task in spec.expand(args.spec, max_runs=args.max_runs):
        check_methods(task)
    outcome = sweep.run_grid(args.spec, args.runs, executor=args.executor, workers=args.workers,
                             scheduler=args.scheduler, max_runs=args.max_runs)
    print(outcome)
    return 0 if outcome.ok else EXIT_FAILED


def _report(args: argparse.Namespace) -> int:
    """Execute notebook 04 on a runs directory, replacing its own earlier report (another run's only with --force)."""
    from .records import gathered, loading
    from .runner import staged_run

    runs_dir = Path(args.runs_dir)
    if loading.manifests(runs_dir).query("status == 'complete'").empty:
        raise ValueError(f"no complete run records under {runs_dir}")
    out = Path(args.out or f"{runs_dir.resolve()}_report")
    params = _param_values(args.param)
    params.update(runs_dir=str(runs_dir.resolve()))
    task = spec.task(REPORT_NOTEBOOK, params, args.timeout)
    staged_run.refuse_conflicts([(task, out)], args.force)
    settings = {**notebooks.defaults(task.notebook), **task.params}
    gathered.gather(runs_dir, settings["notebook"], settings["metric"])  # a warning per record it cannot use
    code = _outcome_code(_execute(task, out, force=args.force, refresh=True))
    if not code:
        print(f"tables and figures: {out}/")
    if args.html and not code:
        print(f"offline HTML: {offline_html.export(out / Path(task.notebook).name)}")
    return code


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2)."""

    def error(self, message: str) -> None:
        """Print `message` in one line with a pointer to --help and exit 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bench(args: argparse.Namespace) -> int:
    """Run the benchmark suite (`python -m oneshot_lab.bench`)."""
    from .bench.__main__ import main as bench_main

    return bench_main(args.options)


def parser() -> argparse.ArgumentParser:
    """The argument parser of `oneshot-lab`."""
    top = _Parser(prog="oneshot-lab", description="Run the oneshot_lab notebooks headlessly.",
                  epilog=EPILOG + "\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = top.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run every notebook with default parameters (the lab's main job)")
    demo.add_argument("--out", help=f"where the records go (default: {DEMO_OUT}, with --smoke {DEMO_SMOKE_OUT})")
    demo.add_argument("--smoke", action="store_true", help="shrink every run to seconds (smoke=True)")
    demo.add_argument("--force", action="store_true", help="run again, replacing any complete record atomically")
    demo.set_defaults(func=_demo)

    params = sub.add_parser("params", help="list a notebook's parameters with types, defaults and help")
    params.add_argument("notebook", help="path, file name, or number such as 01")
    params.set_defaults(func=_params)

    run = sub.add_parser("run", help="execute one notebook headlessly with parameters")
    run.add_argument("notebook", help="path, file name, or number such as 01")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="set a parameter; VALUE is read as YAML (0.9, true, [0.5, 0.9], mnist1d)")
    run.add_argument("--out", help="the run's record directory (default: runs/<run id>, one per notebook code "
                                   "and parameter set)")
    run.add_argument("--force", action="store_true",
                     help="run again even if the output holds a complete record, and replace it atomically")
    run.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (an integer >= 1)")
    run.add_argument("--html", action="store_true", help="also write the executed notebook as a self-contained HTML page")
    run.set_defaults(func=_run)

    swp = sub.add_parser("sweep", help="run (or resume) a notebook over a grid of parameters from a YAML spec",
                         description=spec.FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    swp.add_argument("spec", help="the sweep spec, e.g. sweeps/compare_criteria.yaml")
    swp.add_argument("--runs", metavar="DIR", help="runs directory (default: the spec's runs_dir)")
    swp.add_argument("--executor", choices=sweep.EXECUTORS, default="local",
                     help="local processes (default) or a Dask cluster")
    swp.add_argument("--scheduler", metavar="ADDRESS",
                     help="Dask scheduler address such as tcp://host:8786 (default: start a LocalCluster)")
    swp.add_argument("--workers", type=positive_int, metavar="N",
                     help="worker processes (default: the number of cores)")
    swp.add_argument("--max-runs", type=positive_int, metavar="N", default=spec.MAX_RUNS,
                     help=f"refuse a spec that expands to more runs than this (default: {spec.MAX_RUNS})")
    swp.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    swp.set_defaults(func=_sweep)

    rep = sub.add_parser("report", help="means with Student-t intervals and figures over a runs directory (runs notebook 04)")
    rep.add_argument("runs_dir", help="a sweep's runs directory")
    rep.add_argument("--out", help="where the report goes (default: RUNS_DIR_report next to RUNS_DIR)")
    rep.add_argument("--force", action="store_true", help="replace another run's record in --out (atomically)")
    rep.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter of notebook 04, e.g. -p stage one_shot")
    rep.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (an integer >= 1)")
    rep.add_argument("--html", action="store_true", help="also write the executed notebook as a self-contained HTML page")
    rep.set_defaults(func=_report)

    bench = sub.add_parser("bench", help="benchmarks against the peers (`oneshot-lab bench --help`)", add_help=False)
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options of python -m oneshot_lab.bench")
    bench.set_defaults(func=_bench)
    return top


def _error(message: str, code: int, debug: bool) -> int:
    """Print the traceback (with --debug) and `message` as one line; return `code`."""
    if debug:
        traceback.print_exc()
    print(f"oneshot-lab: {' '.join(message.split())}", file=sys.stderr)
    return code


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a warning (a skipped run record, say) as one line."""
    print(f"oneshot-lab: warning: {' '.join(str(message).split())}", file=sys.stderr)


def os_message(err: OSError) -> str:
    """An OSError as 'cause: path' (both paths for a rename)."""
    cause = err.strerror or type(err).__name__
    paths = [p for p in (err.filename, err.filename2) if p]
    return f"{cause}: {' -> '.join(map(str, paths))}" if paths else f"{cause}: {err}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `oneshot-lab` and `python -m oneshot_lab`; exit statuses in `EXIT_CODES`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # every option belongs to the benchmark suite's own parser
        return _bench(argparse.Namespace(options=argv[1:]))
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:
        return _error("interrupted; complete runs are kept, re-run the same command to resume",
                      EXIT_INTERRUPTED, args.debug)
    except (ValueError, FileNotFoundError, NotADirectoryError) as err:
        text = os_message(err) if isinstance(err, OSError) and err.filename else str(err)
        return _error(f"error: {text}", EXIT_BAD_INPUT, args.debug)
    except OSError as err:  # read-only or full file system, permissions, a name too long
        return _error(f"error: {os_message(err)}", EXIT_OS, args.debug)
    except Exception as err:  # a bug: one line, the traceback with --debug
        return _error(f"internal error: {type(err).__name__}: {err} (run again with --debug for the traceback)",
                      EXIT_INTERNAL, args.debug)
