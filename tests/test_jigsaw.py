"""Jigsaw puzzles: grid checks, generator, answer convention, strict parsing, rewards, TRL formats."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from jrft_utils import jigsaw, profiles, teacher, template

CFG = {"rows": 2, "cols": 2, "train_size": 12, "test_size": 12, "image_size": 84, "photo_fraction": 0.5}


# ---------------------------------------------------------------- grids


@pytest.mark.parametrize("rows, cols, match", [
    (1, 1, "single tile"), (0, 2, ">= 1"), (2, 0, ">= 1"), (-1, 3, ">= 1"), (-2, -2, ">= 1"),
    (5, 5, "does not divide"), (12, 12, "too fine"), (21, 21, "too fine"), (2.0, 2, "integer"),
    ("3", 3, "integer"), (True, 2, "integer"),
])
def test_out_of_range_grid_is_a_clear_error(rows, cols, match):
    with pytest.raises(ValueError, match=match):
        jigsaw.check_grid(rows, cols, 84)
    with pytest.raises(ValueError, match="jigsaw grid"):
        jigsaw.generate_puzzles(1, "train", rows=rows, cols=cols)


@pytest.mark.parametrize("rows, cols", [(1, 2), (2, 1), (2, 2), (2, 3), (3, 3), (4, 4), (6, 7)])
def test_valid_grids_pass(rows, cols):
    jigsaw.check_grid(rows, cols, 84)


def test_grid_bigger_than_image_tile_minimum():
    jigsaw.check_grid(4, 4, 32)  # 8 px tiles: the minimum
    with pytest.raises(ValueError, match="too fine"):
        jigsaw.check_grid(4, 4, 28)  # 7 px tiles


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("rows, cols", [(2, 2), (3, 3), (2, 3)])
def test_unshuffling_with_the_answer_restores_the_original_exactly(rows, cols):
    for p in jigsaw.generate_puzzles(6, "train", rows=rows, cols=cols, photo_fraction=0.5, seed=3):
        assert p.image.size == (84, 84) and p.image.mode == "RGB"
        assert sorted(p.answer) == list(range(rows * cols)) and p.answer != list(range(rows * cols))
        np.testing.assert_array_equal(np.asarray(jigsaw.unshuffle(p.image, rows, cols, p.answer)),
                                      np.asarray(p.original))
        assert not np.array_equal(np.asarray(p.image), np.asarray(p.original))


def test_answer_convention_on_a_hand_made_image():
    # four flat tiles whose colour encodes their original index
    arr = np.zeros((84, 84, 3), np.uint8)
    for q in range(4):
        r, c = divmod(q, 2)
        arr[r * 42:(r + 1) * 42, c * 42:(c + 1) * 42] = 10 * (q + 1)
    shuffled = np.asarray(jigsaw.shuffle_image(arr, 2, 2, [2, 0, 3, 1]))
    # position p of the shuffled image shows original tile answer[p]
    assert [shuffled[r * 42 + 5, c * 42 + 5, 0] // 10 - 1 for r in range(2) for c in range(2)] == [2, 0, 3, 1]


def test_generator_is_deterministic_by_seed():
    a = jigsaw.build_dataset(CFG, "train", seed=5)
    b = jigsaw.build_dataset(CFG, "train", seed=5)
    c = jigsaw.build_dataset(CFG, "train", seed=6)
    assert a["answer"] == b["answer"] and a["source"] == b["source"]
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], b["image"]))
    assert not all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a["image"], c["image"]))


def test_train_and_test_come_from_disjoint_crops():
    cfg = dict(CFG, photo_fraction=1.0, train_size=150, test_size=60)
    splits = jigsaw.build_splits(cfg)
    boxes = {s: [(src, tuple(b)) for src, b in zip(splits[s]["source"], splits[s]["box"])] for s in splits}
    for src, (x0, y0, x1, y1) in boxes["train"]:
        for src2, (u0, v0, u1, v1) in boxes["test"]:
            if src == src2:
                assert x1 <= u0 or u1 <= x0 or y1 <= v0 or v1 <= y0, (src, (x0, y0, x1, y1), (u0, v0, u1, v1))
    # and every crop lies inside its split's region of the photo
    for split, items in boxes.items():
        for src, (x0, y0, x1, y1) in items:
            rx0, ry0, rx1, ry1 = jigsaw.photo_region(jigsaw.load_photo(src).shape, split, cfg["test_region"]
                                                     if "test_region" in cfg else 1 / 3)
            assert rx0 <= x0 < x1 <= rx1 and ry0 <= y0 < y1 <= ry1


def test_procedural_images_differ_between_splits():
    cfg = dict(CFG, photo_fraction=0.0)
    train = {np.asarray(im).tobytes() for im in jigsaw.build_dataset(cfg, "train")["image"]}
    test = {np.asarray(im).tobytes() for im in jigsaw.build_dataset(cfg, "test")["image"]}
    assert not train & test
    assert set(jigsaw.build_dataset(cfg, "train")["source"]) == {"procedural"}


def test_photo_fraction_sets_the_mix():
    photos = jigsaw.build_dataset(dict(CFG, photo_fraction=1.0), "train")["source"]
    assert "procedural" not in photos and all(s in jigsaw.PHOTOS for s in photos)
    with pytest.raises(ValueError, match="photo_fraction"):
        jigsaw.generate_puzzles(1, "train", photo_fraction=1.5)


def test_dataset_columns_and_profile_section():
    cfg = profiles.section("smoke", "jigsaw")
    splits = jigsaw.build_splits(cfg)
    assert len(splits["train"]) == cfg["train_size"] and len(splits["test"]) == cfg["test_size"]
    ex = splits["train"][0]
    assert isinstance(ex["image"], Image.Image) and ex["image"].size == (cfg["image_size"],) * 2
    assert (ex["rows"], ex["cols"]) == (cfg["rows"], cfg["cols"])
    assert jigsaw.parse_answer(f"<answer> {ex['answer']} </answer>", ex["rows"] * ex["cols"]) is not None


def test_model_facing_datasets_stay_within_single_digit_indices():
    with pytest.raises(ValueError, match="more than 10 tiles"):
        jigsaw.build_dataset(dict(CFG, rows=4, cols=4), "train", size=1)
    with pytest.raises(ValueError, match="single tile"):
        jigsaw.build_dataset(dict(CFG, rows=1, cols=1), "train", size=1)


def test_trl_formats():
    ds = jigsaw.build_dataset(CFG, "test", size=3)
    grpo = jigsaw.to_grpo(ds)
    ex = grpo[0]
    assert ex["prompt"][0]["role"] == "user"
    assert ex["prompt"][0]["content"][0]["type"] == "image"
    assert ex["prompt"][0]["content"][1]["text"] == jigsaw.jigsaw_prompt(2, 2)
    assert len(ex["images"]) == 1 and ex["answer"] == ds[0]["answer"]
    sft = jigsaw.to_sft_gt(ds)
    assert sft[1]["completion"] == [{"role": "assistant", "content": f"<think> </think> <answer> {ds[1]['answer']} </answer>"}]
    assert jigsaw.hit_reward([c for c in sft["completion"]], answer=sft["answer"]) == [1.0] * 3
    with pytest.raises(ValueError):
        jigsaw.to_sft(ds, ["x"])


# ---------------------------------------------------------------- texts and vocabulary


def test_every_word_of_every_text_is_in_the_vocabulary():
    texts = []
    for rows, cols in [(2, 2), (2, 3), (3, 3), (2, 5)]:
        texts.append(jigsaw.jigsaw_prompt(rows, cols))
        rng = np.random.default_rng(rows * 10 + cols)
        answer = jigsaw.random_answer(rng, rows * cols)
        texts += [jigsaw.gt_completion(answer), teacher.completion(answer, rows, cols, style="foreign")]
    assert jigsaw.out_of_vocabulary(texts) == set()  # (the teacher's "world" style: the world's words, test_teacher)
    assert jigsaw.out_of_vocabulary(["the zebra ."]) == {"zebra"}
    # lowercase, space-separated, punctuation as separate tokens
    for t in texts:
        for w in t.split():
            assert w == w.lower() and (len(w) == 1 or w.isalpha() or w in template.TAGS), w


# ---------------------------------------------------------------- rewards on worked examples

TRUTH = "2 0 3 1"


@pytest.mark.parametrize("text, hit, acc, fmt", [
    ("<think> edges . </think> <answer> 2 0 3 1 </answer>", 1.0, 1.0, 1.0),        # exact
    ("<think></think><answer>2 0 3 1</answer>", 1.0, 1.0, 1.0),                     # no spaces
    ("<think> x </think> <answer> 2, 0, 3, 1 </answer>", 1.0, 1.0, 1.0),           # commas tolerated
    ("<think> </think> <answer> 2 0 1 3 </answer>", 0.5, 0.0, 1.0),                # partial
    ("<think> </think> <answer> 0 1 2 3 </answer>", 0.0, 0.0, 1.0),                # all wrong, valid
    ("<think> </think> <answer> 2 2 3 1 </answer>", 0.0, 0.0, 1.0),                # repeated index
    ("<think> </think> <answer> 2 2 2 2 </answer>", 0.0, 0.0, 1.0),                # hacking attempt
    ("<think> </think> <answer> 2 0 3 </answer>", 0.0, 0.0, 0.5),                  # too short
    ("<think> </think> <answer> 2 0 3 1 4 </answer>", 0.0, 0.0, 0.5),              # too long
    ("<think> </think> <answer> 2 0 3 4 </answer>", 0.0, 0.0, 0.5),                # out of range
    ("<think> </think> <answer> 2 0 3 1 tile </answer>", 0.0, 0.0, 0.5),           # extra word
    ("<answer> 2 0 3 1 </answer>", 1.0, 1.0, 0.5),                                 # no think: half fmt
    ("2 0 3 1", 0.0, 0.0, 0.0),                                                    # no template
    ("<think> a </think> <answer> 2 0 3 1 </answer> more", 1.0, 1.0, 0.5),         # trailing text
    ("<think> </think> <answer> 2 0 3 1 </answer> <answer> 2 0 3 1 </answer>", 0.0, 0.0, 0.0),
    ("<answer> 2 0 3 1 </answer> <think> </think>", 1.0, 1.0, 0.5),                # wrong order
    ("", 0.0, 0.0, 0.0),
])
def test_rewards_on_worked_examples(text, hit, acc, fmt):
    for completions in ([text], [[{"role": "assistant", "content": text}]],
                        [[{"role": "assistant", "content": [{"type": "text", "text": text}]}]]):
        assert jigsaw.hit_reward(completions, answer=[TRUTH]) == [hit]
        assert jigsaw.acc_reward(completions, answer=[TRUTH]) == [acc]
        assert jigsaw.fmt_reward(completions, answer=[TRUTH]) == [fmt]


def test_rewards_in_a_batch_and_evaluate():
    completions = [jigsaw.gt_completion("2 0 3 1"), jigsaw.gt_completion("1 0 3 2"), "nonsense"]
    answers = ["2 0 3 1", "1 0 2 3", "0 1 2 3"]
    assert jigsaw.hit_reward(completions, answer=answers, prompts=None) == [1.0, 0.5, 0.0]
    assert jigsaw.acc_reward(completions, answer=answers) == [1.0, 0.0, 0.0]
    scores = jigsaw.evaluate_jigsaw(completions, answers)
    assert scores["acc"] == pytest.approx(1 / 3) and scores["hit"] == pytest.approx(0.5)
    assert scores["fmt"] == pytest.approx(2 / 3) and scores["n"] == 3
    with pytest.raises(ValueError):
        jigsaw.evaluate_jigsaw(completions, answers[:2])


# ---------------------------------------------------------------- fuzz: rewards never raise

_tagged = st.lists(st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", " ", "0", "1", "2", "3",
                                    "8", "9", "10", ",", ".", "tile", "-1", "\n", "١"]), max_size=30).map("".join)
_any_text = st.one_of(st.text(max_size=200), _tagged)
_completion = st.one_of(
    _any_text,
    _any_text.map(lambda t: [{"role": "assistant", "content": t}]),
    _any_text.map(lambda t: [{"role": "assistant", "content": [{"type": "text", "text": t}]}]),
    st.none(), st.integers(), st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), st.none()), max_size=3),
)
_answer = st.one_of(st.permutations(list(range(4))).map(jigsaw.answer_text),
                    st.permutations(list(range(9))).map(jigsaw.answer_text), st.text(max_size=20), st.none())


@settings(max_examples=200, deadline=None)
@given(st.lists(_completion, max_size=4), st.lists(_answer, max_size=5))
def test_rewards_never_raise_and_stay_in_unit_interval(completions, answers):
    for fn in jigsaw.REWARD_FUNCS:
        out = fn(completions, answer=answers)
        assert len(out) == len(completions)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=-3, max_value=12))
def test_parse_answer_is_none_or_a_permutation(text, n):
    parsed = jigsaw.parse_answer(text, n)
    assert parsed is None or sorted(parsed) == list(range(n))


@settings(max_examples=200, deadline=None)
@given(st.permutations(list(range(9))), st.lists(st.integers(0, 8), min_size=9, max_size=9))
def test_only_valid_permutations_earn_hit_credit(truth, guess):
    text = jigsaw.completion_text(jigsaw.answer_text(guess))
    hit = jigsaw.hit_reward([text], answer=[jigsaw.answer_text(truth)])[0]
    if sorted(guess) != list(range(9)):
        assert hit == 0.0
    else:
        assert hit == pytest.approx(sum(g == t for g, t in zip(guess, truth)) / 9)


def test_texts_round_trip_through_the_model_tokenizer():
    modeling = pytest.importorskip("jrft_utils.modeling")
    tok = modeling.build_tokenizer()
    texts = [jigsaw.jigsaw_prompt(3, 3), teacher.completion([8, 6, 2, 0, 4, 7, 1, 3, 5], 3, 3),
             teacher.completion([1, 0, 3, 2], 2, 2), jigsaw.gt_completion("1 0 3 2")]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids) == text


def test_load_or_build_splits_caches_by_generator_settings(tmp_path, monkeypatch):
    cfg = dict(profiles.section("smoke", "jigsaw"), train_size=4, test_size=3)
    first = jigsaw.load_or_build_splits(cfg, tmp_path / "smoke")
    assert (tmp_path / "smoke" / "generator.json").exists()
    again = jigsaw.load_or_build_splits(cfg, tmp_path / "smoke")
    assert again["train"]["answer"] == first["train"]["answer"]
    bigger = jigsaw.load_or_build_splits(dict(cfg, test_size=5), tmp_path / "smoke")
    assert len(bigger["test"]) == 5


def test_tile_trace_tells_the_answer_tile_by_tile_in_the_worlds_words():
    trace = jigsaw.tile_trace([2, 0, 3, 1])
    assert trace == "tile 0 in cell 2 . tile 1 in cell 0 . tile 2 in cell 3 . tile 3 in cell 1 ."
    assert jigsaw.tile_trace("2 0 3 1") == trace  # a ground-truth answer as stored in the dataset
    text = jigsaw.completion_text([2, 0, 3, 1], think=trace)
    assert template.follows(text) and jigsaw.score(text, "2 0 3 1")["acc"] == 1.0
    from jrft_utils import modeling
    tokenizer = modeling.build_tokenizer()
    assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"]  # every word is the base's own

