"""Pretraining of the base: a short smoke run saves a loadable checkpoint and a loss log, deterministically."""

import json
from pathlib import Path

import pytest
import torch

from jrft_utils import modeling, pretraining, profiles


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    config = profiles.resolve("smoke", pretrain={"steps": 3})
    a = pretraining.pretrain(config, progress=False, output_dir=root / "a")
    b = pretraining.pretrain(config, progress=False, output_dir=root / "b")
    return a, b


def test_pretraining_saves_a_loadable_checkpoint_and_log(runs):
    a, _ = runs
    m, p = modeling.load_checkpoint(a["checkpoint"])
    ref = a["model"].state_dict()
    assert all(torch.equal(ref[k], v) for k, v in m.state_dict().items())
    log = json.loads((Path(a["checkpoint"]) / "pretrain_log.json").read_text())
    assert log["steps"] == 3 and len(log["log"]) == 3 and log["params"] == modeling.count_parameters(m)
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

    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    m = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor)
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
    config = profiles.resolve("smoke", pretrain={"steps": 3, "freeze_vision": freeze})
    out = pretraining.pretrain(config, progress=False, output_dir=tmp_path)
    tower = out["model"].model.vision_tower
    unchanged = all(torch.equal(after_vision[k], v) for k, v in tower.state_dict().items())
    assert unchanged == freeze
    assert all(p.requires_grad for p in tower.parameters())


def test_pretraining_data_is_world_only(runs):
    """What the trainer saw is the world's corpus: no jigsaw words in any prompt."""
    from jrft_utils import world

    prompts = {s["prompt"] for s in world.build_train_set(40, 84, 0)}
    assert prompts and not any("tile" in p or "shuffled" in p for p in prompts)


def test_missing_pretrain_log_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError, match="00_base_model"):
        pretraining.load_pretrain_log(profiles.resolve("smoke"))


@pytest.fixture
def recorded_ocr(monkeypatch):
    """Every sample ``world.generate`` draws, by the id of its image (to fake what a model makes of it),
    and the samples of each digit pool (``split``) in the order drawn."""
    from jrft_utils import world

    recorded, by_split, generate = {}, {"train": [], "test": []}, world.generate

    def recording(*args, split="train", **kwargs):
        samples = generate(*args, split=split, **kwargs)
        recorded.update({id(s["image"]): s for s in samples})
        by_split[split].extend(samples)
        return samples

    monkeypatch.setattr(world, "generate", recording)
    recorded["by_split"] = by_split
    return recorded


def test_digit_reading_scores_whole_rows_and_digits_in_place(monkeypatch, recorded_ocr):
    """A reader that drops the last digit of every row: no row is exact, and it reads every other digit
    of the row, in its position, in both digit pools."""
    from jrft_utils import generation

    def drop_last(model, processor, images, prompts, *args, **kwargs):
        return [f"<think> x </think> <answer> {' '.join(recorded_ocr[id(im)]['target'].split()[:-1])} </answer>"
                for im in images]

    monkeypatch.setattr(generation, "generate_completions", drop_last)
    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    m = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor)
    out = pretraining.digit_reading(m, processor, n_scenes=20)
    for pool, split in (("train_pool", "train"), ("held_out", "test")):
        lengths = [len(s["target"].split()) for s in recorded_ocr["by_split"][split]]
        assert len(lengths) == 20 and max(lengths) > min(lengths)
        assert out[pool] == {"exact": 0.0, "per_digit": pytest.approx(sum(n - 1 for n in lengths) / sum(lengths))}


def test_vision_digit_probe_reads_the_tokens_of_the_digits_cell(monkeypatch, recorded_ocr):
    """Image tokens that one-hot encode the digit of their cell are read perfectly by the probe, in both
    pools; the same code in the tokens of the next cell (the probe looking at the wrong patches) is not."""
    from jrft_utils import world

    def one_hot(shift):
        def features(model, processor, images):
            cells = pretraining.patch_cells(model)
            out = torch.zeros(len(images), len(cells), 10)
            for b, im in enumerate(images):
                for it in json.loads(recorded_ocr[id(im)]["spec"])["items"]:
                    out[b, cells == (it["cell"] + shift) % world.GRID ** 2, world._digits()[1][it["index"]]] = 1.0
            return out
        return features

    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    m = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor)
    monkeypatch.setattr(pretraining, "image_token_features", one_hot(0))
    assert pretraining.vision_digit_probe(m, processor, n_fit=80, n_score=40) == {"train_pool": 1.0, "held_out": 1.0}
    monkeypatch.setattr(pretraining, "image_token_features", one_hot(1))
    assert max(pretraining.vision_digit_probe(m, processor, n_fit=80, n_score=40).values()) < 0.6


def test_digit_diagnosis_refuses_empty_samples():
    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    m = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor)
    with pytest.raises(ValueError, match="n_scenes must be >= 1, got 0"):
        pretraining.digit_reading(m, processor, n_scenes=0)
    with pytest.raises(ValueError, match="n_fit and n_score must be >= 1, got 10 and 0"):
        pretraining.vision_digit_probe(m, processor, n_fit=10, n_score=0)
