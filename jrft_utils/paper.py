"""What the paper reports (Qwen2.5-VL-7B; from ../shared/paper-notes.md), to show beside our numbers.

Prior-knowledge changes are in points (percentage points; MMMU converted from its absolute scores, base
51.3). Our capability names map to the paper's benchmarks as below; MME is left out (another scale).
"""

from __future__ import annotations

BENCHMARK = {"grounding": "RefCOCO val", "ocr": "DocVQA", "vqa": "MMStar", "hallucination": "POPE",
             "reasoning": "MMMU"}

METHOD_NAMES = {"base": "Base", "sft_gt": "SFT-Non-Rea", "rft": "RFT", "sft_teacher": "SFT-Rea-teacher",
                "sft_rft_rollouts": "SFT-Rea-GRPO-Rollout", "sft_early_rollouts": "SFT-early-rollouts"}

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
