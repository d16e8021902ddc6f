"""The shipped bases in ``data/``: pretrained checkpoints that the repository carries, so that a notebook
starts from the base of the committed run instead of pretraining it, with the same weights on any CPU.

A shipped base is a folder ``data/<name>/`` (``base``: notebook 00's vision-language model; ``text_base``:
notebook 08's text decoder) with the checkpoint's files and ``manifest.json``:

- ``recipe``: the fingerprint of the pretraining stage's parameters (:mod:`jrft_utils.stages`). A notebook
  installs the shipped base only when its own pretraining parameters have the same fingerprint; any
  other recipe (another profile, a changed knob) pretrains as before.
- ``files``: the sha256 of every file; a shipped base whose files do not match is refused.
- ``prior``: its held-out prior-knowledge scores, on the full sets and on their first ``subset`` samples
  per capability (which the tests score again).
- ``log``: the pretraining log (loss curves and times) that notebook 00 draws; ``machine``: what made it.

Notebooks 00 and 08 write them when they rebuild the base with the profile's own settings in a profile
whose ``run.ship_bases`` is on (``rebuild_base=True``, or the runner's ``--rebuild-base``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

from jrft_utils import results, stages
from jrft_utils.profiles import REPO_ROOT, Config

DATA_DIR = REPO_ROOT / "data"
MANIFEST = "manifest.json"
LOG = "pretrain_log.json"
SUBSET = 20  # samples per capability of the subset whose scores the manifest records too
_RECORDS = {stages.STAGE_FILE, LOG, MANIFEST}  # a run's records, not the checkpoint's files


def sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def checkpoint_files(folder: Path) -> list[Path]:
    """The files of a saved checkpoint in ``folder`` (weights, configs, tokenizer, processor), without the
    run's records and the trainer's output folder."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name not in _RECORDS)


def subset(sets: dict[str, list]) -> dict[str, list]:
    """The first :data:`SUBSET` samples of every capability of a prior-knowledge test set."""
    return {cap: samples[:SUBSET] for cap, samples in sets.items()}


def write(checkpoint: Path, dest: Path, prior: dict[str, Any]) -> dict[str, Any]:
    """Ship the finished pretraining stage in ``checkpoint`` to ``dest`` (replaced): its files, and a manifest
    with its recipe fingerprint (from the stage's record), the files' hashes, ``prior`` (``{"full": scores,
    "subset": scores}``), its pretraining log and the machine. Returns the manifest."""
    record = stages.record(checkpoint)
    if record is None:
        raise FileNotFoundError(f"no finished pretraining stage in {checkpoint}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for path in checkpoint_files(checkpoint):
        shutil.copy2(path, dest / path.name)
    manifest = {"recipe": record["fingerprint"], "params": record["params"],
                "files": {p.name: sha256(p) for p in checkpoint_files(dest)},
                "prior": prior | {"subset_per_capability": SUBSET},
                "log": json.loads((Path(checkpoint) / LOG).read_text()), "machine": results.machine()}
    results.write_json_atomic(dest / MANIFEST, manifest)
    return manifest


def ship(config: Config, name: str, checkpoint: Path, full: dict[str, Any],
         score_subset: Callable[[], dict[str, Any]]) -> str:
    """Ship ``checkpoint`` as ``data/<name>`` (:func:`write`) with its scores, ``full`` on the full sets and
    ``score_subset()`` on their :func:`subset` (measured only when it is shipped), when ``config`` is its
    profile's own settings and the profile ships its bases (``run.ship_bases``); returns what was done,
    in words."""
    if not config["run"]["ship_bases"]:
        return f"not shipped: profile {config.profile!r} does not ship its bases (run.ship_bases)"
    if config.changed:
        return "not shipped: this run changed the profile's knobs (only the profile's own base is shipped)"
    manifest = write(checkpoint, DATA_DIR / name, {"full": full, "subset": score_subset()})
    size = sum((DATA_DIR / name / f).stat().st_size for f in manifest["files"])
    return f"shipped to {DATA_DIR / name} (recipe {manifest['recipe']}, {size / 1e6:.1f} MB): commit it"


def read(dest: Path) -> dict[str, Any] | None:
    """The manifest of the shipped base in ``dest``, or ``None`` when there is none."""
    path = Path(dest) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def mismatches(dest: Path) -> list[str]:
    """The files of the shipped base in ``dest`` that are missing, extra or differ from its manifest."""
    manifest = read(dest) or {"files": {}}
    present = {p.name: p for p in checkpoint_files(dest)} if Path(dest).exists() else {}
    wrong = [name for name, digest in manifest["files"].items()
             if name not in present or sha256(present[name]) != digest]
    return sorted(wrong + [name for name in present if name not in manifest["files"]])


def install(dest: Path, params: dict[str, Any], checkpoint: Path) -> dict[str, Any] | None:
    """Install the shipped base in ``dest`` as the finished pretraining stage ``checkpoint`` when it was made
    with the stage parameters ``params`` (same fingerprint): its files, its log and the stage's record.
    Returns its manifest, or ``None`` (nothing installed) for another recipe or no shipped base; a shipped
    base whose files do not match its manifest is an error."""
    manifest = read(dest)
    if manifest is None or manifest["recipe"] != stages.fingerprint(params):
        return None
    wrong = mismatches(dest)
    if wrong:
        raise ValueError(f"the shipped base in {dest} does not match its manifest ({', '.join(wrong)}): "
                         "restore it with git, or rebuild it (rebuild_base=True)")
    shutil.rmtree(checkpoint, ignore_errors=True)
    checkpoint.mkdir(parents=True)
    for name in manifest["files"]:
        shutil.copy2(Path(dest) / name, checkpoint / name)
    results.write_json_atomic(checkpoint / LOG, manifest["log"] | {"checkpoint": str(checkpoint)})
    stages.mark_done(checkpoint, params, {"train_time_s": manifest["log"]["train_time_s"], "shipped": str(dest)})
    return manifest


def reusable(checkpoint: Path, params: dict[str, Any], shipped_dir: Path, rebuild: bool) -> dict[str, Any] | None:
    """The record of a base that needs no training: the finished stage in ``checkpoint``, else (unless
    ``rebuild``) the shipped base in ``shipped_dir`` installed there when it has the same recipe. A
    rebuild does not reuse an installed shipped base: it trains its recipe anew."""
    done = stages.cached(checkpoint, params)
    if done is not None and rebuild and "shipped" in done:
        return None
    if done is None and not rebuild and install(shipped_dir, params, checkpoint) is not None:
        done = stages.cached(checkpoint, params)
    return done
