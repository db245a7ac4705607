"""The `oneshot-lab compare` and `replicate` commands: do a notebook's verdicts hold on another machine, and on
seeds they were not discovered on?

Heavy libraries are imported inside the commands, after the arguments are read (as in `commands`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from . import commands
from .runner import spec

SHOWN = ("differ", "sign flip")  # the statuses `compare` lists without --all


def interval(mean: float, low: float, high: float, verdict: object) -> str:
    """'+0.034 [+0.020, +0.049] supported', or '-' for a finding one run does not have."""
    if not isinstance(verdict, str):
        return "-"
    numbers = f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]" if not any(map(math.isnan, (mean, low, high))) else "n/a"
    return f"{numbers} {verdict}"


def compare_command(args: argparse.Namespace) -> int:
    """Line up the findings of two records of one notebook: status counts, the rows that differ or flip (all with
    --all), what differs between the two machines; the full table to --csv."""
    from .records import compared
    from .records.atomic import atomic_write_text

    if args.csv is not None and (args.csv == "" or Path(args.csv).is_dir()):
        raise ValueError(f"--csv {args.csv!r} is {'empty' if not args.csv else 'a directory'}: give a file name")
    result = compared.compare_runs(args.run_a, args.run_b)
    table = result.table
    counts = result.summary()
    print(f"{result.notebook}: A {args.run_a} ({int((table.status != 'only in b').sum())} findings), "
          f"B {args.run_b} ({int((table.status != 'only in a').sum())} findings)")
    print(", ".join(f"{status} {count}" for status, count in zip(counts["status"], counts["count"])))
    rows = table if args.all else table[table["status"].isin(SHOWN)]
    if not rows.empty:
        view = rows[["status", "claim", "setting"]].assign(
            A=[interval(*v) for v in zip(rows.mean_difference_a, rows.ci_low_a, rows.ci_high_a, rows.verdict_a)],
            B=[interval(*v) for v in zip(rows.mean_difference_b, rows.ci_low_b, rows.ci_high_b, rows.verdict_b)])
        print("\n" + view.to_string(index=False))
    differences = result.differences()
    if differences:
        print("\nthe two runs differ in:")
        print("\n".join(f"  {what}: A {a} | B {b}" for what, a, b in differences))
    elif not any(result.machines):
        print("\nneither manifest records its machine; library versions and code revision are the same")
    else:
        print("\nsame machine (CPU model and flags, torch build and threads), library versions and code revision")
    if args.csv:
        print(f"\ntable: {atomic_write_text(args.csv, table.to_csv(index=False))}")
    return 0


def replicate_command(args: argparse.Namespace) -> int:
    """Run a notebook on fresh seeds into OUT/<notebook> (a complete record of the same run is reused) and write
    its findings' replication of the discovery record's as replication.csv beside it."""
    from .records import compared
    from .runner import replication, staged_run

    plan = replication.plan(args.notebook, args.seeds, commands.param_values(args.param), args.against,
                            args.out or replication.OUT, args.smoke)
    discovery = compared.read_findings(plan.discovery)
    task = spec.task(plan.notebook, plan.params, args.timeout)
    commands.check_methods(task)
    staged_run.refuse_conflicts([(task, plan.out)], args.force)
    print(f"replicating {plan.discovery} (seeds {', '.join(map(str, plan.discovery_seeds))}) on seeds "
          f"{', '.join(map(str, plan.seeds))} into {plan.out}", flush=True)
    replication.write_spec(plan)
    code = commands.outcome_code(commands.execute(task, plan.out, args.force))
    if code:
        return code
    from .analysis import findings

    table = findings.replicate(discovery, compared.read_findings(plan.out, replication.SEED_TABLE))
    path = replication.write_table(plan, table)
    counts = table["replicated"].value_counts()
    discovered = len(table) - int(counts.get("", 0))
    print(f"{int(counts.get('yes', 0))} of {discovered} discovered findings replicated on seeds "
          f"{', '.join(map(str, plan.seeds))} ({int(counts.get('no', 0))} did not, {int(counts.get('not run', 0))} "
          f"had no fresh pairs; {len(table) - discovered} of {len(table)} were not discovered): {path}")
    return 0
