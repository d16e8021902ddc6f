"""The prior-knowledge world: what the base model knows before it ever sees a jigsaw (notebook 00).

One generated task family per capability the paper measures, each scored the way its real benchmark is:

============== ===================== ============================================== ======================
capability     paper's benchmark     task here                                      score
============== ===================== ============================================== ======================
grounding      RefCOCO               "which cell holds the red circle ?" -> cell    IoU(box, target) >= .5
ocr            DocVQA                read a row of real handwritten digits          exact match
vqa            MME / MMStar          colour, shape, count and position questions    exact match
hallucination  POPE                  "is there a green triangle ... ?" (balanced)   yes / no
reasoning      MMMU                  arithmetic over two handwritten digits         exact match
============== ===================== ============================================== ======================

Images are ``image_size`` px squares (84 by default) split into a 3 x 3 grid of cells; each cell holds at
most one coloured shape or one handwritten digit (scikit-learn's ``load_digits``) over a dimmed crop of a
real photo that ships inside scikit-image / scikit-learn. Every answer follows the
``<think> ... </think> <answer> ... </answer>`` convention (:mod:`jrft_utils.template`). A question about
coloured shapes is thought through by naming the objects cell by cell (:func:`describe_scene`; a search
stops at the object found), OCR by counting the digits, reasoning by reading both digits and doing the sum
or the difference. Boxes use Qwen-VL's convention: integers on a 0-1000 scale of the image side.

The jigsaw task is absent by construction: no image is made of shuffled tiles (the background of every
image is a single untouched photo crop; :func:`background_is_intact` checks it pixel by pixel) and no
answer is a permutation of ``0 .. k-1`` for ``k >= 2`` (:func:`is_permutation_answer`; such samples are
filtered out).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from jrft_utils import template

CAPABILITIES: tuple[str, ...] = ("grounding", "ocr", "vqa", "hallucination", "reasoning")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (235, 45, 45), "green": (40, 210, 60), "blue": (60, 120, 255), "yellow": (245, 225, 40),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
GRID = 3  # cells per side
BOX_SCALE = 1000  # boxes are integers on a 0..1000 scale of the image side
N_TRAIN_DIGITS = 1400  # 1400 load_digits images (a fixed random split) train, the other 397 are held out
TEST_SEED = 2_147_483_647  # the held-out test sets never change between stages or seeds
PHOTOS: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "grass", "gravel", "brick",
    "hubble_deep_field", "immunohistochemistry", "china", "flower",
)

# Every word the world's prompts and answers use (digits and punctuation are always in the tokenizer).
VOCABULARY: tuple[str, ...] = (
    *COLOURS, *SHAPES, "which", "cell", "holds", "the", "is", "in", "row", "column", "read", "digits",
    "from", "left", "to", "right", "there", "are", "what", "colour", "shape", "object", "objects", "how",
    "many", "i", "count", "a", "no", "yes", "image", "of", "sum", "two", "larger", "digit", "minus",
    "smaller", "and", "it", "for", "each", "give", "its",
)


class WorldError(ValueError):
    """An unknown capability or an unusable test set."""


def check_capability(capability: str) -> None:
    if capability not in CAPABILITIES:
        raise WorldError(f"unknown capability {capability!r}; capabilities: {CAPABILITIES}")


# ----------------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A real photo as a dimmed, half-desaturated float RGB array (objects must stand out on it)."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        img = load_sample_image(f"{name}.jpg")
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    img = np.asarray(img, dtype=np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    grey = img.mean(axis=2, keepdims=True)
    img = np.clip(0.35 * (0.5 * img + 0.5 * grey), 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    scale = 256 / min(h, w)  # photos are stored with their short side at 256 px (fast crops)
    small = Image.fromarray(img).resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    return np.asarray(small)


@lru_cache(maxsize=None)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(int)


def digit_split() -> np.ndarray:
    """A fixed random order of the ``load_digits`` images: the first ``N_TRAIN_DIGITS`` are for training,
    the rest are held out for testing (a random split, so both halves mix the same writers)."""
    return np.random.default_rng(1797).permutation(len(_digits()[1]))


def render_background(bg: dict[str, Any], size: int) -> np.ndarray:
    """The background described by ``bg`` (photo name and square crop), as uint8 ``size x size x 3``."""
    photo = _photo(bg["photo"])
    x, y, side = bg["x"], bg["y"], bg["side"]
    crop = Image.fromarray(photo[y:y + side, x:x + side])
    return np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _random_background(rng: np.random.Generator, size: int) -> dict[str, Any]:
    name = PHOTOS[rng.integers(len(PHOTOS))]
    h, w = _photo(name).shape[:2]
    side = int(rng.integers(size, min(h, w) + 1))
    return {"photo": name, "x": int(rng.integers(0, w - side + 1)), "y": int(rng.integers(0, h - side + 1)),
            "side": side}


def cell_box(cell: int) -> tuple[int, int, int, int]:
    """The box of grid cell ``cell`` (row-major from 0) on the 0..1000 scale."""
    r, c = divmod(cell, GRID)
    s = BOX_SCALE / GRID
    return (round(c * s), round(r * s), round((c + 1) * s), round((r + 1) * s))


def render(spec: dict[str, Any]) -> Image.Image:
    """Draw a scene: ``spec`` = {"size", "bg", "items": [{"kind": "shape"|"digit", "box" (px), ...}]}."""
    size = spec["size"]
    canvas = render_background(spec["bg"], size).astype(np.float32)
    img = Image.fromarray(canvas.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for it in spec["items"]:
        if it["kind"] == "shape":
            x0, y0, x1, y1 = it["box"]
            fill = COLOURS[it["colour"]]
            if it["shape"] == "circle":
                draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
            elif it["shape"] == "square":
                draw.rectangle((x0 + 1, y0 + 1, x1 - 2, y1 - 2), fill=fill)
            else:
                draw.polygon([((x0 + x1 - 1) / 2, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)], fill=fill)
    arr = np.asarray(img, dtype=np.float32).copy()
    images, _ = _digits()
    for it in spec["items"]:
        if it["kind"] == "digit":
            x0, y0, x1, y1 = it["box"]
            glyph = Image.fromarray((images[it["index"]] * 255).astype(np.uint8)).resize(
                (x1 - x0, y1 - y0), Image.BILINEAR)
            alpha = np.asarray(glyph, dtype=np.float32)[..., None] / 255.0
            arr[y0:y1, x0:x1] = arr[y0:y1, x0:x1] * (1 - alpha) + 255.0 * alpha
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def background_is_intact(image: Image.Image, spec: dict[str, Any]) -> bool:
    """True when every pixel outside the items' boxes equals the untouched photo crop at the *same*
    position, i.e. no region of the image was moved (a shuffled-tile image fails this)."""
    arr = np.asarray(image.convert("RGB"))
    bg = render_background(spec["bg"], spec["size"])
    mask = np.ones(arr.shape[:2], dtype=bool)
    for it in spec["items"]:
        x0, y0, x1, y1 = it["box"]
        mask[y0:y1, x0:x1] = False
    return bool(np.array_equal(arr[mask], bg[mask]))


# ----------------------------------------------------------------------------------------------------
# Scenes and tasks
# ----------------------------------------------------------------------------------------------------

def _item_box(rng: np.random.Generator, cell: int, size: int, min_frac: float = 0.78) -> list[int]:
    cs = size // GRID
    s = int(rng.integers(int(cs * min_frac), cs - 1))
    r, c = divmod(cell, GRID)
    x0 = c * cs + int(rng.integers(0, cs - s + 1))
    y0 = r * cs + int(rng.integers(0, cs - s + 1))
    return [x0, y0, x0 + s, y0 + s]


def _px_to_scale(box: list[int], size: int) -> tuple[int, ...]:
    return tuple(round(v * BOX_SCALE / size) for v in box)


def _shapes(rng: np.random.Generator, n: int, size: int, cells: list[int] | None = None) -> list[dict]:
    kinds = [(c, s) for c in COLOURS for s in SHAPES]
    picks = rng.choice(len(kinds), size=n, replace=False)
    cells = cells if cells is not None else [int(c) for c in rng.choice(GRID * GRID, size=n, replace=False)]
    return [{"kind": "shape", "colour": kinds[k][0], "shape": kinds[k][1], "cell": cell,
             "box": _item_box(rng, cell, size)} for k, cell in zip(picks, cells)]


def _digit_items(rng, cells: list[int], pool: np.ndarray, size: int) -> list[dict]:
    return [{"kind": "digit", "index": int(rng.choice(pool)), "cell": cell,
             "box": _item_box(rng, cell, size, min_frac=0.86)} for cell in cells]


def _label(it: dict) -> str:
    return f"{it['colour']} {it['shape']}"


def describe_scene(items: list[dict], until: dict | None = None) -> str:
    """The objects of a scene in cell order, ``"red circle in cell 1 . green square in cell 5 ."``, up to
    and including ``until`` when given: the first step of every think trace about coloured shapes. A
    search for an object is a scan that stops where the object is found, so its cell (or colour, or shape)
    is the last thing written before the conclusion: the tiny decoder did not learn to look a label up
    in a full list (development: answers at chance among the listed cells)."""
    ordered = sorted(items, key=lambda it: it["cell"])
    if until is not None:
        ordered = ordered[:ordered.index(until) + 1]
    return " ".join(f"{_label(it)} in cell {it['cell']} ." for it in ordered)


def _grounding(rng, size, pool, index):
    items = _shapes(rng, int(rng.integers(2, 5)), size)
    t = items[int(rng.integers(len(items)))]
    prompt = f"which cell holds the {_label(t)} ?"
    think = f"{describe_scene(items, until=t)} the {_label(t)} is in cell {t['cell']}"
    target = " ".join(str(v) for v in _px_to_scale(t["box"], size))
    return items, prompt, template.completion(str(t["cell"]), think), target


def _ocr(rng, size, pool, index):
    n = int(rng.integers(2, GRID + 1))
    row = int(rng.integers(GRID))
    cols = sorted(int(c) for c in rng.choice(GRID, size=n, replace=False))
    items = _digit_items(rng, [row * GRID + c for c in cols], pool, size)
    digits = " ".join(str(_digits()[1][it["index"]]) for it in items)
    prompt = "read the digits from left to right ."
    return items, prompt, template.completion(digits, f"there are {n} digits"), digits


def _vqa(rng, size, pool, index):
    kind = ("colour", "shape", "count", "position")[int(rng.integers(4))]
    items = _shapes(rng, int(rng.integers(1, 5)) if kind == "count" else int(rng.integers(2, 5)), size)
    if kind == "colour":
        unique = [it for it in items if sum(o["shape"] == it["shape"] for o in items) == 1]
        if not unique:
            return None
        t = unique[int(rng.integers(len(unique)))]
        prompt = f"what colour is the {t['shape']} ?"
        think = f"{describe_scene(items, until=t)} the {t['shape']} is {t['colour']}"
        return items, prompt, template.completion(t["colour"], think), t["colour"]
    if kind == "shape":
        unique = [it for it in items if sum(o["colour"] == it["colour"] for o in items) == 1]
        if not unique:
            return None
        t = unique[int(rng.integers(len(unique)))]
        prompt = f"what shape is the {t['colour']} object ?"
        think = f"{describe_scene(items, until=t)} the {t['colour']} object is a {t['shape']}"
        return items, prompt, template.completion(t["shape"], think), t["shape"]
    scene = describe_scene(items)
    if kind == "count":
        n = len(items)
        return items, "how many objects are there ?", template.completion(str(n), f"{scene} i count {n} objects"), str(n)
    a, b = (items[int(i)] for i in rng.choice(len(items), size=2, replace=False))
    ca, cb = a["cell"] % GRID, b["cell"] % GRID
    if ca == cb:
        return None
    yes = "yes" if ca < cb else "no"
    prompt = f"is the {_label(a)} left of the {_label(b)} ?"
    think = f"{scene} the {_label(a)} is in column {ca} and the {_label(b)} is in column {cb}"
    return items, prompt, template.completion(yes, think), yes


def _hallucination(rng, size, pool, index):
    items = _shapes(rng, int(rng.integers(1, 5)), size)
    present = {(it["colour"], it["shape"]) for it in items}
    if index % 2 == 0:  # exactly balanced: even samples are present objects, odd ones absent
        colour, shape = sorted(present)[int(rng.integers(len(present)))]
    else:  # absent; half of them adversarial (sharing a colour or a shape with a present object)
        absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
        if rng.random() < 0.5:
            near = [k for k in absent if any(k[0] == p[0] or k[1] == p[1] for p in present)]
            absent = near or absent
        colour, shape = absent[int(rng.integers(len(absent)))]
    # a search, as grounding's: the scan stops at the object asked about when it is there, and ends with
    # grounding's conclusion. Against "there is a / no red square" (development, base seeds 0-2): prior mean
    # 0.669 on average instead of 0.636, hallucination 0.595 instead of 0.535 (higher on every seed)
    asked = next((it for it in items if (it["colour"], it["shape"]) == (colour, shape)), None)
    prompt = f"is there a {colour} {shape} in the image ?"
    where, ans = (f"cell {asked['cell']}", "yes") if asked else ("no cell", "no")
    think = f"{describe_scene(items, asked)} the {colour} {shape} is in {where}"
    return items, prompt, template.completion(ans, think), ans


def _reasoning(rng, size, pool, index):
    cells = sorted(int(c) for c in rng.choice(GRID * GRID, size=3, replace=False))
    digit_cells = sorted(int(c) for c in rng.choice(cells, size=2, replace=False))
    items = _digit_items(rng, digit_cells, pool, size)
    other = [c for c in cells if c not in digit_cells]
    if rng.random() < 0.5:  # a distractor shape
        items += _shapes(rng, 1, size, cells=other)
    a, b = (int(_digits()[1][it["index"]]) for it in items[:2])
    if rng.random() < 0.5 and a + b <= 9:
        prompt = "what is the sum of the two digits ?"
        think, ans = f"the digits are {a} and {b} . {a} + {b} = {a + b}", a + b
    else:
        hi, lo = max(a, b), min(a, b)
        prompt = "what is the larger digit minus the smaller digit ?"
        think, ans = f"the digits are {a} and {b} . {hi} - {lo} = {hi - lo}", hi - lo
    return items, prompt, template.completion(str(ans), think), str(ans)


_TASKS = {"grounding": _grounding, "ocr": _ocr, "vqa": _vqa, "hallucination": _hallucination,
          "reasoning": _reasoning}


def is_permutation_answer(completion: str) -> bool:
    """True when the answer's digits are a permutation of ``0 .. k-1`` with ``k >= 2`` (a jigsaw-like
    answer, which the world must never teach)."""
    digits = [int(d) for d in re.findall(r"\d", template.answer_text(completion))]
    return len(digits) >= 2 and sorted(digits) == list(range(len(digits)))


def make_sample(capability: str, rng: np.random.Generator, size: int, pool: np.ndarray,
                index: int = 0) -> dict[str, Any]:
    """One sample of ``capability`` (``index`` balances yes/no questions): image, prompt, reference completion, scoring target and the scene
    spec (JSON) it was drawn from. Scenes that cannot ask the question and jigsaw-like answers are
    redrawn."""
    check_capability(capability)
    while True:
        bg = _random_background(rng, size)
        out = _TASKS[capability](rng, size, pool, index)
        if out is None:
            continue
        items, prompt, completion, target = out
        if is_permutation_answer(completion):
            continue
        spec = {"size": size, "bg": bg, "items": items}
        return {"capability": capability, "image": render(spec), "prompt": prompt, "completion": completion,
                "target": target, "spec": json.dumps(spec)}


def generate(capability: str, n: int, seed: int, size: int = 84, split: str = "train") -> list[dict[str, Any]]:
    """``n`` samples of ``capability`` drawn with ``seed``; ``split`` picks the digit images
    ("train": the training part of :func:`digit_split`, "test": the held-out rest)."""
    check_capability(capability)
    if split not in ("train", "test"):
        raise WorldError(f"split must be 'train' or 'test', got {split!r}")
    order = digit_split()
    pool = order[:N_TRAIN_DIGITS] if split == "train" else order[N_TRAIN_DIGITS:]
    rng = np.random.default_rng([seed, CAPABILITIES.index(capability), split == "test"])
    return [make_sample(capability, rng, size, pool, i) for i in range(n)]


def build_train_set(per_capability: int, image_size: int, seed: int) -> list[dict[str, Any]]:
    """The pretraining corpus: ``per_capability`` samples of every capability at ``image_size`` px,
    shuffled by ``seed``. The last corpus built is kept, so notebook 00 can show it and then pretrain on it
    without drawing the 20,000 samples twice (about 19 s on the cpu profile); treat the samples as
    read-only."""
    return list(_train_set(seed, per_capability, image_size))


@lru_cache(maxsize=1)
def _train_set(seed: int, per_capability: int, size: int) -> tuple[dict[str, Any], ...]:
    samples = [s for cap in CAPABILITIES for s in generate(cap, per_capability, seed, size)]
    order = np.random.default_rng(seed).permutation(len(samples))
    return tuple(samples[i] for i in order)


def build_test_sets(per_capability: int, image_size: int) -> dict[str, list[dict[str, Any]]]:
    """The fixed held-out test sets, ``{capability: samples}`` (``per_capability`` each at ``image_size``
    px, always drawn with :data:`TEST_SEED` and the held-out digit images, so every stage and seed scores
    the same sets)."""
    return {cap: generate(cap, per_capability, TEST_SEED, image_size, split="test") for cap in CAPABILITIES}


# ----------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------

def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _parse_box(answer: str) -> tuple[int, ...] | None:
    """A cell index (``"4"``) or a box (``"x0 y0 x1 y1"`` on the 0..1000 scale); None if neither."""
    nums = re.findall(r"\d+", answer)
    if answer.replace(" ", "").isdigit() and len(nums) == len(answer.split()) == 1:
        cell = int(nums[0])
        return cell_box(cell) if 0 <= cell < GRID * GRID else None
    if len(nums) == 4 and len(answer.split()) == 4:
        return tuple(int(v) for v in nums)
    return None


def score(capability: str, completion: str, target: str) -> float:
    """1.0 if ``completion`` answers correctly, else 0.0, scored as the real benchmark scores it:

    - grounding: the answered cell (or box) overlaps the target box with IoU >= 0.5 (RefCOCO);
    - ocr, vqa, reasoning: the answer equals the target after whitespace normalisation (exact match);
    - hallucination: the answer is exactly ``yes`` or ``no`` and equals the target (POPE).
    """
    check_capability(capability)
    answer = template.answer_text(completion)
    if capability == "grounding":
        box = _parse_box(answer)
        gt = tuple(int(v) for v in str(target).split())
        return float(box is not None and iou(box, gt) >= 0.5)
    if capability == "hallucination":
        return float(answer in ("yes", "no") and answer == str(target).strip())
    return float(answer == " ".join(str(target).split()))


def to_conversational(samples: list[dict[str, Any]]) -> dict[str, list]:
    """Columns for a TRL dataset: conversational ``prompt`` / ``completion`` and an ``images`` list."""
    return {
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s["prompt"]}]}]
                   for s in samples],
        "completion": [[{"role": "assistant", "content": [{"type": "text", "text": s["completion"]}]}]
                       for s in samples],
        "images": [[s["image"]] for s in samples],
    }
