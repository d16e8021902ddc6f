"""jrft_utils.warmup: the format warm-up's corpus and name, where RFT starts from, and the check that
GRPO has room for the warm-up's completions."""

import pytest

from jrft_utils import finetuning, jigsaw, modeling, pretraining, profiles, template, warmup, world


def _rft(knobs: dict) -> profiles.Config:
    """The smoke profile with a warm-up of ``knobs`` (its think block empty unless they say otherwise)."""
    return profiles.resolve("smoke", rft={"cold_start_steps": 1, "cold_start_think": "empty"} | knobs)


def test_the_warm_up_corpus_teaches_the_format_with_true_or_random_answers_and_replays_the_pretraining_corpus():
    """``truth``: every puzzle with its own answer; ``random``: valid permutations that are mostly not the
    answer (the format without the solution); ``replay``: that share of the rows are pretraining samples."""
    train = finetuning.jigsaw_splits(profiles.resolve("smoke"))["train"]
    n = len(train)

    def answers(corpus):
        texts = [row[0]["content"] for row in corpus["completion"]]
        return [jigsaw.parse_answer(t, 4) for t in texts if template.follows(t) and "<answer> " in t]

    truth = warmup.corpus(_rft({"cold_start_answers": "truth", "cold_start_replay": 0.0}), seed=0)
    assert [jigsaw.answer_text(a) for a in answers(truth)] == list(train["answer"])
    random = warmup.corpus(_rft({"cold_start_answers": "random", "cold_start_replay": 0.0}), seed=0)
    drawn = [jigsaw.answer_text(a) for a in answers(random)]
    assert len(drawn) == n and all(a is not None for a in answers(random))
    assert sum(d == t for d, t in zip(drawn, train["answer"])) < n / 2
    assert drawn != [jigsaw.answer_text(a) for a in answers(warmup.corpus(_rft({"cold_start_answers": "random", "cold_start_replay": 0.0}), seed=1))]
    mixed = warmup.corpus(_rft({"cold_start_answers": "random", "cold_start_replay": 0.5}), seed=0)
    prompts = [row[0]["content"][1]["text"] for row in mixed["prompt"]]
    puzzle_rows = sum(p == jigsaw.jigsaw_prompt(2, 2) for p in prompts)
    assert puzzle_rows == n and len(mixed) == 2 * n
    assert not any(world.is_permutation_answer(row[0]["content"]) for row, p in zip(mixed["completion"], prompts)
                   if p != jigsaw.jigsaw_prompt(2, 2))  # the replayed rows are world questions
    assert prompts[:n] != [jigsaw.jigsaw_prompt(2, 2)] * n  # shuffled in
    assert warmup.name(100, "random", 0.5) == "cold_start100_random_replay0.5"
    assert warmup.name(20) == "cold_start20"
    tiles = warmup.corpus(_rft({"cold_start_answers": "random", "cold_start_replay": 0.0, "cold_start_think": "tiles"}), seed=0)
    texts = [row[0]["content"] for row in tiles["completion"]]
    assert [jigsaw.answer_text(a) for a in answers(tiles)] == drawn  # the same answers, now told tile by tile first
    assert all(t.startswith(f"<think> {jigsaw.tile_trace(a)} </think>") for t, a in zip(texts, answers(tiles)))
    assert warmup.name(100, "random", 0.5, "tiles") == "cold_start100_random_replay0.5_tiles"
    truth_tiles = warmup.corpus(_rft({"cold_start_answers": "truth", "cold_start_replay": 0.0, "cold_start_think": "tiles"}), seed=0)
    assert [jigsaw.answer_text(a) for a in answers(truth_tiles)] == list(train["answer"])
    with pytest.raises(ValueError, match="think"):  # bad knobs are refused when the configuration is resolved
        _rft({"cold_start_think": "teacher"})
    with pytest.raises(ValueError, match="answers"):
        _rft({"cold_start_answers": "teacher"})
    with pytest.raises(ValueError, match="replay"):
        _rft({"cold_start_replay": 1.0})


def test_rft_starts_from_the_base_or_from_its_trained_warm_up(tmp_path, monkeypatch):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    config = profiles.resolve("smoke")
    pretraining.pretrain(config, progress=False)
    base = warmup.start(config.with_knobs("rft", cold_start_steps=0), 0)
    assert base.dir == config.base_dir
    warm = warmup.start(config, 0)  # the smoke profile's one-step format warm-up
    name = warmup.name(1, "random", 0.5, "tiles")
    assert warm.dir.parent.parent == config.run_dir / "finetune" / name / f"lr{config['sft']['learning_rate']:g}"
    assert warm.dir.parent.name.startswith("seed0-") and warm.dir.name == "model"
    assert (warm.dir / "config.json").exists() and warm.fingerprint != base.fingerprint


def test_a_tile_trace_warm_up_needs_room_for_its_completions():
    tokenizer = modeling.build_tokenizer()
    for think in ("tiles", "empty"):  # the warm-up's own completion, counted by the tiny model's tokenizer
        text = jigsaw.cold_start_completion([1, 0, 3, 2], think)
        assert warmup.completion_tokens(4, think) == len(tokenizer(text)["input_ids"]) + 1
    assert jigsaw.cold_start_completion([1, 0, 3, 2], "empty") == jigsaw.gt_completion([1, 0, 3, 2])
    rft = profiles.resolve("cpu")["rft"]
    assert rft["cold_start_think"] == "tiles"
    warmup.check_room(rft, 4)  # the default fits its room
    with pytest.raises(profiles.ProfileError, match=r"max_completion_length \(32\) is too short .* at least 33"):
        warmup.check_room(rft | {"max_completion_length": 32}, 4)
    warmup.check_room(rft | {"max_completion_length": 32, "cold_start_think": "empty"}, 4)
    warmup.check_room(rft | {"max_completion_length": 32, "cold_start_steps": 0}, 4)  # no warm-up, nothing to fit
    with pytest.raises(profiles.ProfileError, match="at least 33"):  # refused before anything is trained
        warmup.start(profiles.resolve("smoke", rft={"max_completion_length": 32}), 0)
