"""Forward KL from the start to a fine-tuned policy, on a task's prompts: the predictor of forgetting that
"RL's Razor" (Shenfeld et al., 2025) found for every fine-tuning method.

    KL(pi_0 || pi) = E_x E_{y ~ pi_0(.|x)} [ log pi_0(y | x) - log pi(y | x) ]

``pi_0`` is the start (the checkpoint every arm fine-tunes), ``x`` a held-out prompt and ``y`` a whole
completion. It is estimated by Monte Carlo: completions are sampled once from the start (temperature 1,
no top-k or top-p: its own distribution) and kept as token ids, and every later model is scored on the
very same tokens. The mean of ``log pi_0(y|x) - log pi(y|x)`` over the samples is an unbiased estimate;
its standard error is the samples' standard deviation over the square root of their number (a KL smaller
than that error can come out negative). Because
``log pi(y|x)`` is a sum over the completion's tokens, the estimate splits exactly into the tokens of the
think block (up to and including ``</think>``) and the rest (the answer and the end of turn).

:func:`load_or_sample` draws a run's samples once per start (cached beside the step-0 points) and
:func:`measure_all` scores a curve point on them (``kl_new``, ``kl_prior``: :mod:`jrft_utils.finetuning`).

Conventions: a completion ends with its first end-of-turn token, or after ``max_new_tokens`` tokens when
none was sampled (then its probability has no end factor, as in sampling). KL is in nats per completion.
Scoring runs through :mod:`jrft_utils.dynamics` (right-padded batches of the tiny models).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from jrft_utils import dynamics, generation, modeling, template

Prompts = tuple["Sequence[Image.Image] | None", Sequence[str]]  # (one image per prompt, or None: text only; prompts)


@dataclass(frozen=True)
class StartSamples:
    """Completions sampled from the start on a set of prompts, with what scoring them needs: the samples
    (:class:`generation.Generated`), the number of think-block tokens of each, and the start's own
    log-probability of each completion's tokens."""

    samples: list[generation.Generated]
    think_tokens: list[int]
    start_logprobs: list[torch.Tensor]


def think_tokens(tokenizer, completion_ids: Sequence[int]) -> int:
    """Tokens of a completion up to and including its first ``</think>`` (0 when it has none)."""
    close = tokenizer.convert_tokens_to_ids(template.THINK_CLOSE)
    ids = list(completion_ids)
    return ids.index(close) + 1 if close in ids else 0


def completion_logprobs(model, pad_id: int, samples: Sequence[generation.Generated],
                        batch_size: int = 64) -> list[torch.Tensor]:
    """Per sample, ``model``'s log-probability of each of its completion tokens."""
    p = next(model.parameters())
    out: list[torch.Tensor] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        pixels = None if chunk[0].pixel_values is None else [s.pixel_values for s in chunk]
        batch = dynamics.ids_batch([s.prompt_ids for s in chunk], [s.completion_ids for s in chunk], pixels, pad_id,
                                   dtype=p.dtype, device=p.device)
        out.extend(dynamics.batch_token_logprobs(model, batch))
    return out


def sample_start(start_model, processor, images: Sequence[Image.Image] | None, prompts: Sequence[str],
                 samples_per_prompt: int, max_new_tokens: int, seed: int = 0, batch_size: int = 64) -> StartSamples:
    """``samples_per_prompt`` completions of each prompt sampled from ``start_model`` at temperature 1
    (``images`` ``None``: a text-only model), scored by it."""
    if samples_per_prompt < 1 or not prompts:
        raise ValueError(f"need at least one prompt and one sample a prompt, got {len(prompts)} and {samples_per_prompt}")
    tok = getattr(processor, "tokenizer", processor)
    repeat = lambda xs: [x for x in xs for _ in range(samples_per_prompt)]  # noqa: E731
    with torch.random.fork_rng():  # seeded here, and the caller's random state is left as it was
        samples = generation.generate_ids(start_model, processor, None if images is None else repeat(images),
                                          repeat(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size,
                                          progress=False, temperature=1.0, seed=seed)
    return StartSamples(samples, [think_tokens(tok, s.completion_ids) for s in samples],
                        completion_logprobs(start_model, tok.pad_token_id, samples, batch_size))


def forward_kl(start: StartSamples, logprobs: Sequence[torch.Tensor]) -> dict[str, float]:
    """The estimate of ``KL(pi_0 || pi)`` from the start's samples and ``pi``'s ``logprobs`` of their
    tokens (:func:`completion_logprobs`): ``kl`` (nats per completion), ``kl_se`` (its standard error),
    ``kl_think`` and ``kl_answer`` (the think block's tokens and the rest; they sum to ``kl``), ``n``."""
    if len(logprobs) != len(start.samples):
        raise ValueError(f"{len(logprobs)} scored completions for {len(start.samples)} samples")
    diffs = [(a - b).double() for a, b in zip(start.start_logprobs, logprobs)]
    think = np.array([d[:k].sum().item() for d, k in zip(diffs, start.think_tokens)])
    total = np.array([d.sum().item() for d in diffs])
    n = len(total)
    return {"kl": float(total.mean()), "kl_se": float(total.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
            "kl_think": float(think.mean()), "kl_answer": float((total - think).mean()), "n": n}


def measure(start: StartSamples, model, processor, batch_size: int = 64) -> dict[str, float]:
    """:func:`forward_kl` of ``model`` on the start's samples."""
    tok = getattr(processor, "tokenizer", processor)
    return forward_kl(start, completion_logprobs(model, tok.pad_token_id, start.samples, batch_size))


def questions(test_sets: dict[str, list[dict[str, Any]]], with_images: bool) -> Prompts:
    """Prior-knowledge questions as :data:`Prompts`, one of each capability in turn (so that the first few
    cover every capability)."""
    ordered = [q for group in zip(*test_sets.values()) for q in group]
    return [q["image"] for q in ordered] if with_images else None, [q["prompt"] for q in ordered]


def load_or_sample(path: Path, start_dir: Path, cfg: dict, new: Prompts, prior: Prompts) -> dict[str, StartSamples] | None:
    """The start's samples a run's curve points are scored on (``cfg``: the profile's ``kl`` section;
    ``None`` when its ``prompts`` is 0: no KL is measured), read from ``path`` or sampled there once: ``"new"``, ``samples`` completions of each of the first ``prompts``
    of ``new`` (the new task's held-out prompts); ``"prior"``, of the first ``prior_prompts`` of ``prior``
    (prior-knowledge questions). Both are ``(images or None, prompts)``. Every run from the same start reads
    the same file."""
    if cfg["prompts"] == 0:
        return None
    path = Path(path)
    if path.exists():
        return torch.load(path, weights_only=False)
    model, processor = modeling.load_checkpoint(start_dir)
    model.eval()

    def draw(prompts: Prompts, n: int) -> StartSamples:
        images, texts = prompts
        return sample_start(model, processor, None if images is None else list(images[:n]), list(texts[:n]),
                            cfg["samples"], cfg["max_new_tokens"], cfg["seed"])

    out = {"new": draw(new, cfg["prompts"]), "prior": draw(prior, cfg["prior_prompts"])}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(out, tmp)
    tmp.replace(path)  # atomic: workers from the same start may sample it at once, identically
    return out


def measure_all(samples: dict[str, StartSamples], model, processor) -> dict[str, float]:
    """A curve point's forward KL from the start: ``kl_new`` on the new task's prompts (with ``kl_new_se``,
    ``kl_new_think``, ``kl_new_answer``) and ``kl_prior`` on prior-knowledge questions (with ``kl_prior_se``)."""
    new, prior = measure(samples["new"], model, processor), measure(samples["prior"], model, processor)
    return {"kl_new": new["kl"], "kl_new_se": new["kl_se"], "kl_new_think": new["kl_think"],
            "kl_new_answer": new["kl_answer"], "kl_prior": prior["kl"], "kl_prior_se": prior["kl_se"]}
