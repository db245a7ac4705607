"""Lottery findings: the claims pair the right rows, matching intervals agree with scipy, published figures line up."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from oneshot_lab.analysis import published, ticket_findings
from oneshot_lab.studies.lottery import rewinding, stability, ticket_study

STUDY = ticket_study.TicketStudy(imp=rewinding.IMPConfig(levels=2, controls=["reinit"]), late_rewind=50,
                                 retrain_modes=["lr_rewind"], budget_levels=[2], control_budget=3, instability_level=2,
                                 instability=stability.InstabilityConfig(rewind_iterations=[0, 50]))
SEEDS = [0, 1, 2, 3]


def metrics():
    """Records where every difference is known: ticket = reinit + 0.1 + 0.01 * seed, etc."""
    rows = []
    for s in SEEDS:
        for level, w in ((1, 50.0), (2, 25.0)):
            base = 0.6 - 0.05 * level
            rows += [dict(experiment="controls", condition="ticket", retrain="weight_rewind", rewind_iteration=0,
                          value=base + 0.1 + 0.01 * s),
                     dict(experiment="controls", condition="reinit", retrain="weight_rewind", rewind_iteration=0,
                          value=base),
                     dict(experiment="late_rewind", condition="ticket", retrain="weight_rewind", rewind_iteration=50,
                          value=base + 0.1 + 0.01 * s - 0.02 * (s % 2 * 2 - 1)),
                     dict(experiment="retrain_modes", condition="ticket", retrain="lr_rewind", rewind_iteration=0,
                          value=base + 0.05)]
            rows = [{**r, "level": r.get("level", level), "weights_remaining": r.get("weights_remaining", w),
                     "seed": r.get("seed", s)} for r in rows]
        rows.append(dict(experiment="budget", condition="reinit_x3", retrain="weight_rewind", rewind_iteration=0,
                         value=0.5 + 0.2, level=2, weights_remaining=25.0, seed=s))
    frame = pd.DataFrame(rows).rename(columns={"value": "final_val_accuracy"})
    return frame.assign(final_test_accuracy=frame.final_val_accuracy)


def test_claims_pair_the_rows_they_name():
    table = ticket_findings.evaluate(STUDY, metrics()).findings.set_index(["claim", "setting"])
    first = table.loc[("ticket beats reinit, both at 1x budget", "experiment=controls, level=1, weights_remaining=50")]
    differences = 0.1 + 0.01 * np.array(SEEDS)
    low, high = scipy_stats.t.interval(0.95, len(SEEDS) - 1, differences.mean(), scipy_stats.sem(differences))
    assert first.mean_difference == pytest.approx(differences.mean())
    assert (first.ci_low, first.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert first.verdict == "supported" and first.agree == 4
    longer = table.loc[("ticket at 1x beats reinit at 3x budget", "level=2, weights_remaining=25")]
    assert longer.mean_difference == pytest.approx(0.1 + 0.015 + 0.5 - 0.7 + 0.0)  # ticket 0.6 + 0.01 s vs 0.7
    assert longer.verdict == "contradicted"
    assert table.loc[("reinit gains from 3x budget (not converged at 1x)", "level=2, weights_remaining=25")].verdict \
        == "supported"
    rewind = table.loc[("rewinding to k=50 beats rewinding to the init (1x budget)",
                        "condition=ticket, level=1, weights_remaining=50")]
    assert rewind.mean_difference == pytest.approx(0.0) and rewind.verdict == "inconclusive" and rewind.n == 4
    mode = table.loc[("lr_rewind beats weight_rewind (same budget)",
                      "condition=ticket, rewind_iteration=0, level=2, weights_remaining=25")]
    assert mode.mean_difference == pytest.approx(-0.05 - 0.015) and mode.verdict == "contradicted"
    assert len(ticket_findings.claims(STUDY)) == 5


def test_stability_claims_favour_the_lower_barrier():
    rows = [dict(seed=s, network=n, rewind_iteration=k, split=split,
                 barrier=(0.10 if n == "ticket" and k == 0 else 0.01) + 0.001 * s)
            for s in SEEDS for n in ("dense", "ticket") for k in (0, 50) for split in ("val", "test")]
    table = ticket_findings.evaluate(STUDY, metrics(), pd.DataFrame(rows)).findings.set_index("claim")
    assert table.loc["ticket is more stable rewound to k=50 than to k=0"].mean_difference == pytest.approx(0.09)
    assert table.loc["ticket is more stable rewound to k=50 than to k=0"].verdict == "supported"
    dense = table.loc["dense is more stable than the ticket"]
    assert list(dense.setting) == ["split=val, rewind_iteration=0", "split=val, rewind_iteration=50"]
    assert list(dense.verdict) == ["supported", "inconclusive"]
    with pytest.raises(ValueError, match="unknown value 'test_accuracy'"):
        ticket_findings.claims(STUDY, "test_accuracy")


def test_matching_interval_counts_no_match_as_dense_and_agrees_with_scipy():
    matching = pd.DataFrame({"seed": [0, 1, 2], "condition": "ticket", "tolerance": 0.0,
                             "weights_remaining": [12.5, np.nan, 25.0]})
    row = ticket_findings.matching_interval(matching).iloc[0]
    values = np.array([12.5, 100.0, 25.0])
    low, high = scipy_stats.t.interval(0.95, 2, values.mean(), scipy_stats.sem(values))
    assert row["n"] == 3 and row["mean"] == pytest.approx(values.mean())
    assert (row.ci_low, row.ci_high) == (pytest.approx(low), pytest.approx(high))
    with pytest.raises(ValueError, match="matching must be the table"):
        ticket_findings.matching_interval(matching.drop(columns="tolerance"))


def test_published_comparison_puts_the_sources_beside_ours():
    frame = metrics()
    dense = pd.DataFrame({"condition": "dense", "seed": SEEDS, "final_test_accuracy": [0.97, 0.98, 0.98, 0.99]})
    frame = pd.concat([frame, dense, dense], ignore_index=True)  # the dense row repeats once per experiment
    matching = pd.DataFrame({"seed": SEEDS * 2, "condition": ["ticket"] * 4 + ["reinit"] * 4,
                             "tolerance": 0.0, "weights_remaining": [3.0, 5.0, 3.0, 5.0] + [20.0] * 4})
    mnist1d = published.published_comparison(frame, matching, "mnist1d", "mlp").set_index("quantity")
    assert list(mnist1d.index) == ["dense test accuracy"] and mnist1d.iloc[0].published == 0.68
    assert mnist1d.iloc[0].ours_mean == pytest.approx(0.98)
    assert mnist1d.iloc[0].seeds == 4  # one per seed, not one per experiment
    table = published.published_comparison(frame, matching, "mnist_subset", "lenet_300_100").set_index("quantity")
    assert "dense test accuracy" not in table.index  # no dense figure is recorded for Frankle & Carbin's LeNet
    ticket = table.loc["ticket matches dense down to (percent of weights)"]
    assert (ticket.published, ticket.ours_mean, ticket.source) == (3.6, pytest.approx(4.0), "Frankle & Carbin 2019")
    assert table.loc["reinit matches dense down to (percent of weights)"].published == 21.0
    assert published.published_comparison(frame, matching, "synthetic", "mlp").empty
    assert published.dense_accuracy("mnist1d", "mlp")[0] == 0.68  # the dense figure comes from the one table


def test_the_frankle_carbin_sweep_is_valid_and_follows_the_paper():
    from oneshot_lab.runner import spec

    (task,) = spec.expand("sweeps/lenet_300_100_mnist.yaml")
    p = task.params
    assert task.notebook.endswith("03_lottery_ticket_rewinding.ipynb") or "03_lottery" in task.notebook
    assert (p["model"], p["lr"], p["batch_size"], p["rate"], p["output_rate"], p["scope"], p["schedule"]) == \
        ("lenet_300_100", 0.0012, 60, 0.2, 0.1, "layer", "constant")
    assert p["dataset"] == "mnist_subset" and len(p["seeds"]) == 5 and 0.8 ** p["levels"] < 0.036
