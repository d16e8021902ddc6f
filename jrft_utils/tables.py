"""The tables notebooks show from fine-tuning runs (as :mod:`jrft_utils.finetuning` returns them): final
numbers per run, steps to reach an accuracy, the forgetting frontier's points, the drops at matched accuracy
and the paper's main table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from jrft_utils import frontiers


def steps_to_reach(points: list[dict[str, Any]], accuracy: float, metric: str = "jigsaw_acc") -> int | None:
    """The first curve step whose ``metric`` is at least ``accuracy`` (``None`` if never reached)."""
    return next((p["step"] for p in points if p[metric] >= accuracy), None)


def summary_metrics(run: dict[str, Any]) -> dict[str, Any]:
    """A run's numbers in the shape of the results contract's ``methods`` entries."""
    return {k: run[k] for k in ("jigsaw_acc", "jigsaw_hit", "steps", "train_time_s", "prior")}


def final_table(runs: dict[Any, dict[str, Any]], key: str = "seed") -> pd.DataFrame:
    """One row per run (indexed by ``key``): final jigsaw accuracy, prior accuracy per capability and
    the change of its mean from the curve's step 0 (the start every arm fine-tunes), steps and training
    time."""
    rows = []
    for name, run in runs.items():
        final = run["prior"]
        start = run["curves"][0]["prior"]
        row = {key: name, "jigsaw exact": run["jigsaw_acc"], "jigsaw hit": run["jigsaw_hit"]}
        row |= {f"prior {cap}": acc for cap, acc in final.items()}
        row |= {"prior mean change": final["mean"] - start["mean"], "steps": run["steps"],
                "train time (s)": run["train_time_s"]}
        rows.append(row)
    return pd.DataFrame(rows).set_index(key)


def steps_to_reach_table(methods: dict[str, dict[int, dict[str, Any]]], accuracy: float) -> pd.DataFrame:
    """Per method (``{name: {seed: run}}``): the steps each seed's curve needed to reach ``accuracy``
    held-out exact jigsaw accuracy (NaN: not reached within the run), their mean and the final accuracy."""
    rows = []
    for name, runs in methods.items():
        reached = [steps_to_reach(r["curves"], accuracy) for r in runs.values()]
        rows.append({"method": name, "accuracy to reach": accuracy,
                     **{f"steps (seed {s})": x for s, x in zip(runs, reached)},
                     "mean steps": pd.Series(reached, dtype=float).mean(),
                     "seeds that reached it": sum(x is not None for x in reached),
                     "final exact (mean)": sum(r["jigsaw_acc"] for r in runs.values()) / len(runs)})
    return pd.DataFrame(rows).set_index("method")


def method_points(setting: str, arm: str, runs: dict[str, Any], main_rate: float, sweep_seed: int,
                  accuracy: str = "jigsaw_acc") -> list[dict[str, Any]]:
    """The frontier points (:mod:`jrft_utils.frontiers`) of one method's runs as
    :func:`jrft_utils.finetuning.run_methods` returns them (``{"main": {seed: run}, "sweep": {lr: run}}``):
    every curve point of every run, the main runs at ``main_rate``, the sweep's on ``sweep_seed``."""
    keyed = {(lr, sweep_seed): run for lr, run in runs["sweep"].items()}
    keyed |= {(main_rate, seed): run for seed, run in runs["main"].items()}
    return frontiers.points_from_runs(setting, arm, keyed, accuracy)


def matched_table(points: list[dict[str, Any]], start_prior: float, names: dict[str, str],
                  reference: str = "rft") -> pd.DataFrame:
    """Prior-knowledge points (%) each arm loses from ``start_prior`` at the new-task accuracies it is
    matched at (those of :func:`frontiers.compare`, as the summary and the frontier figure have them: the
    ``reference`` arm's best accuracy and fractions of it, above the start's), read off its Pareto frontier;
    ``names`` maps arm keys to column names. Empty cells: not reached."""
    entry = frontiers.compare(points, start_prior, reference)
    unreached = [None] * len(entry["levels"])
    return pd.DataFrame({name: [None if d is None else 100 * d for d in entry["drop"].get(arm, unreached)]
                         for arm, name in names.items()},
                        index=pd.Index([f"{100 * level:.1f}" for level in entry["levels"]], name="new-task exact (%)"))


def main_table(methods: dict[str, dict[int, dict[str, Any]]], accuracy: str = "jigsaw_acc",
               label: str = "jigsaw exact (%)") -> pd.DataFrame:
    """The paper's main table from our runs: per method (``{name: {seed: run}}``) the steps, final
    new-task accuracy (the runs' ``accuracy`` key, as column ``label``) and the change of each prior
    capability from each run's curve at step 0 (the start every arm fine-tunes) in points (x100), each as ``mean +- sd`` over seeds."""

    def fmt(values: list[float], scale: float = 1.0) -> str:
        v = np.asarray(values, dtype=float) * scale
        return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"

    rows = []
    for name, runs in methods.items():
        runs = list(runs.values())
        row = {"method": name, "steps": fmt([r["steps"] for r in runs]),
               label: fmt([r[accuracy] for r in runs], 100)}
        for cap in runs[0]["prior"]:
            row[f"Δ {cap}"] = fmt([r["prior"][cap] - r["curves"][0]["prior"][cap] for r in runs], 100)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")
