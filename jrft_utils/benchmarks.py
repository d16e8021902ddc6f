"""The paper's real prior-knowledge benchmarks (``gpu`` profile): loading, prompting and official scoring.

Six adapters, one per benchmark of the paper, each tied to the capability it measures:

========== ============================ ============= ================================================
name       default source (split)       capability    score in 0..1 (official raw numbers in details)
========== ============================ ============= ================================================
refcoco    lmms-lab/RefCOCO (val)       grounding     Acc@IoU>=0.5 of the predicted box
docvqa     lmms-lab/DocVQA (validation) ocr           ANLS (threshold 0.5, max over the answers)
mme        lmms-lab/MME (test)          vqa           MME score (acc + acc+) / its maximum
mmstar     Lin-Chen/MMStar (val)        vqa           multiple-choice accuracy
pope       lmms-lab/POPE (test)         hallucination yes/no accuracy (F1 and yes-ratio in details)
mmmu       MMMU/MMMU (validation)       reasoning     accuracy (letter parsing, open answers matched)
========== ============================ ============= ================================================

:func:`load` reads one benchmark from the hub or from a local copy, :func:`evaluate` scores a model on
any of them and returns the ``{capability: score, "mean": ...}`` dict of
:func:`jrft_utils.evaluation.evaluate_prior`, so the notebooks treat the tiny world and the real
benchmarks alike. The model is any ``generate(images, prompts) -> completions`` callable
(:func:`model_generate` wraps a model and its processor). Prompts follow lmms-eval's defaults for
Qwen2.5-VL. Completions are parsed after dropping a ``<think>...</think>`` block and keeping the text of
``<answer>...</answer>`` when present (:mod:`jrft_utils.template`), so a model trained on the jigsaw
template is scored fairly.
Parsing is deliberately strict where the official tools are (a model that stops answering "yes"/"no" or
with a letter scores zero), because the paper's collapse is exactly a model that stops following the
other tasks' instructions.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import datasets
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from jrft_utils import generation, template, world

Generate = Callable[[list[Image.Image], list[str]], list[str]]
SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."


class BenchmarkUnavailable(RuntimeError):
    """The benchmark's data could not be read (offline, unknown hub id, missing folder)."""


class Item(NamedTuple):
    """One question put to the model: the image, the user prompt and what its scorer needs."""
    image: Image.Image
    prompt: str
    ref: dict[str, Any]


# ----------------------------------------------------------------------------------------------------
# Parsing and scoring helpers (public: each is the official rule of one benchmark, in spirit)
# ----------------------------------------------------------------------------------------------------

def answer_part(completion: str) -> str:
    """The part of a completion to score: without ``<think>...</think>``, the ``<answer>`` text if tagged,
    whitespace collapsed."""
    return template.answer_text(template.without_think(completion))


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def anls(prediction: str, answers: Sequence[str], threshold: float = 0.5) -> float:
    """DocVQA's ANLS of one prediction: max over the reference answers of ``1 - NL`` where NL is the
    normalised Levenshtein distance (case and whitespace ignored), and 0 when ``NL >= threshold``."""
    pred = " ".join(prediction.lower().split())
    best = 0.0
    for answer in answers:
        gold = " ".join(str(answer).lower().split())
        longest = max(len(pred), len(gold))
        nl = levenshtein(pred, gold) / longest if longest else 0.0
        best = max(best, 1.0 - nl if nl < threshold else 0.0)
    return best


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """A box ``(x0, y0, x1, y1)`` from a completion: Qwen2.5-VL's JSON (``"bbox_2d": [x0, y0, x1, y1]``)
    or else the first four numbers; corners are sorted. None when neither is found."""
    m = re.search(r'"bbox_2d"\s*:\s*\[([^\]]*)\]', text)
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", m.group(1) if m else text)][:4]
    if len(nums) < 4:
        return None
    x0, y0, x1, y1 = nums
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def parse_yes_no(completion: str) -> str:
    """``"yes"`` or ``"no"`` when the answer's first word is one of them, else ``"other"`` (always wrong)."""
    words = re.findall(r"[a-z]+", answer_part(completion).lower())
    return words[0] if words and words[0] in ("yes", "no") else "other"


def _norm_text(s: str) -> str:
    return " ".join(s.lower().split()).strip(" .,:;!?'\"")


def parse_choice(completion: str, options: Mapping[str, str]) -> str | None:
    """The option letter a completion picks, in the spirit of MMMU's ``parse_multi_choice_response``
    but deterministic (None instead of a random letter). ``options`` maps letters to option texts (texts
    may be empty). Tried in order: the answer equals an option's text; "answer/option/choice is X";
    "(X)"; a leading letter ("B", "B.", "B) text"); the last standalone letter; the option text found in
    the answer (the last one found, the longest on ties)."""
    text = answer_part(completion)
    norm = _norm_text(text)
    exact = [k for k, v in options.items() if v and _norm_text(v) == norm]
    if len(exact) == 1:
        return exact[0]
    patterns = (r"(?i:(?:answer|option|choice)\s*(?:is)?\s*:?\s*)\(?([A-Z])(?![A-Za-z])",
                r"\(([A-Z])\)",
                r"^\(?([A-Z])(?![A-Za-z'])",
                r"(?<![A-Za-z])([A-Z])(?![A-Za-z'])")
    for pattern in patterns:
        hits = [m.group(1) for m in re.finditer(pattern, text) if m.group(1) in options]
        if hits:
            return hits[-1]
    found = [(norm.rfind(_norm_text(v)), len(v), k) for k, v in options.items()
             if _norm_text(v) and _norm_text(v) in norm]
    return max(found)[2] if found else None


def _to_number(s: str) -> float | None:
    try:
        return round(float(s.replace(",", "").strip(" $%")), 2)
    except ValueError:
        return None


def open_answer_correct(completion: str, answers: Sequence[str]) -> bool:
    """MMMU open questions: the key answer (the text after the last "answer is"/"answer:", else the whole
    answer) equals a reference after normalisation (case, spaces, edge punctuation), or a number in it
    equals a numeric reference (rounded to 2 decimals)."""
    key = re.split(r"(?i)answer\s*(?:is)?\s*:?", answer_part(completion))[-1]
    if _norm_text(key) in {_norm_text(a) for a in answers}:
        return True
    gold = {n for n in map(_to_number, answers) if n is not None}
    pred = {n for n in map(_to_number, re.findall(r"-?\d[\d,]*(?:\.\d+)?", key)) if n is not None}
    return bool(gold & pred)


MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_scores(results: Iterable[tuple[str, str, bool]]) -> dict[str, Any]:
    """The official MME score from ``(category, image id, correct)`` triples: per category, accuracy over
    questions plus accuracy+ (the fraction of images whose questions are all right), each x100; summed
    over the perception and cognition categories. ``normalized`` divides the total by its maximum
    (200 per category present: 2800 on the full benchmark)."""
    by_cat: dict[str, dict[str, list[bool]]] = {}
    for category, image_id, correct in results:
        if category not in MME_PERCEPTION + MME_COGNITION:
            raise ValueError(f"unknown MME category {category!r}; known: {MME_PERCEPTION + MME_COGNITION}")
        by_cat.setdefault(category, {}).setdefault(image_id, []).append(bool(correct))
    per_cat = {}
    for category, images in by_cat.items():
        answers = [c for v in images.values() for c in v]
        per_cat[category] = 100 * (sum(answers) / len(answers) + sum(all(v) for v in images.values()) / len(images))
    perception = sum(v for c, v in per_cat.items() if c in MME_PERCEPTION)
    cognition = sum(v for c, v in per_cat.items() if c in MME_COGNITION)
    total = perception + cognition
    return {"perception": perception, "cognition": cognition, "total": total,
            "normalized": total / (200 * len(per_cat)) if per_cat else 0.0, "by_category": per_cat}


def pope_metrics(predictions: Sequence[str], answers: Sequence[str]) -> dict[str, float]:
    """POPE's numbers with "yes" as the positive class: accuracy, precision, recall, F1 and the yes-ratio
    (the fraction of predictions that are "yes"). A prediction other than yes/no counts as not-yes."""
    pairs = list(zip(predictions, answers, strict=True))
    tp = sum(p == "yes" and a == "yes" for p, a in pairs)
    fp = sum(p == "yes" and a == "no" for p, a in pairs)
    fn = sum(p != "yes" and a == "yes" for p, a in pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {"accuracy": sum(p == a for p, a in pairs) / len(pairs), "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "yes_ratio": (tp + fp) / len(pairs)}


def _mean(records: list[dict[str, Any]], key: str = "score") -> float:
    return sum(r[key] for r in records) / len(records)


def _by(records: list[dict[str, Any]], field: str) -> dict[str, float]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(str(r[field]), []).append(r)
    return {k: _mean(v) for k, v in sorted(groups.items())}


# ----------------------------------------------------------------------------------------------------
# The adapters
# ----------------------------------------------------------------------------------------------------

class Benchmark:
    """One benchmark: where its data lives, its columns, how to ask and how to score.

    Subclasses set the class attributes and implement :meth:`items` (a dataset row -> the questions it
    holds), :meth:`score` (a completion -> a record with a ``"score"`` in 0..1) and :meth:`aggregate`
    (records -> the official numbers; ``headline`` names the one that is the capability score)."""
    name: str
    capability: str
    hub_id: str
    split: str
    configs: tuple[str | None, ...] = (None,)
    columns: tuple[str, ...]
    headline: str
    group_columns: tuple[str, ...] = ()  # rows sharing these values are kept or dropped together by limit

    def items(self, row: Mapping[str, Any]) -> list[Item]:
        raise NotImplementedError

    def score(self, completion: str, ref: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return {self.headline: _mean(records), "n": len(records)}

    def download_hint(self) -> str:
        """The line that saves a local copy of the benchmark (run where the hub can be reached)."""
        if len(self.configs) > 1:
            return (f'datasets.concatenate_datasets([datasets.load_dataset("{self.hub_id}", c, '
                    f'split="{self.split}") for c in jrft_utils.benchmarks.get("{self.name}").configs])'
                    f'.save_to_disk(DIR)')
        config = f', "{self.configs[0]}"' if self.configs[0] else ""
        return f'datasets.load_dataset("{self.hub_id}"{config}, split="{self.split}").save_to_disk(DIR)'


def _qwen_frame(width: int, height: int, factor: int = 28, min_pixels: int = 56 * 56,
                max_pixels: int = 1280 * 28 * 28) -> tuple[int, int]:
    """The size Qwen2.5-VL's processor resizes an image to (``smart_resize``): sides multiples of
    ``factor``, area within ``[min_pixels, max_pixels]``."""
    h, w = max(factor, round(height / factor) * factor), max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h, w = math.floor(height / beta / factor) * factor, math.floor(width / beta / factor) * factor
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h, w = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return w, h


class RefCOCO(Benchmark):
    """RefCOCO val (lmms-lab/RefCOCO). Assumed columns: ``image`` (the COCO image), ``answer`` (the
    referring expressions of one object: a list of strings, or one string) and ``bbox`` (COCO
    ``[x, y, width, height]`` in pixels). Every expression is one question (as lmms-eval's REC task
    explodes them), so ``limit`` counts objects. The image is resized to the frame Qwen2.5-VL's processor
    would use (sides multiples of 28, at most 1280*28*28 px), so the absolute pixel coordinates
    Qwen2.5-VL outputs refer to the very pixels it sees (a processor allowing at least that many pixels
    keeps the frame); the reference box is scaled alike."""
    name, capability, hub_id, split = "refcoco", "grounding", "lmms-lab/RefCOCO", "val"
    columns, headline = ("image", "answer", "bbox"), "acc@0.5"

    def items(self, row):
        image = row["image"].convert("RGB")
        w, h = _qwen_frame(*image.size)
        sx, sy = w / image.width, h / image.height
        x, y, bw, bh = row["bbox"]
        box = (x * sx, y * sy, (x + bw) * sx, (y + bh) * sy)
        frame = image.resize((w, h), Image.Resampling.BICUBIC)
        expressions = [row["answer"]] if isinstance(row["answer"], str) else list(row["answer"])
        return [Item(frame, f'Locate "{e}" in the image and output its bbox coordinates in JSON format.',
                     {"box": box}) for e in expressions]

    def score(self, completion, ref):
        box = parse_box(answer_part(completion))
        iou = world.iou(box, ref["box"]) if box else 0.0
        return {"iou": iou, "score": float(iou >= 0.5)}

    def aggregate(self, records):
        return {"acc@0.5": _mean(records), "mean_iou": _mean(records, "iou"), "n": len(records)}


class DocVQA(Benchmark):
    """DocVQA validation (lmms-lab/DocVQA, config ``DocVQA``). Assumed columns: ``image``, ``question``
    and ``answers`` (list of accepted strings); scored by ANLS."""
    name, capability, hub_id, split, configs = "docvqa", "ocr", "lmms-lab/DocVQA", "validation", ("DocVQA",)
    columns, headline = ("image", "question", "answers"), "anls"

    def items(self, row):
        return [Item(row["image"].convert("RGB"), f"{row['question']}\n{SHORT_ANSWER}",
                     {"answers": list(row["answers"])})]

    def score(self, completion, ref):
        return {"score": anls(answer_part(completion), ref["answers"])}


class MME(Benchmark):
    """MME (lmms-lab/MME, split ``test``). Assumed columns: ``image``, ``question`` (ending with "Please
    answer yes or no."), ``answer`` ("Yes"/"No"), ``category`` (the 14 official names, ``OCR`` in capitals)
    and ``question_id`` (the image file, shared by the two questions of an image). ``limit`` keeps whole
    images, so accuracy+ stays defined."""
    name, capability, hub_id, split = "mme", "vqa", "lmms-lab/MME", "test"
    columns, headline = ("image", "question", "answer", "category", "question_id"), "normalized"
    group_columns = ("category", "question_id")

    def items(self, row):
        return [Item(row["image"].convert("RGB"), f"{row['question']}\n{SHORT_ANSWER}",
                     {"answer": row["answer"].strip().lower(), "category": row["category"],
                      "image_id": row["question_id"]})]

    def score(self, completion, ref):
        pred = parse_yes_no(completion)
        return {"pred": pred, "score": float(pred == ref["answer"]), "category": ref["category"],
                "image_id": ref["image_id"]}

    def aggregate(self, records):
        scores = mme_scores((r["category"], r["image_id"], r["score"] == 1.0) for r in records)
        return {**scores, "accuracy": _mean(records), "n": len(records)}


def mmstar_options(question: str) -> dict[str, str]:
    """The options MMStar writes inside its question ("... Options: A: text, B: text, ..."), by letter;
    A-D with empty texts when none can be read."""
    _, sep, tail = question.partition("Options:")
    parts = re.split(r"(?:^|,\s*|\n)\s*([A-F])\s*[:.]\s*", tail.strip()) if sep else []
    options = {parts[i]: parts[i + 1].strip().rstrip(",").strip() for i in range(1, len(parts) - 1, 2)}
    return options or dict.fromkeys("ABCD", "")


class MMStar(Benchmark):
    """MMStar val (Lin-Chen/MMStar). Assumed columns: ``image``, ``question`` (with its options written
    inside), ``answer`` (the letter) and ``category``; multiple-choice letter accuracy."""
    name, capability, hub_id, split = "mmstar", "vqa", "Lin-Chen/MMStar", "val"
    columns, headline = ("image", "question", "answer", "category"), "accuracy"

    def items(self, row):
        return [Item(row["image"].convert("RGB"), f"{row['question']}\n{LETTER_ANSWER}",
                     {"answer": row["answer"].strip(), "options": mmstar_options(row["question"]),
                      "category": row["category"]})]

    def score(self, completion, ref):
        pred = parse_choice(completion, ref["options"])
        return {"pred": pred, "score": float(pred == ref["answer"]), "category": ref["category"]}

    def aggregate(self, records):
        return {"accuracy": _mean(records), "by_category": _by(records, "category"), "n": len(records)}


class POPE(Benchmark):
    """POPE test (lmms-lab/POPE). Assumed columns: ``image``, ``question`` ("Is there a ... in the
    image?"), ``answer`` ("yes"/"no") and ``category`` (adversarial / popular / random). The capability
    score is accuracy (always answering "yes" scores 0.5 on the balanced set, where its F1 is 0.67);
    details add precision, recall, F1 and the yes-ratio, overall and per category."""
    name, capability, hub_id, split = "pope", "hallucination", "lmms-lab/POPE", "test"
    columns, headline = ("image", "question", "answer", "category"), "accuracy"

    def items(self, row):
        return [Item(row["image"].convert("RGB"), f"{row['question']}\n{SHORT_ANSWER}",
                     {"answer": row["answer"].strip().lower(), "category": row["category"]})]

    def score(self, completion, ref):
        pred = parse_yes_no(completion)
        return {"pred": pred, "answer": ref["answer"], "score": float(pred == ref["answer"]),
                "category": ref["category"]}

    def aggregate(self, records):
        categories = sorted({r["category"] for r in records})
        by_category = {c: [r for r in records if r["category"] == c] for c in categories}
        return {**self._metrics(records), "n": len(records),
                "by_category": {c: self._metrics(rs) for c, rs in by_category.items()}}

    @staticmethod
    def _metrics(records: list[dict[str, Any]]) -> dict[str, float]:
        return pope_metrics([r["pred"] for r in records], [r["answer"] for r in records])


MMMU_SUBJECTS = (
    "Accounting", "Agriculture", "Architecture_and_Engineering", "Art", "Art_Theory", "Basic_Medical_Science",
    "Biology", "Chemistry", "Clinical_Medicine", "Computer_Science", "Design",
    "Diagnostics_and_Laboratory_Medicine", "Economics", "Electronics", "Energy_and_Power", "Finance",
    "Geography", "History", "Literature", "Manage", "Marketing", "Materials", "Math", "Mechanical_Engineering",
    "Music", "Pharmacy", "Physics", "Psychology", "Public_Health", "Sociology")


def _side_by_side(images: list[Image.Image], gap: int = 8) -> Image.Image:
    """The images scaled to a common height and pasted left to right on white."""
    height = max(im.height for im in images)
    scaled = [im.resize((max(1, round(im.width * height / im.height)), height)) for im in images]
    canvas = Image.new("RGB", (sum(im.width for im in scaled) + gap * (len(scaled) - 1), height), "white")
    x = 0
    for im in scaled:
        canvas.paste(im, (x, 0))
        x += im.width + gap
    return canvas


def _image_refs(text: str) -> str:
    """MMMU's ``<image k>`` placeholders written as plain "[image k]"."""
    return re.sub(r"<image (\d+)>", r"[image \1]", text)


def _as_list(value: Any) -> list[str]:
    """A list column that MMMU stores as its Python repr ("['a', 'b']"), or a plain string."""
    if isinstance(value, str) and value.strip().startswith("["):
        value = ast.literal_eval(value)
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


class MMMU(Benchmark):
    """MMMU validation (MMMU/MMMU, one config per subject, concatenated). Assumed columns: ``question``
    (with ``<image k>`` placeholders), ``options`` (a list's repr, empty for open questions),
    ``answer`` (a letter; for open questions a string or a list's repr), ``question_type``
    ("multiple-choice" or "open") and ``image_1`` ... ``image_7`` (None when unused). The generator takes
    one image per prompt, so the images of a question are pasted side by side (left to right) and the
    placeholders become "[image k]"."""
    name, capability, hub_id, split, configs = "mmmu", "reasoning", "MMMU/MMMU", "validation", MMMU_SUBJECTS
    columns, headline = ("question", "options", "answer", "question_type", "image_1"), "accuracy"

    def items(self, row):
        images = [row[f"image_{k}"].convert("RGB") for k in range(1, 8) if row.get(f"image_{k}") is not None]
        options = {chr(65 + i): _image_refs(o) for i, o in enumerate(_as_list(row["options"]))}
        prompt = _image_refs(row["question"])
        if len(images) > 1:
            prompt = f"Images 1 to {len(images)} are shown side by side, left to right.\n{prompt}"
        multiple_choice = row["question_type"] == "multiple-choice" and bool(options)
        if multiple_choice:
            prompt += "\n" + "\n".join(f"{k}. {v}" for k, v in options.items()) + f"\n{LETTER_ANSWER}"
        else:
            prompt += f"\n{SHORT_ANSWER}"
        return [Item(_side_by_side(images), prompt,
                     {"multiple_choice": multiple_choice, "options": options,
                      "answer": row["answer"].strip() if multiple_choice else _as_list(row["answer"])})]

    def score(self, completion, ref):
        if ref["multiple_choice"]:
            correct = parse_choice(completion, ref["options"]) == ref["answer"]
        else:
            correct = open_answer_correct(completion, ref["answer"])
        return {"score": float(correct), "multiple_choice": ref["multiple_choice"]}

    def aggregate(self, records):
        kinds = {"multiple_choice": [r for r in records if r["multiple_choice"]],
                 "open": [r for r in records if not r["multiple_choice"]]}
        return {"accuracy": _mean(records), "n": len(records),
                **{f"{k}_accuracy": _mean(v) for k, v in kinds.items() if v}}


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (RefCOCO(), DocVQA(), MME(), MMStar(), POPE(), MMMU())}


def get(name: str) -> Benchmark:
    """The adapter called ``name`` (case-insensitive); a ValueError lists the known names otherwise."""
    key = name.lower()
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[key]


# ----------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------

def _is_local(source: str) -> bool:
    return Path(source).expanduser().exists() or source.startswith(("/", ".", "~"))


def _read(bench: Benchmark, source: str) -> datasets.Dataset:
    path = Path(source).expanduser()
    if _is_local(source) and not path.is_dir():
        raise FileNotFoundError(f"no folder at {path}")
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if bench.split not in ds and len(ds) != 1:
                raise ValueError(f"split {bench.split!r} not among the saved splits {list(ds)}")
            ds = ds[bench.split] if bench.split in ds else next(iter(ds.values()))
        return ds
    target = str(path) if _is_local(source) else source
    parts = [datasets.load_dataset(target, config, split=bench.split) for config in bench.configs]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _subset(ds: datasets.Dataset, limit: int, seed: int, group_columns: tuple[str, ...]) -> datasets.Dataset:
    """A fixed seeded subset of at most ``limit`` rows (at least one group), in the original order; rows
    that share ``group_columns`` values are kept or dropped together."""
    rng = np.random.default_rng(seed)
    if not group_columns:
        return ds.select(np.sort(rng.choice(len(ds), size=limit, replace=False)))
    keys = list(zip(*(ds[c] for c in group_columns)))
    rows: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        rows.setdefault(key, []).append(i)
    groups = list(rows.values())
    chosen: list[int] = []
    for g in rng.permutation(len(groups)):
        if chosen and len(chosen) + len(groups[g]) > limit:
            continue
        chosen.extend(groups[g])
    return ds.select(sorted(chosen))


def load(name: str, source: str | None = None, limit: int | None = None, seed: int = 0) -> datasets.Dataset:
    """The rows of benchmark ``name`` from ``source``: a hub id (default: the adapter's, with its config(s)
    and split), a ``save_to_disk`` folder or a folder ``datasets.load_dataset`` reads. With ``limit``, a
    fixed subset of that many rows drawn with ``seed`` (MME keeps whole images). Raises
    :class:`BenchmarkUnavailable` when the data cannot be read, with the way to use a local copy."""
    bench = get(name)
    source = source or bench.hub_id
    try:
        ds = _read(bench, source)
    except Exception as e:  # any failure to read (offline, unknown id, bad folder) has the same remedy
        what = f"folder {source}" if _is_local(source) else f"hub id {source!r} (split {bench.split!r})"
        cause = " ".join(f"{type(e).__name__}: {e}".split())
        raise BenchmarkUnavailable(
            f"cannot read benchmark {bench.name!r} from {what}: {cause}\n"
            f"To use a local copy, download it where you have internet with\n    {bench.download_hint()}\n"
            f"and pass source=DIR (load({bench.name!r}, source=DIR)).") from e
    missing = [c for c in bench.columns if c not in ds.column_names]
    if missing:
        raise ValueError(f"{source} lacks column(s) {missing} of the {bench.hub_id} format "
                         f"(expected {list(bench.columns)}; found {ds.column_names})")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        if limit < len(ds):
            ds = _subset(ds, limit, seed, bench.group_columns)
    return ds


# ----------------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------------

class Suite(dict):
    """``{benchmark name: dataset}``: a profile's prior-knowledge yardstick made of real benchmarks.
    :func:`jrft_utils.evaluation.evaluate_prior` scores a model on it with :func:`evaluate`."""


def load_suite(cfg: Mapping[str, Any]) -> Suite:
    """The benchmarks of a profile's ``benchmarks`` section: each of ``names`` from ``sources[name]``
    (default: its hub id), at most ``limit`` rows each."""
    return Suite({name: load(name, cfg["sources"].get(name), cfg["limit"]) for name in cfg["names"]})


def model_generate(model, processor, max_new_tokens: int = 256, temperature: float = 0.0) -> Generate:
    """A ``generate(images, prompts)`` callable over a model and its processor (greedy by default), via
    :func:`jrft_utils.generation.generate_completions`; :func:`evaluate` does the batching."""
    def generate(images: list[Image.Image], prompts: list[str]) -> list[str]:
        return generation.generate_completions(model, processor, images, prompts, max_new_tokens,
                                               batch_size=max(1, len(prompts)), progress=False,
                                               temperature=temperature)
    return generate


def evaluate(generate: Generate, datasets_by_name: Mapping[str, Iterable[Mapping[str, Any]]],
             batch_size: int = 16, progress: bool = True, return_details: bool = False) -> dict[str, Any]:
    """Score ``generate`` on the given benchmarks (``{name: rows}``, e.g. from :func:`load`), calling it on
    batches of at most ``batch_size`` questions. Returns ``{capability: score in 0..1, "mean": ...}`` like
    :func:`jrft_utils.evaluation.evaluate_prior`: a capability's score is the mean of its benchmarks'
    headline scores (vqa: MME normalised and MMStar), capabilities without a benchmark are left out and
    ``mean`` averages those present. With ``return_details``, ``"details"`` holds each benchmark's official
    numbers (MME raw perception/cognition, POPE F1, DocVQA ANLS, ...) and ``"completions"`` each
    benchmark's ``[(completion, record), ...]``."""
    if not datasets_by_name:
        raise ValueError(f"no benchmark given; known benchmarks: {', '.join(BENCHMARKS)}")
    benches = {name: get(name) for name in datasets_by_name}
    details: dict[str, dict[str, Any]] = {}
    completions: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, rows in datasets_by_name.items():
        bench, scored, batch = benches[name], [], []

        def flush() -> None:
            outs = generate([it.image for it in batch], [it.prompt for it in batch])
            if len(outs) != len(batch):
                raise ValueError(f"generate returned {len(outs)} completions for {len(batch)} prompts")
            scored.extend((c, bench.score(c, it.ref)) for c, it in zip(outs, batch))
            batch.clear()

        for row in tqdm(rows, desc=bench.name, disable=not progress, leave=False):
            for item in bench.items(row):
                batch.append(item)
                if len(batch) == batch_size:
                    flush()
        if batch:
            flush()
        if not scored:
            raise ValueError(f"benchmark {name!r} has no rows; its score is undefined")
        completions[name] = scored
        details[name] = bench.aggregate([record for _, record in scored])
    result: dict[str, Any] = {}
    for cap in world.CAPABILITIES:
        scores = [details[n][b.headline] for n, b in benches.items() if b.capability == cap]
        if scores:
            result[cap] = sum(scores) / len(scores)
    result["mean"] = sum(result.values()) / len(result)
    if return_details:
        result["details"] = details
        result["completions"] = completions
    return result
