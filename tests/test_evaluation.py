"""The prior-knowledge evaluator (the forgetting yardstick)."""

import pytest

from jrft_utils import evaluation, generation, modeling, profiles, world


@pytest.fixture(scope="module")
def tiny():
    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    return modeling.build_model(profiles.resolve("smoke")["model"], 0, processor).eval(), processor


@pytest.fixture(scope="module")
def test_sets():
    return world.build_test_sets(8, 84)


def test_evaluator_scores_reference_completions_perfectly_and_wrong_ones_zero(tiny, test_sets, monkeypatch):
    m, p = tiny
    flat = [s for cap in world.CAPABILITIES for s in test_sets[cap]]
    monkeypatch.setattr(generation, "generate_completions", lambda *a, **k: [s["completion"] for s in flat])
    res = evaluation.evaluate_prior(m, p, test_sets, batch_size=16, progress=False)
    assert set(res) == set(world.CAPABILITIES) | {"mean"}
    assert all(res[c] == 1.0 for c in res)
    monkeypatch.setattr(generation, "generate_completions", lambda *a, **k: ["<answer> zebra </answer>"] * len(flat))
    res = evaluation.evaluate_prior(m, p, test_sets, batch_size=16, progress=False)
    assert all(res[c] == 0.0 for c in res)


def test_evaluator_runs_the_real_model_and_reports_fractions(tiny, test_sets):
    m, p = tiny
    res = evaluation.evaluate_prior(m, p, test_sets, batch_size=20, max_new_tokens=4, progress=False,
                                    return_completions=True)
    for cap in world.CAPABILITIES:
        assert 0.0 <= res[cap] <= 1.0 and len(res["completions"][cap]) == len(test_sets[cap])
    assert res["mean"] == pytest.approx(sum(res[c] for c in world.CAPABILITIES) / 5)
    assert res["eval_time_s"] > 0


def test_evaluator_errors_are_clear(tiny, test_sets):
    m, p = tiny
    with pytest.raises(ValueError, match="empty"):
        evaluation.evaluate_prior(m, p, {"ocr": []})
    with pytest.raises(world.WorldError, match="unknown capability 'counting'"):
        evaluation.evaluate_prior(m, p, {"counting": test_sets["ocr"]})
    with pytest.raises(ValueError, match="no test sets"):
        evaluation.evaluate_prior(m, p, {})


def test_a_subset_measures_the_change_since_the_start_on_its_own_questions():
    """``shifted``: the start's whole-set accuracy plus the change the subset saw, clipped to [0, 1]; the
    mean is that of the capabilities; ``first_of_each`` keeps each set's first samples in order."""
    start_full, start_subset = {"ocr": 0.8, "vqa": 0.95, "mean": 0.875}, {"ocr": 0.6, "vqa": 0.9, "mean": 0.75}
    measured = {"ocr": 0.5, "vqa": 1.0, "mean": 0.75}
    out = evaluation.shifted(measured, start_subset, start_full)
    assert out["ocr"] == pytest.approx(0.7) and out["vqa"] == 1.0 and out["mean"] == pytest.approx(0.85)
    assert evaluation.shifted(start_subset, start_subset, start_full) == pytest.approx(start_full)
    sets = {"ocr": [1, 2, 3], "vqa": [4, 5]}
    assert evaluation.first_of_each(sets, 2) == {"ocr": [1, 2], "vqa": [4, 5]}
