"""The text-only world of notebook 08: prior knowledge of a tiny language model, and a new task.

The paper's camera-ready version checks its findings on text-only Qwen2.5 with math and scientific QA.
Here the base is a tiny text-only decoder that knows two things before it is fine-tuned:

============== ============================ ========================================= ===================
capability     stands for                   task                                      held out
============== ============================ ========================================= ===================
arithmetic     math (GSM8K-style)           "what is 3 + 5 - 2 ?", a step per line    two-step problems
science        science QA (ARC-style)       "does a robin have gills ?" from a        (animal, property)
                                            taxonomy: what a thing is, what its kind  pairs
                                            has
============== ============================ ========================================= ===================

Every answer follows the ``<think> ... </think> <answer> ... </answer>`` convention
(:mod:`jrft_utils.template`), with a short trace
of the base's own style ("3 + 5 = 8 . 8 - 2 = 6"; "a robin is a bird . a bird has no gills").

The new task, absent from pretraining (no prompt asks for the largest of anything, and no sample
holds a list of digits): **the largest digit of a list**, "which is the largest of 3 7 2 5 ?" -> 7. Its
answer has the shape the base already writes (one digit), so GRPO can sample rewarded completions from
the start; that is what the vision jigsaw of our tiny model lacks (see notebook 03). Rewards: ``acc``
(the right digit) and ``fmt`` (0.5 for the template, 0.5 for an answer that is one digit). The teacher
(the analogue of GPT-4o's reasoning) writes a trace in a style the base never saw:
"i compare 3 , 7 , 2 , 5 . the largest is 7".

A first version asked to *count* a digit in a list. The tiny base could not learn it in the budget: SFT
on answers reached 0.40 in 200 steps, and GRPO collapsed onto always answering "3" (right for the 27% of
tasks whose count was 3), so its "correct" rollouts were that constant with a meaningless trace.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from jrft_utils import template

CAPABILITIES: tuple[str, ...] = ("arithmetic", "science")
KINDS: dict[str, tuple[str, ...]] = {  # each kind: its ten members
    "bird": ("robin", "sparrow", "crow", "hawk", "finch", "parrot", "pigeon", "gull", "wren", "heron"),
    "fish": ("salmon", "trout", "shark", "cod", "tuna", "perch", "carp", "pike", "herring", "bass"),
    "mammal": ("dog", "cat", "horse", "cow", "whale", "mouse", "goat", "sheep", "rabbit", "bear"),
    "insect": ("bee", "beetle", "moth", "fly", "wasp", "cricket", "hornet", "locust", "flea", "gnat"),
    "tree": ("pine", "maple", "birch", "willow", "cedar", "palm", "oak", "elm", "ash", "spruce"),
}
PROPERTIES: dict[str, tuple[str, ...]] = {  # what every member of a kind has
    "bird": ("feathers", "wings", "beak"), "fish": ("fins", "gills", "scales"), "mammal": ("fur", "lungs", "teeth"),
    "insect": ("antennae", "wings", "thorax"), "tree": ("leaves", "roots", "bark"),
}
ALL_PROPERTIES: tuple[str, ...] = tuple(dict.fromkeys(p for props in PROPERTIES.values() for p in props))
TEST_SEED = 2_147_483_647  # the held-out split and test sets never change between stages or seeds
TASK_PROMPT_WORDS: tuple[str, ...] = ("which", "is", "the", "largest", "of")
TEACHER_WORDS: tuple[str, ...] = ("i", "compare", "the", "largest", "is")
WORLD_WORDS: tuple[str, ...] = (  # every word of the pretraining samples
    "what", "is", "a", "does", "have", "has", "no", "yes", *KINDS, *(m for ms in KINDS.values() for m in ms),
    *ALL_PROPERTIES)
VOCABULARY: tuple[str, ...] = tuple(dict.fromkeys((*WORLD_WORDS, *TASK_PROMPT_WORDS, *TEACHER_WORDS)))
# the words the base never read (the SFT-foreign-think control's think blocks are drawn from them)
FOREIGN_WORDS: tuple[str, ...] = tuple(w for w in VOCABULARY if w not in WORLD_WORDS)


class TextWorldError(ValueError):
    """An unknown capability or bad task settings."""


def check_capability(capability: str) -> None:
    """Raise :class:`TextWorldError` for a capability the text world does not have."""
    if capability not in CAPABILITIES:
        raise TextWorldError(f"unknown text capability {capability!r}; capabilities: {CAPABILITIES}")


# --------------------------------------------------------------------------------------------------
# Prior knowledge: arithmetic and science


def _arithmetic_problems() -> list[tuple[int, str, int, str, int]]:
    """Every problem ``a op1 b [op2 c]`` over digits whose every intermediate result is a digit, as
    ``(a, op1, b, op2, c)`` (``op2 = ""`` and ``c = -1`` for one-step problems)."""
    steps = [(a, op, b) for a in range(10) for b in range(10) for op in "+-" if 0 <= _apply(a, op, b) <= 9]
    two = [(a, op, b, op2, c) for a, op, b in steps for op2 in "+-" for c in range(10)
           if 0 <= _apply(_apply(a, op, b), op2, c) <= 9]
    return [(a, op, b, "", -1) for a, op, b in steps] + two


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b


def _arithmetic_sample(problem: tuple[int, str, int, str, int]) -> dict[str, str]:
    a, op, b, op2, c = problem
    s = _apply(a, op, b)
    if not op2:
        return {"prompt": f"what is {a} {op} {b} ?", "completion": template.completion(str(s), f"{a} {op} {b} = {s}"),
                "target": str(s)}
    r = _apply(s, op2, c)
    return {"prompt": f"what is {a} {op} {b} {op2} {c} ?",
            "completion": template.completion(str(r), f"{a} {op} {b} = {s} . {s} {op2} {c} = {r}"), "target": str(r)}


def _science_sample(member: str, prop: str | None) -> dict[str, str]:
    """"what is a robin ?" (``prop`` None) or "does a robin have gills ?"."""
    kind = next(k for k, ms in KINDS.items() if member in ms)
    if prop is None:
        return {"prompt": f"what is a {member} ?", "completion": template.completion(kind, f"a {member} is a {kind}"),
                "target": kind}
    has = prop in PROPERTIES[kind]
    think = f"a {member} is a {kind} . a {kind} has {'' if has else 'no '}{prop}"
    ans = "yes" if has else "no"
    return {"prompt": f"does a {member} have {prop} ?", "completion": template.completion(ans, think), "target": ans}


def held_out() -> dict[str, set]:
    """The held-out split (fixed): 200 two-step arithmetic problems, and per animal or tree one property
    it has and one it has not ((member, property) pairs). No question about them is ever trained on."""
    rng = np.random.default_rng(TEST_SEED)
    two = [p for p in _arithmetic_problems() if p[3]]
    arithmetic = {two[int(i)] for i in rng.choice(len(two), 200, replace=False)}
    science = set()
    for kind, members in KINDS.items():
        absent = [p for p in ALL_PROPERTIES if p not in PROPERTIES[kind]]
        for m in members:
            science.add((m, PROPERTIES[kind][int(rng.integers(3))]))
            science.add((m, absent[int(rng.integers(len(absent)))]))
    return {"arithmetic": arithmetic, "science": science}


def _pool(capability: str, split: str) -> list:
    test = held_out()[capability]
    if capability == "arithmetic":
        items = sorted(test) if split == "test" else [p for p in _arithmetic_problems() if p not in test]
    else:
        pairs = [(m, p) for ms in KINDS.values() for m in ms for p in ALL_PROPERTIES]
        items = sorted(test) if split == "test" else [(m, None) for ms in KINDS.values() for m in ms] + \
            [pair for pair in pairs if pair not in test]
    return items


def generate(capability: str, n: int, seed: int, split: str = "train") -> list[dict[str, Any]]:
    """``n`` samples of ``capability`` (``{"capability", "prompt", "completion", "target"}``) drawn with
    ``seed`` from the ``split`` ("train" or "test") of :func:`held_out`. Science samples are balanced:
    half "yes" questions and half "no" / "what is" questions in training."""
    check_capability(capability)
    if split not in ("train", "test"):
        raise TextWorldError(f"split must be 'train' or 'test', got {split!r}")
    if n < 1:
        raise TextWorldError(f"need at least one sample, got n={n}")
    rng = np.random.default_rng([seed, CAPABILITIES.index(capability), split == "test"])
    items = _pool(capability, split)
    make = _arithmetic_sample if capability == "arithmetic" else (lambda it: _science_sample(*it))
    if capability == "science":  # as many yes as other answers
        yes = [it for it in items if it[1] is not None and make(it)["target"] == "yes"]
        other = [it for it in items if it not in set(yes)]
        picks = [(yes if i % 2 == 0 else other)[int(rng.integers(len(yes if i % 2 == 0 else other)))]
                 for i in range(n)]
    else:
        picks = [items[int(i)] for i in rng.integers(len(items), size=n)]
    return [{"capability": capability, **make(it)} for it in picks]


def build_test_sets(n_per_capability: int) -> dict[str, list[dict[str, Any]]]:
    """The fixed held-out test sets: every held-out item once, up to ``n_per_capability`` per capability
    (a fixed subset when there are more)."""
    sets = {}
    for cap in CAPABILITIES:
        items = _pool(cap, "test")
        rng = np.random.default_rng([TEST_SEED, CAPABILITIES.index(cap)])
        chosen = sorted(rng.choice(len(items), min(n_per_capability, len(items)), replace=False))
        make = _arithmetic_sample if cap == "arithmetic" else (lambda it: _science_sample(*it))
        sets[cap] = [{"capability": cap, **make(items[int(i)])} for i in chosen]
    return sets


def score(completion: str, target: str) -> float:
    """Exact match of the answer block's text with ``target``."""
    block = template.answer_block(completion)
    return float(block is not None and " ".join(block.split()) == target)


# --------------------------------------------------------------------------------------------------
# The new task: the largest digit of a list


def task_prompt(digits: Sequence[int]) -> str:
    """"which is the largest of 3 7 2 5 ?"."""
    return f"which is the largest of {' '.join(str(d) for d in digits)} ?"


def teacher_completion(digits: Sequence[int]) -> str:
    """The teacher's reasoning and the right answer:
    "<think> i compare 3 , 7 , 2 , 5 . the largest is 7 </think> <answer> 7 </answer>"."""
    top = max(digits)
    return template.completion(str(top), f"i compare {' , '.join(str(d) for d in digits)} . the largest is {top}")


def gt_completion(answer: int) -> str:
    """The ground-truth-only completion (SFT on answers): an empty think block and the answer."""
    return template.completion(str(answer))


def make_tasks(n: int, split: str, seed: int = 0, min_len: int = 3, max_len: int = 6) -> list[dict[str, Any]]:
    """``n`` distinct tasks (``{"prompt", "digits", "answer"}``): a list of ``min_len``-``max_len`` digits
    whose largest digit (occurring once) is uniform over 1-9, so that no constant answer is right more
    than about one time in nine. Train and test lists are disjoint (a list's split is fixed by its
    content: :func:`task_split_of`)."""
    if split not in ("train", "test"):
        raise TextWorldError(f"split must be 'train' or 'test', got {split!r}")
    if not 2 <= min_len <= max_len:
        raise TextWorldError(f"need 2 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = np.random.default_rng([seed, split == "test", 8])
    tasks, seen = [], set()
    for _ in range(100 * n):
        if len(tasks) == n:
            break
        length, top = int(rng.integers(min_len, max_len + 1)), int(rng.integers(1, 10))
        digits = [int(d) for d in rng.integers(0, top, size=length - 1)] + [top]
        rng.shuffle(digits)
        key = tuple(digits)
        if key in seen or task_split_of(key) != split:
            continue
        seen.add(key)
        tasks.append({"prompt": task_prompt(digits), "digits": digits, "answer": top})
    if len(tasks) < n:
        raise TextWorldError(f"only {len(tasks)} distinct {split} tasks of {min_len}-{max_len} digits exist, asked for {n}")
    return tasks


def task_split_of(digits: tuple[int, ...]) -> str:
    """"test" for about one list in five (fixed by its content), else "train"."""
    return "test" if sum((i + 1) * (v + 1) for i, v in enumerate(digits)) % 5 == 0 else "train"


def parse_answer(text: Any) -> int | None:
    """The single digit in the single answer block of ``text``, or ``None``."""
    block = template.single_answer_block(text)
    tokens = block.split() if block is not None else []
    return int(tokens[0]) if len(tokens) == 1 and tokens[0].isdigit() else None


def score_task(completion: Any, answer: Any) -> dict[str, float]:
    """``{"acc", "fmt"}`` of one completion (text or TRL conversational) against the right answer."""
    text = template.to_text(completion)
    pred = parse_answer(text)
    return {"acc": float(pred is not None and pred == int(answer)),
            "fmt": 0.5 * template.follows(text) + 0.5 * (pred is not None)}


def acc_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """TRL reward: 1 for the right answer, else 0."""
    return [score_task(c, a)["acc"] for c, a in zip(completions, answer)]


def fmt_reward(completions: Any, answer: Any = None, **kwargs: Any) -> list[float]:
    """TRL reward: 0.5 for the think/answer template, 0.5 for an answer that is one digit."""
    return [score_task(c, a)["fmt"] for c, a in zip(completions, answer)]


REWARD_FUNCS = (acc_reward, fmt_reward)
