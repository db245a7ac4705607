"""Command line of the benchmark suite: run sections, write JSON and markdown, regenerate the README section."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

DEFAULT_SECTIONS = ("training", "global_prune", "second_order", "inference")
NAMED_SECTIONS = ("fit_cache", "curvature_cost", "explorer_slider", "rejection_time", "quality", "lab",
                 "published_mlp")  # run only when named
ALL_SECTIONS = (*DEFAULT_SECTIONS, *NAMED_SECTIONS, "readme")
RESULTS = "benchmarks/results"


def parser() -> argparse.ArgumentParser:
    """Options of `python -m oneshot_lab.bench`."""
    top = argparse.ArgumentParser(prog="oneshot-lab bench", description=__doc__)
    top.add_argument("sections", nargs="*", default=list(DEFAULT_SECTIONS), metavar="SECTION",
                     help=f"any of {', '.join(ALL_SECTIONS)} (default: {' '.join(DEFAULT_SECTIONS)}); "
                          f"{', '.join(NAMED_SECTIONS)} only run when named (quality and lab are slow); "
                          "readme rewrites README.md")
    top.add_argument("--quick", action="store_true", help="everything tiny, in seconds (checks the suite runs)")
    top.add_argument("--out", help=f"results directory (default: {RESULTS}; with --quick: runs/bench-quick)")
    top.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    top.add_argument("--repeats", type=int, default=None, help="repeats per measurement (default: per section)")
    top.add_argument("--spec", default=None, help="quality: the sweep spec to run and summarise")
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the named sections in order; exit status 2 on bad input."""
    args = parser().parse_args(argv)
    unknown = sorted(set(args.sections) - set(ALL_SECTIONS))
    if unknown:
        print(f"oneshot-lab bench: error: unknown section(s) {', '.join(unknown)}; valid: {', '.join(ALL_SECTIONS)}",
              file=sys.stderr)
        return 2
    if args.threads < 1 or (args.repeats is not None and args.repeats < 1):
        print(f"oneshot-lab bench: error: --threads and --repeats must be >= 1, got {args.threads}, {args.repeats}",
              file=sys.stderr)
        return 2
    import torch

    from . import measure

    torch.set_num_threads(args.threads)
    out = Path(args.out or ("runs/bench-quick" if args.quick else RESULTS))
    for name in args.sections:
        if name == "readme":
            from . import readme

            readme.main([])  # every generated block of README.md and docs/, the Performance section among them
            continue
        module = importlib.import_module(f"{__package__}.{name}")
        options = {"quick": args.quick}
        if args.repeats is not None:
            options["repeats"] = args.repeats
        if name == "quality" and args.spec:
            options["spec"] = args.spec
        machine = measure.machine(args.threads)
        if name == "lab":
            machine["clock"] = "wall time"  # what a user of the lab waits for
        start = time.perf_counter()
        payload = module.run(**options)
        payload.update(machine=machine, quick=args.quick, section_seconds=round(time.perf_counter() - start, 1))
        path = measure.write(out, name, payload, payload["markdown"])
        print(payload["markdown"], flush=True)
        print(f"[{name}: {payload['section_seconds']} s -> {path}]\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
