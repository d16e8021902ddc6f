"""jrft_utils.tables: the pure helpers that turn runs into tables (steps to reach an accuracy, final
numbers, the paper's main table, the drops at matched accuracy)."""

import math

import pytest

from jrft_utils import frontiers, tables


def _run(acc: float, prior_mean: float, curve: list[float], key: str = "jigsaw_acc") -> dict:
    return {key: acc, "prior": {"mean": prior_mean},
            "curves": [{"step": 100 * i, key: a} for i, a in enumerate(curve)]}


def test_steps_to_reach_is_the_first_curve_point_at_or_above_the_accuracy():
    points = _run(0.9, 0.5, [0.0, 0.4, 0.6, 0.5, 0.9])["curves"]
    assert tables.steps_to_reach(points, 0.6) == 200
    assert tables.steps_to_reach(points, 0.0) == 0
    assert tables.steps_to_reach(points, 0.95) is None


def test_steps_to_reach_table_counts_seeds_that_never_reach_it():
    table = tables.steps_to_reach_table({"sft": {0: _run(0.9, 0.1, [0.0, 0.7]), 1: _run(0.5, 0.1, [0.0, 0.5])}}, 0.6)
    row = table.loc["sft"]
    assert row["steps (seed 0)"] == 100 and row["steps (seed 1)"] is None
    assert row["seeds that reached it"] == 1 and row["mean steps"] == 100
    assert math.isclose(row["final exact (mean)"], 0.7)


def test_final_table_measures_the_prior_change_from_the_curve_start():
    run = {"jigsaw_acc": 0.2, "jigsaw_hit": 0.5, "prior": {"ocr": 0.6, "mean": 0.6}, "steps": 300, "train_time_s": 1.0,
           "curves": [{"step": 0, "prior": {"ocr": 0.7, "mean": 0.7}}, {"step": 300, "prior": {"ocr": 0.6, "mean": 0.6}}]}
    from_start = tables.final_table({0: run})
    assert math.isclose(from_start.loc[0, "prior mean change"], -0.1)
    assert from_start.loc[0, "prior ocr"] == 0.6 and from_start.loc[0, "jigsaw exact"] == 0.2
    assert tables.main_table({"RFT": {0: run, 1: run}}).loc["RFT", "Δ ocr"] == "-10.0 ± 0.0"


def _curve_run(points: list[tuple[float, float]]) -> dict:
    return {"curves": [{"step": 100 * i, "jigsaw_acc": a, "prior": {"mean": p}} for i, (a, p) in enumerate(points)]}


def test_matched_table_reads_each_methods_frontier_at_the_reference_methods_best_accuracy():
    sft = {"main": {0: _curve_run([(0.0, 0.8), (0.4, 0.5), (0.9, 0.3)]), 1: _curve_run([(0.0, 0.8), (0.8, 0.4)])},
           "sweep": {1e-4: _curve_run([(0.0, 0.8), (0.2, 0.7)])}}
    rft = {"main": {0: _curve_run([(0.0, 0.8), (0.2, 0.75), (0.4, 0.7)])}, "sweep": {}}
    points = (tables.method_points("vision", "sft_gt", sft, 3e-4, 0) + tables.method_points("vision", "rft", rft, 1e-4, 0))
    assert len(points) == 10 and {(p["lr"], p["seed"]) for p in points if p["arm"] == "sft_gt"} == {(3e-4, 0), (3e-4, 1), (1e-4, 0)}
    table = tables.matched_table(points, 0.8, {"sft_gt": "SFT", "rft": "RFT"})
    assert list(table.index) == ["20.0", "30.0", "40.0"]  # RFT's best (0.4), and half and three quarters of it
    # SFT's frontier: (0, .8), (.2, .7), (.4, .5), (.8, .4), (.9, .3) (seed 0's (0.4, 0.5) is not dominated)
    assert table.loc["40.0", "SFT"] == pytest.approx(30.0) and table.loc["40.0", "RFT"] == pytest.approx(10.0)
    assert table.loc["30.0", "SFT"] == pytest.approx(20.0) and table.loc["30.0", "RFT"] == pytest.approx(7.5)
    assert table.loc["20.0", "SFT"] == pytest.approx(10.0) and table.loc["20.0", "RFT"] == pytest.approx(5.0)
    never = tables.matched_table(points, 0.8, {"rft": "RFT", "sft_teacher": "teacher"})
    assert never["teacher"].isna().all()  # a method without points never reaches a level


def test_matched_table_leaves_out_levels_the_start_already_reaches_as_the_summary_does():
    rft = {"main": {0: _curve_run([(0.25, 0.8), (0.3, 0.75), (0.4, 0.7)])}, "sweep": {}}  # starts at 25 % exact
    sft = {"main": {0: _curve_run([(0.25, 0.8), (0.9, 0.3)])}, "sweep": {}}
    points = tables.method_points("vision", "rft", rft, 1e-4, 0) + tables.method_points("vision", "sft_gt", sft, 3e-4, 0)
    table = tables.matched_table(points, 0.8, {"sft_gt": "SFT", "rft": "RFT"})
    assert list(table.index) == ["30.0", "40.0"]  # half of RFT's best (20 %) is below where it started
    assert [f"{100 * x:.1f}" for x in frontiers.compare(points, 0.8)["levels"]] == list(table.index)
