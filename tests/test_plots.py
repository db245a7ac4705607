"""Every figure in oneshot_lab.plots on small synthetic tables, and the data preparation behind notebook 02's."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from oneshot_lab import curvature, experiment, plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened."""
    yield
    plt.close("all")


def _metrics(stages=("one_shot", "finetuned"), scopes=("global", "layer"), criteria=("magnitude", "obd_ggn"),
             sparsities=(0.5, 0.9), seeds=(0, 1)) -> pd.DataFrame:
    """A metrics table shaped like experiment.one_shot's, with a dense row per seed."""
    rows = [{"method": "dense", "criterion": "none", "scope": "none", "sparsity": 0.0, "stage": "dense",
             "seed": seed, "test_accuracy": 0.9} for seed in seeds]
    for stage in stages:
        for scope in scopes:
            for i, criterion in enumerate(criteria):
                for s in sparsities:
                    for seed in seeds:
                        rows.append({"method": f"{criterion}/{scope}", "criterion": criterion, "scope": scope,
                                     "sparsity": s, "stage": stage, "seed": seed,
                                     "test_accuracy": 0.9 - s * (0.5 + 0.1 * i) + 0.01 * seed})
    return pd.DataFrame(rows)


def _diagonals(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """An exact positive diagonal on two layers, a close estimate and a noisy signed one."""
    gen = torch.Generator().manual_seed(seed)
    exact = {"0.weight": torch.rand(20, 10, generator=gen) + 1e-3, "2.weight": torch.rand(5, 20, generator=gen) + 1e-3}
    close = {n: d * 1.1 for n, d in exact.items()}
    noisy = {n: d + torch.randn(d.shape, generator=gen) for n, d in exact.items()}
    return {"hessian": exact, "ggn": close, "hutchinson": noisy}


# --- older figures -------------------------------------------------------------------------------------------------

def test_accuracy_vs_sparsity_draws_one_line_per_method_and_the_dense_line():
    ax = plots.accuracy_vs_sparsity(_metrics(scopes=("global",)), stage="one_shot", title="t")
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"magnitude/global", "obd_ggn/global"} <= set(ax.get_legend_handles_labels()[1])
    assert any(label.startswith("dense (0.900)") for label in labels)
    assert ax.get_xlabel().startswith("sparsity") and ax.get_ylabel() == "test accuracy" and ax.get_title() == "t"


def test_layer_density_bars_uniform_line_collapsed_marker_and_bad_sparsity():
    layers = pd.DataFrame([{"method": m, "sparsity": 0.9, "layer": layer, "density": d, "collapsed": d == 0}
                           for m, ds in {"a/global": (0.2, 0.0), "b/global": (0.1, 0.1)}.items()
                           for layer, d in zip(("0.weight", "2.weight"), ds)])
    ax = plots.layer_density(layers, 0.9)
    assert len([p for p in ax.patches if p.get_height() > 0]) == 3  # four bars, one of height 0
    assert any(math.isclose(line.get_ydata()[0], 0.1) for line in ax.get_lines())
    assert [t.get_text() for t in ax.texts] == ["collapsed"]
    with pytest.raises(ValueError, match="no layer rows at sparsity 0.5"):
        plots.layer_density(layers, 0.5)


def test_sweep_curves_log_compression_axis_and_baselines():
    metrics = _metrics(stages=("one_shot",), scopes=("global",), criteria=("magnitude", "random", "obd_ggn"))
    ax = plots.sweep_curves(metrics, stage="one_shot")
    assert ax.get_xscale() == "function"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.9"]
    assert any(label.startswith("dense (0.900 ± 0.000)") for label in ax.get_legend_handles_labels()[1])
    assert plots.sweep_curves(metrics, log_compression=False).get_xscale() == "linear"


# --- notebook 02: data preparation ---------------------------------------------------------------------------------

def test_convergence_labels_rows_by_probe_count_and_drops_the_exact_rows():
    diags = _diagonals()
    table = curvature.convergence(diags["hessian"], {1: diags["hutchinson"], 10: diags["ggn"]})
    assert list(table["curvature"]) == ["hutchinson_1"] * 2 + ["hutchinson_10"] * 2
    assert list(table["probes"]) == [1, 1, 10, 10]
    assert np.allclose(table[table.probes == 10]["relative_error"], 0.1)
    with pytest.raises(ValueError, match="positive int probe counts"):
        curvature.convergence(diags["hessian"], {"hutchinson_4": diags["ggn"]})
    with pytest.raises(ValueError, match="estimates is empty"):
        curvature.convergence(diags["hessian"], {})


def test_agreement_spearman_and_jaccard_against_the_reference():
    magnitude = {"a": torch.arange(1.0, 9.0), "b": torch.full((4,), 0.01) * torch.arange(1.0, 5.0)}
    scores = {"magnitude": magnitude, "reversed": {n: -s for n, s in magnitude.items()}}
    table = experiment.agreement(scores, "magnitude", 0.25, scope="global")
    assert list(table.columns) == ["criterion", "parameter", "spearman_vs_magnitude", "kept_jaccard"]
    by = table.set_index(["criterion", "parameter"])
    assert by.loc[("magnitude", "a"), "spearman_vs_magnitude"] == pytest.approx(1.0)
    assert by.loc[("reversed", "a"), "spearman_vs_magnitude"] == pytest.approx(-1.0)
    assert by.loc[("magnitude", "a"), "kept_jaccard"] == 1.0
    # 3 of 12 pruned globally: magnitude drops 3 of b, reversed drops the 3 largest of a
    assert by.loc[("reversed", "a"), "kept_jaccard"] == pytest.approx(5 / 8)
    assert by.loc[("reversed", "b"), "kept_jaccard"] == pytest.approx(1 / 4)
    emptied = experiment.agreement({"magnitude": magnitude}, "magnitude", 4 / 12)
    assert math.isnan(emptied.set_index("parameter").loc["b", "kept_jaccard"])  # both masks empty b
    with pytest.raises(ValueError, match="reference 'snip' is not among the scores"):
        experiment.agreement(scores, "snip", 0.5)
    with pytest.raises(ValueError):
        experiment.agreement(scores, "magnitude", 1.5)


# --- notebook 02: figures ------------------------------------------------------------------------------------------

def test_curvature_scatter_one_log_log_panel_per_estimate_negatives_red():
    diags = _diagonals()
    fig = plots.curvature_scatter(diags, "hessian", ["0.weight", "2.weight"], max_points=150, seed=3, title="T")
    assert [ax.get_title() for ax in fig.axes] == ["ggn", "hutchinson"] and fig._suptitle.get_text() == "T"
    for ax in fig.axes:
        assert ax.get_xscale() == ax.get_yscale() == "log"
        positive, negative = ax.collections[:2]
        assert len(positive.get_offsets()) + len(negative.get_offsets()) == 150
        assert to_rgb(negative.get_facecolor()[0]) == pytest.approx(to_rgb("tab:red"))
        assert len(ax.get_lines()) == 1  # the y = x guide
    assert len(fig.axes[0].collections[1].get_offsets()) == 0 and len(fig.axes[1].collections[1].get_offsets()) > 0
    again = plots.curvature_scatter(diags, "hessian", ["0.weight", "2.weight"], max_points=150, seed=3)
    assert np.array_equal(again.axes[1].collections[0].get_offsets(), fig.axes[1].collections[0].get_offsets())


def test_curvature_scatter_rejects_bad_inputs():
    diags = _diagonals()
    with pytest.raises(ValueError, match="reference 'exact' is not among"):
        plots.curvature_scatter(diags, "exact", ["0.weight"])
    with pytest.raises(ValueError, match="no entry for 9.weight"):
        plots.curvature_scatter(diags, "hessian", ["0.weight", "9.weight"])
    with pytest.raises(ValueError, match="names is empty"):
        plots.curvature_scatter(diags, "hessian", [])
    with pytest.raises(ValueError, match="no positive 'hessian' entries"):
        plots.curvature_scatter({**diags, "hessian": {n: -d for n, d in diags["hessian"].items()}}, "hessian",
                                ["0.weight"])


def test_estimator_convergence_lines_per_parameter_and_the_guide():
    diags = _diagonals()
    table = curvature.convergence(diags["hessian"], {1: diags["hutchinson"], 100: diags["ggn"]})
    ax = plots.estimator_convergence(table)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    labels = ax.get_legend_handles_labels()[1]
    assert {"0.weight", "2.weight", "∝ 1/√probes"} <= set(labels)
    guide = next(line for line in ax.get_lines() if line.get_label() == "∝ 1/√probes")
    assert list(guide.get_xdata()) == [1, 100]
    start = table[table.probes == 1]["relative_error"].median()
    assert guide.get_ydata() == pytest.approx([start, start / 10])
    with pytest.raises(ValueError, match="needs columns \\['probes'\\]"):
        plots.estimator_convergence(table.drop(columns="probes"))


def test_saliency_vs_magnitude_one_colour_per_layer_positive_points_only():
    magnitude = {"0.weight": torch.tensor([0.0, 0.1, 0.2, 0.3]), "2.weight": torch.tensor([0.5, 0.6])}
    obd = {"0.weight": torch.tensor([1.0, 0.0, 2.0, 3.0]), "2.weight": torch.tensor([4.0, 5.0])}
    scores = {"magnitude": magnitude, "obd_ggn": obd}
    ax = plots.saliency_vs_magnitude(scores, "obd_ggn", ["0.weight", "2.weight"], title="T")
    assert len(ax.collections[0].get_offsets()) == 4  # the zero magnitude and the zero saliency are dropped
    assert ax.get_legend_handles_labels()[1] == ["0.weight", "2.weight"]
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_title() == "T"
    assert ax.get_ylabel().startswith("obd_ggn saliency")
    capped = plots.saliency_vs_magnitude(scores, "obd_ggn", max_points=1)  # names default to the score's layers
    assert len(capped.collections[0].get_offsets()) == 1  # the first entry of 0.weight has |w| = 0
    with pytest.raises(ValueError, match="no 'snip' entry"):
        plots.saliency_vs_magnitude(scores, "snip")
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.saliency_vs_magnitude({"magnitude": magnitude, "zero": {n: 0 * t for n, t in obd.items()}}, "zero")


def _calibration() -> pd.DataFrame:
    """Two OBD labels and a magnitude baseline (last) at three deletion fractions."""
    return pd.DataFrame([{"label": label, "fraction": f, "measured": k * f, "predicted": k * f / 3}
                         for k, label in enumerate(("OBD ggn", "OBD fisher", "magnitude order"), start=1)
                         for f in (0.1, 0.3, 0.5)])


def test_calibration_two_panels_baseline_grey_and_the_perfect_line():
    fig = plots.calibration(_calibration())
    left, right = fig.axes
    assert left.get_yscale() == "log" and right.get_xscale() == right.get_yscale() == "log"
    grey = [line for line in left.get_lines()  # lines with data: seaborn adds empty legend proxies too
            if len(line.get_xdata()) and to_rgb(line.get_color()) == pytest.approx((0.5, 0.5, 0.5))]
    assert len(grey) == 2  # measured (solid) and predicted (dashed) of the baseline
    assert sorted(line.get_linestyle() for line in grey) == ["-", "--"]
    assert [line.get_label() for line in right.get_lines()] == ["perfect prediction"]
    assert len(right.collections[0].get_offsets()) == 9
    other = plots.calibration(_calibration(), baseline="OBD ggn")
    assert any(to_rgb(line.get_color()) == pytest.approx((0.5, 0.5, 0.5)) for line in other.axes[0].get_lines())
    with pytest.raises(ValueError, match="needs columns \\['predicted'\\]"):
        plots.calibration(_calibration().drop(columns="predicted"))
    with pytest.raises(ValueError, match="baseline 'random' is not a label"):
        plots.calibration(_calibration(), baseline="random")


def test_accuracy_grid_panels_shared_legend_and_missing_stage():
    fig = plots.accuracy_grid(_metrics(), title="T")
    assert [ax.get_title() for ax in fig.axes] == ["one-shot, global scope", "one-shot, layer scope",
                                                   "finetuned, global scope", "finetuned, layer scope"]
    assert all(ax.get_legend() is None for ax in fig.axes)
    assert len(fig.legends) == 1 and fig._suptitle.get_text() == "T"
    assert {"magnitude", "obd_ggn"} <= {t.get_text() for t in fig.legends[0].get_texts()}
    assert all(any(line.get_label().startswith("dense") for line in ax.get_lines()) for ax in fig.axes)
    with pytest.raises(ValueError, match="no rows for finetuned"):
        plots.accuracy_grid(_metrics(stages=("one_shot",)))
