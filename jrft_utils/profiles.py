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
    "run": {"seeds": [0, 1, 2], "base_seed": 0, "figures_dir": "figures"},
    # The tiny vision-language model (notebook 00).
    "model": {
        "image_size": 84,
        "patch_size": 14,
        "vision_hidden": 64,
        "vision_layers": 2,
        "vision_heads": 4,
        "text_hidden": 128,
        "text_layers": 4,
        "text_heads": 4,
        "text_kv_heads": 2,
        "intermediate": 256,
    },
    # The prior-knowledge world (notebook 00).
    "world": {"train_per_capability": 4000, "test_per_capability": 200},
    # Pretraining of the base model (notebook 00).
    "pretrain": {"steps": 3000, "batch_size": 32, "learning_rate": 1e-3, "eval_batch_size": 64},
    # Jigsaw puzzles (notebook 01).
    "jigsaw": {"rows": 2, "cols": 2, "train_size": 2000, "test_size": 200},
}

_SMOKE: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_SMOKE["run"].update(seeds=[0], base_seed=0, figures_dir=None)
_SMOKE["model"].update(text_hidden=32, text_layers=1, intermediate=64, vision_hidden=32, vision_layers=1)
_SMOKE["world"].update(train_per_capability=40, test_per_capability=8)
_SMOKE["pretrain"].update(steps=4, batch_size=8)
_SMOKE["jigsaw"].update(train_size=16, test_size=8)

_GPU: dict[str, dict[str, Any]] = copy.deepcopy(_CPU)
_GPU["run"].update(figures_dir=None)
_GPU["jigsaw"].update(rows=3, cols=3)

PROFILES: dict[str, dict[str, dict[str, Any]]] = {"smoke": _SMOKE, "cpu": _CPU, "gpu": _GPU}


class ProfileError(ValueError):
    """A profile, section or knob that does not exist, or an override of the wrong type."""


def get_profile(name: str) -> dict[str, dict[str, Any]]:
    """Return a deep copy of profile ``name``; raise :class:`ProfileError` for an unknown name."""
    if name not in PROFILES:
        raise ProfileError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return copy.deepcopy(PROFILES[name])


def section(profile: str, name: str, **overrides: Any) -> dict[str, Any]:
    """The knobs of section ``name`` of ``profile``, with non-``None`` ``overrides`` applied.

    An override must name an existing knob and have the same type as the profile's value
    (an int is accepted where a float is expected).
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
    return values


def run_dir(profile: str) -> Path:
    """The run folder of ``profile``: ``runs/<profile>`` under the repository, or under the folder named
    by the environment variable ``JRFT_RUN_ROOT`` (the tests use it to stay out of ``runs/``)."""
    get_profile(profile)
    return Path(os.environ.get("JRFT_RUN_ROOT") or REPO_ROOT / "runs") / profile


def figures_dir(profile: str) -> Path:
    """Where ``profile`` writes its figures and ``summary.json`` (created if missing)."""
    configured = section(profile, "run")["figures_dir"]
    path = REPO_ROOT / configured if configured else run_dir(profile) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path
