"""Generation: the chat prompt of one user turn and batched completions (greedy or sampled) of a model.

The one place a model writes text; evaluation, the benchmarks, rollouts, corpora, training and the
text-only experiment all generate through :func:`generate_completions`. It imports nothing from the
package.
"""

from __future__ import annotations

from typing import Sequence

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
    if images is not None and len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    was_training = model.training
    model.eval()
    tok = getattr(processor, "tokenizer", processor)
    if temperature > 0:
        torch.manual_seed(seed)
    out: list[str] = []
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
        new = gen[:, inputs["input_ids"].shape[1]:]
        out.extend(_decode(tok, row.tolist()) for row in new)
    if was_training:
        model.train()
    return out
