"""The results contract: ``summary.json`` in the profile's figures folder.

Its keys: ``profile``, ``seeds``, ``grid``, ``wall_time_s``, ``machine``, ``timing`` (the runner's
``{"notebooks": {notebook: seconds}, "stages": {stage: seconds}, "runs_trained": int, "peak_rss_gb": float,
"memory_gb": {notebook: GB}}``: the seconds per stage and its parts of the fine-tuning runs the run trained
(:func:`jrft_utils.reproduce.stage_record`), how many those were (the others were read back from the run
folder), each notebook's peak resident memory, its kernel and workers together, and the largest of these); ``methods`` (method key ->
METHOD_METRICS and ``prior``, capability -> accuracy; ``base`` is the pretrained base, ``start`` the
checkpoint every arm fine-tunes from), ``corpora`` (corpus -> CORPUS_METRICS), ``claims``
(:func:`jrft_utils.claims.evaluate`), ``text``, the text-only validation's ``methods`` and ``corpora``;
``frontier``, every curve point of every fine-tuning run as a :mod:`jrft_utils.frontiers` point (with the
forward KL from the start, ``kl_new`` and ``kl_prior``, where the run measured it), and
``mechanism``, per setting, which measure predicts forgetting (:func:`jrft_utils.mechanism.compare`:
``{"r2": {"kl_new", "nll", "lbk"}, "best", ...}``), and ``matched``, per setting, the drops from the checkpoint every arm fine-tunes (the start; the text base) at matched new-task accuracy
(:func:`jrft_utils.frontiers.matched`: ``{"levels": [...], "drop": {arm: [...]}}``). A corpus's ``nll_base`` is its NLL
per token under the checkpoint the arms fine-tune (the start; the text base), the paper's "base model".
``freedom`` (notebook 09, :func:`jrft_utils.freedom.summarise`): per question form, ``{"frontier": [points],
"matched": {...}, "r2_kl": float}``, and the start's measures per form under ``start``.

Notebooks record numbers here as they compute them; lists hold one value per seed, in the order of the
summary's ``seeds`` (fixed by notebook 00 when a reproduction starts: the profile's ``run.seeds`` or the
runner's ``--seeds``). Writes are atomic (a temporary file renamed over the old one).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from jrft_utils import methods
from jrft_utils.profiles import Config, ProfileError

METHODS = methods.keys()
CORPORA = methods.corpora()
METHOD_METRICS = ("jigsaw_acc", "jigsaw_hit", "steps", "train_time_s")
CORPUS_METRICS = ("lbk", "direction", "nll_base")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` so that a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def summary_path(config: Config) -> Path:
    """The run's ``summary.json``."""
    return config.figures_dir / "summary.json"


def _empty(config: Config) -> dict[str, Any]:
    return {"profile": config.profile, "seeds": list(config["run"]["seeds"]), "grid": None, "wall_time_s": None,
            "methods": {}, "corpora": {}, "claims": []}


def load_summary(config: Config) -> dict[str, Any]:
    """The run's summary, or an empty one in the contract's shape. A run with changed knobs that has none
    yet starts from the profile's own (when its base is the same: the base's numbers are then its too)."""
    path = summary_path(config)
    if not path.exists() and config.changed and config.base_dir == config.own().base_dir:
        path = summary_path(config.own())
    return json.loads(path.read_text()) if path.exists() else _empty(config)


def base_prior(config: Config) -> dict[str, float]:
    """The base model's prior-knowledge accuracy per capability and their ``mean`` (notebook 00's
    record; one base per profile), the yardstick every method's forgetting is measured from."""
    recorded = load_summary(config)["methods"]
    if "base" not in recorded:
        raise FileNotFoundError(f"no base model recorded in {summary_path(config)}: run notebook 00 first")
    return {cap: values[0] for cap, values in recorded["base"]["prior"].items()}


def start_summary(config: Config) -> dict[str, Any]:
    """Begin the summary afresh for ``config``'s seeds, dropping the results of an earlier reproduction.
    Notebook 00 calls it: a reproduction's seeds are fixed there."""
    summary = _empty(config)
    write_json_atomic(summary_path(config), summary)
    return summary


def run_seeds(config: Config) -> list[int]:
    """The seeds a later notebook trains with: ``run.seeds`` of ``config``, each one of the seeds the
    summary was started with (notebook 00)."""
    summary = load_summary(config)
    seeds = config["run"]["seeds"]
    unknown = [s for s in seeds if s not in summary["seeds"]]
    if unknown:
        raise ProfileError(
            f"seeds {unknown} are not seeds of this reproduction (its summary has {summary['seeds']}); start "
            f"over with them from notebook 00: python -m jrft_utils.reproduce --profile {config.profile} --seeds "
            + " ".join(str(s) for s in seeds))
    return list(seeds)


def _seed_slot(summary: dict[str, Any], seed: int) -> int:
    if seed not in summary["seeds"]:
        raise ValueError(f"seed {seed} is not one of this profile's seeds {summary['seeds']}")
    return summary["seeds"].index(seed)


def _put(values: list, slot: int, n: int, value: Any) -> list:
    values = list(values) + [None] * (n - len(values))
    values[slot] = value
    return values


def _record(config: Config, section: tuple[str, ...], label: str, plural: str, names: tuple[str, ...],
            keys: tuple[str, ...], name: str, seed: int, metrics: dict[str, Any], with_prior: bool) -> dict[str, Any]:
    """Put one seed's ``metrics`` for ``name`` into the summary under ``section`` (a path of keys); with
    ``with_prior`` a ``prior`` dict (capability -> accuracy) is accepted too. Returns the updated summary."""
    if name not in names:
        raise ValueError(f"unknown {label} {name!r}; {plural}: {names}")
    summary = load_summary(config)
    slot, n = _seed_slot(summary, seed), len(summary["seeds"])
    container = summary
    for key in section:
        container = container.setdefault(key, {})
    entry = container.setdefault(name, {k: [] for k in keys} | ({"prior": {}} if with_prior else {}))
    for key, value in metrics.items():
        if with_prior and key == "prior":
            for cap, acc in value.items():
                entry["prior"][cap] = _put(entry["prior"].get(cap, []), slot, n, acc)
        elif key in keys:
            entry[key] = _put(entry.get(key, []), slot, n, value)
        else:
            raise ValueError(f"unknown {label} metric {key!r}; metrics: {keys + (('prior',) if with_prior else ())}")
    write_json_atomic(summary_path(config), summary)
    return summary


def record_method(config: Config, method: str, seed: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Record one seed's numbers for ``method``; ``metrics`` may hold METHOD_METRICS and ``prior``
    (a dict of capability -> accuracy, including ``mean``). Returns the updated summary."""
    return _record(config, ("methods",), "method", "methods", METHODS, METHOD_METRICS, method, seed, metrics, True)


def record_corpus(config: Config, corpus: str, seed: int, metrics: dict[str, float]) -> dict[str, Any]:
    """Record one seed's learning-dynamics numbers for ``corpus``. Returns the updated summary."""
    return _record(config, ("corpora",), "corpus", "corpora", CORPORA, CORPUS_METRICS, corpus, seed, metrics, False)


TEXT_METHODS = methods.keys("text")
TEXT_METHOD_METRICS = ("task_acc", "steps", "train_time_s")
TEXT_CORPORA = methods.corpora("text")


def record_text(config: Config, kind: str, name: str, seed: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Record one seed's numbers of the text-only validation (notebook 08) in the summary's ``text``
    section, shaped like ``methods`` / ``corpora``: ``kind`` "method" (TEXT_METHOD_METRICS and ``prior``
    per text capability) or "corpus" (CORPUS_METRICS). Returns the updated summary."""
    if kind == "method":
        return _record(config, ("text", "methods"), "text method", "methods", TEXT_METHODS, TEXT_METHOD_METRICS,
                       name, seed, metrics, True)
    return _record(config, ("text", "corpora"), "text corpus", "corpora", TEXT_CORPORA, CORPUS_METRICS,
                   name, seed, metrics, False)


def record_mechanism(config: Config, setting: str, mechanism: dict[str, Any]) -> dict[str, Any]:
    """Set ``setting``'s entry of the summary's ``mechanism`` (:func:`jrft_utils.mechanism.compare`)."""
    if setting not in ("vision", "text"):
        raise ValueError(f"setting must be 'vision' or 'text', got {setting!r}")
    summary = load_summary(config)
    summary.setdefault("mechanism", {})[setting] = mechanism
    write_json_atomic(summary_path(config), summary)
    return summary


def record_frontier(config: Config, setting: str, points: list[dict[str, Any]], matched: dict[str, Any]) -> dict[str, Any]:
    """Replace ``setting``'s points in the summary's ``frontier`` by ``points`` and its ``matched`` entry
    by ``matched``. Returns the updated summary."""
    if any(p["setting"] != setting for p in points):
        raise ValueError(f"points of another setting than {setting!r}")
    summary = load_summary(config)
    summary["frontier"] = [p for p in summary.get("frontier", []) if p["setting"] != setting] + points
    summary.setdefault("matched", {})[setting] = matched
    write_json_atomic(summary_path(config), summary)
    return summary


def record_fields(config: Config, **fields: Any) -> dict[str, Any]:
    """Set top-level fields of the summary (``grid``, ``wall_time_s``, ``claims``, ``machine``, ``timing``,
    ``freedom``)."""
    summary = load_summary(config)
    for key, value in fields.items():
        if key not in ("grid", "wall_time_s", "claims", "machine", "timing", "freedom"):
            raise ValueError(f"unknown summary field {key!r}")
        summary[key] = value
    write_json_atomic(summary_path(config), summary)
    return summary


def machine() -> dict[str, Any]:
    """What the numbers were computed on: the CPU's model name, the kernel path torch dispatches to
    (``AVX512``, ``AVX2``, ...), torch's version and thread count. Training on CPU is bit-reproducible
    on the same kernel path only: another path rounds differently and draws another base model."""
    import platform

    import torch

    name = platform.processor()
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": name, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "gpu": device}
