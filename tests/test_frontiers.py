"""Forgetting frontiers on hand-made points whose answers are worked out in the comments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jrft_utils.frontiers import (by_arm, compare, highest_common, kept_at, matched, matched_levels, pareto,
                                  points_from_runs, steps_to_reach)


def pt(task: float, prior: float, arm: str = "rft", lr: float = 1e-4, seed: int = 0, step: int = 0,
       setting: str = "vision") -> dict:
    return {"setting": setting, "arm": arm, "lr": lr, "seed": seed, "step": step, "task_acc": task,
            "prior_mean": prior}


# Frontier (0.3, 0.9) -> (0.5, 0.8) -> (0.8, 0.5); (0.2, 0.9) is dominated by (0.3, 0.9) (equal prior,
# higher accuracy), (0.4, 0.7) and (0.5, 0.6) by (0.5, 0.8).
ARM = [pt(0.2, 0.9, step=0), pt(0.5, 0.8, step=1), pt(0.4, 0.7, step=2), pt(0.8, 0.5, step=3),
       pt(0.3, 0.9, step=4), pt(0.5, 0.6, step=5)]


def xy(points):
    return [(p["task_acc"], p["prior_mean"]) for p in points]


def test_pareto_drops_dominated_points_and_sorts_by_accuracy():
    assert xy(pareto(ARM)) == [(0.3, 0.9), (0.5, 0.8), (0.8, 0.5)]
    assert [p["step"] for p in pareto(ARM)] == [4, 1, 3]


def test_pareto_ties_keep_one_point_whatever_the_input_order():
    dup = [pt(0.5, 0.8, lr=3e-4, seed=1, step=20), pt(0.5, 0.8, lr=1e-4, seed=1, step=30),
           pt(0.5, 0.8, lr=1e-4, seed=0, step=40), pt(0.5, 0.7, lr=1e-5)]
    fronts = {tuple((p["lr"], p["seed"], p["step"]) for p in pareto(list(perm)))
              for perm in itertools.permutations(dup)}
    assert fronts == {((1e-4, 0, 40),)}  # the lowest (lr, seed, step) of the duplicates; (0.5, 0.7) dominated


def test_pareto_is_a_front_on_random_points():
    rng = np.random.default_rng(0)
    points = [pt(float(a), float(b), step=i) for i, (a, b) in enumerate(rng.integers(0, 6, (60, 2)) / 5)]
    front = pareto(points)
    acc, prior = [p["task_acc"] for p in front], [p["prior_mean"] for p in front]
    assert all(x < y for x, y in zip(acc, acc[1:])) and all(x > y for x, y in zip(prior, prior[1:]))
    for p in points:  # every point is matched or beaten by a frontier point, and none beats a frontier point
        assert any(f["task_acc"] >= p["task_acc"] and f["prior_mean"] >= p["prior_mean"] for f in front)
    for f in front:
        assert not any(p["task_acc"] >= f["task_acc"] and p["prior_mean"] >= f["prior_mean"]
                       and (p["task_acc"], p["prior_mean"]) != (f["task_acc"], f["prior_mean"]) for p in points)


def test_kept_at_interpolates_between_frontier_points():
    assert kept_at(ARM, 0.65) == pytest.approx(0.65)  # halfway from (0.5, 0.8) to (0.8, 0.5)
    assert kept_at(ARM, 0.4) == pytest.approx(0.85)  # halfway from (0.3, 0.9) to (0.5, 0.8), not (0.4, 0.7)
    assert kept_at(ARM, 0.5) == pytest.approx(0.8)  # exact at a frontier point
    assert kept_at(ARM, 0.8) == pytest.approx(0.5)  # the best point itself is reached


def test_kept_at_above_the_best_accuracy_is_none_and_below_the_lowest_is_the_first_prior():
    assert kept_at(ARM, 0.8000001) is None
    assert kept_at(ARM, 0.1) == pytest.approx(0.9)  # (0.3, 0.9) reaches 0.1 too
    assert kept_at(ARM, 0.0) == pytest.approx(0.9)
    assert kept_at([], 0.1) is None


def test_an_arm_with_a_single_point():
    one = [pt(0.4, 0.7)]
    assert xy(pareto(one)) == [(0.4, 0.7)]
    assert kept_at(one, 0.2) == pytest.approx(0.7)
    assert kept_at(one, 0.4) == pytest.approx(0.7)
    assert kept_at(one, 0.41) is None


def test_matched_levels_come_from_the_reference_arms_best_point():
    arms = {"rft": ARM, "sft_gt": [pt(0.95, 0.2, arm="sft_gt")]}
    assert matched_levels(arms) == pytest.approx([0.4, 0.6, 0.8])  # 0.5, 0.75 and 1 x rft's best 0.8
    assert matched_levels(arms, reference="sft_gt", lower=(0.5,)) == pytest.approx([0.475, 0.95])
    assert matched_levels(arms, lower=(1.0, 0.5)) == pytest.approx([0.4, 0.8])  # deduplicated
    assert matched_levels({"rft": [pt(0.0, 0.9)]}) == []  # a reference that learnt nothing gives no level > 0
    with pytest.raises(ValueError, match="reference"):
        matched_levels({"sft_gt": ARM})


def test_matched_drops_table_with_none_where_an_arm_falls_short():
    # sft_gt's frontier (0.2, 0.7) -> (0.6, 0.3): it never reaches 0.8, and reaches the level 0.75 * 0.8
    # (0.6000000000000001 in floats) with its 0.6.
    sft = [pt(0.2, 0.7, arm="sft_gt"), pt(0.6, 0.3, arm="sft_gt", step=1), pt(0.1, 0.6, arm="sft_gt", step=2)]
    points = ARM + sft
    levels = matched_levels(by_arm(points))
    table = matched(points, start_prior=0.9, arms=["rft", "sft_gt", "sft_teacher"], levels=levels)
    assert table["levels"] == pytest.approx([0.4, 0.6, 0.8])
    assert set(table["drop"]) == {"rft", "sft_gt", "sft_teacher"}
    rft, sft_gt = table["drop"]["rft"], table["drop"]["sft_gt"]
    assert rft == pytest.approx([0.9 - 0.85, 0.9 - 0.7, 0.9 - 0.5])  # kept 0.85, 0.7 (1/3 of 0.5 -> 0.8), 0.5
    assert sft_gt[:2] == pytest.approx([0.9 - 0.5, 0.9 - 0.3]) and sft_gt[2] is None  # kept 0.5 halfway, 0.3
    assert table["drop"]["sft_teacher"] == [None, None, None]  # no points at all


def test_matched_refuses_points_of_two_settings():
    with pytest.raises(ValueError, match="setting"):
        matched([pt(0.5, 0.8), pt(0.5, 0.8, setting="text")], 0.9, ["rft"], [0.5])


def test_points_from_runs_reads_every_curve_point():
    def curve(step, acc, prior):
        return {"step": step, "task_acc": acc, "prior": {"mean": prior, "ocr": 0.0}}

    runs = {(1e-4, 0): {"curves": [curve(0, 0.1, 0.9), curve(50, 0.6, 0.8)]},
            (3e-4, 1): {"curves": [curve(0, 0.1, 0.9), curve(50, 0.7, 0.6)]}}
    points = points_from_runs("text", "sft_gt", runs, "task_acc")
    assert len(points) == 4
    assert points[3] == {"setting": "text", "arm": "sft_gt", "lr": 3e-4, "seed": 1, "step": 50, "task_acc": 0.7,
                         "prior_mean": 0.6}
    assert xy(pareto(points)) == [(0.1, 0.9), (0.6, 0.8), (0.7, 0.6)]


def test_compare_matches_only_above_the_starts_own_accuracy():
    """Every arm's step 0 is the start: a level the start already reaches would match every arm at step 0."""
    points = [pt(0.04, 0.8, "rft"), pt(0.08, 0.78, "rft", step=300), pt(0.04, 0.8, "sft_gt"),
              pt(0.5, 0.7, "sft_gt", step=100)]
    entry = compare(points, 0.8)
    assert entry["levels"] == pytest.approx([0.06, 0.08])  # 0.04 (half of RFT's best) is the start's: left out
    assert entry["drop"]["rft"] == pytest.approx([0.01, 0.02])
    stuck = [pt(0.04, 0.8, "rft"), pt(0.04, 0.79, "rft", step=300), pt(0.04, 0.8, "sft_gt")]
    assert compare(stuck, 0.8)["levels"] == []  # RFT never rises above the start


def test_highest_common_picks_the_highest_level_all_arms_reach_whatever_the_order():
    entry = {"levels": [0.3, 0.1, 0.2], "drop": {"a": [None, 0.01, 0.02], "b": [0.3, 0.1, 0.2]}}
    assert highest_common(entry, ["a", "b"]) == (0.2, [0.02, 0.2])
    assert highest_common(entry, ["a", "missing"]) is None
    assert steps_to_reach([pt(0.2, 0.5, "a", step=50), pt(0.3, 0.4, "a", lr=3e-4, step=20)], 0.2) == 20
    assert steps_to_reach([pt(0.2, 0.5, "a", step=50)], 0.5) is None
