"""Published figures in one table, every row with its source, and the tables that put ours beside them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from ..util import checks
from . import stats
from .ticket_findings import matching_interval


@dataclass(frozen=True)
class Figure:
    """One published number, as its source states it (checked against REFERENCES.md)."""

    source: str
    dataset: str  # the lab's name of the data the source used
    model: str  # the lab's model the figure is compared with (`network` says what the source trained)
    condition: str  # dense, a pruning method, or a lottery condition (ticket, reinit)
    sparsity: float | None  # fraction of weights pruned when the figure was read; None: not at a set sparsity
    metric: str  # ACCURACY or MATCHES
    value: float  # in percent
    network: str = ""
    data: str = ""


ACCURACY = "test accuracy (percent)"
MATCHES = "matches dense down to (percent of weights)"
MNIST1D = "MNIST-1D (mnist1d.make_dataset): 4,000 training, 1,000 test examples"
CBS = ("Yu et al., 'The Combinatorial Brain Surgeon: Pruning Weights That Cancel One Another in Neural "
       "Networks', ICML 2022 (table of one-shot pruning without retraining, MLPNet on MNIST); quoted in "
       "REFERENCES.md")
MNIST_MLP_DATA = ("full MNIST: 60,000 training images (the Fisher / calibration samples drawn from them), "
                  "10,000 test images")
MNIST_MLP_NETWORK = "MLP 784-40-20-10 (ReLU), one shot, no retraining"
FRANKLE = "Frankle & Carbin 2019"
FRANKLE_NETWORK = ("LeNet-300-100, Adam 1.2e-3, batch 60, 50K iterations; 20% of the remaining weights pruned per "
                   "round (output layer 10%), layer-wise, rewound to the initialisation")


def _cbs(method: str, levels: dict[float, float]) -> list[Figure]:
    """The CBS table's row of one method: test accuracy (%) per sparsity."""
    return [Figure(CBS, "mnist", "mlp", method, sparsity, ACCURACY, accuracy, MNIST_MLP_NETWORK, MNIST_MLP_DATA)
            for sparsity, accuracy in levels.items()]


FIGURES: tuple[Figure, ...] = (
    Figure("Greydanus 2020, MNIST-1D MLP baseline (4,000 train examples)", "mnist1d", "mlp", "dense", 0.0,
           ACCURACY, 68.0, "MLP", MNIST1D),
    Figure("Greydanus 2020, MNIST-1D MLP baseline (an MLP, not LeNet-300-100)", "mnist1d", "lenet_300_100", "dense",
           0.0, ACCURACY, 68.0, "MLP", MNIST1D),
    Figure("Greydanus 2020, MNIST-1D CNN baseline (4,000 train examples)", "mnist1d", "conv1d", "dense", 0.0,
           ACCURACY, 94.0, "CNN", MNIST1D),
    Figure("scikit-learn digits, small MLPs (about 97-98 percent)", "digits", "mlp", "dense", 0.0, ACCURACY, 97.0,
           "small MLPs", "scikit-learn digits: 1,797 8x8 images"),
    *_cbs("magnitude", {0.8: 92.9, 0.9: 90.3, 0.95: 83.6, 0.98: 32.3}),
    *_cbs("woodfisher", {0.8: 93.6, 0.9: 91.7, 0.95: 85.5, 0.98: 38.3}),
    *_cbs("cbs", {0.8: 93.9, 0.9: 93.1, 0.95: 88.9, 0.98: 55.5}),
    Figure(FRANKLE, "mnist", "lenet_300_100", "ticket", None, MATCHES, 3.6, FRANKLE_NETWORK, "MNIST"),
    Figure(FRANKLE, "mnist", "lenet_300_100", "reinit", None, MATCHES, 21.0, FRANKLE_NETWORK, "MNIST"),
)
# the lab's method that computes what each method of the CBS table computes (None: not in the lab)
LAB_METHOD = {"magnitude": "magnitude/global", "woodfisher": "woodfisher/global", "cbs": None}
ALIASES = {"mnist_subset": "mnist"}  # the subset is compared with what was published for the full set


def table() -> pd.DataFrame:
    """Every published figure, one row each (the fields of `Figure`)."""
    return pd.DataFrame([asdict(figure) for figure in FIGURES])


def dense_accuracy(dataset: str, model: str) -> tuple[float, str] | None:
    """The published dense test accuracy (a fraction) for `model` on `dataset` with its source, or None."""
    found = [f for f in FIGURES if (f.dataset, f.model, f.condition, f.metric) == (dataset, model, "dense", ACCURACY)]
    return (found[0].value / 100, found[0].source) if found else None


def dense_table(metrics: pd.DataFrame, dataset: str, model: str, confidence: float = 0.95) -> pd.DataFrame:
    """The dense model's validation and test accuracy over seeds (n, mean, interval) beside the published figure."""
    if not isinstance(metrics, pd.DataFrame) or "stage" not in metrics.columns:
        raise ValueError("dense_table needs a metrics table with a 'stage' column (one_shot's or replicate's)")
    dense = metrics[metrics["stage"] == "dense"]
    if dense.empty:
        raise ValueError("the metrics table has no dense rows (stage 'dense')")
    rows = []
    for split in ("val", "test"):
        summary = stats.summarize(dense, [], f"{split}_accuracy", confidence).iloc[0]
        rows.append({"dataset": dataset, "model": model, "split": split, "n": summary["n"],
                     "mean": summary["mean"], "ci_low": summary["ci_low"], "ci_high": summary["ci_high"],
                     "text": summary["text"]})
    out = pd.DataFrame(rows)
    figure = dense_accuracy(dataset, model)
    out["published_test"] = figure[0] if figure else float("nan")
    out["source"] = figure[1] if figure else "no published figure for this dataset and model"
    return out


def mnist_mlp() -> pd.DataFrame:
    """The published MNIST MLP 784-40-20-10 one-shot table: source, network, data, method, sparsity, accuracy (%)."""
    rows = [{"source": f.source, "network": f.network, "data": f.data, "method": f.condition,
             "sparsity": f.sparsity, "published_accuracy": f.value} for f in FIGURES if f.source in MNIST_MLP_SOURCES]
    return pd.DataFrame(rows)


def beside(metrics: pd.DataFrame, match: dict[str, str | None] | None = None, stage: str = "one_shot",
           value: str = "test_accuracy", confidence: float = 0.95) -> pd.DataFrame:
    """The published MNIST MLP table with our mean and Student-t interval (in percent) beside each figure.

    `metrics`: one-shot records over seeds (columns method, sparsity, stage, seed, `value` as a fraction).
    `match` maps each published method to the lab's method that computes it (default `LAB_METHOD`);
    published rows whose method has no match, or whose sparsity the run lacks, get NaN. Columns:
    sparsity, method, published_accuracy, lab_method, n, our_accuracy, ci_low, ci_high, difference
    (ours minus published, percentage points).
    """
    published = mnist_mlp()
    match = LAB_METHOD if match is None else dict(checks.mapping("match", match))
    methods = list(dict.fromkeys(published["method"]))
    unknown = sorted(set(match) - set(methods))
    if unknown:
        raise ValueError(f"match names unknown published method(s) {unknown}; published: {', '.join(methods)}")
    rows = metrics[metrics["stage"] == stage] if "stage" in metrics.columns else metrics
    ours = stats.summarize(rows, ["method", "sparsity"], value, confidence) if len(rows) else None
    out = []
    for row in published.itertuples():
        lab = match.get(row.method)
        hit = pd.DataFrame()
        if lab is not None and ours is not None:
            hit = ours[(ours["method"] == lab) & checks.same_fraction(ours["sparsity"], row.sparsity)]
        found = hit.iloc[0] if len(hit) else None
        mean = 100 * found["mean"] if found is not None else float("nan")
        out.append({"sparsity": row.sparsity, "method": row.method, "published_accuracy": row.published_accuracy,
                    "lab_method": lab, "n": int(found["n"]) if found is not None else 0, "our_accuracy": mean,
                    "ci_low": 100 * found["ci_low"] if found is not None else float("nan"),
                    "ci_high": 100 * found["ci_high"] if found is not None else float("nan"),
                    "difference": mean - row.published_accuracy})
    return pd.DataFrame(out).sort_values(["sparsity", "method"], ignore_index=True)


# the lab's method/scope label -> the published method whose figures it reproduces (`reproduction`)
REPRODUCES = {"magnitude/global": "magnitude", "woodfisher/global": "woodfisher", "chita/global": "chita",
              "chita_pp/global": "chita++"}
MNIST_MLP_SOURCES = (CBS,)  # the sources of published MNIST MLP one-shot figures (`mnist_mlp`)
REPRODUCTION = ["sparsity", "method", "config", "n", "our_accuracy", "ci_low", "ci_high", "published_method",
                "published_accuracy", "inside", "source"]  # the columns of `reproduction`


def published_figure(method: str, sparsity: float) -> tuple[float, str] | None:
    """The published MNIST MLP one-shot accuracy (percent) of `method` at `sparsity` with its source, or None."""
    found = [f for f in FIGURES if f.source in MNIST_MLP_SOURCES and f.condition == method
             and checks.same_fraction(f.sparsity, sparsity)]
    return (found[0].value, found[0].source) if found else None


def reproduction(metrics: pd.DataFrame, plan: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Every method and sparsity of a one-shot run on the MNIST MLP in percent (n, mean, Student-t interval) with its
    configuration, beside the published figure of the method it reproduces (`REPRODUCES`) and whether that figure
    lies inside our interval; published methods the lab lacks (CBS) get rows of their own, without ours.

    `plan`: the study's plan table (columns method, config). Columns: sparsity, method, config, n, our_accuracy,
    ci_low, ci_high, published_method, published_accuracy, inside (published figure within our interval), source.
    Without one-shot rows (a run without the MNIST MLP) it is the published figures alone.
    """
    missing = {"method", "sparsity", "stage", "test_accuracy"} - set(getattr(metrics, "columns", ()))
    if missing or not {"method", "config"} <= set(getattr(plan, "columns", ())):
        raise ValueError("reproduction needs the metrics (method, sparsity, stage, test_accuracy) and plan "
                         "(method, config) tables of a second-order comparison")
    configs = dict(zip(plan["method"], plan["config"]))
    rows = metrics[metrics["stage"] == "one_shot"]
    ours = (stats.summarize(rows, ["method", "sparsity"], "test_accuracy", confidence) if len(rows)
            else pd.DataFrame(columns=["method", "sparsity"]))  # a run without the MNIST MLP: the figures alone
    out = []
    for row in ours.itertuples():
        theirs = REPRODUCES.get(row.method)
        figure = published_figure(theirs, row.sparsity) if theirs else None
        low, high = 100 * row.ci_low, 100 * row.ci_high
        out.append({"sparsity": row.sparsity, "method": row.method, "config": configs.get(row.method, ""),
                    "n": int(row.n), "our_accuracy": 100 * row.mean, "ci_low": low, "ci_high": high,
                    "published_method": theirs or "", "published_accuracy": figure[0] if figure else float("nan"),
                    "inside": bool(figure and low <= figure[0] <= high), "source": figure[1] if figure else ""})
    mine = set(REPRODUCES[m] for m in set(ours["method"]) if m in REPRODUCES)
    for f in FIGURES:
        if f.source in MNIST_MLP_SOURCES and f.condition not in mine and (
                ours.empty or checks.among(f.sparsity, list(ours["sparsity"]))):
            out.append({"sparsity": f.sparsity, "method": "", "config": "", "n": 0, "our_accuracy": float("nan"),
                        "ci_low": float("nan"), "ci_high": float("nan"), "published_method": f.condition,
                        "published_accuracy": f.value, "inside": False, "source": f.source})
    return pd.DataFrame(out, columns=REPRODUCTION).sort_values(["sparsity", "method", "published_method"],
                                                               ignore_index=True)


def reproduction_wide(table: pd.DataFrame) -> pd.DataFrame:
    """`reproduction`'s table as one row per method and one column per sparsity, each cell 'ours [interval] /
    published' in percent ('—' where a side is missing), and the method's configuration last."""
    def cell(row) -> str:
        ours = "—" if pd.isna(row.our_accuracy) else f"{row.our_accuracy:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]"
        return f"{ours} / {'—' if pd.isna(row.published_accuracy) else f'{row.published_accuracy:g}'}"

    named = table.assign(method=[m if isinstance(m, str) and m else f"({p}, published only)"
                                 for m, p in zip(table["method"], table["published_method"])],
                         cell=[cell(r) for r in table.itertuples()],
                         column=[f"{100 * s:g}%" for s in table["sparsity"]])
    wide = named.pivot_table(index="method", columns="column", values="cell", aggfunc="first", sort=False)
    configs = named.drop_duplicates("method").set_index("method")["config"].fillna("")
    wide = wide.rename_axis(columns=None).astype(object).fillna("")
    wide = wide.loc[sorted(wide.index, key=lambda m: m.startswith("("))]  # ours first, published-only rows last
    return wide.assign(config=configs.reindex(wide.index).tolist()).reset_index()


def published_comparison(metrics: pd.DataFrame, matching: pd.DataFrame, dataset: str, model: str,
                         value: str = "final_test_accuracy", confidence: float = 0.95) -> pd.DataFrame:
    """A lottery study's published figures for (`dataset`, `model`) beside ours: mean over seeds and its
    Student-t interval.

    Ours: the dense network's test accuracy (`value`: final or early-stop), and the sparsest level matching
    dense (zero tolerance) for the ticket and reinit; rows with no published figure for this setting are left out.
    """
    name = ALIASES.get(dataset, dataset)
    dense_figure = dense_accuracy(name, model)
    wanted = ([{"quantity": "dense test accuracy", "published": dense_figure[0], "source": dense_figure[1]}]
              if dense_figure else []) + [
        {"quantity": f"{f.condition} {MATCHES}", "published": f.value, "source": f.source}
        for f in FIGURES if (f.dataset, f.model, f.metric) == (name, model, MATCHES)]
    dense = metrics[metrics.condition == "dense"].drop_duplicates("seed").assign(quantity="dense test accuracy")
    checks.one_of("value", value, ("final_test_accuracy", "early_stop_test_accuracy"))
    ours = [stats.summarize(dense, ["quantity"], value, confidence)]
    if not matching.empty:
        zero = matching_interval(matching[matching.tolerance == matching.tolerance.min()], confidence)
        ours.append(zero.assign(quantity=[f"{c} {MATCHES}" for c in zero.condition]))
    ours_table = pd.concat(ours, ignore_index=True).set_index("quantity")
    rows = []
    for item in wanted:
        if item["quantity"] in ours_table.index:
            row = ours_table.loc[item["quantity"]]
            rows.append({"quantity": item["quantity"], "published": item["published"], "source": item["source"],
                         "dataset": dataset, "model": model, "ours_mean": row["mean"], "ours_ci_low": row["ci_low"],
                         "ours_ci_high": row["ci_high"], "seeds": int(row["n"])})
    return pd.DataFrame(rows, columns=["quantity", "published", "source", "dataset", "model", "ours_mean",
                                       "ours_ci_low", "ours_ci_high", "seeds"])


FRANKLE_2021 = ("Frankle, Dziugaite, Roy & Carbin, 'Pruning Neural Networks at Initialization: Why are We Missing "
                "the Mark?', ICLR 2021 (abstract and Section 5)")
# What Frankle et al. 2021 report for each comparison of notebook 07: (the claim "a beats b" holds, in words).
AT_INIT_DIRECTIONS = {
    "shuffled": (False, "shuffling within layers preserves or improves accuracy"),
    "reinit": (False, "re-drawing the initial weights preserves or improves accuracy"),
    "inverted": (True, "inverting the scores lowers accuracy for SNIP and SynFlow"),
    "inverted grasp": (False, "inverted GraSP does as well as or better than GraSP"),
    "random": (True, "the methods beat random pruning"),
    "after training": (True, "the methods stay below magnitude pruning after training and lottery-ticket rewinding "
                             "(theirs rewound to an early iteration, ours to the initialisation)"),
}
AGREEMENT = ["claim", "published", "source", "settings", "supported", "equivalent", "inconclusive", "contradicted",
             "consistent", "confirmed"]


def at_init_direction(a: str, b: str) -> tuple[bool, str] | None:
    """(the claim 'a beats b' holds, in words) as Frankle et al. 2021 report it for a notebook-07 comparison, None if
    the paper did not make it."""
    method, _, control = b.partition(" ")
    if control in ("shuffled", "reinit", "inverted"):
        key = "inverted grasp" if control == "inverted" and method.startswith("grasp/") else control
        return AT_INIT_DIRECTIONS[key]
    if b.startswith("random/"):
        return AT_INIT_DIRECTIONS["random"]
    if "after training" in a or a == "IMP ticket":
        return AT_INIT_DIRECTIONS["after training"]
    return None


def at_init_agreement(findings: pd.DataFrame) -> pd.DataFrame:
    """Per notebook-07 claim: what Frankle et al. 2021 report, our verdicts over its settings, and how many settings
    are consistent with the paper and how many confirm it.

    Where the paper reports the claim holding, a supported setting is consistent and confirms it. Where it reports
    the claim not holding ("preserves or improves accuracy"), every setting that is not supported is consistent, and
    a contradicted one (the control better) or an equivalent one (within the floor) confirms it: an inconclusive
    setting cannot show "no worse".
    Comparisons the paper did not make are left out.
    """
    needed = {"claim", "a", "b", "verdict"}
    if not isinstance(findings, pd.DataFrame) or not needed <= set(findings.columns):
        raise ValueError(f"findings must be the table findings.evaluate returns (columns {sorted(needed)})")
    rows = []
    for (claim, a, b), group in findings.groupby(["claim", "a", "b"], sort=False):
        direction = at_init_direction(a, b)
        if direction is None:
            continue
        holds, text = direction
        counts = {v: int((group.verdict == v).sum()) for v in ("supported", "equivalent", "inconclusive", "contradicted")}
        rows.append({"claim": claim, "published": text, "source": FRANKLE_2021, "settings": len(group), **counts,
                     "consistent": counts["supported"] if holds else len(group) - counts["supported"],
                     "confirmed": counts["supported"] if holds else counts["contradicted"] + counts["equivalent"]})
    return pd.DataFrame(rows, columns=AGREEMENT)
