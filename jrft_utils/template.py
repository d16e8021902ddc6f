"""The completion template ``<think> ... </think> <answer> ... </answer>``: its tags, building a completion's
text, and reading one back (the answer block, whether the template is followed, a TRL completion as text).

Every task (the prior-knowledge world, the jigsaw, the text-only world), the tokenizer and the benchmark
scorers share this one module; it imports nothing from the package, so any module may import it.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE = "<think>", "</think>", "<answer>", "</answer>"
TAGS: tuple[str, ...] = (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)

_TEMPLATE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_THINK_TEXT = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def completion(answer: str, think: str = "") -> str:
    """``<think> {think} </think> <answer> {answer} </answer>``, the think text's whitespace collapsed; an
    empty ``think`` gives ``<think> </think> <answer> ... </answer>`` (the answer-only completion)."""
    think = " ".join(think.split())
    inner = f" {think} " if think else " "
    return f"<think>{inner}</think> <answer> {answer} </answer>"


def to_text(completion: Any) -> str:
    """The text of a TRL completion: a string, or a conversational list of messages whose content is a
    string or a list of ``{"type": "text", "text": ...}`` parts. Anything else gives ``""``."""
    try:
        if isinstance(completion, str):
            return completion
        if isinstance(completion, dict):
            completion = [completion]
        parts: list[str] = []
        for message in completion or []:
            content = message.get("content") if isinstance(message, dict) else message
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, (list, tuple)):
                parts.extend(str(c.get("text") or "") for c in content if isinstance(c, dict))
        return " ".join(parts)
    except Exception:  # noqa: BLE001 - a reward must never raise
        return ""


def follows(text: Any) -> bool:
    """Whether ``text`` is exactly ``<think>...</think><answer>...</answer>`` (whitespace allowed around
    and between the blocks; nothing else outside them; one block of each)."""
    if not isinstance(text, str):
        return False
    if not _TEMPLATE.fullmatch(text):
        return False
    return all(text.count(tag) == 1 for tag in TAGS)


def think_block(text: Any) -> str | None:
    """The raw text inside the think block of a completion that is exactly think block then answer
    block (whitespace around them allowed), else ``None``."""
    m = _TEMPLATE.fullmatch(text) if isinstance(text, str) else None
    return m.group(1) if m else None


def answer_block(text: str) -> str | None:
    """The raw text inside the first ``<answer> ... </answer>`` block of ``text``, or ``None``."""
    m = _ANSWER.search(text)
    return m.group(1) if m else None


def single_answer_block(text: Any) -> str | None:
    """:func:`answer_block` of a text holding exactly one ``<answer>`` and one ``</answer>``, else ``None``
    (several answers earn nothing)."""
    if not isinstance(text, str) or text.count(ANSWER_OPEN) != 1 or text.count(ANSWER_CLOSE) != 1:
        return None
    return answer_block(text)


def answer_text(completion: str) -> str:
    """The text inside ``<answer> ... </answer>``, whitespace collapsed; the whole completion when the tags
    are missing or unclosed."""
    block = answer_block(completion)
    return " ".join((completion if block is None else block).split())


def without_think(completion: str) -> str:
    """``completion`` with every ``<think>...</think>`` block replaced by a space."""
    return _THINK.sub(" ", completion)


def think_text(completion: str) -> str:
    """The text of ``completion``'s first think block, whitespace collapsed (``""`` when it has none)."""
    match = _THINK_TEXT.search(completion)
    return " ".join(match.group(1).split()) if match else ""


def length_matched_words(words: Sequence[str], keys: Sequence[Hashable], lengths: Mapping[Hashable, int],
                         rng: np.random.Generator) -> list[str]:
    """For each of ``keys``, a think text of words drawn uniformly from ``words``: as many as ``lengths[key]``
    (the length, in words, of another corpus's think block for the same prompt), or, for a key without one,
    as one of ``lengths``' values drawn at random. The think blocks of a corpus as long as the other's, and
    saying nothing."""
    if not words or not lengths:
        raise ValueError("need words to draw and at least one length to match")
    pool = list(lengths.values())
    sizes = [lengths[k] if k in lengths else pool[int(rng.integers(len(pool)))] for k in keys]
    return [" ".join(rng.choice(list(words), size=n)) for n in sizes]
