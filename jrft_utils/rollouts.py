"""Rollouts: what the RFT policy writes.

TRL's ``GRPOTrainer`` logs every rollout with ``log_completions`` as parquet tables
(``<run>/completions/completions_<step>.parquet``: step, prompt, completion, one column per reward
function, advantage). This module reads them back. :func:`reachability` asks the question that comes
before any RFT run: does the policy ever *sample* a completion that earns reward?
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from jrft_utils import generation, jigsaw, template


def reachability(model, processor, puzzles, temperatures: Sequence[float], samples_per_puzzle: int = 8,
                 max_new_tokens: int = 32, seed: int = 0) -> pd.DataFrame:
    """Sample ``samples_per_puzzle`` completions of every puzzle (a jigsaw dataset split) at each of
    ``temperatures`` and report, per temperature, the share of samples that follow the template, that
    have the answer's shape (n indices in range), that are valid permutations (the only ones ``hit`` can
    credit) and that are exactly right, and the mean ``hit``. GRPO learns only from groups whose rewards
    differ, so with no valid permutation among thousands of samples ``hit`` and ``acc`` give it nothing."""
    rows = []
    images = [im for im in puzzles["image"] for _ in range(samples_per_puzzle)]
    answers = [a for a in puzzles["answer"] for _ in range(samples_per_puzzle)]
    prompts = [jigsaw.jigsaw_prompt(r, c) for r, c in zip(puzzles["rows"], puzzles["cols"])
               for _ in range(samples_per_puzzle)]
    for temperature in temperatures:
        outs = generation.generate_completions(model, processor, images, prompts, max_new_tokens,
                                               temperature=temperature, seed=seed, desc=f"sampling at T={temperature:g}")
        scores = [jigsaw.score(o, a) for o, a in zip(outs, answers)]
        sizes = [len(jigsaw.answer_list(a)) for a in answers]
        rows.append({"temperature": temperature, "samples": len(outs),
                     "template": sum(map(template.follows, outs)) / len(outs),
                     "answer shape": sum(jigsaw.answer_has_shape(o, n) for o, n in zip(outs, sizes)) / len(outs),
                     "valid permutation": sum(jigsaw.parse_answer(o, n) is not None for o, n in zip(outs, sizes)) / len(outs),
                     "exact": sum(s["acc"] for s in scores) / len(outs),
                     "mean hit": sum(s["hit"] for s in scores) / len(outs),
                     "example": outs[0]})
    return pd.DataFrame(rows)


def load_logged(run_dir: str | Path) -> pd.DataFrame:
    """All rollouts logged by a GRPO run in ``run_dir``, in step order, with the completion as text."""
    files = sorted((Path(run_dir) / "completions").glob("completions_*.parquet"))
    if not files:
        raise FileNotFoundError(f"no logged rollouts under {run_dir}/completions: run notebooks/03_rft.ipynb first")
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frame["completion"] = frame["completion"].map(_text)
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def _text(completion) -> str:
    """The assistant text of a logged completion (a string, or a list of chat messages)."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message["content"]
        parts += [content] if isinstance(content, str) else [p.get("text", "") for p in content]
    return "".join(parts)
