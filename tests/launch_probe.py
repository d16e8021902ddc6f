"""Probes for the launch test (tests/test_distributed.py), importable by the launched processes: what each
process trained on, and whether it measured curve points."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import TrainerCallback

from jrft_utils import template


def _rank() -> str:
    return os.environ.get("RANK", "0")


class InputProbe(TrainerCallback):
    """Records, in each process, every training row its model's forward passes with gradients see (the
    token ids under the attention mask), and how many points ``curve`` (a CurveCallback of the same run)
    holds at the end; writes them to ``<folder>/rank<k>.json``."""

    def __init__(self, folder: str | Path, curve=None):
        self.folder, self.curve, self.rows = str(folder), curve, []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, inputs, kw):
            ids, mask = kw.get("input_ids"), kw.get("attention_mask")
            if torch.is_grad_enabled() and ids is not None:
                mask = torch.ones_like(ids) if mask is None else mask
                self.rows += [" ".join(str(t) for t in row[m.bool()].tolist()) for row, m in zip(ids, mask)]

        self.handle = model.register_forward_pre_hook(hook, with_kwargs=True)

    def on_train_end(self, args, state, control, **kwargs):
        self.handle.remove()
        points = len(self.curve.points) if self.curve is not None else None
        Path(self.folder, f"rank{_rank()}.json").write_text(json.dumps({"rows": self.rows, "curve_points": points}))


class PromptProbe:
    """A GRPO reward that appends the prompts each process scores to ``<folder>/prompts-rank<k>.json`` and
    rewards longer completions (so that groups differ and GRPO updates the weights)."""

    __name__ = "probe_reward"

    def __init__(self, folder: str | Path):
        self.folder = str(folder)

    def __call__(self, prompts, completions, **kwargs):
        path = Path(self.folder, f"prompts-rank{_rank()}.json")
        seen = json.loads(path.read_text()) if path.exists() else []
        path.write_text(json.dumps(seen + [template.to_text(p) for p in prompts]))
        return [len(template.to_text(c).split()) / 16 for c in completions]
