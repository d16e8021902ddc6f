"""A rule-based jigsaw teacher: the analogue of the paper's GPT-4o reasoning (notebook 01, used in 04).

It scores how well every pair of tiles fits side by side (edge dissimilarity), searches the arrangement
with the lowest total dissimilarity (exactly, over all permutations, for up to 9 tiles; a beam search
beyond), and writes its reasoning in one of two styles (:data:`REASONING`):

- ``"world"`` (the SFT-Rea-teacher arm): a solver's reasoning in the words and grammar the base was
  pretrained on, as GPT-4o's reasoning is in the language Qwen speaks, in a style that is not the
  policy's: ``<think> tile 2 is left of tile 0 . ... cell 0 holds tile 2 . ... </think> <answer> 1 3 0 2 </answer>``
- ``"foreign"`` (the SFT-teacher-foreign control): the same solver in words the base never saw:
  ``<think> i compare the edges of every pair of pieces . piece 2 right edge meets piece 0 left edge . ...
  so piece 0 goes to place 1 , piece 1 goes to place 3 , ... . </think> <answer> 1 3 0 2 </answer>``

"piece p" / "tile p" is the tile shown at position p of the shuffled image; "place q" / "cell q" is
position q of the original image, so "piece p goes to place q" is exactly ``answer[p] = q`` (see
:mod:`jrft_utils.jigsaw`).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from jrft_utils import jigsaw, world

# The foreign teacher's words that the start never read: in neither the world it was pretrained on nor the
# jigsaw prompt it was warmed up on (the SFT-foreign-think control's think blocks are drawn from them).
FOREIGN_WORDS: tuple[str, ...] = tuple(w for w in jigsaw.TEACHER_WORDS if w not in world.VOCABULARY
                                       and w not in jigsaw.jigsaw_prompt(2, 2).split())
EXACT_MAX_TILES = 9  # exhaustive search up to 9! = 362,880 arrangements
BEAM_WIDTH = 256


def _edge_dissimilarity(a: np.ndarray, b: np.ndarray) -> float:
    """How badly tile ``b`` continues tile ``a`` to its right (0 = perfect): the mean absolute error
    of predicting each side's border column from the other side's last two columns (a linear
    extrapolation of the gradient), plus the plain border difference."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    pred_b = 2 * a[:, -1] - a[:, -2]
    pred_a = 2 * b[:, 0] - b[:, 1]
    return float(np.abs(pred_b - b[:, 0]).mean() + np.abs(pred_a - a[:, -1]).mean()
                 + np.abs(a[:, -1] - b[:, 0]).mean())


def dissimilarities(tiles: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(lr, tb)``: ``lr[i, j]`` = dissimilarity of tile j placed right of tile i; ``tb[i, j]`` = of
    tile j placed below tile i. Diagonals are +inf."""
    n = len(tiles)
    lr, tb = np.full((n, n), np.inf), np.full((n, n), np.inf)
    for i in range(n):
        for j in range(n):
            if i != j:
                lr[i, j] = _edge_dissimilarity(tiles[i], tiles[j])
                tb[i, j] = _edge_dissimilarity(np.swapaxes(tiles[i], 0, 1), np.swapaxes(tiles[j], 0, 1))
    return lr, tb


@functools.lru_cache(maxsize=4)
def _permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int8)


def _adjacencies(rows: int, cols: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    horiz = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    vert = [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    return horiz, vert


def _layout_cost(layout: Sequence[int], lr: np.ndarray, tb: np.ndarray, rows: int, cols: int) -> float:
    horiz, vert = _adjacencies(rows, cols)
    return float(sum(lr[layout[a], layout[b]] for a, b in horiz) + sum(tb[layout[a], layout[b]] for a, b in vert))


def _exact(lr: np.ndarray, tb: np.ndarray, rows: int, cols: int) -> np.ndarray:
    perms = _permutations(rows * cols)
    horiz, vert = _adjacencies(rows, cols)
    cost = np.zeros(len(perms))
    for a, b in horiz:
        cost += lr[perms[:, a], perms[:, b]]
    for a, b in vert:
        cost += tb[perms[:, a], perms[:, b]]
    return perms[int(np.argmin(cost))].astype(int)


def _beam(lr: np.ndarray, tb: np.ndarray, rows: int, cols: int, width: int = BEAM_WIDTH) -> np.ndarray:
    n = rows * cols
    beam: list[tuple[float, list[int]]] = [(0.0, [])]
    for q in range(n):
        r, c = divmod(q, cols)
        nxt = []
        for cost, layout in beam:
            used = set(layout)
            for t in range(n):
                if t in used:
                    continue
                add = (lr[layout[q - 1], t] if c > 0 else 0.0) + (tb[layout[q - cols], t] if r > 0 else 0.0)
                nxt.append((cost + add, layout + [t]))
        nxt.sort(key=lambda x: x[0])
        beam = nxt[:width]
    return np.array(beam[0][1])


def solve_layout(image: Image.Image | np.ndarray, rows: int, cols: int) -> list[int]:
    """The arrangement of least total edge dissimilarity: ``layout[q]`` = the shuffled position whose
    tile belongs at original place ``q``."""
    tiles = jigsaw.split_tiles(image, rows, cols)
    lr, tb = dissimilarities(tiles)
    if rows * cols <= EXACT_MAX_TILES:
        return [int(v) for v in _exact(lr, tb, rows, cols)]
    return [int(v) for v in _beam(lr, tb, rows, cols)]


def layout_to_answer(layout: Sequence[int]) -> list[int]:
    """Invert a layout (place -> piece) into the answer (piece -> place)."""
    answer = [0] * len(layout)
    for q, p in enumerate(layout):
        answer[int(p)] = q
    return answer


def answer_to_layout(answer: Sequence[int]) -> list[int]:
    """Invert an answer (piece -> place) into a layout (place -> piece)."""
    return layout_to_answer(answer)


def _neighbours(layout: Sequence[int], rows: int, cols: int):
    """Every adjacency of the solved image in reading order: ``(beside, a, b, column)``, tile ``b`` right of
    tile ``a`` (``beside``) or below it, in ``column``."""
    for q in range(rows * cols):
        r, c = divmod(q, cols)
        if c + 1 < cols:
            yield True, layout[q], layout[q + 1], c
        if r + 1 < rows:
            yield False, layout[q], layout[q + cols], c


def reasoning(answer: Sequence[int], rows: int, cols: int) -> str:
    """The teacher's reasoning in the foreign style (words the base never saw): every adjacency of the
    solved image as an edge match, in reading order, then where each piece goes."""
    layout = answer_to_layout([int(a) for a in answer])
    sentences = ["i compare the edges of every pair of pieces ."]
    sentences += [f"piece {a} right edge meets piece {b} left edge ." if beside else
                  f"piece {a} bottom edge meets piece {b} top edge ." for beside, a, b, _ in _neighbours(layout, rows, cols)]
    moves = " , ".join(f"piece {p} goes to place {q}" for p, q in enumerate(answer))
    sentences.append(f"so {moves} .")
    return " ".join(sentences)


def world_reasoning(answer: Sequence[int], rows: int, cols: int) -> str:
    """The same solver's reasoning in the words and grammar the base was pretrained on (its scenes read
    ``red circle in cell 1 .``, its questions ``which cell holds the red circle ?``): every horizontal
    adjacency of the solved image as ``tile a is left of tile b .``, every vertical one as ``tile a and
    tile b are in column c .``, then where each tile goes as ``cell q holds tile p .`` A solver's style,
    unlike the policy's tile-by-tile trace (:func:`jigsaw.tile_trace`)."""
    layout = answer_to_layout([int(a) for a in answer])
    sentences = [f"tile {a} is left of tile {b} ." if beside else f"tile {a} and tile {b} are in column {c} ."
                 for beside, a, b, c in _neighbours(layout, rows, cols)]
    sentences += [f"cell {q} holds tile {p} ." for q, p in enumerate(layout)]
    return " ".join(sentences)


REASONING = {"foreign": reasoning, "world": world_reasoning}  # the teacher's styles, by name


def completion(answer: Sequence[int], rows: int, cols: int, style: str = "world") -> str:
    """The teacher's full completion for ``answer``: reasoning in the think block (``style``: one of
    :data:`REASONING`), then the answer."""
    if style not in REASONING:
        raise ValueError(f"unknown teacher style {style!r}; styles: {sorted(REASONING)}")
    return jigsaw.completion_text(answer, think=REASONING[style](answer, rows, cols))


@dataclass
class Solution:
    """What the teacher says about one puzzle."""

    answer: list[int]
    cost: float
    completion: str

    @property
    def answer_text(self) -> str:
        return jigsaw.answer_text(self.answer)


def solve(image: Image.Image | np.ndarray, rows: int, cols: int) -> Solution:
    """Solve a shuffled puzzle and write the reasoning that leads to its answer."""
    jigsaw.check_grid(rows, cols, np.asarray(image).shape[0])
    tiles = jigsaw.split_tiles(image, rows, cols)
    lr, tb = dissimilarities(tiles)
    layout = solve_layout(image, rows, cols)
    answer = layout_to_answer(layout)
    return Solution(answer, _layout_cost(layout, lr, tb, rows, cols), completion(answer, rows, cols))


def solve_dataset(ds) -> list[Solution]:
    """Teacher solutions for every row of a jigsaw dataset (columns image, rows, cols)."""
    return [solve(ex["image"], int(ex["rows"]), int(ex["cols"])) for ex in ds]


def accuracy(ds, solutions: Sequence[Solution] | None = None) -> dict[str, Any]:
    """The teacher's ``acc`` / ``hit`` / ``fmt`` on a dataset (scored like a model's completions)."""
    solutions = solve_dataset(ds) if solutions is None else solutions
    return jigsaw.evaluate_jigsaw([s.completion for s in solutions], list(ds["answer"]))


def teacher_completions(ds, solutions: Sequence[Solution] | None = None, use_truth: bool = False,
                        style: str = "world") -> list[str]:
    """SFT-Rea-teacher completions for a dataset: the teacher's own solution, or with ``use_truth`` the
    teacher's reasoning written for the ground-truth answer (so every example is correct) in ``style``."""
    if use_truth:
        return [completion(jigsaw.answer_list(a), int(r), int(c), style)
                for a, r, c in zip(ds["answer"], ds["rows"], ds["cols"])]
    solutions = solve_dataset(ds) if solutions is None else solutions
    return [s.completion for s in solutions]
