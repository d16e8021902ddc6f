"""Generation: the chat prompt of one user turn and batched completions (greedy or sampled) of a model.

The one place a model writes text; evaluation, the benchmarks, rollouts, corpora, training and the
text-only experiment all generate through :func:`generate_completions` (text) or :func:`generate_ids`
(token ids, to score exactly what was sampled). It imports nothing from the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from PIL import Image
from tqdm.auto import tqdm


def chat_prompt(processor, prompt: str, image: bool = True) -> str:
    """The chat text of one user turn (image then ``prompt``; ``prompt`` alone without ``image``), ending
    with the assistant's header."""
    content = [{"type": "image"}, {"type": "text", "text": prompt}] if image else prompt
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def _decode(tokenizer, ids: Sequence[int]) -> str:
    """Decode generated ids up to the first end-of-turn token, without special tokens (as TRL decodes
    rollouts); the think/answer tags are ordinary tokens and stay."""
    out = []
    for i in ids:
        if i == tokenizer.eos_token_id:
            break
        if i != tokenizer.pad_token_id:
            out.append(i)
    return tokenizer.decode(out, skip_special_tokens=True).strip()


@torch.no_grad()
def generate_completions(model, processor, images: Sequence[Image.Image] | None, prompts: Sequence[str],
                         max_new_tokens: int = 48, batch_size: int = 64, progress: bool = True,
                         desc: str = "generating", temperature: float = 0.0, seed: int = 0) -> list[str]:
    """Completions (text after the assistant header, up to ``<|im_end|>``) for each (image, user prompt)
    pair, in batches padded on the left: greedy with ``temperature`` 0, else sampled at that temperature
    (reproducibly: the torch generator is seeded with ``seed``). ``images=None``: a text-only model, whose
    ``processor`` is its tokenizer."""
    tok = getattr(processor, "tokenizer", processor)
    return [_decode(tok, row.tolist()) for _, new in _generated(model, processor, images, prompts, max_new_tokens,
                                                                batch_size, progress, desc, temperature, seed)
            for row in new]


@dataclass(frozen=True)
class Generated:
    """One generated completion as token ids: the prompt's ids (the image expanded, no padding), the
    image's pixel values (``None`` for a text-only model) and the completion's ids up to and including the
    first end of turn (all ``max_new_tokens`` of them when none was generated)."""

    prompt_ids: list[int]
    pixel_values: torch.Tensor | None
    completion_ids: list[int]


@torch.no_grad()
def generate_ids(model, processor, images: Sequence[Image.Image] | None, prompts: Sequence[str],
                 max_new_tokens: int = 48, batch_size: int = 64, progress: bool = True, desc: str = "sampling",
                 temperature: float = 1.0, seed: int = 0) -> list[Generated]:
    """The completions of :func:`generate_completions` (sampled at ``temperature`` by default) as token
    ids, for scoring the very tokens that were drawn (:mod:`jrft_utils.divergence`)."""
    tok = getattr(processor, "tokenizer", processor)
    out: list[Generated] = []
    for inputs, new in _generated(model, processor, images, prompts, max_new_tokens, batch_size, progress, desc,
                                  temperature, seed):
        for i, row in enumerate(new.tolist()):
            ends = [k for k, t in enumerate(row) if t == tok.eos_token_id]
            pixels = inputs["pixel_values"][i].cpu() if "pixel_values" in inputs else None
            out.append(Generated(inputs["input_ids"][i][inputs["attention_mask"][i].bool()].tolist(), pixels,
                                 row[:ends[0] + 1] if ends else row))
    return out


def _generated(model, processor, images, prompts, max_new_tokens: int, batch_size: int, progress: bool, desc: str,
               temperature: float, seed: int) -> Iterator[tuple[Any, torch.Tensor]]:
    """Per batch: the processor's left-padded inputs and the generated ids (after the prompt)."""
    if images is not None and len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    was_training = model.training
    model.eval()
    tok = getattr(processor, "tokenizer", processor)
    if temperature > 0:
        torch.manual_seed(seed)
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False):
        texts = [chat_prompt(processor, p, image=images is not None) for p in prompts[start:start + batch_size]]
        if images is None:
            inputs = tok(texts, padding=True, padding_side="left", return_tensors="pt", add_special_tokens=False)
        else:
            inputs = processor(images=list(images[start:start + batch_size]), text=texts, padding=True,
                               padding_side="left", return_tensors="pt")
        inputs = inputs.to(model.device)
        sampling = {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}
        gen = model.generate(**inputs, max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id, **sampling)
        yield inputs, gen[:, inputs["input_ids"].shape[1]:]
    if was_training:
        model.train()
