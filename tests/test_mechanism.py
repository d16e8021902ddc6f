"""Which measure predicts forgetting (jrft_utils.mechanism), on hand-made frontier points."""

import numpy as np
import pandas as pd
import pytest

from jrft_utils import mechanism


def _points(kl_of, arms=("sft_gt", "sft_teacher", "sft_rft_rollouts"), steps=(0, 50, 100, 150)):
    """Points whose drop from a start at 0.8 is ``kl_of(arm, step)`` / 10, with that KL recorded."""
    return [{"setting": "vision", "arm": a, "lr": 1e-4, "seed": 0, "step": s, "task_acc": s / 200,
             "prior_mean": 0.8 - kl_of(a, s) / 10, "kl_new": kl_of(a, s)} for a in arms for s in steps]


CORPORA = {"sft_gt": {"nll": 3.0, "lbk": 1e4}, "sft_teacher": {"nll": 7.0, "lbk": 6e4},
           "sft_rft_rollouts": {"nll": 0.2, "lbk": 3e4}}


def test_kl_that_decides_the_drop_is_the_best_predictor():
    scale = {"sft_gt": 1.0, "sft_teacher": 3.0, "sft_rft_rollouts": 1.5}
    frame = mechanism.frame(_points(lambda a, s: scale[a] * s / 100), 0.8, CORPORA)
    assert list(frame.columns) == ["arm", "lr", "seed", "step", "task_acc", "drop", "kl_new", "nll", "lbk"]
    result = mechanism.compare(frame)
    assert result["best"] == "kl_new" and result["r2"]["kl_new"] == pytest.approx(1.0)
    assert result["r2"]["nll"] < 0.9 and result["n_points"] == 12
    assert result["arms"] == ["sft_gt", "sft_rft_rollouts", "sft_teacher"]


def test_a_corpus_measure_wins_when_the_drop_follows_the_data_and_not_the_kl():
    drop = {"sft_gt": 0.3, "sft_teacher": 0.7, "sft_rft_rollouts": 0.02}  # follows the corpora's NLL
    rng = np.random.default_rng(0)
    points = _points(lambda a, s: 1.0)
    for p in points:
        p["kl_new"] = float(rng.uniform(0, 5))  # KL unrelated to the drop
        p["prior_mean"] = 0.8 - drop[p["arm"]]
    result = mechanism.compare(mechanism.frame(points, 0.8, CORPORA))
    assert result["best"] in ("nll", "lbk") and result["r2"]["nll"] == pytest.approx(1.0)
    assert result["r2"]["kl_new"] < 0.5


def test_points_without_kl_or_corpus_are_left_out_of_the_common_set():
    points = _points(lambda a, s: s / 100) + [
        {"setting": "vision", "arm": "rft", "lr": 1e-4, "seed": 0, "step": s, "task_acc": 0.1,
         "prior_mean": 0.79, "kl_new": s / 1000} for s in (0, 100, 200)]
    frame = mechanism.frame(points, 0.8, CORPORA)
    assert frame.loc[frame["arm"] == "rft", "nll"].isna().all()
    result = mechanism.compare(frame)
    assert result["n_points"] == 12 and "rft" not in result["arms"] and np.isfinite(result["r2_kl_all"])
    with pytest.raises(ValueError, match="have every measured predictor"):
        mechanism.compare(mechanism.frame([{k: v for k, v in p.items() if k != "kl_new"} for p in points], 0.8, {}))


def test_fit_reports_r2_and_refuses_too_few_points():
    coeffs, r2 = mechanism.fit([0, 1, 2, 3], [1, 3, 5, 7], degree=1)
    assert r2 == pytest.approx(1.0) and np.allclose(coeffs, [2, 1])
    assert mechanism.fit([1, 1, 2, 2], [0, 1, 0, 1])[1] == pytest.approx(0.0)  # two values: at most a line
    flat = mechanism.compare(mechanism.frame(_points(lambda a, s: 0.0), 0.8, CORPORA))
    assert flat["best"] == "none" and "does not vary" in mechanism.describe(flat)
    with pytest.raises(ValueError, match="need more than"):
        mechanism.fit([0, 1], [0, 1])


def test_corpus_measures_description_and_figure_from_a_summary():
    corpora = {"gt": {"nll_base": [3.0, 3.2], "lbk": [1e4, 2e4]}, "teacher": {"nll_base": [7.0, None], "lbk": [6e4, 6e4]},
               "rft_rollouts": {"nll_base": [0.2, 0.4], "lbk": [3e4, 3e4]}}
    measures = mechanism.corpus_measures(corpora)
    assert measures["sft_gt"] == {"nll": pytest.approx(3.1), "lbk": pytest.approx(1.5e4)}
    assert measures["sft_teacher"]["nll"] == 7.0 and set(measures) == {"sft_gt", "sft_teacher", "sft_rft_rollouts"}
    points = _points(lambda a, s: s / 100)
    frame = mechanism.frame(points, 0.8, measures)
    result = mechanism.compare(frame)
    text = mechanism.describe(result)
    assert "best predicted by forward KL on the new task" in text and f"{result['r2']['nll']:.2f}" in text
    no_kl = mechanism.compare(mechanism.frame([{k: v for k, v in p.items() if k != "kl_new"} for p in points], 0.8, measures))
    assert np.isnan(no_kl["r2"]["kl_new"]) and no_kl["best"] in ("nll", "lbk") and np.isnan(no_kl["r2_kl_all"])
    from jrft_utils import plotting
    fig = plotting.plot_mechanism(frame, result)
    assert len(fig.axes) == 3 and fig.axes[0].get_title().startswith("R$^2$ = 1.00")


def test_the_arms_at_their_shared_rate_ordered_by_forgetting_kl_and_nll():
    """Final points of the runs at each arm's own rate only (a sweep rate and earlier steps left out),
    averaged over seeds; each ordering largest first, an arm without a corpus left out of the NLL's."""
    rows = [("rft", 1e-4, 0, 300, 0.5, 0.01, 1.0), ("rft", 1e-4, 1, 300, 0.6, 0.03, 3.0),
            ("rft", 3e-4, 0, 300, 0.8, 0.20, 9.0), ("rft", 1e-4, 0, 150, 0.2, 0.00, 0.5),
            ("sft_gt", 3e-4, 0, 300, 0.9, 0.25, 20.0), ("sft_teacher", 3e-4, 0, 300, 0.7, 0.40, 30.0)]
    points = pd.DataFrame([dict(zip(["arm", "lr", "seed", "step", "task_acc", "drop", "kl_new"], r)) for r in rows])
    points["nll"] = points["arm"].map({"sft_gt": 3.0, "sft_teacher": 6.0})
    points["lbk"] = np.nan
    table = mechanism.at_recipe(points, {"rft": 1e-4, "sft_gt": 3e-4, "sft_teacher": 3e-4})
    assert list(table.index) == ["sft_teacher", "sft_gt", "rft"]
    assert table.loc["rft", "drop"] == pytest.approx(0.02) and table.loc["rft", "kl_new"] == pytest.approx(2.0)
    text = mechanism.orderings(table).splitlines()
    assert text[0] == "Forgetting (points lost from the start): SFT-Rea-teacher 40 > SFT-Non-Rea 25 > RFT 2."
    assert text[1].startswith("Forward KL on the new task (nats per completion): SFT-Rea-teacher 30 > SFT-Non-Rea 20 > RFT 2")
    assert "RFT" not in text[2] and "SFT-Rea-teacher 6 > SFT-Non-Rea 3" in text[2]
