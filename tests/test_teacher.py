"""The rule-based teacher: solves edge-consistent puzzles, writes reasoning that ends in its answer."""

from __future__ import annotations

import numpy as np
import pytest

from jrft_utils import jigsaw, teacher, template


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
    text = teacher.completion([1, 3, 0, 2], 2, 2)
    assert template.follows(text)
    assert jigsaw.parse_answer(text, 4) == [1, 3, 0, 2]
    # layout: place 0 <- piece 2, place 1 <- piece 0, place 2 <- piece 3, place 3 <- piece 1
    assert "piece 2 right edge meets piece 0 left edge ." in text
    assert "piece 2 bottom edge meets piece 3 top edge ." in text
    assert "piece 0 goes to place 1 ," in text
    assert text.count("meets") == 4
    assert teacher.completion(list(range(9))[::-1], 3, 3).count("meets") == 12
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
    assert teacher.teacher_completions(ds, sols) == [s.completion for s in sols]


def test_teacher_refuses_bad_grids():
    with pytest.raises(ValueError, match="single tile"):
        teacher.solve(np.zeros((84, 84, 3), np.uint8), 1, 1)
