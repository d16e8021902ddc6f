"""The prior-knowledge world: determinism, held-out test sets, scoring rules, and the absence of jigsaw."""

import json

import numpy as np
import pytest
from PIL import Image

from jrft_utils import template, world


def _same(a, b):
    keys = ("capability", "prompt", "completion", "target", "spec")
    return all(x[k] == y[k] for x, y in zip(a, b) for k in keys) and all(
        np.array_equal(np.asarray(x["image"]), np.asarray(y["image"])) for x, y in zip(a, b))


@pytest.mark.parametrize("cap", world.CAPABILITIES)
def test_generation_is_deterministic_by_seed(cap):
    a, b, c = world.generate(cap, 12, 3), world.generate(cap, 12, 3), world.generate(cap, 12, 4)
    assert _same(a, b)
    assert not _same(a, c)


def test_test_sets_are_fixed_held_out_and_sized():
    a, b = world.build_test_sets(8, 84), world.build_test_sets(8, 84)
    assert set(a) == set(world.CAPABILITIES)
    for cap in world.CAPABILITIES:
        assert len(a[cap]) == 8 and _same(a[cap], b[cap])
    # test digits come from the held-out part of load_digits, training digits never do
    test_digits = [it["index"] for s in a["ocr"] + a["reasoning"] for it in json.loads(s["spec"])["items"]
                   if it["kind"] == "digit"]
    train = world.build_train_set(40, 84, 0)
    train_digits = [it["index"] for s in train for it in json.loads(s["spec"])["items"] if it["kind"] == "digit"]
    held_out = set(world.digit_split()[world.N_TRAIN_DIGITS:].tolist())
    assert test_digits and set(test_digits) <= held_out
    assert train_digits and not set(train_digits) & held_out


def test_every_sample_follows_the_think_answer_template_and_its_own_target():
    for cap in world.CAPABILITIES:
        for s in world.generate(cap, 30, 0):
            assert s["completion"].startswith("<think> ") and s["completion"].endswith(" </answer>")
            assert world.score(cap, s["completion"], s["target"]) == 1.0, s
            assert s["image"].size == (84, 84) and s["image"].mode == "RGB"


def test_shape_traces_scan_the_scene_cell_by_cell():
    """Every think about coloured shapes starts by naming the objects and their cells in cell order; a
    search stops at the object found, so a grounding answer is the last cell named and a "yes" comes
    right after the object asked about (the tiny decoder could not look a label up in a full list)."""
    for cap in ("grounding", "vqa", "hallucination"):
        for s in world.generate(cap, 30, 2):
            items = sorted(json.loads(s["spec"])["items"], key=lambda it: it["cell"])
            entries = [f"{it['colour']} {it['shape']} in cell {it['cell']} ." for it in items]
            think = s["completion"].split("<think> ")[1].split(" </think>")[0]
            n = next(k for k in range(len(entries), 0, -1) if think.startswith(" ".join(entries[:k]) + " "))
            if cap == "grounding":
                assert entries[n - 1].endswith(f"in cell {template.answer_text(s['completion'])} ."), s["completion"]
            if cap == "hallucination":
                assert n == len(entries) or (s["target"] == "yes" and s["prompt"].endswith(
                    f"{entries[n - 1].split(' in cell')[0]} in the image ?")), s["completion"]
                asked = s["prompt"].removeprefix("is there a ").removesuffix(" in the image ?")
                where = entries[n - 1].split(" in ")[1].removesuffix(" .") if s["target"] == "yes" else "no cell"
                assert think.endswith(f"the {asked} is in {where}"), s["completion"]  # grounding's conclusion


def test_reasoning_trace_is_multi_step():
    for s in world.generate("reasoning", 20, 1):
        think = s["completion"].split("</think>")[0]
        assert "the digits are" in think and "=" in think


def test_hallucination_set_is_balanced_and_has_absent_objects():
    sets = world.build_test_sets(40, 84)
    answers = [s["target"] for s in sets["hallucination"]]
    assert answers.count("yes") == answers.count("no") == 20
    for s in sets["hallucination"]:
        spec = json.loads(s["spec"])
        present = {f"{it['colour']} {it['shape']}" for it in spec["items"] if it["kind"] == "shape"}
        asked = s["prompt"].removeprefix("is there a ").removesuffix(" in the image ?")
        assert (asked in present) == (s["target"] == "yes")


def test_grounding_score_uses_iou_at_one_half():
    target = "340 20 650 330"  # an object in cell 1 (top middle)
    assert world.score("grounding", "<think> x </think> <answer> 1 </answer>", target) == 1.0
    assert world.score("grounding", "<answer> 4 </answer>", target) == 0.0  # the cell below
    assert world.score("grounding", "<answer> 340 20 650 330 </answer>", target) == 1.0  # a box
    assert world.score("grounding", "<answer> 340 20 650 150 </answer>", target) == 0.0  # IoU < .5
    assert world.score("grounding", "<answer> 9 </answer>", target) == 0.0  # no such cell
    assert world.score("grounding", "<answer> 1 2 </answer>", target) == 0.0
    assert world.iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_exact_match_and_yes_no_scoring():
    assert world.score("ocr", "<think> there are 3 digits </think> <answer> 4 7 1 </answer>", "4 7 1") == 1.0
    assert world.score("ocr", "<answer> 4 7 </answer>", "4 7 1") == 0.0
    assert world.score("ocr", "<answer> 4 7 1 1 </answer>", "4 7 1") == 0.0
    assert world.score("vqa", "<answer>  red </answer>", "red") == 1.0
    assert world.score("vqa", "<answer> red circle </answer>", "red") == 0.0
    assert world.score("reasoning", "<think> 3 + 4 = 7 </think> <answer> 7 </answer>", "7") == 1.0
    assert world.score("hallucination", "<answer> yes </answer>", "yes") == 1.0
    assert world.score("hallucination", "<answer> yes no </answer>", "yes") == 0.0
    assert world.score("hallucination", "<answer> no </answer>", "yes") == 0.0


def test_unknown_capability_is_a_clear_error():
    with pytest.raises(world.WorldError, match="unknown capability 'jigsaw'"):
        world.score("jigsaw", "<answer> 0 1 </answer>", "0 1")
    with pytest.raises(world.WorldError, match="unknown capability"):
        world.generate("counting", 2, 0)


def test_permutation_answers_are_detected():
    assert world.is_permutation_answer("<think> t </think> <answer> 1 0 </answer>")
    assert world.is_permutation_answer("<answer> 2 0 3 1 </answer>")
    assert not world.is_permutation_answer("<answer> 1 1 </answer>")
    assert not world.is_permutation_answer("<answer> 7 </answer>")
    assert not world.is_permutation_answer("<answer> 0 1 3 </answer>")
    assert not world.is_permutation_answer("<think> row 1 column 0 </think> <answer> 3 </answer>")


def test_no_pretraining_sample_is_a_jigsaw():
    """No pretraining answer is a permutation of 0..k-1 and no image is made of moved tiles: outside its
    objects every image equals its untouched photo crop pixel for pixel."""
    train = world.build_train_set(40, 84, 0) + world.generate("ocr", 400, 7)
    for s in train:
        assert not world.is_permutation_answer(s["completion"]), s["completion"]
        assert world.background_is_intact(s["image"], json.loads(s["spec"])), s["prompt"]
        assert "tile" not in s["prompt"] and "shuffled" not in s["prompt"]


@pytest.mark.parametrize("grid", [2, 3])
def test_shuffled_tiles_fail_the_intact_background_check(grid):
    """Negative control: the check does detect a tile-shuffled image."""
    s = world.generate("vqa", 1, 5)[0]
    arr = np.asarray(s["image"])
    t = arr.shape[0] // grid
    tiles = [arr[r * t:(r + 1) * t, c * t:(c + 1) * t] for r in range(grid) for c in range(grid)]
    perm = list(range(1, grid * grid)) + [0]
    rows = [np.concatenate([tiles[perm[r * grid + c]] for c in range(grid)], axis=1) for r in range(grid)]
    shuffled = Image.fromarray(np.concatenate(rows, axis=0))
    assert world.background_is_intact(s["image"], json.loads(s["spec"]))
    assert not world.background_is_intact(shuffled, json.loads(s["spec"]))


def test_ocr_answers_read_left_to_right_and_never_permutations():
    samples = world.generate("ocr", 300, 11)
    for s in samples:
        spec = json.loads(s["spec"])
        xs = [it["box"][0] for it in spec["items"]]
        assert xs == sorted(xs)
        assert len(s["target"].split()) == len(xs)


def test_the_training_corpus_is_drawn_once_and_handed_out_as_a_new_list():
    first = world.build_train_set(40, 84, 0)
    first.pop()  # a caller's list is its own
    again = world.build_train_set(40, 84, 0)
    assert len(again) == len(first) + 1 and all(a is b for a, b in zip(first, again))
    other = world.build_train_set(40, 84, 1)
    assert [s["completion"] for s in other] != [s["completion"] for s in again]
