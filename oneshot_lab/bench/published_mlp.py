"""The published MNIST MLP 784-40-20-10 one-shot table reproduced on full MNIST (`studies.published_mlp`), every
method in its published configuration over five seeds, written as a run record to results/published_mlp; the
README's table is generated from it. Needs full MNIST: `oneshot-lab data mnist` once (offline afterwards)."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import measure

OUT = "results/published_mlp"
QUICK_OUT = "runs/bench-quick/published_mlp"
COLUMNS = ["sparsity", "method", "n", "our_accuracy", "ci_low", "ci_high", "published_method", "published_accuracy",
           "inside", "config"]


def config(quick: bool) -> Any:
    """The study: the published setting, or (quick) one seed, two sparsities and a short recipe on mnist_subset."""
    from ..studies import published_mlp

    if not quick:
        return published_mlp.PublishedConfig()
    return published_mlp.PublishedConfig(
        dataset="mnist_subset", seeds=(0,), sparsities=(0.8, 0.9), train=published_mlp.RECIPE.replace(epochs=1),
        score_options={"woodfisher": {"samples": 256}, "obc": {"samples": 256}, "sparsegpt": {"samples": 256},
                       "chita": {"samples": 256}, "chita_pp": {"samples": 256}})


def run(quick: bool = False, repeats: int = 1) -> dict[str, Any]:
    """Run the study, record metrics, layers, costs, plan, dense and the table beside the published figures."""
    import oneshot_lab as ol
    from ..studies import published_mlp

    study = config(quick)
    ol.load(study.dataset, seed=study.seeds[0])  # no data (`oneshot-lab data mnist` not run): fail before any record
    record = ol.results.start(QUICK_OUT if quick else OUT, {"quick": quick, **dataclasses.asdict(study)})
    comparison = published_mlp.run(study)
    table = ol.analysis.published.reproduction(comparison.metrics, comparison.plan)
    dense = ol.analysis.stats.summarize(comparison.metrics[comparison.metrics.stage == "dense"], [], "test_accuracy")
    costs = ol.analysis.second_order.cost_table(comparison.costs)
    for name, frame in (("metrics", comparison.metrics), ("layers", comparison.layers), ("costs", comparison.costs),
                        ("plan", comparison.plan), ("published", table), ("dense", dense), ("cost_summary", costs)):
        record.record(name, frame)
    record.finish()
    shown = table[COLUMNS].round({"our_accuracy": 2, "ci_low": 2, "ci_high": 2})
    markdown = ("### The MNIST MLP 784-40-20-10 one shot on full MNIST beside the published table (percent, "
                f"mean and 95% interval over {len(study.seeds)} seeds)\n\n"
                + measure.markdown_table(shown.to_dict("records")) + "\n\nCost per call (seconds):\n\n"
                + measure.markdown_table(costs[["method", "n", "seconds (interval)"]].to_dict("records")))
    return {"out": str(record.out_dir), "dense": dense.to_dict("records"), "table": table.to_dict("records"),
            "costs": costs.to_dict("records"), "markdown": markdown}
