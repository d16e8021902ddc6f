"""Which measure predicts forgetting (notebooks 06 and 08): the forward KL from the start on the new task,
the training corpus's NLL under the start, or its LBK.

Every frontier point (:mod:`jrft_utils.frontiers`: one run at one checkpoint) has a drop of prior
knowledge from the start, ``drop = start_prior - prior_mean``, and, where its run measured it, the
forward KL ``kl_new`` (:mod:`jrft_utils.divergence`). A corpus-level measure gives every point of the arm
that trains on that corpus the same value. Each predictor ``x`` is fitted by least squares with

    drop ~ c0 + c1 x + c2 x^2

and scored by its R^2 on the same points (those whose arm has every predictor: the SFT arms), so the
three are compared like for like. A corpus measure is constant within an arm, so it can explain only
the differences between arms; the KL can also explain those between learning rates and checkpoints.
``r2_kl_all`` is the KL's R^2 on every point that has one, RFT's included.

Conventions: drops in accuracy units (0.2 = 20 points); KL in nats per completion; NLL in nats per token.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from jrft_utils import methods

PREDICTORS = ("kl_new", "nll", "lbk")
DEGREE = 2


def frame(points: Sequence[Mapping[str, Any]], start_prior: float,
          corpus_measures: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """One row per point: ``arm``, ``lr``, ``seed``, ``step``, ``task_acc``, ``drop``, ``kl_new`` (NaN where not
    measured) and the arm's corpus ``nll`` and ``lbk`` (``corpus_measures``: ``{arm: {"nll", "lbk"}}``; NaN
    for an arm without a corpus, such as RFT)."""
    rows = []
    for p in points:
        measures = corpus_measures.get(p["arm"], {})
        rows.append({"arm": p["arm"], "lr": p["lr"], "seed": p["seed"], "step": p["step"], "task_acc": p["task_acc"],
                     "drop": start_prior - p["prior_mean"], "kl_new": p.get("kl_new", np.nan),
                     "nll": measures.get("nll", np.nan), "lbk": measures.get("lbk", np.nan)})
    return pd.DataFrame(rows, columns=["arm", "lr", "seed", "step", "task_acc", "drop", *PREDICTORS])


def fit(x: Sequence[float], y: Sequence[float], degree: int = DEGREE) -> tuple[np.ndarray, float]:
    """Least-squares polynomial coefficients (highest power first, as ``np.polyval`` takes them) and R^2
    of ``y`` on ``x``. R^2 is 0 for a constant fit and can be negative only for a worse one; NaN when ``y``
    does not vary."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) <= degree:
        raise ValueError(f"need more than {degree} points with both values, got {min(len(x), len(y))}")
    degree = min(degree, len(np.unique(x)) - 1)  # a measure with k distinct values fits at most degree k - 1
    coeffs = np.polyfit(x, y, degree) if degree > 0 else np.array([y.mean()])
    total = float(((y - y.mean()) ** 2).sum())
    residual = float(((y - np.polyval(coeffs, x)) ** 2).sum())
    return coeffs, (1 - residual / total) if total > 0 else float("nan")


def compare(points: pd.DataFrame) -> dict[str, Any]:
    """The results contract's ``mechanism`` entry of one setting: ``r2`` of each predictor on the points
    that have every measured predictor (a predictor no point has, such as ``kl_new`` where the profile
    measures no KL, gets NaN and is left out), ``best`` (the highest R^2; ``"none"`` when the drop does not
    vary over the points, so that nothing can predict it), ``n_points`` of that common set,
    the ``arms`` in it, and ``r2_kl_all`` (the KL on every point that has it; NaN without any)."""
    measured = [name for name in PREDICTORS if points[name].notna().any()]
    common = points.dropna(subset=measured)
    if not measured or len(common) <= DEGREE:
        raise ValueError(f"{len(common)} points have every measured predictor ({', '.join(measured) or 'none'}): "
                         "measure kl_new on the runs (profile section kl) and NLL and LBK on the corpora first")
    r2 = {name: fit(common[name], common["drop"])[1] if name in measured else float("nan") for name in PREDICTORS}
    with_kl = points.dropna(subset=["kl_new"])
    scored = [k for k in measured if not np.isnan(r2[k])]
    return {"r2": r2, "best": max(scored, key=r2.get) if scored else "none",
            "n_points": int(len(common)), "arms": sorted(common["arm"].unique()),
            "r2_kl_all": fit(with_kl["kl_new"], with_kl["drop"])[1] if len(with_kl) > DEGREE else float("nan")}


def corpus_measures(corpora: Mapping[str, Mapping[str, Sequence[float | None]]]) -> dict[str, dict[str, float]]:
    """``{arm: {"nll", "lbk"}}`` from a summary's ``corpora`` (per corpus, one value per seed: ``nll_base``
    and ``lbk``), each the mean over seeds, keyed by the method that trains on the corpus."""
    def mean(values) -> float:
        values = [v for v in values or [] if v is not None]
        return float(np.mean(values)) if values else float("nan")

    return {methods.method_of_corpus(name): {"nll": mean(c.get("nll_base")), "lbk": mean(c.get("lbk"))}
            for name, c in corpora.items()}


NAMES = {"kl_new": "forward KL on the new task", "nll": "the corpus's NLL under the start", "lbk": "LBK"}


def at_recipe(points: pd.DataFrame, rates: Mapping[str, float]) -> pd.DataFrame:
    """Per arm, the mean over seeds of the final points of its runs at its shared rate (``rates``: arm ->
    learning rate): ``task_acc``, ``drop`` and every predictor, the most forgetting arm first."""
    final = points[(points["lr"] == points["arm"].map(rates)) & (points["step"] == points.groupby("arm")["step"].transform("max"))]
    return final.groupby("arm")[["task_acc", "drop", *PREDICTORS]].mean().sort_values("drop", ascending=False)


def orderings(table: pd.DataFrame, reference: str = "the start") -> str:
    """The arms of an :func:`at_recipe` table ordered by forgetting, by forward KL and by corpus NLL (each
    largest first; arms without the measure left out), one sentence each; ``reference``: the checkpoint
    the arms fine-tune (the text setting's is the base)."""
    def order(column: str, unit: str, scale: float = 1.0) -> str:
        ranked = table[column].dropna().sort_values(ascending=False)
        return " > ".join(f"{methods.name(arm)} {value * scale:.3g}{unit}" for arm, value in ranked.items())

    return (f"Forgetting (points lost from {reference}): {order('drop', '', 100)}.\n"
            f"Forward KL on the new task (nats per completion): {order('kl_new', '')}.\n"
            f"NLL of the training corpus under {reference} (nats per token): {order('nll', '')}.")


def describe(result: Mapping[str, Any]) -> str:
    """One sentence from a :func:`compare` result: which predictor explains forgetting best, with every R^2."""
    r2 = ", ".join(f"{NAMES[k]} {v:.2f}" for k, v in result["r2"].items() if not np.isnan(v))
    if result["best"] == "none":
        return f"Over {result['n_points']} points forgetting does not vary, so no measure can predict it."
    return (f"Over {result['n_points']} points of {', '.join(result['arms'])}, forgetting is best predicted by "
            f"{NAMES[result['best']]} (R^2: {r2}; a quadratic fit each)"
            + (f"; the KL over every arm's points, RFT's included: R^2 {result['r2_kl_all']:.2f}."
               if not np.isnan(result["r2_kl_all"]) else "."))
