"""Pruning-quality tables from the lab's own sweep machinery: run a sweep spec, summarise over seeds.

Pluggable: any spec whose runs record a `metrics` table works; `by` and `value` name its columns and
`where` keeps rows (e.g. stage one_shot). No second implementation of pruning or training lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from . import measure

DEFAULT_SPEC = "sweeps/compare_criteria.yaml"


def run(quick: bool = False, repeats: int = 1, spec: str = DEFAULT_SPEC, runs_dir: str | None = None,
        by: tuple[str, ...] = ("method", "sparsity"), value: str = "test_accuracy",
        where: Mapping[str, Any] | None = None, confidence: float = 0.95) -> dict[str, Any]:
    """Run (or resume) `spec`, then mean and Student-t interval of `value` per `by` over its runs."""
    import oneshot_lab as ol

    where = {"stage": "one_shot"} if where is None else where
    outcome = ol.runner.sweep.run_grid(spec, runs_dir, progress=False)
    target = runs_dir or ol.runner.spec.spec_runs_dir(spec)
    metrics = ol.records.load(target)
    for column, wanted in where.items():
        metrics = metrics[metrics[column] == wanted]
    summary = ol.analysis.stats.summarize(metrics, list(by), value, confidence=confidence)
    table = (ol.analysis.stats.table(summary, list(by[:-1]), by[-1]) if len(by) > 1 else
             summary.set_index(list(by))[["text"]])
    table.columns = [str(c) for c in table.columns]
    markdown = (f"### Pruning quality: {value}, mean ± {confidence:.0%} interval over runs "
                f"(`{Path(spec).name}`, {', '.join(f'{k}={v}' for k, v in where.items())})\n\n"
                + measure.markdown_table(table.reset_index().to_dict("records")))
    return {"spec": str(spec), "runs_dir": str(target), "ok": bool(outcome.ok),
            "summary": summary.to_dict("records"), "markdown": markdown}
