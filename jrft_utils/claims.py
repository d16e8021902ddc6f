"""The paper's claims (listed in :data:`jrft_utils.paper.CLAIMS`), and ours beyond it (:data:`BEYOND`),
each judged from ``summary.json`` alone.

One small function per claim, with the thresholds that turn its numbers into ``yes`` / ``partial`` /
``no`` beside it (named constants, stated in notebook 07); :data:`JUDGES` registers them and
:func:`evaluate` runs the registry. Every ``ours`` string and every verdict is computed from the
summary's numbers; a claim whose numbers are missing is ``no`` with ``ours`` saying what was not run.

Each judge returns ``(ours, verdict, comparison)``. Claims about forgetting and speed (2, 3, 4, 5, 8, 9)
are judged at *matched* new-task accuracy when the summary has the setting's ``matched`` drops
(:mod:`jrft_utils.frontiers`: each arm's drop read off its Pareto frontier over learning rates and
checkpoints, at the highest level every compared arm reaches), with the shared recipe's numbers beside
them in ``ours``; without them, at the shared recipe (``comparison`` "recipe"); ours beyond the paper on
every frontier point at once (``comparison`` "frontier"). Drops are measured from
the start every arm fine-tunes from (the ``start`` method), or from the base where no start is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jrft_utils import frontiers, methods, paper

Judge = Callable[[dict[str, Any]], tuple[str, str, str]]
NOT_RUN = ("not run", "no", "recipe")


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _sd(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def reference(summary: dict[str, Any]) -> str:
    """The checkpoint drops are measured from: ``start`` when recorded, else ``base``."""
    return "start" if "start" in summary.get("methods", {}) else "base"


def prior_drop(summary: dict[str, Any], method: str) -> float:
    """Mean over seeds of (the :func:`reference`'s mean prior accuracy - ``method``'s), in accuracy units
    (0.2 = 20 points)."""
    ran = summary["methods"]
    return _mean(ran[reference(summary)]["prior"]["mean"]) - _mean(ran[method]["prior"]["mean"])


def _pm(values: list[float | None], scale: float = 100.0, unit: str = "") -> str:
    return f"{_mean(values) * scale:.1f} ± {_sd(values) * scale:.1f}{unit}"


def _drop_text(summary: dict[str, Any], method: str) -> str:
    base = _mean(summary["methods"][reference(summary)]["prior"]["mean"])
    vals = [base - v for v in summary["methods"][method]["prior"]["mean"] if v is not None]
    return f"{methods.name(method)} prior drop {_pm(vals, unit=' pts')}"


def _have(summary: dict[str, Any], *names: str) -> bool:
    """Whether every method of ``names`` recorded a mean prior accuracy."""
    ran = summary.get("methods", {})
    return all(n in ran and ran[n]["prior"].get("mean") for n in names)


ZERO_SHOT_MAX = 0.05      # "cannot solve": base exact accuracy at most this
LEARNED_MIN = 0.5         # "learnable": some method reaches at least this exact accuracy
CHECKPOINTS = ("base", "start")  # what the arms fine-tune, not arms


def _matched(summary: dict[str, Any], setting: str, arms: tuple[str, ...]) -> tuple[float, list[float]] | str | None:
    """The highest matched level ``arms`` all reach in ``setting`` and their drops there; a sentence when
    the setting has matched drops but no level every arm reaches; ``None`` without matched drops."""
    entry = summary.get("matched", {}).get(setting)
    if not entry:
        return None
    if not entry["levels"]:
        return "cannot be compared at matched accuracy: RFT never rises above the start's accuracy"
    common = frontiers.highest_common(entry, arms)
    if common is None:
        unreached = [methods.name(a) for a in arms if a not in entry["drop"] or entry["drop"][a][0] is None]
        return (f"cannot be compared at matched accuracy: {', '.join(unreached) or 'the arms'} never reach "
                f"{entry['levels'][0] * 100:.1f}% exact together")
    return common


def _arm_points(summary: dict[str, Any], setting: str) -> dict[str, list[dict[str, Any]]]:
    """The summary's frontier points of ``setting``, by arm."""
    return frontiers.by_arm([p for p in summary["frontier"] if p["setting"] == setting])


def _at(level: float, arms: tuple[str, ...], drops: list[float]) -> str:
    return (f"at {level * 100:.1f}% exact (matched): "
            + ", ".join(f"{methods.name(a)} drop {d * 100:.1f} pts" for a, d in zip(arms, drops)))


def _compared(summary: dict[str, Any], arms: tuple[str, ...], recipe: str
              ) -> tuple[list[float], float | None, str] | tuple[str, str, str]:
    """The vision drops of ``arms`` where a forgetting claim compares them: at the highest matched level
    they all reach (``level``), else at the shared recipe (``level`` ``None``); with the ``ours`` text
    (``recipe``: the shared recipe's numbers, always shown). When the setting has matched drops but no
    level every arm reaches, the claim's finished ``(ours, "no", "matched")`` instead."""
    common = _matched(summary, "vision", arms)
    if isinstance(common, str):
        return f"{common}; shared recipe: {recipe}", "no", "matched"
    if common is None:
        return [prior_drop(summary, m) if _have(summary, m) else float("nan") for m in arms], None, recipe
    return common[1], common[0], f"{_at(common[0], arms, common[1])}; shared recipe: {recipe}"


def _comparison(level: float | None) -> str:
    return "recipe" if level is None else "matched"


def zero_shot_then_learnable(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 1: the base solves at most ZERO_SHOT_MAX, the best fine-tuned method at least LEARNED_MIN
    (``partial``: one of the two)."""
    ran = summary.get("methods", {})
    arms = [m for m in ran if m not in CHECKPOINTS]
    if not (_have(summary, "base") and ran["base"].get("jigsaw_acc") and arms):
        return NOT_RUN
    base = _mean(ran["base"]["jigsaw_acc"])
    best_name = max(arms, key=lambda m: _mean(ran[m]["jigsaw_acc"]))
    best = _mean(ran[best_name]["jigsaw_acc"])
    ok = (base <= ZERO_SHOT_MAX) + (best >= LEARNED_MIN)
    return (f"base {base * 100:.1f}% exact; best after fine-tuning {best * 100:.1f}% ({methods.name(best_name)})",
            ["no", "partial", "yes"][ok], "recipe")


STEP_RATIO = 10.0         # RFT needs >= this many times SFT's steps


def sft_learns_in_fewer_steps(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 2: SFT on answers reaches an accuracy in STEP_RATIO times fewer steps than RFT (``partial``: in
    fewer). Matched: the steps each arm's fastest run needs to reach the highest level both reach; recipe:
    SFT is at least as accurate as RFT after the recipes' steps, STEP_RATIO times fewer of them."""
    if not _have(summary, "sft_gt", "rft"):
        return NOT_RUN
    ran = summary["methods"]
    s_steps, r_steps = _mean(ran["sft_gt"]["steps"]), _mean(ran["rft"]["steps"])
    s_acc, r_acc = _mean(ran["sft_gt"]["jigsaw_acc"]), _mean(ran["rft"]["jigsaw_acc"])
    recipe = f"SFT {s_acc * 100:.1f}% in {s_steps:.0f} steps; RFT {r_acc * 100:.1f}% in {r_steps:.0f} steps"
    common = _matched(summary, "vision", ("sft_gt", "rft"))
    if common is None:
        ratio = r_steps / s_steps
        verdict = "yes" if s_acc >= r_acc and ratio >= STEP_RATIO else "partial" if s_acc >= r_acc else "no"
        return f"{recipe} ({ratio:.1f}x the steps)", verdict, "recipe"
    if isinstance(common, str):
        return f"{common}; shared recipe: {recipe}", "no", "matched"
    level = common[0]
    arm_points = _arm_points(summary, "vision")
    s_need, r_need = (frontiers.steps_to_reach(arm_points[a], level) for a in ("sft_gt", "rft"))
    ratio = r_need / s_need if s_need else float("inf")
    verdict = "yes" if ratio >= STEP_RATIO else "partial" if ratio > 1 else "no"
    return (f"to reach {level * 100:.1f}% exact (matched): SFT {s_need} steps, RFT {r_need} ({ratio:.1f}x the "
            f"steps); shared recipe: {recipe}", verdict, "matched")


COLLAPSE_DROP = 0.20      # a drop of mean prior accuracy of at least 20 points is a collapse
PARTIAL_DROP = 0.10       # within 10 points: partial (claims 3 and 4)


def sft_forgets(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 3: SFT on answers drops the mean prior accuracy by COLLAPSE_DROP (``partial``: PARTIAL_DROP),
    at the highest accuracy matched to RFT's (or at the shared recipe)."""
    if not _have(summary, reference(summary), "sft_gt"):
        return NOT_RUN
    compared = _compared(summary, ("sft_gt", "rft"), _drop_text(summary, "sft_gt"))
    if isinstance(compared[0], str):
        return compared
    (d, _), level, ours = compared
    return ours, "yes" if d >= COLLAPSE_DROP else "partial" if d >= PARTIAL_DROP else "no", _comparison(level)


SMALL_DROP = 0.03         # "barely forgets" = within 3 points of the start


def rft_barely_forgets(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 4: RFT drops the mean prior accuracy by at most SMALL_DROP (``partial``: PARTIAL_DROP), and
    only while it learns the jigsaw (ZERO_SHOT_MAX over the start; else at most ``partial``). Matched: at
    RFT's highest accuracy SFT on answers also reaches, and no more than SFT loses there (else at most
    ``partial``)."""
    ref = reference(summary)
    if not _have(summary, ref, "rft"):
        return NOT_RUN
    ran = summary["methods"]
    compared = _compared(summary, ("rft", "sft_gt"), _drop_text(summary, "rft"))
    if isinstance(compared[0], str):
        return compared
    (d, d_sft), level, ours = compared
    verdict = "yes" if d <= SMALL_DROP else "partial" if d <= PARTIAL_DROP else "no"
    gain = _mean(ran["rft"]["jigsaw_acc"]) - _mean(ran[ref].get("jigsaw_acc") or [0.0])
    if level is not None and d > d_sft:
        verdict = "partial" if verdict == "yes" else verdict
        ours += "; RFT loses more than SFT at the same accuracy"
    if gain < ZERO_SHOT_MAX:  # keeping what it knew while learning nothing is not the paper's claim
        verdict = "partial" if verdict == "yes" else verdict
        ours += f"; but RFT learned no jigsaw ({gain * 100:+.1f} pts exact over the {ref})"
    return ours, verdict, _comparison(level)


FORGETTING_ORDER = ("sft_gt", "sft_teacher", "sft_rft_rollouts")  # most to least forgetting, as the paper
LBK_ORDER = tuple(methods.corpus_of()[m] for m in FORGETTING_ORDER)  # their corpora, in the same order


def forgetting_follows_the_data(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 5: the SFT methods' prior drops order strictly as FORGETTING_ORDER while each reaches
    LEARNED_MIN (``partial``: the first drops more than the last). Matched: the drops at the highest matched
    level all three reach, each arm's best accuracy over its frontier; recipe: the shared recipe's."""
    if not _have(summary, reference(summary), *FORGETTING_ORDER):
        return NOT_RUN
    accs = [_mean(summary["methods"][m]["jigsaw_acc"]) for m in FORGETTING_ORDER]
    recipe = ("; ".join(_drop_text(summary, m) for m in FORGETTING_ORDER)
              + f"; jigsaw {', '.join(f'{a * 100:.0f}%' for a in accs)}")
    compared = _compared(summary, FORGETTING_ORDER, recipe)
    if isinstance(compared[0], str):
        return compared
    drops, level, ours = compared
    if level is not None:  # "while all SFT variants reach high accuracy": the best point of each frontier
        arm_points = _arm_points(summary, "vision")
        accs = [max(p["task_acc"] for p in arm_points[m]) for m in FORGETTING_ORDER]
    strict, learned = drops[0] > drops[1] > drops[2], min(accs) >= LEARNED_MIN
    return ours, "yes" if strict and learned else "partial" if drops[0] > drops[2] else "no", _comparison(level)


def lbk_ordering(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 6: the corpora's LBK orders strictly as LBK_ORDER (``partial``: first above last)."""
    corpora = summary.get("corpora", {})
    if not all(n in corpora and corpora[n].get("lbk") for n in LBK_ORDER):
        return NOT_RUN
    lbk = [_mean(corpora[n]["lbk"]) for n in LBK_ORDER]
    verdict = "yes" if lbk[0] > lbk[1] > lbk[2] else "partial" if lbk[0] > lbk[2] else "no"
    return "LBK " + " / ".join(f"{n} {v:.3g}" for n, v in zip(LBK_ORDER, lbk)), verdict, "recipe"


def rollouts_most_likely(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 7: the RFT rollouts have the lowest NLL per token under the base of the paper's corpora (the
    paper's base: our start, where recorded; our control corpora are not the paper's, notebook 06 compares
    them) (``partial``: lower than the teacher's)."""
    corpora = {n: c for n, c in summary.get("corpora", {}).items() if n in methods.corpora(controls=False)}
    if not ("rft_rollouts" in corpora and all(c.get("nll_base") for c in corpora.values())):
        return NOT_RUN
    nll = {n: _mean(c["nll_base"]) for n, c in corpora.items()}
    lowest = min(nll, key=nll.get)
    return (f"NLL/token under {'the start' if reference(summary) == 'start' else 'base'} " + " / ".join(f"{n} {v:.3g}" for n, v in nll.items()),
            "yes" if lowest == "rft_rollouts" else "partial" if nll["rft_rollouts"] < nll.get("teacher", np.inf) else "no",
            "recipe")


EARLY_SHARE = 0.5         # early rollouts forget little: at most this share of SFT-Non-Rea's drop


def early_rollouts_forget_little(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 8: SFT on early rollouts drops at most EARLY_SHARE of SFT-Non-Rea's drop (``partial``: less),
    at the highest matched level both reach (or at the shared recipe)."""
    arms = ("sft_early_rollouts", "sft_gt")
    if not _have(summary, reference(summary), *arms):
        return NOT_RUN
    compared = _compared(summary, arms, _drop_text(summary, "sft_early_rollouts") + "; " + _drop_text(summary, "sft_gt"))
    if isinstance(compared[0], str):
        return compared
    (d_early, d_gt), level, ours = compared
    verdict = "yes" if d_early <= d_gt * EARLY_SHARE else "partial" if d_early < d_gt else "no"
    return ours, verdict, _comparison(level)


def text_setting_agrees(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Claim 9 from the summary's ``text`` section (notebook 08), with the vision claims' orderings:
    ``yes`` when RFT forgets less than SFT on answers, the SFT drops order as FORGETTING_ORDER (claim 5),
    LBK orders as LBK_ORDER (claim 6) and the RFT rollouts have the lowest NLL under the base
    (claim 7); ``partial`` when RFT and SFT on its rollouts both forget less than SFT on answers. The drops
    are read at the highest matched level of the four arms when the text setting has matched drops."""
    text = summary.get("text", {})
    paper = methods.corpora("text", controls=False)  # the control arms are ours, not the paper's
    ran, corpora = text.get("methods", {}), {n: c for n, c in text.get("corpora", {}).items() if n in paper}
    needed = methods.keys("text", controls=False)
    if not all(m in ran and ran[m].get("prior", {}).get("mean") for m in needed):
        return "not run (notebook 08)", "no", "recipe"
    base = _mean(ran["base"]["prior"]["mean"])
    drops = {m: base - _mean(ran[m]["prior"]["mean"]) for m in needed[1:]}
    nll = {n: _mean(c["nll_base"]) for n, c in corpora.items() if c.get("nll_base")}
    lbk = {n: _mean(c["lbk"]) for n, c in corpora.items() if c.get("lbk")}
    ours = ("prior drop (pts) " + " / ".join(f"{methods.name(m)} {d * 100:.1f}" for m, d in drops.items())
            + "; task exact " + " / ".join(f"{_mean(ran[m]['task_acc']) * 100:.0f}%" for m in needed[1:])
            + ("; LBK " + " / ".join(f"{n} {v:.3g}" for n, v in lbk.items()) if lbk else "")
            + ("; NLL/token " + " / ".join(f"{n} {v:.3g}" for n, v in nll.items()) if nll else ""))
    common = _matched(summary, "text", needed[1:])
    if isinstance(common, str):
        return f"{common}; shared recipe: {ours}", "no", "matched"
    if common is not None:
        drops = dict(zip(needed[1:], common[1]))
        ours = f"{_at(common[0], needed[1:], common[1])}; shared recipe: {ours}"
    rft_less = drops["rft"] < drops["sft_gt"] and drops["sft_rft_rollouts"] < drops["sft_gt"]
    ordered = drops["sft_gt"] > drops["sft_teacher"] > drops["sft_rft_rollouts"]
    lbk_ordered = all(n in lbk for n in LBK_ORDER) and lbk["gt"] > lbk["teacher"] > lbk["rft_rollouts"]
    lowest = bool(nll) and min(nll, key=nll.get) == "rft_rollouts"
    verdict = "yes" if rft_less and ordered and lbk_ordered and lowest else "partial" if rft_less else "no"
    return ours, verdict, "recipe" if common is None else "matched"


KL_R2 = 0.7  # forgetting "follows" the forward KL: a quadratic in kl_new explains this share of its variance


def forgetting_follows_kl(setting: str) -> Judge:
    """Beyond the paper (RL's Razor's finding): over every arm's frontier points of ``setting``, RFT's
    included, a quadratic in the forward KL from the start on the new task explains at least KL_R2 of the
    variance of forgetting (``partial``: the KL is the best of the three predictors on the SFT arms'
    points, where the corpus's NLL and LBK exist too). From the summary's ``mechanism`` (notebooks 06, 08)."""
    def judge(summary: dict[str, Any]) -> tuple[str, str, str]:
        found = summary.get("mechanism", {}).get(setting)
        if not found or np.isnan(found.get("r2_kl_all", np.nan)):
            return f"not run (notebook {'06' if setting == 'vision' else '08'}, with the profile's kl section on)", "no", "frontier"
        r2 = found["r2"]
        ours = (f"R^2 {found['r2_kl_all']:.2f} over every arm's frontier points; on the SFT arms' "
                f"{found['n_points']} points: KL {r2['kl_new']:.2f}, corpus NLL {r2['nll']:.2f}, LBK {r2['lbk']:.2f}")
        verdict = "yes" if found["r2_kl_all"] >= KL_R2 else "partial" if found["best"] == "kl_new" else "no"
        return ours, verdict, "frontier"
    return judge


FREEDOM_MARGIN = 0.02  # "forgets less": at least 2 points less prior knowledge lost at the same accuracy


def freedom_decides(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Beyond the paper: on notebook 09's question with several correct answers RFT loses at least
    FREEDOM_MARGIN less prior knowledge than SFT-1 at their highest common matched accuracy, and on the
    one-answer control it does not (``partial``: only the first holds). From the summary's ``freedom``."""
    forms = summary.get("freedom", {}).get("forms", {})
    if not {"free", "unique"} <= set(forms):
        return "not run (notebook 09 with both forms)", "no", "matched"
    gaps, parts = {}, []
    for form in ("free", "unique"):
        common = frontiers.highest_common(forms[form]["matched"], ("rft", "sft_one"))
        if common is None:
            parts.append(f"{form}: RFT and SFT-1 reach no matched accuracy together")
            continue
        level, (rft, one) = common
        gaps[form] = one - rft
        parts.append(f"{form}: at {level * 100:.1f}% correct, RFT drop {rft * 100:.1f} pts, SFT-1 {one * 100:.1f} pts")
    free_gap = gaps.get("free", -np.inf) >= FREEDOM_MARGIN
    unique_gap = gaps.get("unique", -np.inf) >= FREEDOM_MARGIN
    verdict = "yes" if free_gap and "unique" in gaps and not unique_gap else "partial" if free_gap else "no"
    return "; ".join(parts), verdict, "matched"


# Claims of ours that the paper does not make, judged like its own: {id: (text, judge)}.
BEYOND: dict[int, tuple[str, Judge]] = {
    10: ("Beyond the paper (vision): forgetting follows the forward KL from the start on the new task across "
         f"all arms (R^2 >= {KL_R2}).", forgetting_follows_kl("vision")),
    11: ("Beyond the paper (text): forgetting follows the forward KL from the base on the new task across "
         f"all arms (R^2 >= {KL_R2}).", forgetting_follows_kl("text")),
    12: ("Beyond the paper (notebook 09): on a task with several correct answers, RFT forgets less than SFT on "
         "one canonical answer at matched accuracy, and not on the one-answer control.", freedom_decides),
}

JUDGES: dict[int, Judge] = {
    1: zero_shot_then_learnable,
    2: sft_learns_in_fewer_steps,
    3: sft_forgets,
    4: rft_barely_forgets,
    5: forgetting_follows_the_data,
    6: lbk_ordering,
    7: rollouts_most_likely,
    8: early_rollouts_forget_little,
    9: text_setting_agrees,
}


def evaluate(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims list of the results contract: every claim of :data:`JUDGES`, judged from ``summary``."""
    rows = [(i, paper.CLAIMS[i], paper.CLAIM_NUMBERS[i], judge) for i, judge in JUDGES.items()]
    rows += [(i, text, "beyond the paper", judge) for i, (text, judge) in BEYOND.items()]
    out = []
    for i, text, numbers, judge in rows:
        ours, verdict, comparison = judge(summary)
        out.append({"id": i, "text": text, "paper": numbers, "ours": ours, "reproduced": verdict,
                    "comparison": comparison})
    return out
