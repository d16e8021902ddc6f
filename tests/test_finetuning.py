"""jrft_utils.finetuning: sweep knobs, and runs trained in worker processes that come back cached (the
trainers themselves run in the notebook smoke tests)."""

from pathlib import Path

import pytest

from jrft_utils import evaluation, finetuning, jigsaw, pretraining, profiles


def _ready(run_root: Path, monkeypatch, **sections) -> profiles.Config:
    """The smoke profile with ``sections`` overridden, its base pretrained in a run folder of its own."""
    monkeypatch.setenv("JRFT_RUN_ROOT", str(run_root))
    config = profiles.resolve("smoke", **sections)
    pretraining.pretrain(config, progress=False)
    return config


def test_runs_trained_in_worker_processes_are_cached_and_keep_the_recorded_sweep(tmp_path, monkeypatch):
    """With ``run.workers`` = 2 the uncached runs go to spawned one-thread workers; they come back as
    finished, cached runs, and a later call at one rate keeps the sweep rates recorded before."""
    config = _ready(tmp_path / "runs", monkeypatch, run={"workers": 2}, sft={"learning_rate": 3e-4, "lr_sweep": [3e-4, 1e-3]})
    data = jigsaw.to_sft_gt(finetuning.jigsaw_splits(config)["train"])
    start = finetuning.base_start(config)
    runs = finetuning.run_method(config, "sft", "gt", data, [0], start)
    assert set(runs["sweep"]) == {3e-4, 1e-3} and runs["sweep"][3e-4] is runs["main"][0]
    main, other = runs["main"][0], runs["sweep"][1e-3]
    assert main["steps"] == other["steps"] == config["sft"]["steps"]
    assert [p["step"] for p in other["curves"]] == [p["step"] for p in main["curves"]]  # every rate: the whole curve
    assert "train_runtime" in Path(main["dir"]).with_suffix(".log").read_text()  # the trainer's output
    job = finetuning.plan(config, "sft", "gt", data, None, seed=0, start=start)
    assert job.finished() == main
    # one rate only (notebook 04's reuse of the main runs): read back, and the 1e-3 run stays recorded
    again = finetuning.run_method(config, "sft", "gt", data, [0], start, sweep=False)
    assert again["main"][0] == main
    assert set(finetuning.load_method_results(config, "gt", made_by="02_sft")["sweep"]) == {3e-4, 1e-3}


def test_every_curve_point_carries_the_forward_kl_from_the_start(tmp_path, monkeypatch):
    """The start's samples are drawn once and every curve point is scored on them: zero at step 0 (the start
    itself), clearly positive on the new task once the model has learnt it; ``kl.prompts`` 0 measures none; sampling them leaves the
    run's own numbers unchanged."""
    config = _ready(tmp_path / "runs", monkeypatch, sft={"lr_sweep": [1e-3], "learning_rate": 1e-3})
    data = jigsaw.to_sft_gt(finetuning.jigsaw_splits(config)["train"])
    start = finetuning.base_start(config)
    run = finetuning.finetune(config, "sft", "gt", data, 0, finetuning.evaluation_sets(config, "sft"), start)
    first, last = run["curves"][0], run["curves"][-1]
    assert abs(first["kl_new"]) < 1e-4 and abs(first["kl_prior"]) < 1e-4
    assert last["kl_new"] > 2 * last["kl_new_se"] > 0
    assert abs(last["kl_prior"]) < 1e3 and last["kl_prior_se"] > 0  # an estimate: below its error, either sign
    assert last["kl_new_think"] + last["kl_new_answer"] == pytest.approx(last["kl_new"])
    assert len(list((config.run_dir / "finetune" / "start_points").glob("kl-*.pt"))) == 1
    without = config.with_knobs("kl", prompts=0)
    plain = finetuning.finetune(without, "sft", "gt", data, 0, finetuning.evaluation_sets(without, "sft"), start)
    assert "kl_new" not in plain["curves"][-1] and plain["dir"] != run["dir"]
    assert [(p["jigsaw_acc"], p["prior"]) for p in plain["curves"]] == [(p["jigsaw_acc"], p["prior"]) for p in run["curves"]]


def test_intermediate_points_are_scored_on_fixed_subsets_and_shifted_to_the_whole_sets(tmp_path, monkeypatch):
    """Step 0 and the last step are scored on the whole sets (step 0 also on the subset, from the same
    answers); a point in between on the first ``between_prior_size`` questions of each capability, its
    ``prior`` the whole-set estimate of :func:`evaluation.shifted`. Subsets as large as the sets: no subset."""
    config = _ready(tmp_path / "runs", monkeypatch, sft={"lr_sweep": [1e-3], "learning_rate": 1e-3})
    data = jigsaw.to_sft_gt(finetuning.jigsaw_splits(config)["train"])
    start = finetuning.base_start(config)
    run = finetuning.finetune(config, "sft", "gt", data, 0, finetuning.evaluation_sets(config, "sft"), start)
    first, middle, last = run["curves"]
    assert [p["step"] for p in run["curves"]] == [0, 2, 4]
    assert middle["subset"] and "subset" not in first and "subset" not in last
    k = config["sft"]["between_prior_size"]
    assert k < config["world"]["test_per_capability"]
    assert middle["prior"] == evaluation.shifted(middle["prior_subset"], first["prior_subset"], first["prior"])
    caps = [cap for cap in middle["prior_subset"] if cap != "mean"]
    assert all(middle["prior_subset"][cap] * k == pytest.approx(round(middle["prior_subset"][cap] * k)) for cap in caps)
    whole = config.with_knobs("sft", between_test_size=64, between_prior_size=64)
    plain = finetuning.finetune(whole, "sft", "gt", data, 0, finetuning.evaluation_sets(whole, "sft"), start)
    assert not any("subset" in p or "prior_subset" in p for p in plain["curves"])
    assert plain["curves"][0]["prior"] == first["prior"] and plain["curves"][-1]["prior"] == last["prior"]
