"""Rollouts: what the RFT policy writes.

TRL's ``GRPOTrainer`` logs every rollout with ``log_completions`` as parquet tables
(``<run>/completions/completions_<step>.parquet``: step, prompt, completion, one column per reward
function, advantage). This module reads them back.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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
