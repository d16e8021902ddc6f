"""The prior-knowledge evaluator: the forgetting yardstick of every stage.

Every notebook scores prior knowledge with :func:`evaluate_prior` on the fixed held-out sets of
:func:`jrft_utils.world.build_test_sets` (in the gpu profile: the paper's benchmarks, see
:func:`prior_test_sets`), so numbers are comparable across stages, methods and seeds.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jrft_utils import benchmarks, generation, jigsaw, template, world
from jrft_utils.profiles import Config


def _check_test_sets(test_sets: dict[str, list[dict[str, Any]]]) -> None:
    if not test_sets:
        raise ValueError("no test sets given; build them with evaluation.prior_test_sets(config)")
    for cap, samples in test_sets.items():
        world.check_capability(cap)
        if len(samples) == 0:
            raise ValueError(f"the test set of {cap!r} is empty; accuracy is undefined")


def max_new_tokens_for(processor, test_sets: dict[str, list[dict[str, Any]]], margin: int = 8) -> int:
    """Room for the longest reference completion of the test sets plus ``margin`` tokens."""
    tok = processor.tokenizer
    longest = max(len(tok(s["completion"], add_special_tokens=False)["input_ids"])
                  for samples in test_sets.values() for s in samples)
    return longest + margin


BENCHMARK_DIR_FILE = "benchmark_dir.json"  # in the run folder: where notebook 00 was told the benchmarks are


def prior_test_sets(config: Config, benchmark_dir: str | None = None):
    """The held-out prior-knowledge yardstick of ``config``: the paper's benchmarks
    (:class:`benchmarks.Suite`) when its ``benchmarks.names`` is non-empty (gpu), else the world's test
    sets (:func:`world.build_test_sets`). Either goes to :func:`evaluate_prior`.

    ``benchmark_dir``: a folder holding a local copy of each benchmark under its name (``refcoco/``, ...,
    ``datasets.save_to_disk`` folders) instead of the hub; notebook 00 records it in the run folder and the
    later notebooks read it from there."""
    cfg = config["benchmarks"]
    if not cfg["names"]:
        return world.build_test_sets(config["world"]["test_per_capability"], config["model"]["image_size"])
    record = config.run_dir / BENCHMARK_DIR_FILE
    if benchmark_dir is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"dir": str(benchmark_dir)}))
    folder = json.loads(record.read_text())["dir"] if record.exists() else None
    if folder:
        cfg = cfg | {"sources": {name: str(Path(folder) / name) for name in cfg["names"]} | cfg["sources"]}
    return benchmarks.load_suite(cfg)


def evaluate_prior(model, processor, test_sets: dict[str, list[dict[str, Any]]], batch_size: int = 64,
                   max_new_tokens: int | None = None, progress: bool = True,
                   return_completions: bool = False) -> dict[str, Any]:
    """Accuracy per capability on ``test_sets`` (``{capability: samples}`` from
    :func:`world.build_test_sets`) and their unweighted ``mean``; all capabilities are generated in one
    batched pass. With ``return_completions`` the completions and per-sample scores are added under
    ``"completions"`` ({capability: [(completion, score), ...]}). The wall time is under ``"eval_time_s"``
    only in that case, so the plain result holds accuracies only.

    ``test_sets`` may instead be a :class:`benchmarks.Suite` (the gpu profile's real benchmarks): then
    :func:`benchmarks.evaluate` scores them (``max_new_tokens`` default 256; completions and the official
    numbers under ``"completions"`` and ``"details"`` with ``return_completions``)."""
    if isinstance(test_sets, benchmarks.Suite):
        generate = benchmarks.model_generate(model, processor, max_new_tokens or 256)
        return benchmarks.evaluate(generate, test_sets, batch_size, progress, return_details=return_completions)
    _check_test_sets(test_sets)
    t0 = time.perf_counter()
    flat = [(cap, s) for cap, samples in test_sets.items() for s in samples]
    max_new_tokens = max_new_tokens or max_new_tokens_for(processor, test_sets)
    completions = generation.generate_completions(model, processor, [s["image"] for _, s in flat],
                                                  [s["prompt"] for _, s in flat], max_new_tokens, batch_size,
                                                  progress=progress, desc="prior knowledge")
    per_cap: dict[str, list[tuple[str, float]]] = {cap: [] for cap in test_sets}
    for (cap, s), c in zip(flat, completions):
        per_cap[cap].append((c, world.score(cap, c, s["target"])))
    result: dict[str, Any] = accuracies(per_cap)
    if return_completions:
        result["completions"] = per_cap
        result["eval_time_s"] = time.perf_counter() - t0
    return result


def accuracies(per_cap: dict[str, list[tuple[str, float]]]) -> dict[str, float]:
    """Accuracy per capability of ``{capability: [(completion, score), ...]}`` and their unweighted ``mean``."""
    result = {cap: sum(v for _, v in rows) / len(rows) for cap, rows in per_cap.items()}
    return result | {"mean": sum(result.values()) / len(result)}


def first_of_each(test_sets: dict[str, list[dict[str, Any]]], k: int) -> dict[str, list[dict[str, Any]]]:
    """The first ``k`` samples of each capability's test set: a fixed subset, the same for every model."""
    return {cap: samples[:k] for cap, samples in test_sets.items()}


def shifted(measured: dict[str, float], start_subset: dict[str, float], start_full: dict[str, float]) -> dict[str, float]:
    """Accuracies on the whole test sets estimated from ``measured`` on a fixed subset: per capability, the
    start's accuracy on the whole sets plus the change since the start on the subset (``measured -
    start_subset``), clipped to [0, 1]; and their unweighted ``mean``.

    Measuring the change on the same questions cancels the subset's own luck (how hard its questions
    happen to be), which a plain subset accuracy would carry into every drop."""
    caps = [cap for cap in measured if cap != "mean"]
    result = {cap: min(1.0, max(0.0, start_full[cap] + measured[cap] - start_subset[cap])) for cap in caps}
    return result | {"mean": sum(result.values()) / len(result)}


def zero_shot_jigsaw_probe(model, processor, rows: int, cols: int, n: int = 64, seed: int = 0,
                           batch_size: int = 64, max_new_tokens: int = 24, image_size: int = 84) -> dict[str, Any]:
    """Ask a model the jigsaw question on ``n`` tile-shuffled photo scenes (positions and tiles row-major;
    the answer lists, per position, the original index of the tile shown there). Returns the exact-match
    accuracy, the fraction of answers that are digit sequences of the right length, and examples.

    A quick check that the base cannot solve the new task; notebook 01 owns the full jigsaw benchmark."""
    rng = np.random.default_rng([seed, 99])
    size = image_size
    k = rows * cols
    images, targets = [], []
    for i in range(n):
        s = world.make_sample(world.CAPABILITIES[i % len(world.CAPABILITIES)], rng, size, np.arange(100))
        arr = np.asarray(s["image"])
        th, tw = size // rows, size // cols
        tiles = [arr[r * th:(r + 1) * th, c * tw:(c + 1) * tw] for r in range(rows) for c in range(cols)]
        perm = rng.permutation(k)
        while (perm == np.arange(k)).all():
            perm = rng.permutation(k)
        grid = [np.concatenate([tiles[perm[r * cols + c]] for c in range(cols)], axis=1) for r in range(rows)]
        images.append(Image.fromarray(np.concatenate(grid, axis=0)))
        targets.append([int(v) for v in perm])
    prompt = jigsaw.jigsaw_prompt(rows, cols)
    outs = generation.generate_completions(model, processor, images, [prompt] * n, max_new_tokens, batch_size,
                                           desc="jigsaw probe")
    answers = [[int(d) for d in re.findall(r"\d", template.answer_text(o))] for o in outs]
    return {"accuracy": float(np.mean([a == t for a, t in zip(answers, targets)])),
            "digit_sequences": float(np.mean([len(a) == k for a in answers])),
            "examples": list(zip(outs[:5], targets[:5]))}
