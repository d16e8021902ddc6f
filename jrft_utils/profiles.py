"""Profiles as data: every knob of every stage, for each way of running the notebooks.

A profile is a nested dict ``{section: {knob: value}}``. Notebooks read their section with
:func:`section`, which lets a papermill parameter override any knob (``None`` keeps the profile's value).
Nothing else in the package branches on a profile's name.

- ``smoke``: seconds per notebook; used by the tests.
- ``cpu``: the default, full tiny reproduction on a 2-core CPU.
- ``gpu``: the paper's scale (Qwen2.5-VL on a GPU); see docs/gpu.md.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

_CPU: dict[str, dict[str, Any]] = {
    # Seeds of the later stages (the base is built once, from base_seed); where figures and the
    # summary go, relative to the repository root (None: a `figures` folder in the run folder).
    # workers: fine-tuning runs of notebooks 02-04 and 08 trained at once, each in its own process on one thread
    # (1: one at a time, in the notebook's process). On 2 idle cores two 1-thread runs finished in 1.37x
    # less time than the same two runs one after the other on 2 threads (SFT 1.33x, GRPO 1.37x, measured).
    # A run's numbers depend on its thread count, so they are the same for a given `workers`.
    "run": {"seeds": [0, 1, 2], "base_seed": 0, "figures_dir": "figures", "workers": 2},
    # The model (notebook 00). source "tiny": the tiny vision-language model below, built and pretrained
    # here; otherwise a Qwen2.5-VL checkpoint (hub id or local folder, see jrft_utils.qwen) loaded in
    # dtype, with LoRA adapters of rank lora_r when lora_r > 0 (0: full fine-tuning).
    "model": {
        "source": "tiny", "dtype": "float32", "lora_r": 0, "lora_alpha": 16,
        "image_size": 84,
        "patch_size": 14,
        "vision_hidden": 128,
        "vision_layers": 2,
        "vision_heads": 4,
        "text_hidden": 128,
        "text_layers": 4,
        "text_heads": 4,
        "text_kv_heads": 2,
        "intermediate": 256,
    },
    # The prior-knowledge world (notebook 00). eval_batch_size: completions generated per batch whenever a
    # model is scored on the prior-knowledge yardstick (every notebook); 200, one capability per batch,
    # scored the cpu base 1.3x faster than 64 (2.2 s against 2.8 s, measured).
    "world": {"train_per_capability": 4000, "test_per_capability": 200, "eval_batch_size": 200},
    # The paper's benchmarks (jrft_utils.benchmarks) as the prior-knowledge yardstick instead of the
    # world's test sets, when names is non-empty (gpu): sources maps a name to a hub id or a local copy
    # (default: its hub id); limit: rows per benchmark (a fixed seeded subset).
    "benchmarks": {"names": [], "sources": {}, "limit": 200},
    # Pretraining of the base model (notebook 00): the vision stage (vision_*), then SFT on the world's
    # questions with the vision tower frozen (freeze_vision). Measured on one machine, base seed 0: 900
    # vision steps told the shapes of held-out objects apart 81 % of the time, 1,800 steps 99 %; 2,000
    # SFT steps instead of 1,000 took the prior mean from 0.52 to 0.68; 3,000 instead of 2,000 (base seeds
    # 0-2, one thread) from 0.647 to 0.761 on average, with no grounding collapse. The same 3,000 steps on
    # batches of 24 or 20 (fewer samples) gave 0.685 and 0.681, with a collapse at 24 (docs/findings.md).
    "pretrain": {"vision_steps": 1800, "vision_batch_size": 64, "vision_learning_rate": 1e-3, "freeze_vision": True,
                 "steps": 3000, "batch_size": 32, "learning_rate": 1e-3, "lr_scheduler": "cosine",
                 "warmup_steps": 50, "logging_steps": 25, "threads": 2},
    # Jigsaw puzzles (notebook 01). rows x cols: 2 x 2 on CPU, provisional (the lead checks that the tiny
    # model learns it; the paper's 3 x 3 on GPU). photo_fraction: share of real-photo crops, the rest
    # procedural images. Crop side: uniform(crop_min, crop_max) * image_size px; test_region: the share of
    # each photo's long side reserved for test crops. data_seed: the puzzles are the same for every seed.
    # max_new_tokens / eval_batch_size: greedy generation when scoring a model on the test split.
    "jigsaw": {"rows": 2, "cols": 2, "train_size": 1000, "test_size": 200, "image_size": 84,
               "photo_fraction": 0.5, "cue_strength": 0.5, "crop_min": 1.0, "crop_max": 2.0, "test_region": 1 / 3,
               "min_tile_std": 4.0, "data_seed": 0, "max_new_tokens": 128, "eval_batch_size": 32},
    # Supervised fine-tuning on the jigsaw (notebooks 02, 04). learning_rate is the main runs' rate;
    # lr_sweep the rates of the sweep (run on the first seed). eval_every: steps between curve points;
    # eval_test_size: held-out puzzles scored at each point.
    # freeze_vision (sft and rft): fine-tuning trains the language model only, as the gpu profile's LoRA
    # adapters do and as common Qwen2.5-VL recipes do (ms-swift's freeze_vit, VLM-R1's
    # freeze_vision_modules). Measured (base seed 0, SFT-gt at 3e-4, 100 steps, development): with every
    # weight trained the prior mean fell from 0.771 to 0.000 at jigsaw exact 0.76; with the vision tower
    # and projector frozen to 0.573 at 0.82: the tiny vision tower is where the forgetting happened.
    "sft": {"steps": 300, "batch_size": 16, "learning_rate": 3e-4, "lr_sweep": [1e-4, 3e-4, 1e-3], "freeze_vision": True,
            "lr_scheduler": "constant", "warmup_steps": 0, "logging_steps": 10, "eval_every": 75,
            "eval_test_size": 100},
    # RFT with GRPO on the jigsaw (notebook 03): batch_size counts completions (batch_size /
    # num_generations prompts a step); rewards hit + acc + fmt, unweighted. snapshot_step: the early
    # checkpoint kept from each main run (its rollouts become notebook 04's early_rollouts corpus).
    # cold_start_steps > 0 (not the paper's recipe): GRPO starts from that many steps of SFT (the sft
    # section's recipe) instead of the base (training.cold_start): on the puzzles' true answers
    # (cold_start_answers "truth") or on random permutations ("random": the format, not the solution),
    # with cold_start_replay the share of the cold start's samples replayed from the pretraining corpus.
    # Our base never samples the answer's format, so GRPO from it has no reward to learn from (notebook
    # 03's reachability check); the cpu default is a format warm-up (100 steps, random answers, half
    # replay). cold_start_think: the warm-up's think block, empty ("<think> </think>") or "tiles" (the
    # default): its (random) answer told tile by tile in the world's words ("tile 0 in cell 2 . ..."), so
    # that the policy thinks in the base's style and its rollouts (notebook 04) differ from the gt corpus;
    # its completions are 32 tokens on the 2 x 2 grid, hence max_completion_length 40.
    # beta: the KL anchor to the run's start (the warm-up). Measured (RFT seeds 0-2, 300 steps at 1e-4,
    # 16 prompts a step, development; docs/findings.md): from the tile-trace warm-up, without the anchor
    # GRPO collapsed onto one answer (3 / 9 / 3 % exact, a full reproduction), with beta 0.04 (seed 0) 8 %,
    # with beta 0.2 it reached 23 / 21 / 32 % (prior mean 70.3 / 72.2 / 69.0 %). From the empty think
    # block without the anchor (the earlier default): 18 / 18 / 16 % (65.9 / 65.9 / 62.4 %), with it
    # 77 / 76 / 79 % (65.0 / 65.6 / 58.4 %): the anchor is what lets GRPO learn; the default keeps the tile
    # traces so that the rollouts carry a think block. With 4 prompts a step (batch 32) and no anchor,
    # 5 / 4 / 2 %. Jigsaw-R1 uses 64 prompts a step.
    "rft": {"steps": 300, "batch_size": 128, "num_generations": 8, "max_completion_length": 40,
            "rewards": ["hit", "acc", "fmt"], "freeze_vision": True,
            "temperature": 1.0, "beta": 0.2, "loss_type": "dapo", "learning_rate": 1e-4,
            "lr_sweep": [3e-5, 1e-4, 3e-4], "lr_scheduler": "constant", "warmup_steps": 0,
            "logging_steps": 1, "eval_every": 100, "eval_test_size": 100, "snapshot_step": 30,
            "cold_start_steps": 100, "cold_start_answers": "random", "cold_start_replay": 0.5,
            "cold_start_think": "tiles"},
    # Rollout corpora of notebook 04: num_samples completions sampled (at temperature) per training
    # puzzle from the final RFT model, the first correct one kept; one sample per puzzle from the snapshot;
    # each up to the RFT run's own max_completion_length.
    # require_correct=False keeps a rollout even when none is right (smoke only: exercises the code path).
    # Learning dynamics (notebook 05): n_u training samples per corpus against n_v prior probes; the
    # eNTK check's step sizes; LBK tracked over lbk_steps AdamW steps at lbk_lr, every lbk_every steps.
    "dynamics": {"n_u": 16, "n_v": 32, "first_order_lrs": [1e-6, 1e-5, 1e-4], "lbk_steps": 30,
                 "lbk_every": 5, "lbk_lr": 3e-4},
    "corpora": {"num_samples": 4, "temperature": 1.0, "batch_size": 64,
                "require_correct": True},
    # The text-only validation (notebook 08; jrft_utils.textworld / textexperiment): a tiny Qwen2 decoder
    # pretrained on arithmetic and science, then taught to find the largest digit of a list. text_world: pretraining samples
    # per capability, held-out items per capability (at most 200 arithmetic and 100 science exist), the new
    # task's items (the largest of min_len..max_len digits; data_seed fixes them).
    # text_sft / text_rft: the fine-tuning recipes, one learning rate for both (SFT at 3e-4 erased prior
    # knowledge on every corpus within 50 steps in a development sweep, so corpora could not differ);
    # text_sft.lr_sweep / text_rft.lr_sweep: the rates of notebook 08's forgetting frontier (first seed);
    # text_corpora: the RFT rollouts sampled per training task.
    "text_model": {"hidden": 128, "layers": 4, "heads": 4, "kv_heads": 2, "intermediate": 256},
    "text_world": {"train_per_capability": 6000, "test_per_capability": 200, "task_train_size": 1000,
                   "task_test_size": 200, "min_len": 3, "max_len": 6, "data_seed": 0},
    "text_pretrain": {"steps": 400, "batch_size": 64, "learning_rate": 1e-3, "lr_scheduler": "cosine",
                      "warmup_steps": 50, "logging_steps": 50},
    "text_sft": {"steps": 200, "batch_size": 16, "learning_rate": 1e-4, "lr_sweep": [3e-5, 1e-4, 3e-4],
                 "lr_scheduler": "constant",
                 "warmup_steps": 0, "logging_steps": 10, "eval_every": 100},
    "text_rft": {"steps": 200, "batch_size": 32, "num_generations": 8, "max_completion_length": 32,
                 "temperature": 1.0, "beta": 0.0, "loss_type": "dapo", "learning_rate": 1e-4,
                 "lr_sweep": [3e-5, 1e-4, 3e-4],
                 "lr_scheduler": "constant", "warmup_steps": 0, "logging_steps": 1, "eval_every": 100},
    "text_corpora": {"num_samples": 4, "temperature": 1.0, "max_new_tokens": 32, "batch_size": 128,
                     "require_correct": True},
}

_SMOKE: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_SMOKE["run"].update(seeds=[0], base_seed=0, figures_dir=None, workers=1)
_SMOKE["model"].update(text_hidden=32, text_layers=1, intermediate=64, vision_hidden=32, vision_layers=1)
_SMOKE["world"].update(train_per_capability=40, test_per_capability=8)
_SMOKE["pretrain"].update(vision_steps=3, vision_batch_size=8, steps=4, batch_size=8, logging_steps=1)
_SMOKE["jigsaw"].update(train_size=16, test_size=8, max_new_tokens=32)
_SMOKE["sft"].update(steps=4, batch_size=4, lr_sweep=[3e-4, 1e-3], logging_steps=1, eval_every=2, eval_test_size=8)
_SMOKE["rft"].update(steps=2, batch_size=8, num_generations=4, max_completion_length=40, lr_sweep=[1e-4],
                     eval_every=1, eval_test_size=8, snapshot_step=1,
                     cold_start_steps=1, cold_start_answers="random", cold_start_replay=0.5)  # exercises the path
_SMOKE["dynamics"].update(n_u=4, n_v=8, lbk_steps=4, lbk_every=2)
_SMOKE["corpora"].update(num_samples=2, require_correct=False)
_SMOKE["text_model"].update(hidden=32, layers=1, intermediate=64)
_SMOKE["text_world"].update(train_per_capability=40, test_per_capability=8, task_train_size=16, task_test_size=8)
_SMOKE["text_pretrain"].update(steps=4, batch_size=8, logging_steps=1)
_SMOKE["text_sft"].update(steps=2, batch_size=4, logging_steps=1, eval_every=1, lr_sweep=[1e-4])
_SMOKE["text_rft"].update(steps=2, batch_size=8, num_generations=4, max_completion_length=16, eval_every=1,
                          lr_sweep=[1e-4, 3e-4])  # exercises a frontier-only GRPO run
_SMOKE["text_corpora"].update(num_samples=2, max_new_tokens=16, require_correct=False)

_GPU: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_GPU["run"].update(figures_dir=None, workers=1)  # one device: one run at a time
# Assumptions (the paper does not state them): the 3B model, bf16, LoRA rank 64 on every projection.
_GPU["model"].update(source="Qwen/Qwen2.5-VL-3B-Instruct", dtype="bfloat16", lora_r=64, lora_alpha=128)
_GPU["world"].update(train_per_capability=8, test_per_capability=8,  # no pretraining: notebook 00's examples only
                     eval_batch_size=64)
_GPU["benchmarks"].update(names=["refcoco", "docvqa", "mme", "mmstar", "pope", "mmmu"])
_GPU["jigsaw"].update(rows=3, cols=3, photo_fraction=1.0, cue_strength=0.0, max_new_tokens=256)
_GPU["rft"].update(cold_start_steps=0,  # Qwen2.5-VL follows the answer template: GRPO starts from it, as the paper
                   max_completion_length=256,  # room for reasoning, as jigsaw.max_new_tokens
                   beta=0.0)  # TRL's default: the paper states no KL term (the cpu anchor stops a tiny policy's collapse)

PROFILES: dict[str, dict[str, dict[str, Any]]] = {"smoke": _SMOKE, "cpu": _CPU, "gpu": _GPU}


# what a cold start (rft.cold_start_steps) trains on: the puzzles' true answers, or random permutations
COLD_START_ANSWERS = ("truth", "random")
# its think block: empty, or the answer told tile by tile in the world's words (jigsaw.tile_trace)
COLD_START_THINK = ("empty", "tiles")


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
                     "snapshot_step", "cold_start_steps", "lora_r"), _NON_NEGATIVE),
    **dict.fromkeys(("image_size", "patch_size", "vision_hidden", "vision_layers", "vision_heads", "text_hidden",
                     "text_layers", "text_heads", "text_kv_heads", "intermediate", "train_per_capability",
                     "test_per_capability", "steps", "vision_steps", "batch_size", "vision_batch_size", "eval_batch_size",
                     "logging_steps", "threads", "rows", "cols", "train_size", "test_size", "max_new_tokens",
                     "eval_every", "eval_test_size", "max_completion_length", "n_u", "n_v", "lbk_steps",
                     "lbk_every", "num_samples", "limit", "reachability_puzzles", "hidden", "layers", "heads",
                     "kv_heads", "task_train_size", "task_test_size", "min_len", "max_len", "workers"), _AT_LEAST_1),
    **dict.fromkeys(("learning_rate", "vision_learning_rate", "lr_sweep", "temperature", "first_order_lrs",
                     "lbk_lr", "crop_min", "crop_max", "lora_alpha"), _POSITIVE),
    **dict.fromkeys(("photo_fraction", "cue_strength", "common_accuracy"), _FRACTION),
    "cold_start_replay": (0, 0.9, True),
    "seed": _NON_NEGATIVE,
    "test_region": (0, 1, False),
    "num_generations": (2, None, True),
}


def check_knob(name: str, key: str, value: Any) -> None:
    """Check ``value`` against the range of ``key`` in :data:`RANGES` (also for notebook parameters that
    are not profile knobs, e.g. ``common_accuracy``); ``name`` prefixes the message."""
    if key not in RANGES:
        return
    low, high, low_inclusive = RANGES[key]
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
    if name == "rft" and values["cold_start_answers"] not in COLD_START_ANSWERS:
        raise ProfileError(f"rft.cold_start_answers must be one of {COLD_START_ANSWERS}, got {values['cold_start_answers']!r}")
    if name == "rft" and values["cold_start_think"] not in COLD_START_THINK:
        raise ProfileError(f"rft.cold_start_think must be one of {COLD_START_THINK}, got {values['cold_start_think']!r}")
    if name in ("rft", "text_rft") and values["batch_size"] % values["num_generations"]:
        raise ProfileError(f"{name}.batch_size ({values['batch_size']}) must be a multiple of num_generations "
                           f"({values['num_generations']}): each prompt gets a whole group of completions")


def get_profile(name: str) -> dict[str, dict[str, Any]]:
    """Return a deep copy of profile ``name``; raise :class:`ProfileError` for an unknown name."""
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return copy.deepcopy(PROFILES[name])


def section(profile: str, name: str, **overrides: Any) -> dict[str, Any]:
    """The knobs of section ``name`` of ``profile``, with non-``None`` ``overrides`` applied.

    An override must name an existing knob and have the same type as the profile's value (an int is
    accepted where a float is expected); every knob must lie in its range (:data:`RANGES`). Anything else
    raises :class:`ProfileError` with a message that names the knob.
    """
    prof = get_profile(profile)
    if name not in prof:
        raise ProfileError(f"profile {profile!r} has no section {name!r}; sections: {sorted(prof)}")
    values = prof[name]
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in values:
            raise ProfileError(f"section {name!r} has no knob {key!r}; knobs: {sorted(values)}")
        expected = values[key]
        ok = isinstance(value, type(expected)) or (isinstance(expected, float) and isinstance(value, int))
        if expected is not None and not ok or isinstance(value, bool) != isinstance(expected, bool):
            raise ProfileError(
                f"{name}.{key} must be {type(expected).__name__}, got {value!r} ({type(value).__name__})"
            )
        values[key] = value
    _check_section(name, values)
    if name == "rft" and values["cold_start_steps"] > 0:
        grid = prof["jigsaw"]["rows"] * prof["jigsaw"]["cols"]
        needed = cold_start_tokens(grid, values["cold_start_think"])
        if values["max_completion_length"] < needed:
            raise ProfileError(f"rft.max_completion_length ({values['max_completion_length']}) is too short for the "
                               f"cold start's completions with cold_start_think={values['cold_start_think']!r} "
                               f"({needed} tokens with the end of sequence); raise it to at least {needed}")
    return values


def cold_start_tokens(tiles: int, think: str) -> int:
    """Tokens (one a word, the tiny model's tokenizer) of a cold start's completion for ``tiles`` tiles
    (:func:`jigsaw.cold_start_completion`), with the end of sequence."""
    from jrft_utils import jigsaw

    return len(jigsaw.cold_start_completion(list(range(tiles)), think).split()) + 1


def run_dir(profile: str) -> Path:
    """The run folder of ``profile``: ``runs/<profile>`` under the repository, or under the folder named
    by the environment variable ``JRFT_RUN_ROOT`` (the tests use it to stay out of ``runs/``)."""
    get_profile(profile)
    return Path(os.environ.get("JRFT_RUN_ROOT") or REPO_ROOT / "runs") / profile


def missing_artifact(what: str, path: str | Path, notebook: str, profile: str) -> FileNotFoundError:
    """The error for an artifact that ``notebook`` (e.g. ``"03_rft"``) makes and that is not at ``path``:
    it names the notebook and the runner command that makes it (notebooks before it included; stages
    that already ran are reused)."""
    number = int(Path(notebook).name[:2])
    upto = " ".join(f"{i:02d}" for i in range(number + 1))
    return FileNotFoundError(f"no {what} at {path}: run notebooks/{Path(notebook).stem}.ipynb (profile {profile!r}) "
                             f"first, e.g. python -m jrft_utils.reproduce --profile {profile} --only {upto}")


def figures_dir(profile: str) -> Path:
    """Where ``profile`` writes its figures and ``summary.json`` (created if missing)."""
    configured = section(profile, "run")["figures_dir"]
    path = REPO_ROOT / configured if configured else run_dir(profile) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
