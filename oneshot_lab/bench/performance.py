"""The "Performance" section of docs/performance.md, from the committed results (and a check that it is current)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository: results are shown relative to it
SECTIONS = ("training", "fit_cache", "global_prune", "second_order", "inference", "curvature_cost", "explorer_slider",
            "rejection_time", "quality", "lab")

# Why a target can be missed and what would meet it; printed only next to a target that is not met.
REMEDIES = {
    "fit": "per-step cost beyond the loop itself; profile `train.fit` (progress bar, history rows, snapshots).",
    "masked step": "the re-zeroing is one `torch._foreach_mul_` over the weights after each step, and it costs "
                   "more inside the step than alone (the step's working set leaves the cache between them); "
                   "one-byte masks, `masked_fill_`, flushing denormals and one flat buffer were tried and were "
                   "not faster. An optimizer kernel with the mask fused into the update is what would meet it.",
    "global prune time": "the answer is exact, ties included: when much of the vector is tied at the threshold "
                         "(the \"ties\" case rounds every weight to a coarse grid), the replay of introselect "
                         "(`topk_kernels.nth_element`) and the copy it works on cost about as much as finding the "
                         "threshold, while torch.topk gets faster on so few distinct values. Replaying on the tied "
                         "entries' neighbourhood only, or reusing buffers across calls, would meet it.",
    "global prune memory": "the replay's copy of the scores (values and tags) and one-byte masks; masks written in "
                           "place would reduce it.",
    "obc lenet": "OBC's first layer dominates (300 rows x 784: GEMMs on each row's working inverse, about d^3 / 3 "
                 "multiply-adds per row); the two row-chunk threads only help when the second core is free (see "
                 "the CPU and wall columns). A compiled kernel fusing the per-step operations is what is left.",
    "demo": "the demo is compute-bound (it keeps both cores busy nearly all the time): only less "
            "default work meets it, e.g. no from-init control in notebook 01 or fewer settings in notebook 05.",
    "tests": "mark the slowest notebook tests and run them with smoke parameters.",
    "slider": "most of a move is then drawing text; fewer tick labels, or a widget-native plot updated in the "
              "browser, would meet it.",
}


def load(results: Path) -> dict[str, dict[str, Any]]:
    """Every section's JSON present under `results`."""
    return {name: json.loads((results / f"{name}.json").read_text()) for name in SECTIONS
            if (results / f"{name}.json").exists()}


def targets(data: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target: what, measured, limit, met (a target whose section is missing is left out)."""
    rows = []

    def add(name: str, what: str, measured: float, limit: str, met: bool) -> None:
        rows.append({"target": what, "measured": measured, "limit": limit, "met": "met" if met else "not met",
                     "remedy": "" if met else REMEDIES[name]})

    if "training" in data:
        for row in data["training"]["fit_vs_bare"]:
            add("fit", f"train.fit / bare loop, {row['case']}", row["ratio"], "<= 1.15x",
                row["ratio"] <= 1.15 and row["identical_weights"])
        for row in data["training"]["masked_step"]:
            add("masked step", f"masked / dense step, {row['optimizer']}", row["lab_vs_dense"], "<= 1.02x",
                row["lab_vs_dense"] <= 1.02)
            add("masked step", f"masked / torch.prune step, {row['optimizer']}",
                round(row["lab_ms"] / row["torch_prune_ms"], 3), "< 1x", row["lab_ms"] < row["torch_prune_ms"])
    if "global_prune" in data:
        for row in data["global_prune"]["rows"]:
            add("global prune time", f"global prune time / torch, {row['size']} (masks identical: "
                f"{'yes' if row['identical_masks'] else 'NO'})", row["time_ratio"], "<= 0.1x",
                row["time_ratio"] <= 0.1 and row["identical_masks"])
            if row["memory_ratio"] is not None:
                add("global prune memory", f"global prune peak memory / torch, {row['size']}", row["memory_ratio"],
                    "<= 0.5x", row["memory_ratio"] <= 0.5)
    if "second_order" in data:
        obc = [r for r in data["second_order"].get("by_scope", []) if r["method"] == "obc" and r["threads"] == 2]
        if not data["second_order"]["quick"]:
            for r in obc:  # "OBC on LeNet-300-100 in seconds on 2 cores": one pruning call, per scope
                add("obc lenet", f"OBC on {r['model']} at 90%, scope {r['scope']}, wall seconds of one call on 2 "
                    "threads", r["wall_s"], "< 10 s", r["wall_s"] < 10)
    if "explorer_slider" in data and not data["explorer_slider"]["quick"]:
        for row in data["explorer_slider"]["rows"]:
            add("slider", f"explorer slider move, {row['moves']}: median ms (compute + redraw)", row["total_ms"],
                "<= 100 ms", row["total_ms"] <= 100)
    if "lab" in data:
        for row in data["lab"]["rows"]:
            if "target_s" in row:
                name = "demo" if row["what"] == "make demo" else "tests"
                add(name, f"{row['what']} seconds", row["seconds"], f"< {row['target_s']:.0f} s",
                    row["seconds"] < row["target_s"])
    return rows


def clocks(data: dict[str, dict[str, Any]]) -> str:
    """Which clock timed which section (results written before the clock was recorded used wall time)."""
    used: dict[str, list[str]] = {}
    for name, payload in data.items():
        used.setdefault(payload["machine"].get("clock", "wall time"), []).append(name)
    return "; ".join(f"{clock} ({', '.join(names)})" for clock, names in used.items())


def section(results: str | Path) -> str:
    """The Performance section's markdown (docs/performance.md holds it in the block `performance`; see
    `bench.readme`)."""
    from .measure import markdown_table

    results = Path(results)
    data = load(results)
    try:
        shown = results.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = results.as_posix()
    if not data:
        raise FileNotFoundError(f"no benchmark results (*.json) under {results}; run `make bench` first")
    first = next(iter(data.values()))["machine"]
    rows = targets(data)
    lines = ["# Performance", "",
             f"Measured by `make bench` (`python -m oneshot_lab.bench`; results in `{shown}/`, "
             "JSON and markdown). Times are medians over interleaved repeats with the peer measured in the same "
             f"run, as {clocks(data)}; one torch thread. Machine: {first['cpu']}, {first['cores']} cores, torch {first['torch']}, "
             f"Python {first['python']}; {first['date']}; load average at start "
             f"{first['load_average_at_start'][0]:.1f} — a shared machine with other jobs running, so absolute "
             "times are noisy; compare the ratios. Peak memory: "
             f"{first['memory_method']}.", ""]
    if rows:
        lines += ["### Targets", "", markdown_table(rows, ["target", "measured", "limit", "met"])]
        remedies = {r["remedy"] for r in rows if r["remedy"]}
        lines += [f"- Not met: {r}" for r in sorted(remedies)] + ([""] if remedies else [])
    for name, payload in data.items():
        lines += [payload["markdown"].rstrip(), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
