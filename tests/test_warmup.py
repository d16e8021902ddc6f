"""jrft_utils.warmup: the start every arm fine-tunes from (a format warm-up of the base), its corpus and
name, and the check that GRPO has room for its completions."""

import pytest

from jrft_utils import finetuning, jigsaw, modeling, pretraining, profiles, template, warmup, world


def _start(knobs: dict) -> profiles.Config:
    """The smoke profile with a start of ``knobs`` (its think block empty unless they say otherwise)."""
    return profiles.resolve("smoke", start={"steps": 1, "think": "empty"} | knobs)


def test_the_start_corpus_teaches_the_format_with_true_or_random_answers_and_replays_the_pretraining_corpus():
    """``truth``: every puzzle with its own answer; ``random``: valid permutations that are mostly not the
    answer (the format without the solution); ``replay``: that share of the rows are pretraining samples."""
    train = finetuning.jigsaw_splits(profiles.resolve("smoke"))["train"]
    n = len(train)

    def answers(corpus):
        texts = [row[0]["content"] for row in corpus["completion"]]
        return [jigsaw.parse_answer(t, 4) for t in texts if template.follows(t) and "<answer> " in t]

    truth = warmup.corpus(_start({"answers": "truth", "replay": 0.0}))
    assert [jigsaw.answer_text(a) for a in answers(truth)] == list(train["answer"])
    random = warmup.corpus(_start({"answers": "random", "replay": 0.0}))
    drawn = [jigsaw.answer_text(a) for a in answers(random)]
    assert len(drawn) == n and all(a is not None for a in answers(random))
    assert sum(d == t for d, t in zip(drawn, train["answer"])) < n / 2
    assert drawn != [jigsaw.answer_text(a) for a in answers(warmup.corpus(_start({"answers": "random", "replay": 0.0, "seed": 1})))]
    mixed = warmup.corpus(_start({"answers": "random", "replay": 0.5}))
    prompts = [row[0]["content"][1]["text"] for row in mixed["prompt"]]
    puzzle_rows = sum(p == jigsaw.jigsaw_prompt(2, 2) for p in prompts)
    assert puzzle_rows == n and len(mixed) == 2 * n
    assert not any(world.is_permutation_answer(row[0]["content"]) for row, p in zip(mixed["completion"], prompts)
                   if p != jigsaw.jigsaw_prompt(2, 2))  # the replayed rows are world questions
    assert prompts[:n] != [jigsaw.jigsaw_prompt(2, 2)] * n  # shuffled in
    section = profiles.section("cpu", "start")
    assert warmup.name(section) == "start300_random_replay0.5_tiles"
    assert warmup.name(section | {"steps": 20, "answers": "truth", "replay": 0.0, "think": "empty"}) == "start20"
    tiles = warmup.corpus(_start({"answers": "random", "replay": 0.0, "think": "tiles"}))
    texts = [row[0]["content"] for row in tiles["completion"]]
    assert [jigsaw.answer_text(a) for a in answers(tiles)] == drawn  # the same answers, now told tile by tile first
    assert all(t.startswith(f"<think> {jigsaw.tile_trace(a)} </think>") for t, a in zip(texts, answers(tiles)))
    truth_tiles = warmup.corpus(_start({"answers": "truth", "replay": 0.0, "think": "tiles"}))
    assert [jigsaw.answer_text(a) for a in answers(truth_tiles)] == list(train["answer"])
    with pytest.raises(ValueError, match="think"):  # bad knobs are refused when the configuration is resolved
        _start({"think": "teacher"})
    with pytest.raises(ValueError, match="answers"):
        _start({"answers": "teacher"})
    with pytest.raises(ValueError, match="replay"):
        _start({"replay": 1.0})
    with pytest.raises(ValueError, match=r"start.steps must be >= 0"):
        _start({"steps": -1})


def test_every_arm_starts_from_the_base_or_from_one_trained_warm_up(tmp_path, monkeypatch):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    config = profiles.resolve("smoke")
    pretraining.pretrain(config, progress=False)
    base = warmup.start(config.with_knobs("start", steps=0))
    assert base.dir == config.base_dir and warmup.start_run(config.with_knobs("start", steps=0)) is None
    warm = warmup.start(config)  # the smoke profile's one-step format warm-up
    name = warmup.name(config["start"])
    assert warm.dir.parent.parent == config.run_dir / "finetune" / name / f"lr{config['start']['learning_rate']:g}"
    assert warm.dir.parent.name.startswith(f"seed{config['start']['seed']}-") and warm.dir.name == "model"
    assert (warm.dir / "config.json").exists() and warm.fingerprint != base.fingerprint
    # an exercise on the arms' SFT recipe does not change the start
    assert warmup.start(config.with_knobs("sft", learning_rate=1e-3, steps=7, eval_test_size=3)) == warm
    run = warmup.start_run(config)
    assert [p["step"] for p in run["curves"]] == [0, 1]
    assert warmup.prior(config) == run["prior"]  # every drop is measured from it
    with pytest.raises(FileNotFoundError, match="01_jigsaw_puzzles"):  # another start, not trained yet
        warmup.prior(config.with_knobs("start", steps=2))
    scores = warmup.scores(config, {"acc": 0.5, "hit": 0.5})
    assert scores["prior"] == run["prior"] and scores["jigsaw_acc"] == run["jigsaw_acc"]


def test_a_tile_trace_start_needs_room_for_its_completions():
    tokenizer = modeling.build_tokenizer()
    for think in ("tiles", "empty"):  # the start's own completion, counted by the tiny model's tokenizer
        text = jigsaw.start_completion([1, 0, 3, 2], think)
        assert warmup.completion_tokens(4, think) == len(tokenizer(text)["input_ids"]) + 1
    assert jigsaw.start_completion([1, 0, 3, 2], "empty") == jigsaw.gt_completion([1, 0, 3, 2])
    config = profiles.resolve("cpu")
    assert config["start"]["think"] == "tiles"
    warmup.check_room(config)  # the default fits its room
    with pytest.raises(profiles.ProfileError, match=r"max_completion_length \(32\) is too short .* at least 33"):
        warmup.check_room(config.with_knobs("rft", max_completion_length=32))
    short = config.with_knobs("rft", max_completion_length=32)
    warmup.check_room(short.with_knobs("start", think="empty"))
    warmup.check_room(short.with_knobs("start", steps=0))  # the base is the start: nothing to fit
