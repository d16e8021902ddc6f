"""The paper's claims (../shared/paper-notes.md), each judged from ``summary.json`` alone.

Every ``ours`` string and every verdict is computed from the summary's numbers; the thresholds that turn
numbers into ``yes`` / ``partial`` / ``no`` are named constants here, stated in notebook 07.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jrft_utils import paper

ZERO_SHOT_MAX = 0.05      # "cannot solve": base exact accuracy at most this
LEARNED_MIN = 0.5         # "learnable": some method reaches at least this exact accuracy
STEP_RATIO = 10.0         # claim 2: RFT needs >= this many times SFT's steps
COLLAPSE_DROP = 0.20      # claim 3: a drop of mean prior accuracy of at least 20 points is a collapse
SMALL_DROP = 0.03         # claim 4: "barely forgets" = within 3 points of base
PARTIAL_DROP = 0.10       # ... within 10 points = partial

CLAIMS = {
    1: "The base model cannot solve jigsaw zero-shot; fine-tuning makes it learnable.",
    2: "SFT learns the task in far fewer steps than RFT (>= 10x).",
    3: "SFT on ground-truth answers forgets prior knowledge catastrophically.",
    4: "RFT barely forgets.",
    5: "Forgetting depends on the data: SFT-Non-Rea >> SFT-Rea-teacher > SFT-on-RFT-rollouts ~ RFT, while all "
       "SFT variants reach high jigsaw accuracy.",
    6: "Magnitude (LBK) ordering: Non-Rea > Rea-teacher > RFT rollouts.",
    7: "Direction: RFT rollouts have the lowest perplexity under the base model.",
    8: "Rollouts from an early RFT checkpoint already give low-forgetting SFT data.",
    9: "(Camera-ready) the same ordering holds for a text-only model on math / science QA.",
}

PAPER = {
    1: "0% zero-shot (Qwen2.5-VL, GPT-4o, 72B); 66-81% after fine-tuning",
    2: "SFT-Non-Rea 400 steps vs RFT 27,360 steps (7B)",
    3: "RefCOCO -57.2, POPE -69.9, MMMU 51.3 -> 22.4 (7B)",
    4: "RefCOCO -0.6, POPE -0.2, MMStar +1.7 (7B)",
    5: "RefCOCO -57.2 / -37.5 / -8.6 / -0.6 (Non-Rea / 4o / rollouts / RFT)",
    6: "LBK Non-Rea > Rea-4o > Rea-GRPO-Rollout",
    7: "rollouts low perplexity, GPT-4o reasoning high",
    8: "1-epoch rollouts (<5% acc) paired with correct answers forget little",
    9: "same ordering on Qwen2.5 text models",
}


def _mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else float("nan")


def _sd(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def prior_drop(summary: dict[str, Any], method: str) -> float:
    """Mean over seeds of (base mean prior accuracy - ``method``'s), in accuracy units (0.2 = 20 points)."""
    methods = summary["methods"]
    return _mean(methods["base"]["prior"]["mean"]) - _mean(methods[method]["prior"]["mean"])


def _pm(values: list[float | None], scale: float = 100.0, unit: str = "") -> str:
    return f"{_mean(values) * scale:.1f} ± {_sd(values) * scale:.1f}{unit}"


def _drop_text(summary: dict[str, Any], method: str) -> str:
    base = _mean(summary["methods"]["base"]["prior"]["mean"])
    vals = [base - v for v in summary["methods"][method]["prior"]["mean"] if v is not None]
    return f"{paper.METHOD_NAMES[method]} prior drop {_pm(vals, unit=' pts')}"


def evaluate(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The claims list of the results contract, judged from ``summary``. A claim whose numbers are
    missing is ``no`` with ``ours`` saying what was not run."""
    methods, corpora = summary.get("methods", {}), summary.get("corpora", {})
    out = []

    def add(i: int, ours: str, verdict: str) -> None:
        out.append({"id": i, "text": CLAIMS[i], "paper": PAPER[i], "ours": ours, "reproduced": verdict})

    def have(*names: str) -> bool:
        return all(n in methods and methods[n]["prior"].get("mean") for n in names)

    # 1
    if have("base") and methods["base"].get("jigsaw_acc") and len(methods) > 1:
        base = _mean(methods["base"]["jigsaw_acc"])
        best_name = max((m for m in methods if m != "base"), key=lambda m: _mean(methods[m]["jigsaw_acc"]))
        best = _mean(methods[best_name]["jigsaw_acc"])
        ok = (base <= ZERO_SHOT_MAX) + (best >= LEARNED_MIN)
        add(1, f"base {base * 100:.1f}% exact; best after fine-tuning {best * 100:.1f}% ({paper.METHOD_NAMES[best_name]})",
            ["no", "partial", "yes"][ok])
    else:
        add(1, "not run", "no")
    # 2
    if have("sft_gt", "rft"):
        s_steps, r_steps = _mean(methods["sft_gt"]["steps"]), _mean(methods["rft"]["steps"])
        s_acc, r_acc = _mean(methods["sft_gt"]["jigsaw_acc"]), _mean(methods["rft"]["jigsaw_acc"])
        ratio = r_steps / s_steps
        verdict = "yes" if s_acc >= r_acc and ratio >= STEP_RATIO else "partial" if s_acc >= r_acc else "no"
        add(2, f"SFT {s_acc * 100:.1f}% in {s_steps:.0f} steps; RFT {r_acc * 100:.1f}% in {r_steps:.0f} steps "
               f"({ratio:.1f}x the steps)", verdict)
    else:
        add(2, "not run", "no")
    # 3, 4
    if have("base", "sft_gt"):
        d = prior_drop(summary, "sft_gt")
        add(3, _drop_text(summary, "sft_gt"), "yes" if d >= COLLAPSE_DROP else "partial" if d >= PARTIAL_DROP else "no")
    else:
        add(3, "not run", "no")
    if have("base", "rft"):
        d = prior_drop(summary, "rft")
        verdict = "yes" if d <= SMALL_DROP else "partial" if d <= PARTIAL_DROP else "no"
        gain = _mean(methods["rft"]["jigsaw_acc"]) - _mean(methods["base"].get("jigsaw_acc") or [0.0])
        ours = _drop_text(summary, "rft")
        if gain < ZERO_SHOT_MAX:  # keeping what it knew while learning nothing is not the paper's claim
            verdict = "partial" if verdict == "yes" else verdict
            ours += f"; but RFT learned no jigsaw ({gain * 100:+.1f} pts exact over the base)"
        add(4, ours, verdict)
    else:
        add(4, "not run", "no")
    # 5
    order = ("sft_gt", "sft_teacher", "sft_rft_rollouts")
    if have("base", *order):
        drops = [prior_drop(summary, m) for m in order]
        accs = [_mean(methods[m]["jigsaw_acc"]) for m in order]
        strict = drops[0] > drops[1] > drops[2]
        verdict = "yes" if strict and min(accs) >= LEARNED_MIN else "partial" if drops[0] > drops[2] else "no"
        add(5, "; ".join(_drop_text(summary, m) for m in order)
            + f"; jigsaw {', '.join(f'{a * 100:.0f}%' for a in accs)}", verdict)
    else:
        add(5, "not run", "no")
    # 6, 7
    names = ("gt", "teacher", "rft_rollouts")
    if all(n in corpora and corpora[n].get("lbk") for n in names):
        lbk = [_mean(corpora[n]["lbk"]) for n in names]
        verdict = "yes" if lbk[0] > lbk[1] > lbk[2] else "partial" if lbk[0] > lbk[2] else "no"
        add(6, "LBK " + " / ".join(f"{n} {v:.3g}" for n, v in zip(names, lbk)), verdict)
    else:
        add(6, "not run", "no")
    if "rft_rollouts" in corpora and all(c.get("nll_base") for c in corpora.values()):
        nll = {n: _mean(c["nll_base"]) for n, c in corpora.items()}
        lowest = min(nll, key=nll.get)
        add(7, "NLL/token under base " + " / ".join(f"{n} {v:.3g}" for n, v in nll.items()),
            "yes" if lowest == "rft_rollouts" else "partial" if nll["rft_rollouts"] < nll.get("teacher", np.inf) else "no")
    else:
        add(7, "not run", "no")
    # 8
    if have("base", "sft_gt", "sft_early_rollouts"):
        d_early, d_gt = prior_drop(summary, "sft_early_rollouts"), prior_drop(summary, "sft_gt")
        verdict = "yes" if d_early <= d_gt / 2 else "partial" if d_early < d_gt else "no"
        add(8, _drop_text(summary, "sft_early_rollouts") + "; " + _drop_text(summary, "sft_gt"), verdict)
    else:
        add(8, "not run", "no")
    # 9
    add(9, *_text_claim(summary.get("text", {})))
    return out


def _text_claim(text: dict[str, Any]) -> tuple[str, str]:
    """Claim 9 from the summary's ``text`` section (notebook 08), with the vision claims' orderings:
    ``yes`` when RFT forgets less than SFT on answers, the SFT drops order gt > teacher > rft_rollouts
    (claim 5), LBK orders the same way (claim 6) and the RFT rollouts have the lowest NLL under the base
    (claim 7); ``partial`` when RFT and SFT on its rollouts both forget less than SFT on answers."""
    methods, corpora = text.get("methods", {}), text.get("corpora", {})
    needed = ("base", "sft_gt", "rft", "sft_teacher", "sft_rft_rollouts")
    if not all(m in methods and methods[m].get("prior", {}).get("mean") for m in needed):
        return "not run (notebook 08)", "no"
    base = _mean(methods["base"]["prior"]["mean"])
    drops = {m: base - _mean(methods[m]["prior"]["mean"]) for m in needed[1:]}
    nll = {n: _mean(c["nll_base"]) for n, c in corpora.items() if c.get("nll_base")}
    lbk = {n: _mean(c["lbk"]) for n, c in corpora.items() if c.get("lbk")}
    ours = ("prior drop (pts) " + " / ".join(f"{paper.METHOD_NAMES[m]} {d * 100:.1f}" for m, d in drops.items())
            + "; task exact " + " / ".join(f"{_mean(methods[m]['task_acc']) * 100:.0f}%" for m in needed[1:])
            + ("; LBK " + " / ".join(f"{n} {v:.3g}" for n, v in lbk.items()) if lbk else "")
            + ("; NLL/token " + " / ".join(f"{n} {v:.3g}" for n, v in nll.items()) if nll else ""))
    rft_less = drops["rft"] < drops["sft_gt"] and drops["sft_rft_rollouts"] < drops["sft_gt"]
    ordered = drops["sft_gt"] > drops["sft_teacher"] > drops["sft_rft_rollouts"]
    names = ("gt", "teacher", "rft_rollouts")
    lbk_ordered = all(n in lbk for n in names) and lbk["gt"] > lbk["teacher"] > lbk["rft_rollouts"]
    lowest = bool(nll) and min(nll, key=nll.get) == "rft_rollouts"
    return ours, "yes" if rft_less and ordered and lbk_ordered and lowest else "partial" if rft_less else "no"
