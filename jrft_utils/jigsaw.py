"""Jigsaw puzzles: the new task (notebook 01).

Convention: positions and tile indices both count row-major from 0 (top-left) to rows*cols-1.
The answer lists, for each position of the shuffled image, the original index of the tile shown there:
``answer[p] = q`` means "the tile now at position ``p`` came from position ``q`` of the original image".
So ``unshuffle(shuffled, rows, cols, answer)`` puts tile ``p`` back at ``answer[p]`` and gives the
original image back exactly.

Texts (prompt, answers, reasoning) are lowercase words separated by single spaces, with digits and
punctuation as separate tokens, so that the tiny model's WordLevel tokenizer sees every word in
:data:`VOCABULARY`. Completions follow the paper's template (:mod:`jrft_utils.template`)
``<think> ... </think> <answer> 2 0 3 1 </answer>``.

Images: crops of real photos that ship inside scikit-image and scikit-learn, plus optional procedural
images (a smooth colour field with shapes); ``photo_fraction`` sets the mix. Train and test crops come
from disjoint regions of each photo (the last ``test_region`` of its long side is test-only) and from
different random streams for procedural images. Everything is deterministic by seed.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from jrft_utils import template

# Every word the jigsaw prompt, answers and the teacher's reasoning use; the model factory adds these
# to the tokenizer's vocabulary (digits and punctuation are always in it). The template tags
# (template.TAGS) are not listed here: the base model's tokenizer owns them.
TEACHER_WORDS: tuple[str, ...] = (  # the teacher's foreign reasoning (jrft_utils.teacher)
    "i", "compare", "edges", "every", "pair", "pieces", "piece", "right", "left", "top", "bottom", "edge",
    "meets", "so", "goes", "to", "place",
)
VOCABULARY: tuple[str, ...] = (
    "the", "image", "is", "cut", "into", "x", "tiles", "and", "shuffled", "for", "each", "position",
    "give", "original", "index", "of", "its", "tile", *TEACHER_WORDS,
)
PUNCTUATION: tuple[str, ...] = (".", ",")

MIN_TILE = 8  # pixels: a tile narrower or shorter than this is refused
# Indices are written as single digits: the tokenizer splits "10" into "1 0", so model-facing datasets
# are limited to 10 tiles (the generator, the teacher and the explorer accept larger grids).
MAX_TEXT_TILES = 10

# Real photos that ship inside the installed wheels (no download). hubble_deep_field is left out: its
# crops are mostly black sky, which no solver can place.
PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina",
    "motorcycle", "china", "flower", "camera", "coins", "moon", "clock", "brick", "grass", "gravel", "cell",
)


def jigsaw_prompt(rows: int, cols: int) -> str:
    """The user prompt of a rows x cols puzzle (the image comes before it in the chat)."""
    return (
        f"the image is cut into {rows} x {cols} tiles and shuffled . "
        "for each position give the original index of its tile ."
    )


# --------------------------------------------------------------------------------------------------
# Grids, tiles, shuffling


def check_grid(rows: Any, cols: Any, image_size: Any = 84, min_tile: int = MIN_TILE) -> None:
    """Raise ``ValueError`` with a clear message unless a rows x cols grid fits an image_size image:
    integers, at least 2 tiles, at least 1 row and column, tiles of at least ``min_tile`` px that
    divide the image exactly."""
    for name, v in (("rows", rows), ("cols", cols), ("image_size", image_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"jigsaw grid: {name} must be an integer, got {v!r}")
    if rows < 1 or cols < 1:
        raise ValueError(f"jigsaw grid: rows and cols must be >= 1, got {rows} x {cols}")
    if rows * cols < 2:
        raise ValueError(f"jigsaw grid: a {rows} x {cols} grid has a single tile, nothing to shuffle; "
                         "use at least 2 tiles (the paper uses 3 x 3)")
    for name, n in (("rows", rows), ("cols", cols)):
        if image_size % n:
            raise ValueError(f"jigsaw grid: {name}={n} does not divide the {image_size} px image "
                             f"into equal tiles")
        if image_size // n < min_tile:
            raise ValueError(f"jigsaw grid: {rows} x {cols} is too fine for a {image_size} px image: "
                             f"tiles would be {image_size // n} px, the minimum is {min_tile} px")


def _as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return arr


def split_tiles(image: Image.Image | np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    """The rows*cols tiles of an image, row-major."""
    arr = _as_array(image)
    h, w = arr.shape[:2]
    if h % rows or w % cols:
        raise ValueError(f"a {h}x{w} image does not split into {rows} x {cols} equal tiles")
    th, tw = h // rows, w // cols
    return [arr[r * th:(r + 1) * th, c * tw:(c + 1) * tw].copy() for r in range(rows) for c in range(cols)]


def assemble(tiles: Sequence[np.ndarray], rows: int, cols: int) -> np.ndarray:
    """Paste row-major tiles back into one array."""
    return np.concatenate([np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1) for r in range(rows)], axis=0)


def _check_permutation(answer: Sequence[int], n: int) -> list[int]:
    answer = [int(a) for a in answer]
    if sorted(answer) != list(range(n)):
        raise ValueError(f"answer {answer} is not a permutation of 0..{n - 1}")
    return answer


def shuffle_image(image: Image.Image | np.ndarray, rows: int, cols: int, answer: Sequence[int]) -> Image.Image:
    """The shuffled image whose position ``p`` shows original tile ``answer[p]``."""
    tiles = split_tiles(image, rows, cols)
    answer = _check_permutation(answer, rows * cols)
    return Image.fromarray(assemble([tiles[a] for a in answer], rows, cols))


def unshuffle(image: Image.Image | np.ndarray, rows: int, cols: int, answer: Sequence[int]) -> Image.Image:
    """Undo :func:`shuffle_image`: put the tile at position ``p`` back at ``answer[p]``."""
    tiles = split_tiles(image, rows, cols)
    answer = _check_permutation(answer, rows * cols)
    out: list[np.ndarray | None] = [None] * len(tiles)
    for p, q in enumerate(answer):
        out[q] = tiles[p]
    return Image.fromarray(assemble(out, rows, cols))


def random_answer(rng: np.random.Generator, n: int) -> list[int]:
    """A uniformly random permutation of 0..n-1 other than the identity (a puzzle is always shuffled)."""
    while True:
        perm = [int(v) for v in rng.permutation(n)]
        if perm != list(range(n)):
            return perm


# --------------------------------------------------------------------------------------------------
# Texts: answers, completions, parsing


def answer_text(answer: Sequence[int]) -> str:
    """``[2, 0, 3, 1]`` -> ``"2 0 3 1"``."""
    return " ".join(str(int(a)) for a in answer)


def completion_text(answer: Sequence[int] | str, think: str = "") -> str:
    """The completion (:func:`template.completion`) answering the permutation ``answer`` (a list or
    ``"2 0 3 1"``): ``<think> {think} </think> <answer> 2 0 3 1 </answer>``; with an empty ``think`` (the
    ground-truth-only SFT data) ``<think> </think> <answer> ... </answer>``."""
    return template.completion(answer if isinstance(answer, str) else answer_text(answer), think)


def tile_trace(answer: Sequence[int] | str) -> str:
    """The answer told tile by tile in the prior-knowledge world's words (its scenes read "red circle in
    cell 1 ."): ``[2, 0, 3, 1]`` -> ``"tile 0 in cell 2 . tile 1 in cell 0 . tile 2 in cell 3 . tile 3 in cell 1 ."``.
    A think block in the base's own style, which the start can teach (``start.think="tiles"``)."""
    cells = answer_list(answer) if isinstance(answer, str) else answer
    return " ".join(f"tile {p} in cell {int(q)} ." for p, q in enumerate(cells))


def start_completion(answer: Sequence[int] | str, think: str) -> str:
    """The start's completion for ``answer``: after an empty think block (``think="empty"``) or after
    the answer told tile by tile (``"tiles"``: :func:`tile_trace`)."""
    return completion_text(answer, think=tile_trace(answer) if think == "tiles" else "")


def read_tile_trace(text: Any) -> list[int] | None:
    """The cells that the think block of a templated completion gives tile by tile, when that block is
    exactly a :func:`tile_trace` (tiles 0, 1, ... in order); else ``None``."""
    think = template.think_block(text)
    if think is None:
        return None
    think = " ".join(think.split())
    cells = [int(q) for q in re.findall(r"in cell (\d+) \.", think)]
    return cells if cells and tile_trace(cells) == think else None


def gt_completion(answer: Sequence[int] | str) -> str:
    """The ground-truth-only completion (SFT-Non-Rea): an empty think block and the answer."""
    return completion_text(answer)


def parse_answer(text: Any, n: int) -> list[int] | None:
    """The permutation in the single ``<answer>...</answer>`` block of ``text``, or ``None``.

    Strict: the block must hold exactly ``n`` whitespace-separated integers forming a permutation of
    0..n-1 (commas between them are tolerated). Repeated or out-of-range indices, a wrong count, extra
    words or several answer blocks give ``None``, so they earn no hit credit."""
    try:
        block = template.single_answer_block(text)
        if block is None:
            return None
        tokens = block.replace(",", " ").split()
        if len(tokens) != n or not all(re.fullmatch(r"[0-9]{1,4}", t) for t in tokens):
            return None
        values = [int(t) for t in tokens]
        return values if sorted(values) == list(range(n)) else None
    except Exception:  # noqa: BLE001
        return None


def answer_has_shape(text: Any, n: int) -> bool:
    """Whether the single ``<answer>`` block of ``text`` holds exactly ``n`` integers, each in 0..n-1
    (repeats allowed: this is the answer's *format*, not its correctness)."""
    try:
        if not isinstance(text, str) or text.count(template.ANSWER_OPEN) != 1 or text.count(template.ANSWER_CLOSE) != 1:
            return False
        block = template.answer_block(text)
        tokens = block.replace(",", " ").split() if block is not None else []
        return len(tokens) == n and all(re.fullmatch(r"[0-9]{1,4}", t) and int(t) < n for t in tokens)
    except Exception:  # noqa: BLE001
        return False


def answer_list(answer: Any) -> list[int] | None:
    """A ground-truth answer given as ``"2 0 3 1"``, a list or an array, as a list of ints (None if bad)."""
    try:
        if isinstance(answer, str):
            return [int(t) for t in answer.replace(",", " ").split()]
        return [int(a) for a in answer]
    except Exception:  # noqa: BLE001
        return None


def score(completion: Any, answer: Any) -> dict[str, float]:
    """``{"hit", "acc", "fmt"}`` of one completion against one ground-truth answer; never raises."""
    try:
        text = template.to_text(completion)
        truth = answer_list(answer)
        fmt = 0.5 * template.follows(text) + 0.5 * (bool(truth) and answer_has_shape(text, len(truth)))
        if not truth:
            return {"hit": 0.0, "acc": 0.0, "fmt": fmt}
        pred = parse_answer(text, len(truth))
        if pred is None:
            return {"hit": 0.0, "acc": 0.0, "fmt": fmt}
        hits = sum(p == t for p, t in zip(pred, truth))
        return {"hit": hits / len(truth), "acc": float(pred == truth), "fmt": fmt}
    except Exception:  # noqa: BLE001
        return {"hit": 0.0, "acc": 0.0, "fmt": 0.0}


def _reward(key: str, completions: Any, answer: Any) -> list[float]:
    try:
        completions = list(completions)
    except Exception:  # noqa: BLE001
        return []
    try:
        answers = list(answer) if answer is not None and not isinstance(answer, str) else [answer] * len(completions)
    except Exception:  # noqa: BLE001
        answers = [None] * len(completions)
    answers = answers + [None] * (len(completions) - len(answers))
    return [score(c, a)[key] for c, a in zip(completions, answers)]


def hit_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """TRL reward: fraction of positions right (0 unless the answer is a valid permutation)."""
    return _reward("hit", completions, answer)


def acc_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """TRL reward: 1 for the exact permutation, else 0."""
    return _reward("acc", completions, answer)


def fmt_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """TRL reward: 0.5 if the ``<think>...</think><answer>...</answer>`` template is followed, plus 0.5 if
    the answer has the answer's format (n indices in 0..n-1, repeats allowed; see :func:`answer_has_shape`).

    The paper's R_fmt checks "the template"; how strictly is not known. Our tiny base never writes n-index
    lists on its own, so without the second half no rollout ever earns hit or acc credit and GRPO cannot
    start (measured: 150 steps, all hit rewards 0). The second half does not reward repeated indices with
    hit credit, which stays strict."""
    return _reward("fmt", completions, answer)


REWARD_FUNCS = (hit_reward, acc_reward, fmt_reward)  # the paper's R_hit + R_acc + R_fmt (unweighted)


def evaluate_jigsaw(completions: Sequence[Any], answers: Sequence[Any]) -> dict[str, float]:
    """Mean ``acc``, ``hit`` and ``fmt`` of completions against their answers (plus ``n``)."""
    if len(completions) != len(answers):
        raise ValueError(f"{len(completions)} completions for {len(answers)} answers")
    scores = [score(c, a) for c, a in zip(completions, answers)]
    n = len(scores)
    out = {k: (sum(s[k] for s in scores) / n if n else 0.0) for k in ("acc", "hit", "fmt")}
    return out | {"n": n}


def words_of(text: str) -> list[str]:
    """The whitespace-separated words of a text, with template tags removed (for vocabulary checks)."""
    return [w for w in text.split() if w not in template.TAGS]


def out_of_vocabulary(texts: Iterable[str]) -> set[str]:
    """Words of ``texts`` that are neither in VOCABULARY, nor digits, nor punctuation."""
    vocab = set(VOCABULARY) | set(PUNCTUATION)
    return {w for t in texts for w in words_of(t) if w not in vocab and not w.isdigit()}


# --------------------------------------------------------------------------------------------------
# Image sources


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One of :data:`PHOTOS` as an RGB uint8 array (read from the installed wheels; cached)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        arr = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = (255 * (arr.astype(float) / max(float(arr.max()), 1.0))).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    arr = arr[..., :3]
    arr.setflags(write=False)
    return arr


def photo_region(shape: tuple[int, ...], split: str, test_region: float) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` of a photo reserved for ``split``: the test split owns the last
    ``test_region`` of the long side, the train split the rest."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    h, w = shape[:2]
    if w >= h:
        cut = int(round(w * (1 - test_region)))
        return (0, 0, cut, h) if split == "train" else (cut, 0, w, h)
    cut = int(round(h * (1 - test_region)))
    return (0, 0, w, cut) if split == "train" else (0, cut, w, h)


def photo_crop(rng: np.random.Generator, name: str, split: str, image_size: int, crop_min: float,
               crop_max: float, test_region: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A random square crop of photo ``name`` inside its ``split`` region, resized to image_size.
    The crop side is ``uniform(crop_min, crop_max) * image_size`` px, clipped to the region."""
    photo = load_photo(name)
    x0, y0, x1, y1 = photo_region(photo.shape, split, test_region)
    side = int(rng.uniform(crop_min, crop_max) * image_size)
    side = max(8, min(side, x1 - x0, y1 - y0))
    cx = int(rng.integers(x0, x1 - side + 1))
    cy = int(rng.integers(y0, y1 - side + 1))
    crop = Image.fromarray(np.ascontiguousarray(photo[cy:cy + side, cx:cx + side]))
    crop = crop.resize((image_size, image_size), Image.Resampling.BICUBIC if side < image_size
                       else Image.Resampling.LANCZOS)
    return np.asarray(crop), (cx, cy, cx + side, cy + side)


def procedural_image(rng: np.random.Generator, image_size: int = 84) -> np.ndarray:
    """A procedural picture: a smooth colour field (a random gradient plus low-frequency waves) with a
    few random discs, boxes and bars in flat colours, drawn across tile borders."""
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s] / s
    img = np.zeros((s, s, 3))
    for ch in range(3):
        a, b = rng.normal(0, 1, size=2)
        field = a * xx + b * yy
        for _ in range(2):
            fx, fy, ph = rng.uniform(0.5, 2.5), rng.uniform(0.5, 2.5), rng.uniform(0, 2 * np.pi)
            field = field + rng.uniform(0.2, 0.6) * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
        field = (field - field.min()) / (np.ptp(field) + 1e-9)
        lo, hi = sorted(rng.uniform(0, 1, size=2))
        img[..., ch] = 255 * (lo + (hi - lo + 0.3) * field).clip(0, 1)
    pil = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(2, 6))):
        color = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x, y = rng.uniform(0, s, size=2)
        r = rng.uniform(0.08, 0.3) * s
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
        elif kind == 1:
            draw.rectangle((x - r, y - r * rng.uniform(0.3, 1), x + r, y + r), fill=color)
        else:
            x2, y2 = rng.uniform(0, s, size=2)
            draw.line((x, y, x2, y2), fill=color, width=int(rng.integers(3, 8)))
    return np.asarray(pil)


def _tiles_textured(arr: np.ndarray, rows: int, cols: int, min_std: float) -> bool:
    return all(t.std() >= min_std for t in split_tiles(arr, rows, cols))


# --------------------------------------------------------------------------------------------------
# Puzzles and datasets


@dataclass
class Puzzle:
    """One puzzle: the shuffled image, its answer, the unshuffled original and where it came from."""

    image: Image.Image
    answer: list[int]
    original: Image.Image
    rows: int
    cols: int
    source: str
    box: tuple[int, int, int, int] | None

    @property
    def answer_text(self) -> str:
        return answer_text(self.answer)


def make_puzzle(image: Image.Image | np.ndarray, rows: int, cols: int, rng: np.random.Generator | int,
                source: str = "", box: tuple[int, int, int, int] | None = None) -> Puzzle:
    """Cut ``image`` (square, side divisible by rows and cols) into a grid and shuffle it."""
    arr = _as_array(image)
    check_grid(rows, cols, arr.shape[0])
    check_grid(rows, cols, arr.shape[1])
    rng = np.random.default_rng(rng)
    answer = random_answer(rng, rows * cols)
    return Puzzle(shuffle_image(arr, rows, cols, answer), answer, Image.fromarray(arr), rows, cols, source, box)


def add_position_cue(arr: np.ndarray, strength: float) -> np.ndarray:
    """Blend a fixed colour ramp into an image: red grows from left to right, green from top to bottom.

    With ``strength`` > 0 every tile carries a global cue to where it belongs (as sky and ground do in
    photos), besides the edge continuity a full jigsaw solver uses; 0 leaves the image unchanged."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"cue_strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return arr
    h, w = arr.shape[:2]
    ramp = np.zeros((h, w, 3))
    ramp[..., 0] = np.linspace(0, 255, w)[None, :]
    ramp[..., 1] = np.linspace(0, 255, h)[:, None]
    ramp[..., 2] = 128
    return ((1 - strength) * arr.astype(float) + strength * ramp).round().clip(0, 255).astype(np.uint8)


def _split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), 7919, {"train": 0, "test": 1}[split]]))


def generate_puzzles(n: int, split: str, rows: int = 2, cols: int = 2, seed: int = 0, image_size: int = 84,
                     photo_fraction: float = 1.0, cue_strength: float = 0.0, crop_min: float = 1.0,
                     crop_max: float = 2.0,
                     test_region: float = 1 / 3, min_tile_std: float = 4.0,
                     photos: Sequence[str] = PHOTOS) -> list[Puzzle]:
    """``n`` puzzles of the ``split`` (``"train"`` or ``"test"``), deterministic given the arguments.

    A fraction ``photo_fraction`` of them are crops of real photos (from the split's own region of each
    photo); the rest are procedural images from the split's own random stream. Crops with a nearly flat
    tile (pixel std < ``min_tile_std``) are redrawn, so every tile carries something to match.
    ``cue_strength`` blends in :func:`add_position_cue` (0: none)."""
    check_grid(rows, cols, image_size)
    if not 0.0 <= photo_fraction <= 1.0:
        raise ValueError(f"photo_fraction must be in [0, 1], got {photo_fraction}")
    if not 0.0 < test_region < 1.0:
        raise ValueError(f"test_region must be in (0, 1), got {test_region}")
    rng = _split_rng(seed, split)
    puzzles = []
    for _ in range(int(n)):
        use_photo = rng.uniform() < photo_fraction
        for _attempt in range(50):
            if use_photo:
                name = str(photos[int(rng.integers(len(photos)))])
                arr, box = photo_crop(rng, name, split, image_size, crop_min, crop_max, test_region)
            else:
                name, box = "procedural", None
                arr = procedural_image(rng, image_size)
            if _tiles_textured(arr, rows, cols, min_tile_std):
                break
        arr = add_position_cue(arr, cue_strength)
        puzzles.append(make_puzzle(arr, rows, cols, rng, source=name, box=box))
    return puzzles


def puzzles_to_dataset(puzzles: Sequence[Puzzle]):
    """A ``datasets.Dataset`` with columns image (PIL), answer ("2 0 3 1"), rows, cols, source, box."""
    import datasets

    features = datasets.Features({
        "image": datasets.Image(), "answer": datasets.Value("string"), "rows": datasets.Value("int32"),
        "cols": datasets.Value("int32"), "source": datasets.Value("string"),
        "box": datasets.Sequence(datasets.Value("int32")),
    })
    return datasets.Dataset.from_dict({
        "image": [p.image for p in puzzles], "answer": [p.answer_text for p in puzzles],
        "rows": [p.rows for p in puzzles], "cols": [p.cols for p in puzzles],
        "source": [p.source for p in puzzles], "box": [list(p.box) if p.box else [] for p in puzzles],
    }, features=features)


GENERATOR_KNOBS = ("rows", "cols", "image_size", "photo_fraction", "cue_strength", "crop_min", "crop_max", "test_region",
                   "min_tile_std")


def generator_kwargs(cfg: dict[str, Any], with_grid: bool = False) -> dict[str, Any]:
    """The image-generator knobs of a ``jigsaw`` section (without rows and cols unless ``with_grid``)."""
    skip = () if with_grid else ("rows", "cols")
    return {k: cfg[k] for k in GENERATOR_KNOBS if k in cfg and k not in skip}


def build_dataset(cfg: dict[str, Any], split: str, seed: int | None = None, size: int | None = None):
    """The ``split`` dataset of a profile's ``jigsaw`` section ``cfg`` (``{split}_size`` puzzles unless
    ``size`` is given; seed ``cfg["data_seed"]`` unless ``seed`` is given)."""
    seed = cfg.get("data_seed", 0) if seed is None else seed
    size = cfg[f"{split}_size"] if size is None else size
    check_grid(cfg["rows"], cfg["cols"], cfg.get("image_size", 84))
    if cfg["rows"] * cfg["cols"] > MAX_TEXT_TILES:
        raise ValueError(f"jigsaw grid: {cfg['rows']} x {cfg['cols']} has more than {MAX_TEXT_TILES} tiles; "
                         "answers would need two-digit indices, which the word-level tokenizer splits into "
                         "single digits")
    return puzzles_to_dataset(generate_puzzles(size, split, seed=seed, **generator_kwargs(cfg, with_grid=True)))


def build_splits(cfg: dict[str, Any], seed: int | None = None):
    """``datasets.DatasetDict`` with ``train`` and ``test`` splits of a ``jigsaw`` section ``cfg``."""
    import datasets

    return datasets.DatasetDict({s: build_dataset(cfg, s, seed) for s in ("train", "test")})


GENERATOR_VERSION = 1  # bump when the generator's output changes, so saved splits are rebuilt


def _cfg_key(cfg: dict[str, Any]) -> dict[str, Any]:
    keys = GENERATOR_KNOBS + ("train_size", "test_size", "data_seed")
    return {k: cfg[k] for k in keys if k in cfg} | {"version": GENERATOR_VERSION, "photos": list(PHOTOS)}


def load_or_build_splits(cfg: dict[str, Any], path: Path, save: bool = True):
    """The jigsaw splits of a ``jigsaw`` section ``cfg``: loaded from ``path`` when they were saved there
    with the same generator settings, else built (and, with ``save``, saved there)."""
    import datasets

    meta = path / "generator.json"
    if meta.exists() and json.loads(meta.read_text()) == _cfg_key(cfg):
        return datasets.load_from_disk(str(path / "splits"))
    splits = build_splits(cfg)
    if save:
        path.mkdir(parents=True, exist_ok=True)
        quiet = not datasets.utils.are_progress_bars_disabled()
        if quiet:
            datasets.utils.disable_progress_bars()
        try:
            splits.save_to_disk(str(path / "splits"))
        finally:
            if quiet:
                datasets.utils.enable_progress_bars()
        meta.write_text(json.dumps(_cfg_key(cfg), indent=1) + "\n")
    return splits


# --------------------------------------------------------------------------------------------------
# TRL formats


def conversational_prompt(rows: int, cols: int) -> list[dict[str, Any]]:
    """The TRL conversational prompt: one user turn holding the image then the text."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": jigsaw_prompt(rows, cols)}]}]


def to_grpo(ds):
    """Add the TRL GRPO columns ``prompt`` (conversational) and ``images`` ([PIL]); keeps ``answer``
    (passed to the reward functions) and the other columns."""
    return ds.map(lambda ex: {"prompt": conversational_prompt(ex["rows"], ex["cols"]), "images": [ex["image"]]})


def to_sft(ds, completions: Sequence[str]):
    """TRL prompt-completion SFT format: ``prompt`` (conversational), ``completion``
    (``[{"role": "assistant", "content": text}]``) and ``images``; ``completions[i]`` belongs to row ``i``."""
    if len(completions) != len(ds):
        raise ValueError(f"{len(completions)} completions for {len(ds)} rows")
    ds = to_grpo(ds)
    return ds.add_column("completion", [[{"role": "assistant", "content": c}] for c in completions])


def to_sft_gt(ds):
    """SFT-Non-Rea data: the ground-truth answer only (an empty think block)."""
    return to_sft(ds, [gt_completion(a) for a in ds["answer"]])
