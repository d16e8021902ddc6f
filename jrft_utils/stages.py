"""Stage caching: a stage (pretraining, one fine-tuning run, ...) whose parameters and inputs are
unchanged is reused instead of recomputed.

A finished stage folder holds ``stage.json`` with a fingerprint of everything that determined it (its
parameters and the fingerprints of the stages it read) and its outputs. ``stage.json`` is written last and
atomically, so a stage killed half-way has none and is simply run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jrft_utils import profiles, results
from jrft_utils.profiles import fingerprint

STAGE_FILE = "stage.json"


def cached(stage_dir: str | Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """The outputs of the finished stage in ``stage_dir`` if it was made with ``params``, else ``None``."""
    done = record(stage_dir)
    return done["outputs"] if done is not None and done.get("fingerprint") == fingerprint(params) else None


def record(stage_dir: str | Path) -> dict[str, Any] | None:
    """The record (fingerprint, params, outputs) of the finished stage in ``stage_dir``, whatever made it;
    ``None`` if there is none."""
    path = Path(stage_dir) / STAGE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def forget(stage_dir: str | Path) -> None:
    """Drop the record of the stage in ``stage_dir`` (it is about to be redone)."""
    (Path(stage_dir) / STAGE_FILE).unlink(missing_ok=True)


def mark_done(stage_dir: str | Path, params: dict[str, Any], outputs: dict[str, Any]) -> None:
    """Record that the stage in ``stage_dir`` finished with ``params``, producing ``outputs``."""
    results.write_json_atomic(Path(stage_dir) / STAGE_FILE,
                              {"fingerprint": fingerprint(params), "params": params, "outputs": outputs})


def stage_fingerprint(stage_dir: str | Path, made_by: str, profile: str) -> str:
    """The fingerprint of a finished upstream stage (to make a downstream stage depend on it).

    ``made_by`` names the notebook that makes it (e.g. ``"00_base_model"``) for the error message."""
    path = Path(stage_dir) / STAGE_FILE
    if not path.exists():
        raise profiles.missing_artifact("finished stage", stage_dir, made_by, profile)
    return json.loads(path.read_text())["fingerprint"]
