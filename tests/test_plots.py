"""The data each figure of oneshot_lab.plots draws, checked against the input table with pandas and scipy."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from oneshot_lab.pruning import curvature
from oneshot_lab.analysis import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test opened."""
    yield
    plt.close("all")


def _metrics(stages=("one_shot", "finetuned"), scopes=("global", "layer"), criteria=("magnitude", "obd_ggn"),
             sparsities=(0.5, 0.9), seeds=(0, 1, 2)) -> pd.DataFrame:
    """A metrics table shaped like the one-shot study's, with a dense row per seed; values vary over seeds."""
    noise = {0: 0.0, 1: 0.013, 2: -0.004}
    rows = [{"method": "dense", "criterion": "none", "scope": "none", "sparsity": 0.0, "stage": "dense",
             "seed": seed, "test_accuracy": 0.9 + noise[seed]} for seed in seeds]
    for stage in stages:
        for scope in scopes:
            for i, criterion in enumerate(criteria):
                for s in sparsities:
                    for seed in seeds:
                        rows.append({"method": f"{criterion}/{scope}", "criterion": criterion, "scope": scope,
                                     "sparsity": s, "stage": stage, "seed": seed,
                                     "test_accuracy": 0.9 - s * (0.5 + 0.1 * i) + noise[seed] * (1 + i + s)})
    return pd.DataFrame(rows)


def _interval(values: pd.Series, confidence: float = 0.95) -> tuple[float, float]:
    """The Student-t interval of `values` computed by scipy (the oracle)."""
    return scipy_stats.t.interval(confidence, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values))


def _curves(ax: plt.Axes) -> list[list[tuple[float, float]]]:
    """The (x, y) points of each data line of `ax` (dense, threshold and guide lines left out), sorted."""
    guides = ("dense", "2-point threshold", "uniform", "∝")
    return sorted([tuple(map(float, p)) for p in line.get_xydata()] for line in ax.get_lines()
                  if len(line.get_xdata()) and not line.get_label().startswith(guides))


def _same(actual, expected) -> None:
    """Assert two (nested) lists of numbers are equal up to rounding."""
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=1e-6)


def _expected_curves(rows: pd.DataFrame, by: list[str], x: str, y: str) -> list[list[tuple[float, float]]]:
    """Mean `y` per `x` for each group of `by`, as sorted lists of points."""
    means = rows.groupby([*by, x])[y].mean().reset_index()
    return sorted([list(zip(g[x], g[y])) for _, g in means.groupby(by)])


def _bands(ax: plt.Axes) -> list[tuple[float, float, float]]:
    """(x, low, high) at every x of every filled band of `ax`, sorted."""
    out = []
    for band in ax.collections:
        vertices = band.get_paths()[0].vertices
        for x in np.unique(vertices[:, 0]):
            ys = vertices[vertices[:, 0] == x, 1]
            out.append((float(x), float(ys.min()), float(ys.max())))
    return sorted(out)


def _expected_bands(rows: pd.DataFrame, by: list[str], x: str, y: str) -> list[tuple[float, float, float]]:
    """(x, low, high) of the scipy t-interval of `y` per group of `by` and `x`, sorted."""
    return sorted((float(key[-1]), *map(float, _interval(g[y]))) for key, g in rows.groupby([*by, x]))


def _dense(ax: plt.Axes) -> tuple[float, tuple[float, float] | None]:
    """The y of the dense line of `ax`, and the y extent of its band (None if it has none)."""
    (line,) = [line for line in ax.get_lines() if line.get_label().startswith("dense")]
    bands = [p for p in ax.patches if p.get_label() == "dense band"]
    extent = (bands[0].get_y(), bands[0].get_y() + bands[0].get_height()) if bands else None
    return float(line.get_ydata()[0]), extent


# --- accuracy against sparsity -------------------------------------------------------------------------------------

def test_accuracy_vs_sparsity_facets_hold_the_rows_of_their_stage_and_scope():
    metrics = _metrics()
    grid = plots.accuracy_vs_sparsity(metrics, hue="criterion", row="stage", col="scope", title="T")
    pruned = metrics[metrics.stage != "dense"]
    pd.testing.assert_frame_equal(grid.data.reset_index(drop=True), pruned.reset_index(drop=True))
    assert set(grid.axes_dict) == {(s, c) for s in ("one_shot", "finetuned") for c in ("global", "layer")}
    for (i, j, _), rows in grid.facet_data():
        expected = pruned[(pruned.stage == grid.row_names[i]) & (pruned.scope == grid.col_names[j])]
        pd.testing.assert_frame_equal(rows, expected)
    assert grid.figure.get_suptitle() == "T"


def test_accuracy_vs_sparsity_lines_are_group_means_and_bands_t_intervals():
    metrics = _metrics()
    grid = plots.accuracy_vs_sparsity(metrics, hue="criterion", row="stage", col="scope")
    for (stage, scope), ax in grid.axes_dict.items():
        rows = metrics[(metrics.stage == stage) & (metrics.scope == scope)]
        _same(_curves(ax), _expected_curves(rows, ["criterion"], "sparsity", "test_accuracy"))
        _same(_bands(ax), _expected_bands(rows, ["criterion"], "sparsity", "test_accuracy"))
    assert "band: 95% t-interval over seeds (n=3)" in grid.legend.get_title().get_text()
    assert {"magnitude", "obd_ggn", "dense (unpruned)"} <= {t.get_text() for t in grid.legend.texts}


def test_accuracy_vs_sparsity_dense_mean_and_band_in_every_facet():
    metrics = _metrics()
    dense = metrics[metrics.stage == "dense"].test_accuracy
    grid = plots.accuracy_vs_sparsity(metrics, hue="criterion", col="stage", confidence=0.9)  # dense: stage 'dense'
    assert list(grid.axes_dict) == ["one_shot", "finetuned"]
    for ax in grid.axes.flat:
        y, extent = _dense(ax)
        assert y == pytest.approx(dense.mean())
        assert extent == pytest.approx(_interval(dense, 0.9))
    assert "band: 90% t-interval over seeds (n=6)" in grid.legend.get_title().get_text()  # 2 scopes x 3 seeds a point


def test_accuracy_vs_sparsity_dense_rows_belong_to_their_own_setting():
    a, b = _metrics(stages=("one_shot",)).assign(setting="a"), _metrics(stages=("one_shot",)).assign(setting="b")
    b = b.assign(test_accuracy=b.test_accuracy - 0.2)
    metrics = pd.concat([a, b], ignore_index=True)
    grid = plots.accuracy_vs_sparsity(metrics, row="setting", col="stage", stage="one_shot", style="kind")
    assert set(grid.axes_dict) == {("a", "one_shot"), ("b", "one_shot")}
    for (setting, _), ax in grid.axes_dict.items():
        dense = metrics[(metrics.stage == "dense") & (metrics.setting == setting)].test_accuracy
        assert _dense(ax)[0] == pytest.approx(dense.mean())


def test_accuracy_vs_sparsity_baseline_kind_and_log_compression_axis():
    metrics = _metrics(stages=("one_shot",), scopes=("global",), criteria=("magnitude", "random", "obd_ggn"))
    grid = plots.accuracy_vs_sparsity(metrics, style="kind", log_compression=True)
    expected = {"magnitude/global": "magnitude baseline", "random/global": "random baseline",
                "obd_ggn/global": "candidate"}
    assert dict(zip(grid.data.method, grid.data.kind)) == expected
    ax = grid.ax
    assert ax.get_xscale() == "function"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "0.9"]
    (top,) = [a for a in grid.figure.axes if a is not ax]
    assert [t.get_text() for t in top.get_xticklabels()] == ["2×", "10×"]
    assert top.get_xticks() == pytest.approx(ax.get_xticks())
    assert plots.accuracy_vs_sparsity(metrics).ax.get_xscale() == "linear"


def test_accuracy_vs_sparsity_rejects_missing_columns_and_stages():
    metrics = _metrics(stages=("one_shot",))
    with pytest.raises(ValueError, match="needs columns \\['setting'\\]"):
        plots.accuracy_vs_sparsity(metrics, col="setting")
    with pytest.raises(ValueError, match="no rows of stage finetuned"):
        plots.accuracy_vs_sparsity(metrics, stage="finetuned")


# --- where the weights go ------------------------------------------------------------------------------------------

def test_layer_density_bars_are_the_densities_uniform_line_and_collapsed_marker():
    layers = pd.DataFrame([{"method": m, "sparsity": 0.9, "layer": layer, "density": d, "collapsed": d == 0}
                           for m, ds in {"a/global": (0.2, 0.0), "b/global": (0.1, 0.1)}.items()
                           for layer, d in zip(("0.weight", "2.weight"), ds)])
    ax = plots.layer_density(layers, 0.9)
    methods = [t.get_text() for t in ax.get_legend().get_texts() if "/" in t.get_text()]  # hue order
    bars = {(method, layer.get_text()): float(v) for method, c in zip(methods, ax.containers)
            for layer, v in zip(ax.get_xticklabels(), c.datavalues)}
    assert bars == {(r.method, r.layer): pytest.approx(r.density) for r in layers.itertuples()}
    (uniform,) = [line for line in ax.get_lines() if line.get_label().startswith("uniform")]
    assert uniform.get_ydata()[0] == pytest.approx(0.1)
    assert [t.get_text() for t in ax.texts] == ["collapsed"]
    with pytest.raises(ValueError, match="no layer rows at sparsity 0.5"):
        plots.layer_density(layers, 0.5)


# --- curvature and saliency ----------------------------------------------------------------------------------------

def _diagonals(seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """An exact positive diagonal on two layers, a close estimate and a noisy signed one."""
    gen = torch.Generator().manual_seed(seed)
    exact = {"0.weight": torch.rand(20, 10, generator=gen) + 1e-3, "2.weight": torch.rand(5, 20, generator=gen) + 1e-3}
    close = {n: d * 1.1 for n, d in exact.items()}
    noisy = {n: d + torch.randn(d.shape, generator=gen) for n, d in exact.items()}
    return {"hessian": exact, "ggn": close, "hutchinson": noisy}


def test_curvature_scatter_plots_each_estimate_against_the_reference():
    values = curvature.values_table(_diagonals(), ["0.weight", "2.weight"], max_points=150, seed=3)
    grid = plots.curvature_scatter(values, "hessian", title="T")
    assert list(grid.axes_dict) == ["ggn", "hutchinson"] and grid.figure.get_suptitle() == "T"
    wide = values.pivot(index=["parameter", "entry"], columns="label", values="value")
    for estimate, ax in grid.axes_dict.items():
        rows = grid.data[grid.data.estimate == estimate].set_index(["parameter", "entry"])
        assert len(rows) == 150
        assert rows.exact.to_numpy() == pytest.approx(wide.loc[rows.index, "hessian"].to_numpy())
        assert rows.absolute.to_numpy() == pytest.approx(wide.loc[rows.index, estimate].abs().to_numpy())
        assert ((rows.sign == "estimate < 0 (|·|)") == (wide.loc[rows.index, estimate] < 0).to_numpy()).all()
        offsets = np.concatenate([c.get_offsets() for c in ax.collections])
        _same(sorted(map(tuple, offsets)), sorted(zip(rows.exact, rows.absolute)))
        assert ax.get_xscale() == ax.get_yscale() == "log"
    assert (grid.data[grid.data.estimate == "ggn"].sign == "estimate > 0").all()
    assert (grid.data[grid.data.estimate == "hutchinson"].sign != "estimate > 0").any()


def test_curvature_scatter_rejects_bad_inputs():
    values = curvature.values_table(_diagonals(), ["0.weight"], max_points=50)
    with pytest.raises(ValueError, match="no label 'exact'"):
        plots.curvature_scatter(values, "exact")
    with pytest.raises(ValueError, match="only the reference"):
        plots.curvature_scatter(values[values.label == "hessian"], "hessian")
    with pytest.raises(ValueError, match="no positive 'hessian' entries"):
        plots.curvature_scatter(values.assign(value=-values.value.abs()), "hessian")
    with pytest.raises(ValueError, match="needs columns \\['entry'\\]"):
        plots.curvature_scatter(values.drop(columns="entry"), "hessian")


def test_estimator_convergence_lines_per_parameter_and_the_guide():
    diags = _diagonals()
    table = curvature.convergence(diags["hessian"], {1: diags["hutchinson"], 100: diags["ggn"]})
    ax = plots.estimator_convergence(table)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    guide = next(line for line in ax.get_lines() if line.get_label() == "∝ 1/√probes")
    start = table[table.probes == 1]["relative_error"].median()
    assert list(guide.get_xdata()) == [1, 100] and guide.get_ydata() == pytest.approx([start, start / 10])
    curves = [line.get_xydata().tolist() for line in ax.get_lines() if line is not guide and len(line.get_xdata())]
    _same(sorted(curves), _expected_curves(table, ["parameter"], "probes", "relative_error"))
    with pytest.raises(ValueError, match="needs columns \\['probes'\\]"):
        plots.estimator_convergence(table.drop(columns="probes"))


def test_saliency_vs_magnitude_points_are_the_positive_pairs_of_the_table():
    magnitude = {"0.weight": torch.tensor([0.0, 0.1, 0.2, 0.3]), "2.weight": torch.tensor([0.5, 0.6])}
    obd = {"0.weight": torch.tensor([1.0, 0.0, 2.0, 3.0]), "2.weight": torch.tensor([4.0, 5.0])}
    values = curvature.values_table({"magnitude": magnitude, "obd_ggn": obd}, ["0.weight", "2.weight"], None)
    ax = plots.saliency_vs_magnitude(values, "obd_ggn", title="T")
    expected = [(0.2, 2.0), (0.3, 3.0), (0.5, 4.0), (0.6, 5.0)]  # zero magnitude and zero saliency dropped
    _same(sorted(map(tuple, ax.collections[0].get_offsets())), expected)
    assert ax.get_legend_handles_labels()[1] == ["0.weight", "2.weight"]
    assert ax.get_xscale() == ax.get_yscale() == "log" and ax.get_title() == "T"
    with pytest.raises(ValueError, match="no label 'taylor'"):
        plots.saliency_vs_magnitude(values, "taylor")
    with pytest.raises(ValueError, match="nothing to draw"):
        plots.saliency_vs_magnitude(values.assign(value=0.0), "obd_ggn")


def _calibration() -> pd.DataFrame:
    """Two OBD labels and a magnitude baseline (last) at three deletion fractions."""
    return pd.DataFrame([{"label": label, "fraction": f, "measured": k * f, "predicted": k * f / 3}
                         for k, label in enumerate(("OBD ggn", "OBD fisher", "magnitude order"), start=1)
                         for f in (0.1, 0.3, 0.5)])


def test_calibration_curves_and_scatter_are_the_table():
    table = _calibration()
    fig = plots.calibration(table)
    left, right = fig.axes
    lines = [line.get_xydata().tolist() for line in left.get_lines() if len(line.get_xdata())]
    _same(sorted(lines), sorted(_expected_curves(table, ["label"], "fraction", "measured")
                                                 + _expected_curves(table, ["label"], "fraction", "predicted")))
    _same(sorted(map(tuple, right.collections[0].get_offsets())), sorted(zip(table.predicted, table.measured)))
    assert left.get_yscale() == "log" and right.get_xscale() == right.get_yscale() == "log"
    with pytest.raises(ValueError, match="needs columns \\['predicted'\\]"):
        plots.calibration(table.drop(columns="predicted"))
    with pytest.raises(ValueError, match="baseline 'random' is not a label"):
        plots.calibration(table, baseline="random")


# --- lottery tickets -----------------------------------------------------------------------------------------------

def _tickets() -> pd.DataFrame:
    """Ticket and random-reinit rows over three seeds and two levels, and a dense row per seed."""
    rows = [{"condition": "dense", "weights_remaining": 100.0, "seed": s, "early_stop_test_accuracy": 0.95 + 0.01 * s}
            for s in range(3)]
    rows += [{"condition": c, "weights_remaining": w, "seed": s,
              "early_stop_test_accuracy": 0.9 - (0.1 if c == "random_reinit" else 0) - w / 1000 + 0.007 * s ** 2}
             for c in ("ticket", "random_reinit") for w in (51.2, 26.2) for s in range(3)]
    return pd.DataFrame(rows)


def test_ticket_curves_means_t_interval_bands_and_dense():
    metrics = _tickets()
    ax = plots.ticket_curves(metrics, title="T")
    pruned, y = metrics[metrics.condition != "dense"], "early_stop_test_accuracy"
    _same(_curves(ax), _expected_curves(pruned, ["condition"], "weights_remaining", y))
    _same(_bands(ax), _expected_bands(pruned, ["condition"], "weights_remaining", y))
    dense = metrics[metrics.condition == "dense"][y]
    assert _dense(ax) == (pytest.approx(dense.mean()), pytest.approx(_interval(dense)))
    assert ax.get_legend().get_title().get_text() == "band: 95% t-interval over seeds (n=3)"


def test_instability_and_interpolation_plot_percentages_with_t_interval_bands():
    barriers = pd.DataFrame([{"split": sp, "rewind_iteration": k, "network": n, "seed": s,
                              "barrier": 0.1 / (1 + k) + 0.01 * s + (0.02 if n == "ticket" else 0)}
                             for sp in ("test", "train") for k in (0, 10) for n in ("dense", "ticket")
                             for s in range(3)])
    ax = plots.instability(barriers)
    test = barriers[barriers.split == "test"].assign(pct=lambda f: 100 * f.barrier)
    _same(_curves(ax), _expected_curves(test, ["network"], "rewind_iteration", "pct"))
    _same(_bands(ax), _expected_bands(test, ["network"], "rewind_iteration", "pct"))
    assert "t-interval over seeds (n=3)" in ax.get_legend().get_title().get_text()
    path = pd.DataFrame([{"split": "test", "alpha": a, "rewind_iteration": k, "network": "dense", "seed": s,
                          "error": 0.1 + a * (1 - a) / (1 + k) + 0.01 * s} for a in (0.0, 0.5, 1.0)
                         for k in (0, 10) for s in range(2)])
    ax = plots.interpolation(path)
    pct = path.assign(pct=lambda f: 100 * f.error)
    _same(_curves(ax), _expected_curves(pct, ["rewind_iteration"], "alpha", "pct"))
    assert math.isclose(_bands(ax)[0][2] - _bands(ax)[0][1], 2 * scipy_stats.t.ppf(0.975, 1) * pct.pct.iloc[:2].sem())
