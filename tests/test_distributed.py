"""One fine-tuning run across two CPU processes (gloo) through the launch path every notebook takes
(:func:`jrft_utils.trainers.train` with a :class:`jrft_utils.distributed.Launch`): each process trains on its
own share of every batch, only the main one writes, and the numbers are a single-process run's."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import pytest
import yaml
from launch_probe import InputProbe, PromptProbe
from safetensors.torch import load_file

from jrft_utils import distributed, divergence, profiles, results, trainers
from jrft_utils import textexperiment as tx

TWO = distributed.Launch(2, profiles.REPO_ROOT / "configs" / "accelerate" / "ddp.yaml")
# SFT: both processes' shares make the single process's batch, so only the order of the sums differs
SFT_WEIGHT_TOLERANCE = 1e-5
# GRPO: each process samples its own completions, so the runs differ by sampling; two steps at 1e-4 move
# a curve point by less than this
GRPO_POINT_TOLERANCE = 0.05


def test_settings_read_the_profile_and_the_shipped_configs():
    for name in profiles.PROFILES:
        assert distributed.settings(profiles.resolve(name)["run"]) is None  # one process: every number as before
    run = profiles.resolve("gpu")["run"] | {"processes": 8, "accelerate_config": "configs/accelerate/zero2.yaml"}
    assert distributed.settings(run) == distributed.Launch(8, profiles.REPO_ROOT / "configs/accelerate/zero2.yaml")
    with pytest.raises(ValueError, match="positive integer"):
        distributed.settings(run | {"processes": 0})
    with pytest.raises(FileNotFoundError, match="no accelerate config"):
        distributed.settings(run | {"accelerate_config": "configs/accelerate/none.yaml"})
    many = profiles.resolve("gpu", run={"processes": 8})
    assert many.changed == {} and many.out_dir == profiles.resolve("gpu").out_dir  # how it runs, not an exercise
    kinds = {p.stem: yaml.safe_load(p.read_text()) for p in (profiles.REPO_ROOT / "configs" / "accelerate").glob("*.yaml")}
    assert kinds["ddp"]["distributed_type"] == "MULTI_GPU"
    assert kinds["zero2"]["distributed_type"] == "DEEPSPEED" and kinds["zero2"]["deepspeed_config"]["zero_stage"] == 2


def test_each_process_takes_its_share_of_a_batch(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.per_device(128) == 64
    with pytest.raises(ValueError, match="evenly"):
        distributed.per_device(7)
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.per_device(7) == 7


@pytest.fixture
def text_run(monkeypatch, tmp_path):
    """The smoke text base in a run folder of its own (the text experiment's tests expect to train theirs),
    and the launched processes able to import the probes."""
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    config = profiles.resolve("smoke")
    results.start_summary(config)
    tx.pretrain(config, progress=False)
    tokenizer, prior_sets, tasks = tx.load_base(config)[1], tx.test_sets(config), tx.task_split(config, "test")
    kl = divergence.load_or_sample(tx.run_dir(config) / "kl-probe.pt", tx.base_dir(config), config["kl"],
                                   (None, [t["prompt"] for t in tasks]), divergence.questions(prior_sets, with_images=False))
    return config, partial(tx.evaluate, tokenizer=tokenizer, prior_sets=prior_sets, tasks=tasks, kl=kl)


def _flat(point: dict) -> dict[str, float]:
    """A curve point with its prior accuracies as ``prior.<capability>`` keys."""
    flat = {k: v for k, v in point.items() if not isinstance(v, dict)}
    return flat | {f"{k}.{j}": w for k, v in point.items() if isinstance(v, dict) for j, w in v.items()}


def _train(config, evaluate, kind: str, folder: Path, launch, **extra):
    folder.mkdir(parents=True)
    curve = trainers.CurveCallback(evaluate, 1, folder / trainers.CURVES_FILE)
    section = "text_rft" if kind == "rft" else "text_sft"
    data = (tx.grpo_dataset(tx.task_split(config, "train")) if kind == "rft"
            else tx.sft_dataset(tx.corpus_samples(config, "gt", 0)))
    metrics = trainers.train(kind, tx.base_dir(config), data, config[section], folder, 0, [curve, InputProbe(folder, curve)],
                             progress=False, launch=launch, **extra)
    probes = {p.stem: json.loads(p.read_text()) for p in folder.glob("rank*.json")}
    return metrics, probes, trainers.load_curves(folder)


def test_sft_in_two_processes_splits_every_batch_and_matches_one(text_run, tmp_path):
    config, evaluate = text_run
    one, one_probe, one_curve = _train(config, evaluate, "sft", tmp_path / "one", None)
    two, probes, curve = _train(config, evaluate, "sft", tmp_path / "two", TWO)
    rank0, rank1 = probes["rank0"], probes["rank1"]
    assert rank0["rows"] and rank1["rows"] and not set(rank0["rows"]) & set(rank1["rows"])  # different data
    assert sorted(rank0["rows"] + rank1["rows"]) == sorted(one_probe["rank0"]["rows"])  # the same batches in all
    # written once: the main process measured every point, the other none
    assert (rank0["curve_points"], rank1["curve_points"]) == (3, 0) and [p["step"] for p in curve] == [0, 1, 2]
    assert json.loads((tmp_path / "two" / trainers.METRICS_FILE).read_text()) == two
    assert two["steps"] == one["steps"] == 2
    a, b = (load_file(tmp_path / run / "model" / "model.safetensors") for run in ("one", "two"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < SFT_WEIGHT_TOLERANCE
    assert [_flat(p) for p in curve] == [pytest.approx(_flat(p), abs=SFT_WEIGHT_TOLERANCE) for p in one_curve]


def test_grpo_in_two_processes_samples_its_own_prompts_and_matches_one(text_run, tmp_path):
    config, evaluate = text_run
    runs = {}
    for name, launch in (("one", None), ("two", TWO)):
        folder = tmp_path / name
        runs[name] = _train(config, evaluate, "rft", folder, launch, reward_funcs=[PromptProbe(folder)], save_model=False)
    prompts = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "two").glob("prompts-rank*.json")}
    assert sorted(prompts) == ["prompts-rank0", "prompts-rank1"] and prompts["prompts-rank0"] != prompts["prompts-rank1"]
    single = json.loads((tmp_path / "one" / "prompts-rank0.json").read_text())
    assert sorted(prompts["prompts-rank0"] + prompts["prompts-rank1"]) == sorted(single)  # one global batch a step
    (one, _, one_curve), (two, probes, curve) = runs["one"], runs["two"]
    assert (probes["rank0"]["curve_points"], probes["rank1"]["curve_points"]) == (3, 0)
    assert two["steps"] == one["steps"] == 2 and [p["step"] for p in curve] == [0, 1, 2]
    for key in ("task_acc", "kl_new"):
        assert abs(curve[-1][key] - one_curve[-1][key]) < GRPO_POINT_TOLERANCE
    assert abs(curve[-1]["prior"]["mean"] - one_curve[-1]["prior"]["mean"]) < GRPO_POINT_TOLERANCE


def test_the_text_runs_hand_the_launch_to_the_trainer_and_cache_its_result(text_run, monkeypatch):
    """``run.processes`` reaches :func:`trainers.train` from the notebooks' functions, and a launched run is
    cached and read back like any other (the launch itself replaced by an in-process call: the tests above
    launch for real)."""
    config, _ = text_run
    launched = []

    def in_process(job, how, folder):
        launched.append((how.processes, Path(folder).name))
        return job()

    monkeypatch.setattr(distributed, "launch", in_process)
    config = config.with_knobs("run", processes=2)
    run = tx.finetune(config, "sft_gt", 0, progress=False)
    assert launched == [(2, "launch")] and run["steps"] == 2
    assert tx.finetune(config, "sft_gt", 0, progress=False) == run and len(launched) == 1  # read back
