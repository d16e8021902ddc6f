"""The rule-based teacher: solves edge-consistent puzzles, writes reasoning that ends in its answer."""

from __future__ import annotations

import numpy as np
import pytest

from jrft_utils import jigsaw, modeling, teacher, template, world


def _smooth_image(seed: int, size: int = 84) -> np.ndarray:
    """A smooth, non-symmetric image: every tile border continues into its neighbour."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    chans = [np.sin(rng.uniform(1, 4) * xx + rng.uniform(0, 3)) * np.cos(rng.uniform(1, 4) * yy)
             + rng.uniform(0.5, 1.5) * xx * yy + rng.uniform(-1, 1) * xx ** 2 for _ in range(3)]
    arr = np.stack(chans, axis=-1)
    arr = (arr - arr.min()) / np.ptp(arr)
    return (255 * arr).astype(np.uint8)


@pytest.mark.parametrize("rows, cols", [(2, 2), (2, 3), (3, 3)])
def test_teacher_solves_edge_consistent_images(rows, cols):
    for seed in range(4):
        p = jigsaw.make_puzzle(_smooth_image(seed), rows, cols, seed)
        sol = teacher.solve(p.image, rows, cols)
        assert sol.answer == p.answer, (seed, sol.answer, p.answer)
        assert jigsaw.score(sol.completion, p.answer_text) == {"hit": 1.0, "acc": 1.0, "fmt": 1.0}


def test_teacher_beam_search_beyond_exact_limit():
    p = jigsaw.make_puzzle(_smooth_image(7), 4, 3, 1)
    assert teacher.solve(p.image, 4, 3).answer == p.answer


def test_reasoning_text_follows_the_answer():
    text = teacher.completion([1, 3, 0, 2], 2, 2, style="foreign")
    assert template.follows(text)
    assert jigsaw.parse_answer(text, 4) == [1, 3, 0, 2]
    # layout: place 0 <- piece 2, place 1 <- piece 0, place 2 <- piece 3, place 3 <- piece 1
    assert "piece 2 right edge meets piece 0 left edge ." in text
    assert "piece 2 bottom edge meets piece 3 top edge ." in text
    assert "piece 0 goes to place 1 ," in text
    assert text.count("meets") == 4
    assert teacher.completion(list(range(9))[::-1], 3, 3, style="foreign").count("meets") == 12
    assert jigsaw.out_of_vocabulary([text]) == set()


def test_layout_and_answer_are_inverse():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = jigsaw.random_answer(rng, 9)
        assert teacher.layout_to_answer(teacher.answer_to_layout(a)) == a


def test_teacher_accuracy_and_completions_on_a_dataset():
    ds = jigsaw.build_dataset({"rows": 2, "cols": 2, "image_size": 84, "photo_fraction": 0.5}, "test", size=10)
    sols = teacher.solve_dataset(ds)
    scores = teacher.accuracy(ds, sols)
    assert scores["n"] == 10 and scores["fmt"] == 1.0 and 0.0 <= scores["acc"] <= 1.0
    assert scores["acc"] >= 0.7  # edge matching solves most 2 x 2 crops
    truth = teacher.teacher_completions(ds, use_truth=True)
    assert jigsaw.evaluate_jigsaw(truth, list(ds["answer"]))["acc"] == 1.0
    foreign = teacher.teacher_completions(ds, use_truth=True, style="foreign")  # the control: same answers
    assert jigsaw.evaluate_jigsaw(foreign, list(ds["answer"]))["acc"] == 1.0
    assert all("meets" in f and "meets" not in t and "holds tile" in t for f, t in zip(foreign, truth))
    assert teacher.teacher_completions(ds, sols) == [s.completion for s in sols]


def test_teacher_refuses_bad_grids():
    with pytest.raises(ValueError, match="single tile"):
        teacher.solve(np.zeros((84, 84, 3), np.uint8), 1, 1)


def test_world_style_reasoning_speaks_only_the_bases_language():
    """The teacher in the base's words: the same answer, a solver's sentences built from the words of the
    pretraining corpus and of the jigsaw prompt the start learnt to answer, nothing else."""
    text = teacher.completion([1, 3, 0, 2], 2, 2, style="world")
    assert template.follows(text) and jigsaw.parse_answer(text, 4) == [1, 3, 0, 2]
    # layout: place 0 <- piece 2, place 1 <- piece 0, place 2 <- piece 3, place 3 <- piece 1
    assert "tile 2 is left of tile 0 ." in text and "tile 2 and tile 3 are in column 0 ." in text
    assert "cell 1 holds tile 0 ." in text and "in cell" not in text  # not the policy's tile trace
    tok = modeling.build_tokenizer()
    assert tok.unk_token_id not in tok(text, add_special_tokens=False)["input_ids"]
    pretraining = world.build_train_set(20, 84, seed=0)
    known = {w for s in pretraining for w in f"{s['prompt']} {s['completion']}".split()}
    known |= set(jigsaw.jigsaw_prompt(2, 2).split()) | set(jigsaw.start_completion([0, 1, 2, 3], "tiles").split())
    assert set(teacher.completion(list(range(9))[::-1], 3, 3, style="world").split()) <= known
    with pytest.raises(ValueError, match="unknown teacher style"):
        teacher.completion([0, 1, 2, 3], 2, 2, style="alien")
