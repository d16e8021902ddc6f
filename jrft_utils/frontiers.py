"""Forgetting frontiers and the comparison of arms at matched new-task accuracy.

An arm (a fine-tuning method key: ``sft_gt``, ``rft``, ``sft_teacher``, ...) trades new-task accuracy
for prior knowledge along its learning-rate sweep and checkpoints. Its *frontier* is the Pareto front of
those points, read as the function

    f(L) = highest prior_mean reachable at task_acc >= L,

made continuous by linear interpolation between consecutive frontier points. Arms are compared by the
prior knowledge they lose at the same new-task accuracy ``L``:

    drop(L) = start_prior - f(L).

Conventions (every function here uses them):

- A *point* is a dict ``{"setting": "vision" | "text", "arm": <method key>, "lr": float, "seed": int,
  "step": int, "task_acc": float, "prior_mean": float}``, with ``kl_new``, ``kl_new_se`` and ``kl_prior``
  (nats per completion) where the run measured them, and ``"subset": True`` where the curve point was
  scored on fixed subsets of the held-out sets (its ``prior_mean`` shifted to the whole sets:
  :func:`jrft_utils.evaluation.shifted`); accuracies, ``prior_mean`` and drops are in accuracy units
  (0..1), not percentage points.
- Functions taking ``points`` take a flat list; those that read one arm's frontier expect that arm's points
  only, :func:`matched` filters by arm itself.
- An arm that does not reach a level gets ``None`` there, never a dropped row, so tables keep their shape.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

Point = dict[str, Any]

# a point's forward KL from the start (jrft_utils.divergence), where its run measured it
KL_KEYS = ("kl_new", "kl_new_se", "kl_prior")

# Levels are fractions of an accuracy (0.75 * 0.8 = 0.6000000000000001): a point within this of a level reaches it.
TOLERANCE = 1e-9


def points_from_runs(setting: str, arm: str, runs: Mapping[tuple[float, int], Mapping[str, Any]],
                     accuracy: str) -> list[Point]:
    """One point per curve point of each run (``{(lr, seed): run}``, runs as :mod:`jrft_utils.finetuning`
    returns them, with ``curves`` of ``{"step", accuracy, "prior": {"mean", ...}}``); ``accuracy`` is the
    curves' new-task key (``jigsaw_acc`` for vision, ``task_acc`` for text)."""
    return [{"setting": setting, "arm": arm, "lr": float(lr), "seed": int(seed), "step": int(c["step"]),
             "task_acc": float(c[accuracy]), "prior_mean": float(c["prior"]["mean"])}
            | {k: float(c[k]) for k in KL_KEYS if k in c} | ({"subset": True} if c.get("subset") else {})
            for (lr, seed), run in runs.items() for c in run["curves"]]


def by_arm(points: Sequence[Point]) -> dict[str, list[Point]]:
    """``{arm: its points}``, arms in order of first appearance."""
    out: dict[str, list[Point]] = {}
    for p in points:
        out.setdefault(p["arm"], []).append(p)
    return out


def pareto(points: Sequence[Point]) -> list[Point]:
    """The points no other point dominates (``task_acc`` and ``prior_mean`` both >=, one of them >),
    sorted by ``task_acc`` ascending, so ``task_acc`` strictly increases and ``prior_mean`` strictly
    decreases along it. Of points with equal ``(task_acc, prior_mean)`` one is kept: the lowest
    ``(lr, seed, step)``."""
    # Walk from the highest task accuracy down: a point survives iff it beats every prior seen so far
    # (those all have task_acc >= its own); equal task_acc come highest prior first, duplicates lowest key first.
    order = sorted(points, key=lambda p: (-p["task_acc"], -p["prior_mean"], p["lr"], p["seed"], p["step"]))
    front, best = [], -np.inf
    for p in order:
        if p["prior_mean"] > best:
            front.append(p)
            best = p["prior_mean"]
    return front[::-1]


def kept_at(points: Sequence[Point], level: float) -> float | None:
    """The ``prior_mean`` one arm's ``points`` keep at new-task accuracy ``level``, read off its
    :func:`pareto` frontier ``(a_1, p_1), ..., (a_n, p_n)`` (``a`` ascending): ``None`` if ``level > a_n + TOLERANCE``
    (or no points); ``p_1`` if ``level <= a_1``; ``p_n`` if ``level >= a_n``; otherwise the linear
    interpolation between the two frontier points with ``a_{i-1} <= level <= a_i`` (exact at a frontier point)."""
    front = pareto(points)
    if not front or level > front[-1]["task_acc"] + TOLERANCE:
        return None
    return float(np.interp(level, [p["task_acc"] for p in front], [p["prior_mean"] for p in front]))


def matched_levels(points_by_arm: Mapping[str, Sequence[Point]], reference: str = "rft",
                   lower: Sequence[float] = (0.5, 0.75)) -> list[float]:
    """The new-task accuracies arms are compared at: the ``reference`` arm's best ``task_acc`` and the
    fractions ``lower`` of it; ascending, without duplicates, only those > 0."""
    if not points_by_arm.get(reference):
        raise ValueError(f"no points for the reference arm {reference!r}")
    best = max(p["task_acc"] for p in points_by_arm[reference])
    return sorted({x for x in [best, *(f * best for f in lower)] if x > 0})


def matched(points: Sequence[Point], start_prior: float, arms: Sequence[str],
            levels: Sequence[float]) -> dict[str, Any]:
    """Prior knowledge each of ``arms`` loses at each of ``levels`` (``points``: one setting's flat list):
    ``{"levels": [...], "drop": {arm: [start_prior - kept_at(arm, level), or None if the arm does not
    reach it, per level]}}``. An arm without points gets ``None`` throughout."""
    settings = {p["setting"] for p in points}
    if len(settings) > 1:  # a start prior belongs to one setting's base, so mixing would compare nonsense
        raise ValueError(f"points from more than one setting: {sorted(settings)}")
    arm_points = by_arm(points)
    drop = {}
    for arm in arms:
        kept = [kept_at(arm_points.get(arm, []), level) for level in levels]
        drop[arm] = [None if k is None else start_prior - k for k in kept]
    return {"levels": list(levels), "drop": drop}


def compare(points: Sequence[Point], start_prior: float, reference: str = "rft") -> dict[str, Any]:
    """:func:`matched` for every arm of ``points`` (one setting's) at the :func:`matched_levels` of the
    ``reference`` arm above the start's own accuracy (its step-0 points; a level the start already
    reaches compares nothing): the results contract's ``matched`` entry of that setting."""
    arm_points = by_arm(points)
    start_acc = max((p["task_acc"] for p in arm_points.get(reference, []) if p["step"] == 0), default=0.0)
    levels = [x for x in matched_levels(arm_points, reference) if x > start_acc + TOLERANCE]
    return matched(points, start_prior, list(arm_points), levels)


def highest_common(matched_entry: Mapping[str, Any], arms: Sequence[str]) -> tuple[float, list[float]] | None:
    """The highest level of a :func:`matched` entry that every one of ``arms`` reaches, and their drops
    there (in ``arms``' order); ``None`` when there is no such level (or an arm is missing)."""
    drops = matched_entry["drop"]
    if any(arm not in drops for arm in arms):
        return None
    for i in sorted(range(len(matched_entry["levels"])), key=lambda i: -matched_entry["levels"][i]):
        at = [drops[arm][i] for arm in arms]
        if all(d is not None for d in at):
            return matched_entry["levels"][i], at
    return None


def steps_to_reach(points: Sequence[Point], level: float) -> int | None:
    """The fewest training steps after which one arm's ``points`` (any rate, any seed) reach new-task
    accuracy ``level`` (``None``: never)."""
    steps = [p["step"] for p in points if p["task_acc"] >= level - TOLERANCE]
    return min(steps) if steps else None
