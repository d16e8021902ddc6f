"""Profiles as data: every knob of every stage, for each way of running the notebooks.

A profile is a nested dict ``{section: {knob: value}}``. Notebooks read their section with
:func:`section`, which lets a papermill parameter override any knob (``None`` keeps the profile's value).
Nothing else in the package branches on a profile's name.

- ``smoke``: seconds per notebook; used by the tests.
- ``cpu``: the default, full tiny reproduction on a 2-core CPU.
- ``class``: class exercises: the cpu profile's shipped base, one seed, no sweeps, shorter runs.
- ``gpu``: the paper's scale (Qwen2.5-VL on a GPU); see docs/gpu.md.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO_ROOT = Path(__file__).resolve().parent.parent

_CPU: dict[str, dict[str, Any]] = {
    "run": {
        "seeds": [0, 1, 2],     # seeds of the fine-tuning stages (notebooks 02-08)
        "base_seed": 0,         # seed of the one base model (notebooks 00, 08)
        "figures_dir": "figures",  # where figures and summary.json go, from the repository root (None: the run folder)
        "workers": 2,           # fine-tuning runs trained at once, each in its own process on one thread (one a core;
                                # a third process slows the other two more than it adds)
        "ship_bases": True,     # a rebuilt base with the profile's own settings is written to data/ (shipped)
        "processes": 1,         # processes that train one fine-tuning run together (> 1: accelerate, jrft_utils.distributed)
        "accelerate_config": "configs/accelerate/ddp.yaml",  # their accelerate config (ddp.yaml, zero2.yaml), from the repository root
    },
    "model": {
        "source": "tiny",       # "tiny": built and pretrained here; else a Qwen2.5-VL hub id or folder
        "dtype": "float32",     # weights' dtype when loading a pretrained checkpoint
        "lora_r": 0,            # LoRA rank of the fine-tuning stages (0: full fine-tuning)
        "lora_alpha": 16,       # LoRA scaling
        "image_size": 84,       # px, square
        "patch_size": 14,       # px of a vision patch
        "vision_hidden": 128,   # width of the CLIP vision tower
        "vision_layers": 2,
        "vision_heads": 4,
        "text_hidden": 128,     # width of the Qwen2 decoder
        "text_layers": 4,
        "text_heads": 4,
        "text_kv_heads": 2,
        "intermediate": 256,    # MLP width of the decoder
    },
    "world": {
        "train_per_capability": 4000,  # pretraining samples per capability
        "test_per_capability": 200,    # held-out prior-knowledge samples per capability
        "eval_batch_size": 200,        # completions generated per batch when scoring prior knowledge
    },
    "benchmarks": {
        "names": [],            # the paper's benchmarks as the prior-knowledge yardstick (empty: the world's test sets)
        "sources": {},          # benchmark name -> hub id or local copy (default: its hub id)
        "limit": 200,           # rows per benchmark (a fixed seeded subset)
    },
    "pretrain": {
        "vision_steps": 1800,   # steps of the vision stage (what each image patch holds)
        "vision_batch_size": 64,
        "vision_learning_rate": 1e-3,
        "freeze_vision": True,  # the SFT stage trains projector and decoder on the frozen vision tower
        "steps": 4000,          # steps of the SFT stage on the world's questions (3,000 left hallucination at 68.5 %)
        "batch_size": 32,
        "learning_rate": 1e-3,
        "lr_scheduler": "cosine",
        "warmup_steps": 50,
        "logging_steps": 25,
        "threads": 1,           # torch threads while pretraining (part of the recipe: kernels differ by thread count)
    },
    "jigsaw": {
        "rows": 2, "cols": 2,   # the grid (the paper's is 3 x 3)
        "train_size": 1000,     # training puzzles
        "test_size": 200,       # held-out puzzles
        "image_size": 84,       # px
        "photo_fraction": 0.5,  # share of real-photo crops (the rest: procedural images)
        "cue_strength": 0.5,    # strength of the colour ramp that hints at each tile's place (0: none)
        "crop_min": 1.0,        # crop side, as a multiple of image_size: uniform(crop_min, crop_max)
        "crop_max": 2.0,
        "test_region": 1 / 3,   # share of each photo's long side reserved for test crops
        "min_tile_std": 4.0,    # a tile must vary at least this much (pixel std), or the crop is redrawn
        "data_seed": 0,         # the puzzles are the same for every training seed
        "max_new_tokens": 128,  # greedy generation when scoring a model on the jigsaw
        "eval_batch_size": 32,
    },
    "start": {                  # the format warm-up every arm fine-tunes from (notebook 01): SFT on the base
        "steps": 300,           # 0: every arm starts from the base itself (100 left its answers unlike its think blocks)
        "answers": "random",    # its answers: "random" permutations (the format, not the solution) or "truth"
        "think": "tiles",       # its think block: "tiles" (the answer told tile by tile) or "empty"
        "replay": 0.5,          # share of its samples replayed from the pretraining corpus
        "seed": 0,              # draws the random answers, the replayed samples and the training order
        "batch_size": 16,
        "learning_rate": 3e-4,
        "lr_scheduler": "constant",
        "warmup_steps": 0,
        "logging_steps": 10,
        "freeze_vision": True,  # the language model only, as every arm
    },
    "sft": {                    # supervised fine-tuning on the jigsaw (notebooks 02, 04)
        "steps": 300,
        "batch_size": 16,
        "learning_rate": 3e-4,  # the main runs' rate
        "lr_sweep": [3e-5, 1e-4, 3e-4],  # rates of the sweep (first seed; 1e-3 erased the prior within 50 steps)
        "freeze_vision": True,  # fine-tune the language model only
        "lr_scheduler": "constant",
        "warmup_steps": 0,
        "logging_steps": 10,
        "eval_every": 50,       # steps between curve points (every point is a point of the forgetting frontier)
        "eval_test_size": 200,  # held-out puzzles scored at each curve point (200: the whole test split)
        "between_test_size": 200,  # of those, the first scored at the points between step 0 and the last (200: all)
        "between_prior_size": 200,  # prior-knowledge questions of each capability scored there (200: all; fewer
                                    # halve a point's time but move its drop by 1-2 points: docs/findings.md)
    },
    "rft": {                    # RFT with GRPO on the jigsaw (notebook 03)
        "steps": 300,
        "batch_size": 128,      # completions a step (batch_size / num_generations prompts)
        "num_generations": 8,   # GRPO's group size
        "max_completion_length": 40,  # tokens a sampled completion may have
        "rewards": ["hit", "acc", "fmt"],  # summed, unweighted
        "freeze_vision": True,
        "temperature": 1.0,     # sampling temperature of the rollouts
        "beta": 0.2,            # KL anchor to the run's start (0: none, TRL's default)
        "loss_type": "dapo",    # TRL's default
        "learning_rate": 1e-4,
        "lr_sweep": [1e-4, 3e-4, 1e-3],  # (first seed; 3e-5 stayed within 6 points of the start in 300 steps)
        "lr_scheduler": "constant",
        "warmup_steps": 0,
        "logging_steps": 1,
        "eval_every": 50,
        "eval_test_size": 200,
        "between_test_size": 200,
        "between_prior_size": 200,
        "snapshot_step": 30,    # the early checkpoint kept from each main run (notebook 04's early rollouts)
    },
    "kl": {                     # forward KL from the start at every curve point (jrft_utils.divergence)
        "prompts": 32,          # held-out puzzles (0: no KL is measured)
        "prior_prompts": 40,    # prior-knowledge questions, taken from each capability in turn
        "samples": 4,           # completions sampled from the start for each
        "max_new_tokens": 40,   # room for the start's completions (its format takes 33 tokens)
        "seed": 0,
    },
    "dynamics": {               # learning dynamics (notebook 05)
        "n_u": 16,              # training samples per corpus
        "n_v": 32,              # prior-knowledge probes
        "first_order_lrs": [1e-6, 1e-5, 1e-4],  # step sizes of the eNTK check
        "lbk_steps": 30,        # AdamW steps over which LBK is tracked
        "lbk_every": 5,
        "lbk_lr": 3e-4,
    },
    "corpora": {                # the rollout corpora of notebook 04
        "num_samples": 4,       # completions sampled per puzzle from the final RFT model
        "temperature": 1.0,
        "batch_size": 64,
        "require_correct": True,  # keep only a correct rollout (False: any; smoke only)
        "controls": True,       # also build and train the control corpora (methods.controls), swept like every arm
    },
    "analysis": {               # what the notebooks read off finished runs (no training depends on them)
        "example_seed": 0,      # the puzzle notebook 01 draws to show the tile convention
        "common_accuracy": 0.1,  # notebook 03 compares the steps SFT and RFT need to reach this jigsaw accuracy
        "reachability_temperatures": [1.0, 1.5, 2.0],  # sampling temperatures of the "can GRPO start?" checks
        "reachability_puzzles": 32,  # training puzzles sampled (8 completions each) in notebook 03's check
        "reachability_tasks": 64,  # training tasks sampled in notebook 08's check
    },
    "freedom": {                # notebook 09: a jigsaw question with several correct answers, and one with one
        "forms": ["free", "unique"],  # the questions asked (jrft_utils.freedom.QUESTIONS)
        "train_size": 128,      # training puzzles (the first of the jigsaw's train split)
        "test_size": 80,        # held-out puzzles scored at each point
        "habit": 4.0,           # the start's habit: it was taught the last position this many times as often as the first
        "solved": 0.5,          # share of the format stage's puzzles answered with a correct position (the rest: any)
        "start_steps": 60,      # SFT steps of the format stage on both questions, from notebook 01's start
        "start_learning_rate": 3e-4,
        "prior_per_capability": 20,  # prior-knowledge questions of each capability scored at each point (a fixed subset)
        "kl_prior_prompts": 8,  # prior-knowledge questions of the forward KL's second measure (kl_prior)
        "seed": 0,              # draws the format stage's answers
    },
    "freedom_sft": {"steps": 48, "batch_size": 16, "learning_rate": 3e-4, "lr_sweep": [1e-4, 3e-4, 1e-3],
                    "lr_scheduler": "constant", "warmup_steps": 0, "logging_steps": 8, "freeze_vision": True,
                    "eval_every": 8},  # steps x batch_size: whole epochs of train_size; eval_every: one epoch
    "freedom_rft": {"steps": 48, "batch_size": 48, "num_generations": 8, "max_completion_length": 8,
                    "temperature": 1.0, "beta": 0.2, "loss_type": "dapo", "learning_rate": 3e-4,
                    "lr_sweep": [1e-4, 3e-4, 1e-3], "lr_scheduler": "constant", "warmup_steps": 0, "logging_steps": 1,
                    "freeze_vision": True, "eval_every": 8},  # beta: notebook 03's anchor (without it GRPO collapsed)
    # The text-only validation (notebook 08): a tiny Qwen2 decoder pretrained on arithmetic and science,
    # then taught to find the largest digit of a list.
    "text_model": {"hidden": 128, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 256},
    "text_world": {
        "train_per_capability": 6000,  # pretraining samples per capability
        "test_per_capability": 200,    # held-out items (at most 200 arithmetic and 100 science exist)
        "task_train_size": 1000,       # the new task's training items
        "task_test_size": 200,
        "min_len": 3, "max_len": 6,    # digits in a list
        "data_seed": 0,
    },
    "text_pretrain": {"steps": 400, "batch_size": 64, "learning_rate": 1e-3, "lr_scheduler": "cosine",
                      "warmup_steps": 50, "logging_steps": 50},
    "text_sft": {"steps": 200, "batch_size": 16, "learning_rate": 1e-4, "lr_sweep": [1e-5, 3e-5, 1e-4],
                 "lr_scheduler": "constant", "warmup_steps": 0, "logging_steps": 10, "eval_every": 25},
    "text_rft": {"steps": 200, "batch_size": 32, "num_generations": 8, "max_completion_length": 32,
                 "temperature": 1.0, "beta": 0.0, "loss_type": "dapo", "learning_rate": 1e-4,
                 "lr_sweep": [3e-5, 1e-4, 3e-4], "lr_scheduler": "constant", "warmup_steps": 0, "logging_steps": 1,
                 "eval_every": 25},
    "text_corpora": {"num_samples": 4, "temperature": 1.0, "max_new_tokens": 32, "batch_size": 128,
                     "require_correct": True,
                     "controls": True},  # also build and train the control corpora (methods.controls("text"))
}

_SMOKE: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_SMOKE["run"].update(seeds=[0], base_seed=0, figures_dir=None, workers=1, ship_bases=False)
_SMOKE["model"].update(text_hidden=32, text_layers=1, intermediate=64, vision_hidden=32, vision_layers=1)
_SMOKE["world"].update(train_per_capability=40, test_per_capability=8)
_SMOKE["pretrain"].update(vision_steps=3, vision_batch_size=8, steps=4, batch_size=8, logging_steps=1)
_SMOKE["jigsaw"].update(train_size=16, test_size=8, max_new_tokens=32)
_SMOKE["sft"].update(steps=4, batch_size=4, lr_sweep=[3e-4, 1e-3], logging_steps=1, eval_every=2, eval_test_size=8,
                    between_test_size=4, between_prior_size=4)
_SMOKE["start"].update(steps=1, think="empty", batch_size=4, logging_steps=1)
_SMOKE["rft"].update(steps=2, batch_size=8, num_generations=4, max_completion_length=40, lr_sweep=[1e-4],
                     eval_every=1, eval_test_size=8, between_test_size=4, between_prior_size=4, snapshot_step=1)
_SMOKE["kl"].update(prompts=4, prior_prompts=5, samples=2)
_SMOKE["dynamics"].update(n_u=4, n_v=8, lbk_steps=4, lbk_every=2)
_SMOKE["corpora"].update(num_samples=2, require_correct=False)
_SMOKE["text_model"].update(hidden=32, layers=1, intermediate=64)
_SMOKE["text_world"].update(train_per_capability=40, test_per_capability=8, task_train_size=16, task_test_size=8)
_SMOKE["text_pretrain"].update(steps=4, batch_size=8, logging_steps=1)
_SMOKE["freedom"].update(train_size=8, test_size=4, start_steps=2, prior_per_capability=2)
_SMOKE["freedom_sft"].update(steps=2, batch_size=4, lr_sweep=[3e-4], logging_steps=1, eval_every=2)
_SMOKE["freedom_rft"].update(steps=2, batch_size=8, num_generations=4, lr_sweep=[3e-4], eval_every=1)
_SMOKE["text_sft"].update(steps=2, batch_size=4, logging_steps=1, eval_every=1, lr_sweep=[1e-4])
_SMOKE["text_rft"].update(steps=2, batch_size=8, num_generations=4, max_completion_length=16, eval_every=1,
                          lr_sweep=[1e-4, 3e-4])  # exercises a frontier-only GRPO run
# the text controls are tested at function level (tests/test_textexperiment.py), not in the notebook run
_SMOKE["text_corpora"].update(num_samples=2, max_new_tokens=16, require_correct=False, controls=False)

_GPU: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_GPU["run"].update(figures_dir=None, workers=1, ship_bases=False)  # one device: one run at a time
# Assumptions (the paper does not state them): the 3B model, bf16, LoRA rank 64 on every projection.
_GPU["model"].update(source="Qwen/Qwen2.5-VL-3B-Instruct", dtype="bfloat16", lora_r=64, lora_alpha=128)
_GPU["world"].update(train_per_capability=8, test_per_capability=8,  # no pretraining: notebook 00's examples only
                     eval_batch_size=64)
_GPU["benchmarks"].update(names=["refcoco", "docvqa", "mme", "mmstar", "pope", "mmmu"])
_GPU["jigsaw"].update(rows=3, cols=3, photo_fraction=1.0, cue_strength=0.0, max_new_tokens=256)
_GPU["start"].update(steps=0)  # Qwen2.5-VL follows the answer template: every arm starts from it, as the paper's
_GPU["kl"].update(prompts=0)  # the KL scorer runs the tiny models' forward pass (not Qwen2.5-VL's image layout)
_GPU["rft"].update(max_completion_length=256,  # room for reasoning, as jigsaw.max_new_tokens
                   beta=0.0)  # TRL's default: the paper states no KL term (the cpu anchor stops a tiny policy's collapse)

# For class exercises on a laptop: the cpu profile's shipped base (its pretraining knobs untouched), one seed,
# no learning-rate sweeps, shorter runs; its results go to runs/class, never to figures/.
_CLASS: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_CLASS["run"].update(seeds=[0], figures_dir=None, ship_bases=False)
_CLASS["jigsaw"].update(eval_batch_size=64)
_CLASS["sft"].update(lr_sweep=[3e-4], eval_every=100, eval_test_size=50)
_CLASS["rft"].update(steps=100, batch_size=64, lr_sweep=[1e-4], eval_every=50, eval_test_size=50)
_CLASS["start"].update(steps=100)  # a shorter start: notebook 01 in under two minutes
_CLASS["corpora"].update(num_samples=2, controls=False)  # the paper's four corpora: notebook 04 as long as before
_CLASS["dynamics"].update(n_u=8, n_v=16, lbk_steps=20, lbk_every=10)
_CLASS["text_corpora"].update(controls=False)  # the paper's three corpora: notebook 08 as long as before
_CLASS["text_sft"].update(lr_sweep=[1e-4], eval_every=100)
_CLASS["text_rft"].update(lr_sweep=[1e-4], eval_every=100)
_CLASS["freedom_sft"].update(lr_sweep=[3e-4])
_CLASS["freedom_rft"].update(lr_sweep=[3e-4])

PROFILES: dict[str, dict[str, dict[str, Any]]] = {"smoke": _SMOKE, "cpu": _CPU, "class": _CLASS, "gpu": _GPU}


# what the start (the format warm-up) trains on: the puzzles' true answers, or random permutations
START_ANSWERS = ("truth", "random")
# its think block: empty, or the answer told tile by tile in the world's words (jigsaw.tile_trace)
START_THINK = ("empty", "tiles")
# the questions of notebook 09 (jrft_utils.freedom.QUESTIONS)
FREEDOM_FORMS = ("free", "unique")


class ProfileError(ValueError):
    """A profile, section or knob that does not exist, or an override of the wrong type or out of range."""


# The range of every numeric knob, by name (the same name means the same thing in every section):
# (low, high, low_inclusive); None leaves a side open. Lists are checked element by element.
_POSITIVE = (0, None, False)
_AT_LEAST_1 = (1, None, True)
_NON_NEGATIVE = (0, None, True)
_FRACTION = (0, 1, True)
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    **dict.fromkeys(("seeds", "base_seed", "data_seed", "warmup_steps", "beta", "min_tile_std",
                     "snapshot_step", "lora_r"), _NON_NEGATIVE),
    **dict.fromkeys(("image_size", "patch_size", "vision_hidden", "vision_layers", "vision_heads", "text_hidden",
                     "text_layers", "text_heads", "text_kv_heads", "intermediate", "train_per_capability",
                     "test_per_capability", "steps", "vision_steps", "batch_size", "vision_batch_size", "eval_batch_size",
                     "logging_steps", "threads", "rows", "cols", "train_size", "test_size", "max_new_tokens",
                     "eval_every", "eval_test_size", "between_test_size", "between_prior_size", "max_completion_length", "n_u", "n_v", "lbk_steps",
                     "lbk_every", "num_samples", "limit", "reachability_puzzles", "reachability_tasks", "hidden",
                     "layers", "heads", "kv_heads", "task_train_size", "task_test_size", "min_len", "max_len", "workers"), _AT_LEAST_1),
    **dict.fromkeys(("learning_rate", "vision_learning_rate", "lr_sweep", "temperature", "reachability_temperatures",
                     "first_order_lrs", "lbk_lr", "crop_min", "crop_max", "lora_alpha"), _POSITIVE),
    **dict.fromkeys(("photo_fraction", "cue_strength", "common_accuracy", "solved"), _FRACTION),
    "replay": (0, 0.9, True),
    **dict.fromkeys(("start_steps", "prior_per_capability", "kl_prior_prompts"), _AT_LEAST_1),
    **dict.fromkeys(("habit", "start_learning_rate"), _POSITIVE),
    "start.steps": _NON_NEGATIVE,  # a section's own range ("section.knob") overrides the knob's
    "kl.prompts": _NON_NEGATIVE,
    **dict.fromkeys(("prompts", "prior_prompts", "samples"), _AT_LEAST_1),
    **dict.fromkeys(("seed", "example_seed"), _NON_NEGATIVE),
    "test_region": (0, 1, False),
    "num_generations": (2, None, True),
}


def check_knob(name: str, key: str, value: Any) -> None:
    """Check ``value`` against the range of ``key`` in :data:`RANGES` (also for notebook parameters that
    are not profile knobs, e.g. ``common_accuracy``); ``name`` prefixes the message."""
    bounds_of = RANGES.get(f"{name}.{key}", RANGES.get(key))
    if bounds_of is None:
        return
    low, high, low_inclusive = bounds_of
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ProfileError(f"{name}.{key} must not be an empty list")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ProfileError(f"{name}.{key} must hold numbers, got {v!r} ({type(v).__name__})")
        too_low = low is not None and (v < low if low_inclusive else v <= low)
        if too_low or (high is not None and v > high):
            bounds = (f"{'>=' if low_inclusive else '>'} {low}" if high is None
                      else f"in [{low}, {high}]" if low_inclusive else f"in ({low}, {high}]")
            raise ProfileError(f"{name}.{key} must be {bounds}, got {v!r}")


def _check_section(name: str, values: dict[str, Any]) -> None:
    """Ranges of every knob and the constraints between knobs of one section."""
    for key, value in values.items():
        check_knob(name, key, value)
    if name == "run" and (len(set(values["seeds"])) != len(values["seeds"])
                          or not all(type(s) is int for s in values["seeds"])):
        raise ProfileError(f"run.seeds must be distinct integers, got {values['seeds']}")
    if name == "jigsaw" and values["crop_min"] > values["crop_max"]:
        raise ProfileError(f"jigsaw.crop_min ({values['crop_min']}) must not exceed crop_max ({values['crop_max']})")
    if name == "text_world" and not 2 <= values["min_len"] <= values["max_len"]:
        raise ProfileError(f"text_world needs 2 <= min_len <= max_len, got {values['min_len']}, {values['max_len']}")
    if name == "start" and values["answers"] not in START_ANSWERS:
        raise ProfileError(f"start.answers must be one of {START_ANSWERS}, got {values['answers']!r}")
    if name == "start" and values["think"] not in START_THINK:
        raise ProfileError(f"start.think must be one of {START_THINK}, got {values['think']!r}")
    if name == "freedom" and (not values["forms"] or any(f not in FREEDOM_FORMS for f in values["forms"])):
        raise ProfileError(f"freedom.forms must be a non-empty list of {FREEDOM_FORMS}, got {values['forms']!r}")
    if name in ("rft", "text_rft", "freedom_rft") and values["batch_size"] % values["num_generations"]:
        raise ProfileError(f"{name}.batch_size ({values['batch_size']}) must be a multiple of num_generations "
                           f"({values['num_generations']}): each prompt gets a whole group of completions")


def get_profile(name: str) -> dict[str, dict[str, Any]]:
    """Return a deep copy of profile ``name``; raise :class:`ProfileError` for an unknown name."""
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return copy.deepcopy(PROFILES[name])


def _check_type(name: str, key: str, value: Any, values: dict[str, Any]) -> None:
    """An override must name an existing knob of section ``name`` and have its value's type (an int is
    accepted where a float is expected)."""
    if key not in values:
        raise ProfileError(f"section {name!r} has no knob {key!r}; knobs: {sorted(values)}")
    expected = values[key]
    ok = isinstance(value, type(expected)) or (isinstance(expected, float) and isinstance(value, int))
    if expected is not None and not ok or isinstance(value, bool) != isinstance(expected, bool):
        raise ProfileError(f"{name}.{key} must be {type(expected).__name__}, got {value!r} ({type(value).__name__})")


def section(profile: str, name: str, **overrides: Any) -> dict[str, Any]:
    """The knobs of section ``name`` of ``profile``, with non-``None`` ``overrides`` applied.

    An override must name an existing knob and have the same type as the profile's value (an int is
    accepted where a float is expected); every knob must lie in its range (:data:`RANGES`). Anything else
    raises :class:`ProfileError` with a message that names the knob.
    """
    prof = get_profile(profile)
    if name not in prof:
        raise ProfileError(f"profile {profile!r} has no section {name!r}; sections: {sorted(prof)}")
    return _applied(name, prof[name], overrides)


def _applied(name: str, values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``values`` of section ``name`` with the non-``None`` ``overrides`` set, every knob checked."""
    for key, value in overrides.items():
        if value is not None:
            _check_type(name, key, value, values)
            values[key] = value
    _check_section(name, values)
    return values


# Knobs that say how runs are executed, not what they compute: they do not make a run an exercise
# (Config.changed), and no run's fingerprint holds them (docs/gpu.md).
HOW_KNOBS: dict[str, tuple[str, ...]] = {"run": ("processes", "accelerate_config")}


@dataclass(frozen=True)
class Config:
    """A profile resolved once, where a run starts (a notebook's first code cell, or the runner): every
    section's knobs with the run's overrides applied and checked. Read a section with ``config["sft"]``
    (a copy); pass the config to the functions a notebook calls, which hand each deeper function the
    section or the values it uses."""

    profile: str
    sections: dict[str, dict[str, Any]]

    def __getitem__(self, name: str) -> dict[str, Any]:
        if name not in self.sections:
            raise ProfileError(f"profile {self.profile!r} has no section {name!r}; sections: {sorted(self.sections)}")
        return copy.deepcopy(self.sections[name])

    def with_knobs(self, name: str, **overrides: Any) -> Config:
        """A copy with ``overrides`` of section ``name`` applied (``None`` keeps a value) and checked."""
        return Config(self.profile, {**self.sections, name: _applied(name, self[name], overrides)})

    @property
    def changed(self) -> dict[str, dict[str, Any]]:
        """The knobs whose values differ from the profile's own, by section (empty for the profile's own
        settings, which a reproduction runs with), but for :data:`HOW_KNOBS`."""
        own = _own_sections(self.profile)
        changed = {name: {k: v for k, v in values.items() if own[name][k] != v and k not in HOW_KNOBS.get(name, ())}
                   for name, values in self.sections.items()}
        return {name: knobs for name, knobs in changed.items() if knobs}

    def is_own(self, *sections: str) -> bool:
        """Whether ``sections`` (all of them when none is named) hold the profile's own values."""
        own = _own_sections(self.profile)
        return all(self.sections[name] == own[name] for name in sections or self.sections)

    @property
    def run_dir(self) -> Path:
        """``runs/<profile>`` under the repository, or under the folder named by the environment variable
        ``JRFT_RUN_ROOT`` (the tests use it to stay out of ``runs/``). It holds every stage of every run of
        the profile, each in a folder of its own (:meth:`keyed_dir`), so that no run replaces another."""
        return Path(os.environ.get("JRFT_RUN_ROOT") or REPO_ROOT / "runs") / self.profile

    @property
    def out_dir(self) -> Path:
        """Where this run's records go (the runs' lists, and its figures and summary unless the profile names
        a figures folder): :attr:`run_dir` with the profile's own settings, else ``run_dir/variants/<key>``
        (``key``: a fingerprint of the changed knobs)."""
        changed = self.changed
        return self.run_dir / "variants" / fingerprint(changed)[:8] if changed else self.run_dir

    def keyed_dir(self, parent: Path, name: str, decided_by: Callable[[Config], Any]) -> Path:
        """``parent/name`` when ``decided_by(config)`` (what decides the stage stored there) is the same as
        with the profile's own settings, else ``parent/name-<key>`` with ``key`` a fingerprint of it: a run
        with changed knobs stores such a stage beside the profile's own instead of replacing it."""
        mine = decided_by(self)
        return parent / name if mine == decided_by(self.own()) else parent / f"{name}-{fingerprint(mine)[:8]}"

    @property
    def base_dir(self) -> Path:
        """Where notebook 00 saves the pretrained base model."""
        return self.keyed_dir(self.run_dir, "base", lambda c: [c.sections[s] for s in ("model", "world", "pretrain")]
                              + [c.sections["run"]["base_seed"]])

    @property
    def data_dir(self) -> Path:
        """Where generated data sets are saved (``data/generated/<profile>``)."""
        return REPO_ROOT / "data" / "generated" / self.profile

    @property
    def figures_dir(self) -> Path:
        """Where the figures and ``summary.json`` go (created if missing): the profile's ``run.figures_dir``
        (default: ``figures`` of the run folder) with the profile's own settings, and ``figures`` of
        :attr:`out_dir` with changed knobs, so that an exercise never overwrites the reproduction's."""
        configured = self.sections["run"]["figures_dir"]
        path = REPO_ROOT / configured if configured and not self.changed else self.out_dir / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def own(self) -> Config:
        """The profile with its own settings (whose records a run with changed knobs starts from)."""
        return Config(self.profile, _own_sections(self.profile))

    def missing(self, what: str, path: str | Path, notebook: str) -> FileNotFoundError:
        """:func:`missing_artifact` for this profile."""
        return missing_artifact(what, path, notebook, self.profile)

    def __str__(self) -> str:
        lines = [f"profile {self.profile!r}:"]
        lines += [f"  {name}: {values}" for name, values in self.sections.items()]
        if self.changed:
            lines.append(f"changed knobs {self.changed}: this run's figures and summary go to {self.figures_dir}, "
                         "beside the reproduction's (which stay as they are)")
        return "\n".join(lines)


def resolve(profile: str, **overrides: dict[str, Any] | None) -> Config:
    """Profile ``profile`` as a :class:`Config`, with ``overrides`` by section (e.g.
    ``sft={"learning_rate": 1e-4}``; a knob set to ``None`` keeps the profile's value), each checked as
    :func:`section` checks it."""
    prof = get_profile(profile)
    unknown = set(overrides) - set(prof)
    if unknown:
        raise ProfileError(f"profile {profile!r} has no section(s) {sorted(unknown)}; sections: {sorted(prof)}")
    sections = {name: section(profile, name, **(overrides.get(name) or {})) for name in prof}
    return Config(profile, sections)


@functools.lru_cache(maxsize=None)
def _own_frozen(profile: str) -> str:
    return json.dumps(resolve(profile).sections)


def _own_sections(profile: str) -> dict[str, dict[str, Any]]:
    """The sections of ``profile`` with its own values (a fresh copy)."""
    return json.loads(_own_frozen(profile))


def fingerprint(params: dict[str, Any]) -> str:
    """A stable hash of JSON-able ``params`` (16 hex digits)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def missing_artifact(what: str, path: str | Path, notebook: str, profile: str) -> FileNotFoundError:
    """The error for an artifact that ``notebook`` (e.g. ``"03_rft"``) makes and that is not at ``path``:
    it names the notebook and the runner command that makes it (notebooks before it included; stages
    that already ran are reused)."""
    number = int(Path(notebook).name[:2])
    upto = " ".join(f"{i:02d}" for i in range(number + 1))
    return FileNotFoundError(f"no {what} at {path}: run notebooks/{Path(notebook).stem}.ipynb (profile {profile!r}) "
                             f"first, e.g. python -m jrft_utils.reproduce --profile {profile} --only {upto}")

