"""Parameter validation: every knob a notebook can set is checked up front, with a message naming it."""

from __future__ import annotations

import pytest

from jrft_utils import corpora, finetuning, modeling, pretraining, profiles, stages


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_every_profile_passes_its_own_checks(name):
    for section in profiles.get_profile(name):
        profiles.section(name, section)


def test_unknown_profile_section_and_knob():
    with pytest.raises(profiles.ProfileError, match="unknown profile 'tpu'"):
        profiles.section("tpu", "sft")
    with pytest.raises(profiles.ProfileError, match="has no section 'ppo'"):
        profiles.section("smoke", "ppo")
    with pytest.raises(profiles.ProfileError, match="has no knob 'momentum'"):
        profiles.section("smoke", "sft", momentum=0.9)


@pytest.mark.parametrize("section, knob, value, message", [
    ("sft", "steps", 1.5, "sft.steps must be int"),
    ("sft", "steps", "300", "sft.steps must be int"),
    ("sft", "learning_rate", "3e-4", "sft.learning_rate must be float"),
    ("rft", "rewards", "hit", "rft.rewards must be list"),
    ("corpora", "require_correct", 1, "corpora.require_correct must be bool"),
    ("jigsaw", "rows", True, "jigsaw.rows must be int"),
    ("sft", "lr_sweep", [1e-4, "big"], "sft.lr_sweep must hold numbers"),
    ("run", "seeds", [0, 1.5], "run.seeds must be distinct integers"),
])
def test_wrong_type_is_refused(section, knob, value, message):
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.section("smoke", section, **{knob: value})


@pytest.mark.parametrize("section, knob, value, message", [
    ("sft", "steps", 0, r"sft.steps must be >= 1, got 0"),
    ("pretrain", "vision_steps", 0, r"pretrain.vision_steps must be >= 1, got 0"),
    ("sft", "learning_rate", 0.0, r"sft.learning_rate must be > 0"),
    ("rft", "learning_rate", -1e-4, r"rft.learning_rate must be > 0"),
    ("sft", "lr_sweep", [], "must not be an empty list"),
    ("sft", "lr_sweep", [1e-4, -1.0], r"sft.lr_sweep must be > 0, got -1.0"),
    ("jigsaw", "cue_strength", 1.5, r"jigsaw.cue_strength must be in \[0, 1\]"),
    ("jigsaw", "photo_fraction", -0.1, r"jigsaw.photo_fraction must be in \[0, 1\]"),
    ("jigsaw", "test_region", 0.0, r"jigsaw.test_region must be in \(0, 1\]"),
    ("jigsaw", "crop_min", 3.0, "crop_min .* must not exceed crop_max"),
    ("rft", "num_generations", 1, r"rft.num_generations must be >= 2"),
    ("rft", "num_generations", 3, "must be a multiple of num_generations"),
    ("rft", "temperature", 0.0, r"rft.temperature must be > 0"),
    ("start", "answers", "teacher", r"start.answers must be one of \('truth', 'random'\)"),
    ("start", "think", "teacher", r"start.think must be one of \('empty', 'tiles'\)"),
    ("start", "replay", 0.95, r"start.replay must be in \[0, 0.9\]"),
    ("sft", "steps", 0, r"sft.steps must be >= 1"),
    ("world", "test_per_capability", 0, r"world.test_per_capability must be >= 1"),
    ("run", "seeds", [], "must not be an empty list"),
    ("run", "seeds", [0, -1], r"run.seeds must be >= 0"),
    ("run", "seeds", [1, 1], "run.seeds must be distinct"),
    ("run", "base_seed", -3, r"run.base_seed must be >= 0"),
])
def test_out_of_range_is_refused(section, knob, value, message):
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.section("smoke", section, **{knob: value})


def test_none_keeps_the_profile_value_and_ints_pass_for_floats():
    assert profiles.section("smoke", "sft", steps=None)["steps"] == profiles.get_profile("smoke")["sft"]["steps"]
    assert profiles.section("smoke", "rft", temperature=2)["temperature"] == 2


def test_missing_upstream_artifacts_name_the_command_that_makes_them(isolated_run_root):
    command = "python -m jrft_utils.reproduce --profile smoke --only 00"
    config = profiles.resolve("smoke")
    with pytest.raises(FileNotFoundError, match="00_base_model.*--only 00"):
        modeling.load_checkpoint(config.base_dir)
    with pytest.raises(FileNotFoundError, match=command):
        pretraining.load_pretrain_log(config)
    with pytest.raises(FileNotFoundError, match=command):
        stages.stage_fingerprint(config.base_dir, "00_base_model", "smoke")
    with pytest.raises(FileNotFoundError, match="02_sft.ipynb .*--only 00 01 02$"):
        finetuning.load_method_results(config, "gt", "02_sft")
    with pytest.raises(FileNotFoundError, match="03_rft.ipynb .*--only 00 01 02 03$"):
        corpora.build(config, "rft_rollouts", 0)


def test_a_configuration_is_resolved_once_with_checked_overrides_by_section():
    config = profiles.resolve("smoke", sft={"learning_rate": 1e-4, "steps": None}, rft={"beta": 0})
    assert config["sft"]["learning_rate"] == 1e-4 and config["rft"]["beta"] == 0
    assert config["sft"]["steps"] == profiles.get_profile("smoke")["sft"]["steps"]  # None keeps the value
    config["sft"]["steps"] = 999  # a copy: the configuration does not change under a caller
    assert config["sft"]["steps"] != 999
    changed = config.with_knobs("rft", steps=7)
    assert changed["rft"]["steps"] == 7 and config["rft"]["steps"] != 7 and changed["sft"] == config["sft"]
    assert "  sft: {" in str(config) and str(config).startswith("profile 'smoke':")
    assert config.run_dir.name == "smoke" and config.base_dir.parent == config.run_dir
    with pytest.raises(profiles.ProfileError, match="no section"):
        profiles.resolve("smoke", ppo={"steps": 1})
    with pytest.raises(profiles.ProfileError, match="no knob 'momentum'"):
        profiles.resolve("smoke", sft={"momentum": 0.9})
    with pytest.raises(profiles.ProfileError, match="rft.steps must be >= 1"):
        config.with_knobs("rft", steps=0)
    with pytest.raises(profiles.ProfileError, match="distinct"):
        config.with_knobs("run", seeds=[0, 0])


def test_notebook_parameters_that_are_not_knobs_are_range_checked_too():
    profiles.check_knob("03_rft", "common_accuracy", 0.5)
    with pytest.raises(profiles.ProfileError, match=r"03_rft.common_accuracy must be in \[0, 1\], got 1.5"):
        profiles.check_knob("03_rft", "common_accuracy", 1.5)
    with pytest.raises(profiles.ProfileError, match=r"01_jigsaw_puzzles.seed must be >= 0"):
        profiles.check_knob("01_jigsaw_puzzles", "seed", -1)


def test_gpu_rollouts_have_the_room_that_evaluation_gives():
    """Qwen2.5-VL's 3 x 3 answers with reasoning need far more than the tiny model's 40 tokens: GRPO's and
    notebook 04's rollouts get the same room as the jigsaw's evaluation."""
    room = profiles.section("gpu", "jigsaw")["max_new_tokens"]
    assert profiles.section("gpu", "rft")["max_completion_length"] == room  # notebook 04 samples with the same


def test_a_config_with_changed_knobs_keeps_its_records_beside_the_profiles_own(tmp_path, monkeypatch):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path))
    own = profiles.resolve("cpu", sft={"learning_rate": profiles.section("cpu", "sft")["learning_rate"]})
    assert own.changed == {} and own.is_own() and own.out_dir == tmp_path / "cpu"  # the same value is no change
    assert own.figures_dir == profiles.REPO_ROOT / "figures" and "changed knobs" not in str(own)
    exercise = profiles.resolve("cpu", rft={"beta": 0.0})
    assert exercise.changed == {"rft": {"beta": 0.0}} and not exercise.is_own() and exercise.is_own("sft", "jigsaw")
    assert exercise.out_dir.parent == tmp_path / "cpu" / "variants"
    assert exercise.figures_dir == exercise.out_dir / "figures" != own.figures_dir
    assert str(exercise.figures_dir) in str(exercise)  # the notebook's first cell says where its results go
    assert exercise.base_dir == own.base_dir  # RFT's knobs do not decide the base: it is shared
    assert exercise.own() == own.own() and exercise.own().changed == {}
    other = profiles.resolve("cpu", rft={"beta": 0.5})
    assert other.out_dir != exercise.out_dir  # each set of changes has a folder of its own
    rebased = profiles.resolve("cpu", pretrain={"steps": 10})
    assert rebased.base_dir.parent == own.base_dir.parent and rebased.base_dir.name.startswith("base-")
    assert profiles.resolve("cpu", run={"seeds": [0]}).base_dir == own.base_dir  # fewer seeds, the same base
