"""The pure helpers of jrft_utils.training that turn runs into tables: sweep knobs, steps to reach an
accuracy and the forgetting frontier's rows (the trainers themselves run in the notebook smoke tests),
where a run starts from, and GRPO's KL reference."""

import math
from pathlib import Path

from jrft_utils import training


def _run(acc: float, prior_mean: float, curve: list[float], key: str = "jigsaw_acc") -> dict:
    return {key: acc, "prior": {"mean": prior_mean},
            "curves": [{"step": 100 * i, key: a} for i, a in enumerate(curve)]}


def test_sweep_runs_at_the_main_rate_keep_their_curve_and_others_are_scored_at_the_end():
    recipe = {"learning_rate": 1e-4, "steps": 300, "eval_every": 100}
    assert training.sweep_knobs(recipe, 1e-4) == {"learning_rate": 1e-4}
    assert training.sweep_knobs(recipe, 3e-4) == {"learning_rate": 3e-4, "eval_every": 300}


def test_steps_to_reach_is_the_first_curve_point_at_or_above_the_accuracy():
    points = _run(0.9, 0.5, [0.0, 0.4, 0.6, 0.5, 0.9])["curves"]
    assert training.steps_to_reach(points, 0.6) == 200
    assert training.steps_to_reach(points, 0.0) == 0
    assert training.steps_to_reach(points, 0.95) is None


def test_steps_to_reach_table_counts_seeds_that_never_reach_it():
    table = training.steps_to_reach_table({"sft": {0: _run(0.9, 0.1, [0.0, 0.7]), 1: _run(0.5, 0.1, [0.0, 0.5])}}, 0.6)
    row = table.loc["sft"]
    assert row["steps (seed 0)"] == 100 and row["steps (seed 1)"] is None
    assert row["seeds that reached it"] == 1 and row["mean steps"] == 100
    assert math.isclose(row["final exact (mean)"], 0.7)


def test_final_table_measures_the_prior_change_from_the_curve_start_or_from_the_given_base():
    run = {"jigsaw_acc": 0.2, "jigsaw_hit": 0.5, "prior": {"ocr": 0.6, "mean": 0.6}, "steps": 300, "train_time_s": 1.0,
           "curves": [{"step": 0, "prior": {"ocr": 0.7, "mean": 0.7}}, {"step": 300, "prior": {"ocr": 0.6, "mean": 0.6}}]}
    from_start = training.final_table({0: run})
    assert math.isclose(from_start.loc[0, "prior mean change"], -0.1)
    assert from_start.loc[0, "prior ocr"] == 0.6 and from_start.loc[0, "jigsaw exact"] == 0.2
    base = {"ocr": 0.8, "mean": 0.77}
    from_base = training.final_table({0: run}, base_prior=base)  # a cold start's own forgetting counts too
    assert math.isclose(from_base.loc[0, "prior mean change"], -0.17)
    assert training.main_table({"RFT": {0: run, 1: run}}).loc["RFT", "Δ ocr"] == "-10.0 ± 0.0"
    assert training.main_table({"RFT": {0: run, 1: run}}, base_prior=base).loc["RFT", "Δ ocr"] == "-20.0 ± 0.0"


def test_frontier_rows_read_the_named_accuracy_of_any_task():
    sweeps = {"SFT": {3e-5: _run(0.975, 0.6, [0.0], "task_acc"), 1e-4: _run(1.0, 0.1, [0.0], "task_acc")},
              "RFT": {1e-4: _run(0.73, 0.44, [0.0], "task_acc")}}
    frame = training.frontier_frame(sweeps, accuracy="task_acc")
    assert list(frame.columns) == ["method", "learning rate", "task_acc", "prior_mean"]
    assert frame.values.tolist() == [["SFT", "3e-05", 0.975, 0.6], ["SFT", "0.0001", 1.0, 0.1],
                                     ["RFT", "0.0001", 0.73, 0.44]]
    vision = training.frontier_frame({"SFT": {3e-4: _run(0.94, 0.2, [0.0])}})
    assert vision["task_acc"].tolist() == [0.94]


def test_runs_trained_in_worker_processes_are_cached_and_keep_the_recorded_sweep(monkeypatch):
    """With ``run.workers`` = 2 the uncached runs go to spawned one-thread workers; they come back as
    finished, cached runs, and a later call at one rate keeps the sweep rates recorded before."""
    from jrft_utils import jigsaw, pretraining, profiles

    pretraining.pretrain("smoke", 0, progress=False)
    monkeypatch.setitem(profiles.PROFILES["smoke"]["run"], "workers", 2)
    data = jigsaw.to_sft_gt(jigsaw.load_or_build_splits("smoke")["train"])
    runs = training.run_method("smoke", "sft", "gt", data, [0], 3e-4, [3e-4, 1e-3])
    assert set(runs["sweep"]) == {3e-4, 1e-3} and runs["sweep"][3e-4] is runs["main"][0]
    main, other = runs["main"][0], runs["sweep"][1e-3]
    assert main["steps"] == other["steps"] == profiles.section("smoke", "sft")["steps"]
    assert [p["step"] for p in other["curves"]] == [0, other["steps"]]  # a sweep rate: start and end only
    assert "train_runtime" in Path(main["dir"]).with_suffix(".log").read_text()  # the trainer's output
    jigsaw_test, prior_tests = training.evaluation_sets("smoke", "sft")
    cached = training.finished_run("smoke", "sft", "gt", 0, jigsaw_test, prior_tests, learning_rate=3e-4)
    assert cached == main
    # one rate only (notebook 04's reuse of the main runs): read back, and the 1e-3 run stays recorded
    again = training.run_method("smoke", "sft", "gt", data, [0], 3e-4, [3e-4])
    assert again["main"][0] == main
    assert set(training.load_method_results("smoke", "gt", made_by="02_sft")["sweep"]) == {3e-4, 1e-3}


def test_cold_start_corpus_teaches_the_format_with_true_or_random_answers_and_replays_the_pretraining_corpus():
    """``truth``: every puzzle with its own answer; ``random``: valid permutations that are mostly not the
    answer (the format without the solution); ``replay``: that share of the rows are pretraining samples."""
    import pytest

    from jrft_utils import jigsaw, template, world

    train = jigsaw.load_or_build_splits("smoke")["train"]
    n = len(train)

    def answers(corpus):
        texts = [row[0]["content"] for row in corpus["completion"]]
        return [jigsaw.parse_answer(t, 4) for t in texts if template.follows(t) and "<answer> " in t]

    truth = training.cold_start_corpus("smoke", "truth", 0.0, seed=0)
    assert [jigsaw.answer_text(a) for a in answers(truth)] == list(train["answer"])
    random = training.cold_start_corpus("smoke", "random", 0.0, seed=0)
    drawn = [jigsaw.answer_text(a) for a in answers(random)]
    assert len(drawn) == n and all(a is not None for a in answers(random))
    assert sum(d == t for d, t in zip(drawn, train["answer"])) < n / 2
    assert drawn != [jigsaw.answer_text(a) for a in answers(training.cold_start_corpus("smoke", "random", 0.0, seed=1))]
    mixed = training.cold_start_corpus("smoke", "random", 0.5, seed=0)
    prompts = [row[0]["content"][1]["text"] for row in mixed["prompt"]]
    puzzle_rows = sum(p == jigsaw.jigsaw_prompt(2, 2) for p in prompts)
    assert puzzle_rows == n and len(mixed) == 2 * n
    assert not any(world.is_permutation_answer(row[0]["content"]) for row, p in zip(mixed["completion"], prompts)
                   if p != jigsaw.jigsaw_prompt(2, 2))  # the replayed rows are world questions
    assert prompts[:n] != [jigsaw.jigsaw_prompt(2, 2)] * n  # shuffled in
    assert training.cold_start_name(100, "random", 0.5) == "cold_start100_random_replay0.5"
    assert training.cold_start_name(20) == "cold_start20"
    tiles = training.cold_start_corpus("smoke", "random", 0.0, seed=0, think="tiles")
    texts = [row[0]["content"] for row in tiles["completion"]]
    assert [jigsaw.answer_text(a) for a in answers(tiles)] == drawn  # the same answers, now told tile by tile first
    assert all(t.startswith(f"<think> {jigsaw.tile_trace(a)} </think>") for t, a in zip(texts, answers(tiles)))
    assert training.cold_start_name(100, "random", 0.5, "tiles") == "cold_start100_random_replay0.5_tiles"
    truth_tiles = training.cold_start_corpus("smoke", "truth", 0.0, seed=0, think="tiles")
    assert [jigsaw.answer_text(a) for a in answers(truth_tiles)] == list(train["answer"])
    with pytest.raises(ValueError, match="think"):
        training.cold_start_corpus("smoke", "random", 0.0, seed=0, think="teacher")
    with pytest.raises(ValueError, match="answers"):
        training.cold_start_corpus("smoke", "teacher", 0.0, seed=0)
    with pytest.raises(ValueError, match="replay"):
        training.cold_start_corpus("smoke", "random", 1.0, seed=0)


def test_a_run_starts_from_the_base_or_from_its_trained_cold_start(tmp_path, monkeypatch):
    from jrft_utils import model, pretraining, profiles

    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    pretraining.pretrain("smoke", 0, progress=False)
    assert training.start_checkpoint("smoke", "rft", 0, cold_start_steps=0) == model.base_checkpoint_dir("smoke")
    warm = training.start_checkpoint("smoke", "rft", 0)  # the smoke profile's one-step format warm-up
    name = training.cold_start_name(1, "random", 0.5, "tiles")
    assert warm == training.run_dir_for("smoke", name, profiles.section("smoke", "sft")["learning_rate"], 0) / "model"
    assert (warm / "config.json").exists()


def test_the_kl_anchor_is_the_checkpoint_grpo_starts_from(tmp_path, monkeypatch):
    """With beta > 0 GRPO rebuilds its reference model from the starting checkpoint's path: at the first
    step the policy is still that checkpoint, so the logged KL is zero (a reference built any other way,
    e.g. from random weights, would be far from it), and it grows once the policy moves (a reward that
    differs within every group: the completion's length)."""
    from transformers import TrainerCallback

    from jrft_utils import jigsaw, model, pretraining, profiles, template

    class KLLog(TrainerCallback):
        def __init__(self):
            self.kl = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "kl" in logs:
                self.kl.append(logs["kl"])

    def length_reward(completions, **kwargs):
        return [float(len(template.to_text(c))) for c in completions]

    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    pretraining.pretrain("smoke", 0, progress=False)
    puzzles = jigsaw.load_or_build_splits("smoke")["train"]
    log = KLLog()
    cfg = profiles.section("smoke", "rft", steps=3, cold_start_steps=0, beta=0.2, learning_rate=1e-2)
    training.train("rft", model.base_checkpoint_dir("smoke"), jigsaw.to_grpo(puzzles), cfg, tmp_path / "rft", 0,
                   save_model=False, callbacks=[log], reward_funcs=[length_reward])
    assert len(log.kl) == 3 and log.kl[0] == 0.0 and log.kl[-1] > 0.0
