"""The registry of methods: every method's key, display name, the SFT corpus it trains on, the settings
that run it and its colour in every figure. Every list of methods or corpora in the package derives from
here, in this order (the paper's, and the order in which notebooks 00-04 record the methods).

Settings: ``"vision"`` is the jigsaw experiment of notebooks 00-07, ``"text"`` the text-only validation of
notebook 08, ``"freedom"`` the question with several correct answers of notebook 09 (:mod:`jrft_utils.freedom`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """One method (``base`` and ``start`` are the checkpoints the others fine-tune: the pretrained base and
    the format warm-up every arm starts from). ``corpus``: the SFT corpus it trains on (None: it trains on none); ``colour``: hex RGB;
    ``control``: an arm of ours that tests an explanation, not one of the paper's methods."""

    key: str
    name: str
    corpus: str | None
    settings: tuple[str, ...]
    colour: str
    control: bool = False  # a control arm: not the paper's method (class exercises skip its corpus)


# Colours: entries of seaborn's colourblind-safe "colorblind" palette, fixed per method so that a method
# looks the same in every figure (a corpus is drawn in the colour of the method that trains on it).
METHODS: tuple[Method, ...] = (
    Method("base", "Base", None, ("vision", "text"), "#949494"),                     # grey
    Method("start", "Start", None, ("vision",), "#ca9161"),                          # brown
    Method("sft_gt", "SFT-Non-Rea", "gt", ("vision", "text"), "#d55e00"),            # vermilion
    Method("rft", "RFT", None, ("vision", "text", "freedom"), "#0173b2"),            # blue
    Method("sft_teacher", "SFT-Rea-teacher", "teacher", ("vision", "text"), "#de8f05"),  # orange
    Method("sft_rft_rollouts", "SFT-Rea-GRPO-Rollout", "rft_rollouts", ("vision", "text"), "#029e73"),  # green
    Method("sft_early_rollouts", "SFT-early-rollouts", "early_rollouts", ("vision",), "#cc78bc"),  # pink
    Method("sft_teacher_foreign", "SFT-teacher-foreign", "teacher_foreign", ("vision",), "#56b4e9",  # light blue
           control=True),
    Method("sft_start_think", "SFT-start-think", "start_think", ("vision", "text"), "#fbafe4", control=True),  # light pink
    Method("sft_random_trace", "SFT-random-trace", "random_trace", ("vision", "text"), "#ece133", control=True),  # yellow
    Method("sft_foreign_think", "SFT-foreign-think", "foreign_think", ("vision", "text"), "#3c3c3c",  # charcoal,
           control=True),  # from seaborn's "dark" palette: the colourblind one is used up
    # notebook 09's SFT arms, in seaborn's "dark" palette too
    Method("sft_one", "SFT-1", "one", ("freedom",), "#8c0800"),                     # dark red
    Method("sft_two", "SFT-2", "two", ("freedom",), "#591e71"),                     # dark purple
    Method("sft_oracle", "SFT-oracle", "oracle", ("freedom",), "#12711c"),          # dark green
    Method("sft_self", "SFT-self", "self", ("freedom",), "#b8850a"),                # dark gold
    Method("sft_self_iter", "SFT-self-iterative", "self_iter", ("freedom",), "#006374"),  # dark teal
)
_BY_KEY = {m.key: m for m in METHODS}
_BY_CORPUS = {m.corpus: m for m in METHODS if m.corpus}
# what a figure's hue may hold: a method's key, its display name, or the corpus it trains on
_BY_LABEL = _BY_KEY | {m.name: m for m in METHODS} | _BY_CORPUS


def keys(setting: str = "vision", controls: bool = True) -> tuple[str, ...]:
    """The keys of the methods ``setting`` runs, in registry order (without the control arms unless
    ``controls``)."""
    return tuple(m.key for m in METHODS if setting in m.settings and (controls or not m.control))


def corpora(setting: str = "vision", controls: bool = True) -> tuple[str, ...]:
    """The SFT corpora of ``setting``'s methods, in registry order (without the control arms' unless
    ``controls``)."""
    return tuple(m.corpus for m in METHODS if setting in m.settings and m.corpus and (controls or not m.control))


def controls(setting: str = "vision") -> tuple[str, ...]:
    """The corpora of ``setting``'s control arms, in registry order."""
    return tuple(m.corpus for m in METHODS if setting in m.settings and m.corpus and m.control)


def corpus_of(setting: str = "vision") -> dict[str, str]:
    """Method key -> the corpus it trains on, for ``setting``'s methods that train on a corpus."""
    return {m.key: m.corpus for m in METHODS if setting in m.settings and m.corpus}


def method_of_corpus(corpus: str) -> str:
    """The key of the method that trains on ``corpus``."""
    return _BY_CORPUS[corpus].key


def name(key: str) -> str:
    """The display name of method ``key`` (the paper's name for it)."""
    return _BY_KEY[key].name


def colour(label: str) -> str:
    """The colour of a method, given its key, its display name or the corpus it trains on."""
    if label not in _BY_LABEL:
        raise KeyError(f"{label!r} names no method (key, display name or corpus) of jrft_utils.methods")
    return _BY_LABEL[label].colour


def palette(labels: Iterable[str]) -> dict[str, str]:
    """``{label: colour}`` for an iterable of labels as :func:`colour` takes them (e.g. a hue column)."""
    return {label: colour(label) for label in dict.fromkeys(labels)}
