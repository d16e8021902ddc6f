"""What the paper ("Why Reinforcement Fine-Tuning Enables MLLMs Preserve Prior Knowledge Better",
arXiv 2506.23508) claims and reports, to show beside our numbers: its claims (:data:`CLAIMS`, judged by
:mod:`jrft_utils.claims`), the numbers behind each claim (:data:`CLAIM_NUMBERS`) and its main table
(:data:`REPORTED`, Qwen2.5-VL-7B). Method names are the registry's (:mod:`jrft_utils.methods`).

Prior-knowledge changes are in points (percentage points; MMMU converted from its absolute scores, base
51.3). Our capability names map to the paper's benchmarks as below; MME is left out (another scale).
"""

from __future__ import annotations

BENCHMARK = {"grounding": "RefCOCO val", "ocr": "DocVQA", "vqa": "MMStar", "hallucination": "POPE",
             "reasoning": "MMMU"}

# The paper's claims as this reproduction tests them, numbered as in notebook 07 and the README.
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

# What the paper reports for each claim.
CLAIM_NUMBERS = {
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

_MMMU_BASE = 51.3
# 3x3 jigsaw exact accuracy (%), steps, and change from base per capability (points), Qwen2.5-VL-7B.
REPORTED = {
    "rft": {"jigsaw_acc": 75.0, "steps": 27360,
            "prior_change": {"grounding": -0.6, "ocr": 0.0, "vqa": 1.7, "hallucination": -0.2,
                             "reasoning": round(50.0 - _MMMU_BASE, 1)}},
    "sft_gt": {"jigsaw_acc": 80.0, "steps": 400,
               "prior_change": {"grounding": -57.2, "ocr": -27.4, "vqa": -62.8, "hallucination": -69.9,
                                "reasoning": round(22.4 - _MMMU_BASE, 1)}},
    "sft_teacher": {"jigsaw_acc": 78.0, "steps": 4100,
                    "prior_change": {"grounding": -37.5, "ocr": -2.3, "vqa": -3.7, "hallucination": -12.1,
                                     "reasoning": round(46.1 - _MMMU_BASE, 1)}},
    "sft_rft_rollouts": {"jigsaw_acc": 81.0, "steps": 3000,
                         "prior_change": {"grounding": -8.6, "ocr": -0.9, "vqa": -2.4, "hallucination": -3.1,
                                          "reasoning": round(48.8 - _MMMU_BASE, 1)}},
}
