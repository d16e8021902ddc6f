"""Pretraining of the base: a short smoke run saves a loadable checkpoint and a loss log, deterministically."""

import json
from pathlib import Path

import pytest
import torch

from jrft_utils import model, pretraining


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    a = pretraining.pretrain("smoke", 0, output_dir=root / "a", progress=False, steps=3)
    b = pretraining.pretrain("smoke", 0, output_dir=root / "b", progress=False, steps=3)
    return a, b


def test_pretraining_saves_a_loadable_checkpoint_and_log(runs):
    a, _ = runs
    m, p = model.load_checkpoint(a["checkpoint"])
    ref = a["model"].state_dict()
    assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    log = json.loads((Path(a["checkpoint"]) / "pretrain_log.json").read_text())
    assert log["steps"] == 3 and len(log["log"]) == 3 and log["params"] == model.count_parameters(m)
    assert all(row["loss"] > 0 for row in log["log"])


def test_pretraining_is_deterministic_by_seed(runs):
    a, b = runs
    assert [r["loss"] for r in a["log"]] == [r["loss"] for r in b["log"]]
    sa, sb = a["model"].state_dict(), b["model"].state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("steps", [1, 2, 20, 21])
def test_vision_stage_runs_any_number_of_steps(steps):
    """The one-cycle schedule of the vision stage divided by zero at 20 steps (a one-step warm-up);
    short stages warm up over 2 steps or train at a constant rate."""
    from jrft_utils import world

    processor = model.build_processor("smoke")
    m = model.build_model("smoke", 0, processor)
    samples = world.generate("vqa", 4, 0) + world.generate("reasoning", 4, 0)  # with digits
    before = m.model.vision_tower.state_dict()["embeddings.patch_embedding.weight"].clone()
    log = pretraining.pretrain_vision(m, processor, samples, steps, 4, 1e-3, 0, progress=False)
    assert log[-1]["step"] == steps and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    assert not torch.equal(before, m.model.vision_tower.state_dict()["embeddings.patch_embedding.weight"])


@pytest.mark.parametrize("freeze", [True, False])
def test_sft_stage_trains_on_the_vision_stage_tower_frozen_or_not(monkeypatch, tmp_path, freeze):
    """freeze_vision: the SFT stage leaves the vision tower as the vision stage made it (LLaVA's
    instruction tuning); without it the tower trains too. The saved tower is trainable again."""
    after_vision = {}
    vision_stage = pretraining.pretrain_vision

    def recording(m, *args, **kwargs):
        log = vision_stage(m, *args, **kwargs)
        after_vision.update({k: v.clone() for k, v in m.model.vision_tower.state_dict().items()})
        return log

    monkeypatch.setattr(pretraining, "pretrain_vision", recording)
    out = pretraining.pretrain("smoke", 0, output_dir=tmp_path, progress=False, steps=3, freeze_vision=freeze)
    tower = out["model"].model.vision_tower
    unchanged = all(torch.equal(after_vision[k], v) for k, v in tower.state_dict().items())
    assert unchanged == freeze
    assert all(p.requires_grad for p in tower.parameters())


def test_pretraining_data_is_world_only(runs):
    """What the trainer saw is the world's corpus: no jigsaw words in any prompt."""
    from jrft_utils import world

    prompts = {s["prompt"] for s in world.build_train_set("smoke", 0)}
    assert prompts and not any("tile" in p or "shuffled" in p for p in prompts)


def test_missing_pretrain_log_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(model, "base_checkpoint_dir", lambda profile: tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="00_base_model"):
        pretraining.load_pretrain_log("smoke")
