"""Learning dynamics and the probability landscape (notebooks 05 and 06).

Following Ren & Sutherland ("Learning Dynamics of LLM Finetuning", ICLR 2025), one SGD step of size
``lr`` on the SFT loss of a training sample ``x_u`` changes the log-probability of a prior-knowledge
probe ``x_v`` by

    Delta log pi(x_v) = lr * <grad log pi(x_v), grad log pi(x_u)> + O(lr^2)
                      = lr * a(x_v)^T K(x_v, x_u) (-g(x_u)) + O(lr^2),

where ``K = J_v J_u^T`` is the empirical NTK of the completion logits ``z`` (``J = dz/dtheta``),
``a(x_v)`` the gradient of ``log pi(x_v)`` with respect to the logits of ``x_v`` and ``g(x_u)`` the
gradient of the loss with respect to the logits of ``x_u``.

Conventions (every function here uses them):

- A *sample* is a mapping with ``"image"`` (PIL), ``"prompt"`` (the user text) and ``"completion"`` (the
  assistant text), e.g. a sample of :func:`jrft_utils.world.build_test_sets` or of :func:`jigsaw_samples`.
  It is tokenised as TRL's SFT collator does: the chat prompt (image expanded to one token per patch),
  then the rest of the chat text, i.e. the completion and its closing ``<|im_end|>``. For a text-only
  model (notebook 08) samples have no ``"image"`` and ``processor`` is the tokenizer.
- ``log pi(x)`` is the sum of the log-probabilities of the completion tokens (closing ``<|im_end|>``
  included) given image and prompt; the SFT loss of one sample is ``-log pi(x)`` (TRL averages over the
  tokens of a batch instead: this only rescales the step, and :func:`corpus_dynamics` accounts for it).
- Batches are padded on the right and run without an attention mask: attention is causal, so padding
  after a sequence cannot change its logits, and the forward pass has no data-dependent control flow,
  which is what lets ``torch.func.vmap`` batch per-sample gradients.
"""

from __future__ import annotations

import copy
import fnmatch
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from jrft_utils import jigsaw, template

Sample = Mapping[str, Any]


# --------------------------------------------------------------------------------------------------
# Samples and batches
# --------------------------------------------------------------------------------------------------

def jigsaw_samples(ds, completions: Sequence[str]) -> list[dict[str, Any]]:
    """(image, prompt, completion) samples of a jigsaw dataset (columns image, rows, cols) with
    ``completions[i]`` for row ``i`` (e.g. ``jigsaw.gt_completion`` of each answer, or
    ``teacher.teacher_completions(ds, use_truth=True)``)."""
    if len(completions) != len(ds):
        raise ValueError(f"{len(completions)} completions for {len(ds)} rows")
    return [{"image": ex["image"], "prompt": jigsaw.jigsaw_prompt(int(ex["rows"]), int(ex["cols"])), "completion": c}
            for ex, c in zip(ds, completions)]


def sft_samples(ds) -> list[dict[str, Any]]:
    """(image, prompt, completion) samples of a TRL prompt-completion SFT dataset (``prompt`` and
    ``completion`` as text or conversational messages, ``images`` a one-image list), as
    ``jigsaw.to_sft`` makes them; (prompt, completion) samples of a text-only dataset (no ``images``)."""
    def text(value: Any) -> str:
        return " ".join(template.to_text(value).split())

    return [({"image": ex["images"][0]} if "images" in ex else {}) | {"prompt": text(ex["prompt"]),
                                                                     "completion": text(ex["completion"])}
            for ex in ds]


@dataclass
class Batch:
    """Right-padded model inputs of a list of samples.

    ``labels[i, t]`` is the token that position ``t`` predicts (``input_ids[i, t + 1]``) and
    ``label_mask[i, t]`` is 1 exactly when that token belongs to sample ``i``'s completion."""

    input_ids: torch.Tensor  # [B, L]
    pixel_values: torch.Tensor | None  # [B, C, H, W]; None for a text-only model
    attention_mask: torch.Tensor  # [B, L]: 1 on real tokens, 0 on padding
    completion_mask: torch.Tensor  # [B, L]: 1 on completion tokens
    labels: torch.Tensor  # [B, L - 1]
    label_mask: torch.Tensor  # [B, L - 1]

    @property
    def n_tokens(self) -> torch.Tensor:
        """Completion tokens per sample."""
        return self.completion_mask.sum(1)


def _check_samples(samples: Sequence[Sample], what: str) -> None:
    if len(samples) == 0:
        raise ValueError(f"no {what} given: need at least one (image, prompt, completion) sample")
    with_image = "image" in samples[0]
    for s in samples:
        missing = {"prompt", "completion"} - set(s)
        if missing:
            raise ValueError(f"a {what} sample lacks {sorted(missing)}; samples need image, prompt and completion")
        if ("image" in s) != with_image:
            raise ValueError(f"{what} samples mix samples with and without an image")


def make_batch(processor, samples: Sequence[Sample], dtype: torch.dtype = torch.float32,
               device: torch.device | str = "cpu") -> Batch:
    """Tokenise ``samples`` the way TRL's SFT collator does (prompt with the image expanded, then the
    completion text that the chat template appends) and pad them on the right."""
    _check_samples(samples, "samples")
    tok = getattr(processor, "tokenizer", processor)
    prompts, completions, pixels = [], [], []
    for s in samples:
        image = "image" in s
        prompt_msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s["prompt"]}]
                       if image else s["prompt"]}]
        full_msg = prompt_msg + [{"role": "assistant", "content": [{"type": "text", "text": s["completion"]}]
                                  if image else s["completion"]}]
        prompt_text = processor.apply_chat_template(prompt_msg, add_generation_prompt=True, tokenize=False)
        full_text = processor.apply_chat_template(full_msg, tokenize=False)
        if not full_text.startswith(prompt_text):
            raise ValueError("the chat template does not render the prompt as a prefix of prompt + completion")
        if image:
            p = processor(images=[s["image"]], text=[prompt_text], add_special_tokens=False, return_tensors="pt")
            pixels.append(p["pixel_values"][0])
            prompt_ids = p["input_ids"][0].tolist()
        else:
            prompt_ids = tok(prompt_text, add_special_tokens=False)["input_ids"]
        c = tok(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"]
        if not c:
            raise ValueError(f"empty completion for prompt {s['prompt']!r}")
        prompts.append(prompt_ids)
        completions.append(c)
    return ids_batch(prompts, completions, pixels or None, tok.pad_token_id, dtype=dtype, device=device)


def ids_batch(prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
              pixel_values: Sequence[torch.Tensor] | None, pad_id: int, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> Batch:
    """A right-padded :class:`Batch` of sequences given as token ids (prompt, then completion; e.g. what
    :func:`jrft_utils.generation.generate_ids` sampled), ``pixel_values`` one image each or ``None``."""
    if len(prompt_ids) != len(completion_ids) or not prompt_ids:
        raise ValueError(f"{len(prompt_ids)} prompts and {len(completion_ids)} completions: need as many, at least one")
    if any(len(c) == 0 for c in completion_ids):
        raise ValueError("an empty completion has no token to score")
    ids = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids)]
    comp = [[0] * len(p) + [1] * len(c) for p, c in zip(prompt_ids, completion_ids)]
    length = max(map(len, ids))
    input_ids = torch.tensor([x + [pad_id] * (length - len(x)) for x in ids], device=device)
    attention = torch.tensor([[1] * len(x) + [0] * (length - len(x)) for x in ids], device=device)
    completion = torch.tensor([x + [0] * (length - len(x)) for x in comp], device=device)
    pixels = None if pixel_values is None else torch.stack(list(pixel_values)).to(device=device, dtype=dtype)
    return Batch(input_ids=input_ids, pixel_values=pixels, attention_mask=attention, completion_mask=completion,
                 labels=input_ids[:, 1:], label_mask=completion[:, 1:])


def _batch_for(model, processor, samples: Sequence[Sample]) -> Batch:
    p = next(model.parameters())
    return make_batch(processor, samples, dtype=p.dtype, device=p.device)


# --------------------------------------------------------------------------------------------------
# Forward pass without data-dependent control flow
# --------------------------------------------------------------------------------------------------

class _Logits(torch.nn.Module):
    """LLaVA's forward pass written with static shapes (vmap-able): image features are placed on the
    ``<image>`` tokens with a gather instead of boolean indexing, and the decoder runs without an
    attention mask (right padding + causal attention). A text-only model (``pixel_values`` None) runs its
    decoder alone, also without a mask."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None) -> torch.Tensor:
        m, cfg = self.model, self.model.config
        if pixel_values is None:
            return m.lm_head(m.model(input_ids=input_ids, use_cache=False).last_hidden_state)
        feats = m.model.get_image_features(pixel_values=pixel_values, vision_feature_layer=cfg.vision_feature_layer,
                                           vision_feature_select_strategy=cfg.vision_feature_select_strategy)
        feats = torch.stack(list(feats.pooler_output))  # [B, n_patches, D]
        embeds = m.get_input_embeddings()(input_ids)
        is_image = input_ids == cfg.image_token_id
        # only the prompt's image tokens hold patches; one a model samples later is an ordinary token, as in generate
        is_image = is_image & (is_image.long().cumsum(-1) <= feats.shape[1])
        slot = (is_image.long().cumsum(-1) - 1).clamp(min=0)
        placed = torch.gather(feats, 1, slot.unsqueeze(-1).expand(-1, -1, feats.shape[-1]))
        embeds = torch.where(is_image.unsqueeze(-1), placed.to(embeds.dtype), embeds)
        hidden = m.model.language_model(inputs_embeds=embeds, use_cache=False).last_hidden_state
        return m.lm_head(hidden)


def forward_logits(model, batch: Batch) -> torch.Tensor:
    """Logits ``[B, L, V]`` of a right-padded batch (equal to ``model(**inputs).logits`` on real tokens)."""
    return _Logits(model)(batch.input_ids, batch.pixel_values)


def _label_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log-probability of each label under the logits of the position before it: ``[..., L - 1]``."""
    return torch.log_softmax(logits[..., :-1, :], -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _chunks(samples: Sequence[Sample], size: int):
    for start in range(0, len(samples), size):
        yield samples[start:start + size]


@torch.no_grad()
def token_logprobs(model, processor, samples: Sequence[Sample], batch_size: int = 32) -> list[torch.Tensor]:
    """Per sample, the log-probability of each completion token (closing ``<|im_end|>`` included)."""
    _check_samples(samples, "samples")
    return [lp for chunk in _chunks(samples, batch_size)
            for lp in batch_token_logprobs(model, _batch_for(model, processor, chunk))]


@torch.no_grad()
def batch_token_logprobs(model, batch: Batch) -> list[torch.Tensor]:
    """Per sequence of ``batch``, the log-probability of each of its completion tokens."""
    lp = _label_logprobs(forward_logits(model, batch), batch.labels)
    return [row[mask.bool()].cpu() for row, mask in zip(lp, batch.label_mask)]


def sequence_logprob(model, processor, samples: Sequence[Sample], batch_size: int = 32) -> torch.Tensor:
    """``log pi(x)`` of each sample: the summed log-probability of its completion tokens."""
    return torch.stack([t.sum() for t in token_logprobs(model, processor, samples, batch_size)])


def token_nll(model, processor, samples: Sequence[Sample], batch_size: int = 32) -> list[np.ndarray]:
    """Per sample, the negative log-likelihood (nats) of each completion token."""
    return [(-t).double().numpy() for t in token_logprobs(model, processor, samples, batch_size)]


def nll_summary(nll: Sequence[np.ndarray]) -> dict[str, float]:
    """Corpus-level numbers of per-token NLLs (from :func:`token_nll`): ``nll`` (mean per token over the
    whole corpus), ``ppl`` (its exponential), ``sample_nll`` (mean per-sample average) and
    ``sequence_nll`` (mean summed NLL of a completion)."""
    if len(nll) == 0:
        raise ValueError("no NLL arrays given")
    flat = np.concatenate(nll)
    return {"nll": float(flat.mean()), "ppl": float(np.exp(flat.mean())),
            "sample_nll": float(np.mean([x.mean() for x in nll])),
            "sequence_nll": float(np.mean([x.sum() for x in nll]))}


# --------------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------------

def select_parameters(model, params: Sequence[str] | None = None) -> list[str]:
    """Names of the parameters to differentiate: all trainable ones (``None``) or those matching any of
    the glob patterns ``params`` (e.g. ``["model.language_model.*", "lm_head.*"]``)."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if params is None:
        return names
    chosen = [n for n in names if any(fnmatch.fnmatchcase(n, pat) for pat in params)]
    if not chosen:
        raise ValueError(f"no parameter matches {list(params)}; names look like {names[:3]}")
    return chosen


def per_sample_grads(model, processor, samples: Sequence[Sample], params: Sequence[str] | None = None,
                     chunk_size: int = 16) -> torch.Tensor:
    """Gradients of ``log pi(x)`` for every sample, batched with ``torch.func`` (``vmap(grad(...))`` over
    ``functional_call``), flattened over the selected parameters (see :func:`select_parameters`):
    ``[N, P]``. ``chunk_size`` samples of similar length are vectorised (and padded together) at a time;
    memory grows with it. Attention runs in its eager implementation meanwhile (SDPA has no vmap
    batching rule on CPU)."""
    _check_samples(samples, "samples")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    names = select_parameters(model, params)
    wrapper = _Logits(model)
    fixed = {f"model.{n}": p.detach() for n, p in model.named_parameters()}
    fixed |= {f"model.{n}": b for n, b in model.named_buffers()}
    theta = {f"model.{n}": fixed.pop(f"model.{n}") for n in names}

    def logp(theta, input_ids, pixel_values, labels, label_mask):
        pixels = None if pixel_values is None else pixel_values[None]
        logits = functional_call(wrapper, {**fixed, **theta}, (input_ids[None], pixels))[0]
        return (_label_logprobs(logits, labels) * label_mask).sum()

    batch = _batch_for(model, processor, samples)
    text_only = batch.pixel_values is None
    per_sample = vmap(grad(logp), in_dims=(None, 0, None if text_only else 0, 0, 0))
    first = next(iter(theta.values()))
    out = torch.empty(len(samples), sum(t.numel() for t in theta.values()), dtype=first.dtype, device=first.device)
    lengths = batch.attention_mask.sum(1)
    order = torch.argsort(lengths)  # chunks of similar length: little padding
    with _eager_attention(model):
        for start in range(0, len(samples), chunk_size):
            rows = order[start:start + chunk_size]
            length = int(lengths[rows].max())
            grads = per_sample(theta, batch.input_ids[rows, :length], None if text_only else batch.pixel_values[rows],
                               batch.labels[rows, :length - 1], batch.label_mask[rows, :length - 1].to(first.dtype))
            offset = 0
            for key, t in theta.items():
                out[rows, offset:offset + t.numel()] = grads[key].reshape(len(rows), -1)
                offset += t.numel()
    return out


@contextmanager
def _eager_attention(model):
    """Run ``model`` with eager attention inside the block, then restore its attention implementation."""
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def per_sample_grads_loop(model, processor, samples: Sequence[Sample],
                          params: Sequence[str] | None = None) -> torch.Tensor:
    """The same as :func:`per_sample_grads` with one ordinary forward/backward per sample (the reference
    for tests and the benchmark)."""
    _check_samples(samples, "samples")
    names = set(select_parameters(model, params))
    chosen = [p for n, p in model.named_parameters() if n in names]
    rows = []
    for s in samples:
        batch = _batch_for(model, processor, [s])
        with torch.enable_grad():
            lp = (_label_logprobs(forward_logits(model, batch), batch.labels) * batch.label_mask).sum()
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(lp, chosen, materialize_grads=True)]))
    return torch.stack(rows)


@torch.no_grad()
def logit_grad_sq_norms(model, processor, samples: Sequence[Sample], batch_size: int = 32) -> torch.Tensor:
    """``sum_t ||e_{y_t} - pi_t||^2`` over the completion positions of each sample: the squared norm of
    the gradient of ``log pi(x)`` with respect to its completion logits (equal to that of the SFT loss
    ``-log pi(x)``). It is ``||A(x)||^2`` when ``x`` is a probe and ``||G(x)||^2`` when ``x`` is trained on."""
    _check_samples(samples, "samples")
    out = []
    for chunk in _chunks(samples, batch_size):
        batch = _batch_for(model, processor, chunk)
        probs = torch.softmax(forward_logits(model, batch)[:, :-1], -1)
        sq = (probs ** 2).sum(-1) - 2 * probs.gather(-1, batch.labels.unsqueeze(-1)).squeeze(-1) + 1
        out.append((sq * batch.label_mask).sum(1))
    return torch.cat(out)


# --------------------------------------------------------------------------------------------------
# One step on x_u: measured and first-order change of log pi(x_v)
# --------------------------------------------------------------------------------------------------

def measured_change(model, processor, x_u: Sample, probes: Sequence[Sample], lr: float) -> torch.Tensor:
    """``Delta log pi(x_v)`` for each probe after one plain SGD step of size ``lr`` on ``-log pi(x_u)``
    (all trainable parameters). The model's weights are restored afterwards."""
    _check_samples([x_u], "training")
    _check_samples(probes, "probe")
    was_training = model.training
    model.eval()
    chosen = [p for p in model.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in chosen]
    try:
        before = sequence_logprob(model, processor, probes)
        batch = _batch_for(model, processor, [x_u])
        with torch.enable_grad():
            loss = -(_label_logprobs(forward_logits(model, batch), batch.labels) * batch.label_mask).sum()
            grads = torch.autograd.grad(loss, chosen, materialize_grads=True)
        with torch.no_grad():
            for p, g in zip(chosen, grads):
                p.sub_(lr * g)
        return sequence_logprob(model, processor, probes) - before
    finally:
        with torch.no_grad():
            for p, s in zip(chosen, saved):
                p.copy_(s)
        model.train(was_training)


def predicted_change(model, processor, x_u: Sample, probes: Sequence[Sample], lr: float,
                     params: Sequence[str] | None = None) -> torch.Tensor:
    """First-order (eNTK) prediction of :func:`measured_change`:
    ``-lr <grad NLL(x_u), grad log pi(x_v)> = lr <grad log pi(x_u), grad log pi(x_v)>`` per probe."""
    _check_samples([x_u], "training")
    _check_samples(probes, "probe")
    g_u = per_sample_grads(model, processor, [x_u], params)[0]
    return lr * per_sample_grads(model, processor, probes, params) @ g_u


def first_order_check(model, processor, train_samples: Sequence[Sample], probes: Sequence[Sample],
                      lrs: Sequence[float]) -> list[dict[str, float]]:
    """Measured against predicted change for every (training sample, probe, learning rate): rows with
    ``lr``, ``u``, ``v`` (indices), ``measured``, ``predicted`` and ``rel_error`` =
    ``|measured - predicted| / |predicted|``. The error of a first-order prediction shrinks like ``lr``;
    at tiny ``lr`` float32 round-off in ``measured`` dominates (pass a float64 copy of the model)."""
    _check_samples(train_samples, "training")
    _check_samples(probes, "probe")
    g_v = per_sample_grads(model, processor, probes)
    rows = []
    for u, x_u in enumerate(train_samples):
        inner = g_v @ per_sample_grads(model, processor, [x_u])[0]
        for lr in lrs:
            measured = measured_change(model, processor, x_u, probes, lr)
            for v in range(len(probes)):
                pred = lr * float(inner[v])
                rows.append({"lr": lr, "u": u, "v": v, "measured": float(measured[v]), "predicted": pred,
                             "rel_error": abs(float(measured[v]) - pred) / abs(pred)})
    return rows


def symmetry(model, processor, pairs: Sequence[tuple[Sample, Sample]], lr: float) -> dict[str, np.ndarray]:
    """For each pair ``(x_u, x_v)``: ``v_given_u`` = measured ``Delta log pi(x_v)`` after a step on
    ``x_u``, ``u_given_v`` = measured ``Delta log pi(x_u)`` after a step on ``x_v``, and ``first_order``
    = ``lr <grad log pi(x_u), grad log pi(x_v)>``, which is the first-order term of both."""
    if len(pairs) == 0:
        raise ValueError("no pairs given")
    v_u = [measured_change(model, processor, u, [v], lr).item() for u, v in pairs]
    u_v = [measured_change(model, processor, v, [u], lr).item() for u, v in pairs]
    first = [predicted_change(model, processor, u, [v], lr).item() for u, v in pairs]
    return {"v_given_u": np.array(v_u), "u_given_v": np.array(u_v), "first_order": np.array(first)}


# --------------------------------------------------------------------------------------------------
# Magnitude (LBK) and direction
# --------------------------------------------------------------------------------------------------

@dataclass
class PairDynamics:
    """First-order dynamics of every (training sample, probe) pair, per unit step.

    ``inner[u, v] = <grad log pi(x_u), grad log pi(x_v)>`` (= Delta log pi(x_v) / lr for an SGD step on
    ``-log pi(x_u)``), ``cosine[u, v]`` the cosine of the two gradients, ``lbk[u, v]`` see :func:`lbk`;
    ``g_sq[u] = ||G(x_u)||^2``, ``a_sq[v] = ||A(x_v)||^2`` (:func:`logit_grad_sq_norms`) and ``n_tokens_u``
    the completion tokens of each training sample."""

    inner: torch.Tensor
    cosine: torch.Tensor
    lbk: torch.Tensor
    g_sq: torch.Tensor
    a_sq: torch.Tensor
    n_tokens_u: torch.Tensor


def pair_dynamics(model, processor, train_samples: Sequence[Sample], probes: Sequence[Sample],
                  params: Sequence[str] | None = None, chunk_size: int = 16) -> PairDynamics:
    """All first-order pair quantities from one batched per-sample-gradient pass over both sets."""
    _check_samples(train_samples, "training")
    _check_samples(probes, "probe")
    was_training = model.training
    model.eval()
    try:
        g_u = per_sample_grads(model, processor, train_samples, params, chunk_size)
        g_v = per_sample_grads(model, processor, probes, params, chunk_size)
        g_sq = logit_grad_sq_norms(model, processor, train_samples)
        a_sq = logit_grad_sq_norms(model, processor, probes)
        n_tok = _batch_for(model, processor, train_samples).n_tokens
    finally:
        model.train(was_training)
    inner = g_u @ g_v.T
    norms = g_u.norm(dim=1, keepdim=True) * g_v.norm(dim=1).unsqueeze(0)
    lbk_ = inner ** 2 / (g_sq.unsqueeze(1) * a_sq.unsqueeze(0))
    return PairDynamics(inner=inner, cosine=inner / norms, lbk=lbk_, g_sq=g_sq, a_sq=a_sq, n_tokens_u=n_tok)


def lbk(model, processor, train_samples: Sequence[Sample], probes: Sequence[Sample],
        params: Sequence[str] | None = None) -> torch.Tensor:
    """LBK of every (training sample, probe) pair, ``[n_u, n_v]``: the paper's magnitude measure,

        LBK(x_u, x_v) = (Delta log pi(x_v) / lr)^2 / (||A(x_v)||^2 ||G(x_u)||^2),

    computed as follows (the paper's body was not available; this is our definition):

    - ``Delta log pi(x_v) / lr`` is the first-order (eNTK) change per unit SGD step on ``-log pi(x_u)``,
      ``<grad log pi(x_u), grad log pi(x_v)>`` (no SGD step per pair; :func:`measured_change` checks it);
    - ``G(x_u)`` = gradient of the loss with respect to the completion logits of ``x_u``, stacked over
      positions: ``||G||^2 = sum_t ||pi_t - e_{y_t}||^2``;
    - ``A(x_v)`` = the rows of the log-softmax Jacobians ``I - 1 pi_t^T`` that ``log pi(x_v)`` uses (row
      ``y_t`` at each completion position ``t``), ``||A||^2 = sum_t ||e_{y_t} - pi_t||^2``. The full
      Frobenius norm would add ``~V`` per position whatever the data, a looser bound.

    Since ``Delta/lr = a^T K (-g)`` with ``K`` the eNTK of the completion logits,
    ``LBK <= ||K(x_v, x_u)||_op^2``: a computable lower bound on the squared eNTK norm. It does not depend
    on ``lr``, is normalised by the logit gradients (how far from certain the model is on either sample)
    and is symmetric in ``(x_u, x_v)``."""
    return pair_dynamics(model, processor, train_samples, probes, params).lbk


def direction(model, processor, train_samples: Sequence[Sample], probes: Sequence[Sample],
              params: Sequence[str] | None = None) -> dict[str, float]:
    """Direction of the influence of ``train_samples`` on ``probes`` (first order, per unit step):

    - ``direction``: the mean over probes of the first-order change of ``log pi(x_v)`` per unit learning
      rate for one SGD step on the SFT loss of the whole set of training samples, token-averaged as TRL
      does: ``sum_{u,v} <grad log pi(x_u), grad log pi(x_v)> / (n_v * sum_u T_u)``. Negative =
      interference (training pushes prior knowledge down);
    - ``cosine``: the mean cosine between ``grad log pi(x_u)`` and ``grad log pi(x_v)`` over pairs;
    - ``frac_negative``: the share of pairs whose inner product is negative."""
    return _direction(pair_dynamics(model, processor, train_samples, probes, params))


def _direction(d: PairDynamics) -> dict[str, float]:
    n_v = d.inner.shape[1]
    return {"direction": float(d.inner.sum() / (n_v * d.n_tokens_u.sum())), "cosine": float(d.cosine.mean()),
            "frac_negative": float((d.inner < 0).double().mean())}


def _summary(d: PairDynamics) -> dict[str, float]:
    return {"lbk": float(d.lbk.mean()), "lbk_median": float(d.lbk.median()), **_direction(d)}


def _subsample(samples: Sequence[Sample], n: int | None, rng: np.random.Generator) -> list[Sample]:
    if n is None or n >= len(samples):
        return list(samples)
    return [samples[int(i)] for i in sorted(rng.choice(len(samples), n, replace=False))]


def _flatten_probes(probes: Sequence[Sample] | Mapping[str, Sequence[Sample]], n_v: int | None,
                    rng: np.random.Generator) -> tuple[list[Sample], list[str]]:
    """Probes as a list with a group label each. A ``{capability: samples}`` dict is subsampled evenly:
    round-robin over the groups, so group sizes differ by at most one."""
    if not isinstance(probes, Mapping):
        chosen = _subsample(probes, n_v, rng)
        return chosen, ["all"] * len(chosen)
    per = None if n_v is None else -(-n_v // len(probes))
    groups = {name: _subsample(group, per, rng) for name, group in probes.items()}
    flat = [(name, g[i]) for i in range(max(map(len, groups.values()))) for name, g in groups.items() if i < len(g)]
    flat = flat if n_v is None else flat[:n_v]
    return [s for _, s in flat], [name for name, _ in flat]


def corpus_dynamics(model, processor, corpus_samples: Sequence[Sample],
                    probes: Sequence[Sample] | Mapping[str, Sequence[Sample]], n_u: int | None = 16,
                    n_v: int | None = 32, seed: int = 0, params: Sequence[str] | None = None,
                    chunk_size: int = 16) -> dict[str, Any]:
    """Magnitude, direction and likelihood of one SFT corpus with respect to prior knowledge.

    ``n_u`` training samples of ``corpus_samples`` and ``n_v`` probes (``None``: all; a
    ``{capability: samples}`` dict such as ``evaluation.prior_test_sets(config)`` is subsampled evenly across
    capabilities) are drawn with ``seed``. Returns ``lbk`` (mean of :func:`lbk` over pairs),
    ``lbk_median``, ``direction`` / ``cosine`` / ``frac_negative`` (:func:`direction`), ``nll`` and ``ppl``
    (per-token NLL of the ``n_u`` training completions under ``model``, see :func:`nll_summary`),
    ``by_probe_group`` (the same magnitude and direction numbers, and ``n_v``, per capability) and ``pairs``
    (the :class:`PairDynamics`)."""
    _check_samples(corpus_samples, "corpus")
    for group in probes.values() if isinstance(probes, Mapping) and probes else [probes]:
        _check_samples(group, "probe")
    rng = np.random.default_rng(seed)
    train = _subsample(corpus_samples, n_u, rng)
    chosen, groups = _flatten_probes(probes, n_v, rng)
    d = pair_dynamics(model, processor, train, chosen, params, chunk_size)
    by_group = {}
    for g in dict.fromkeys(groups):
        cols = torch.tensor([i for i, x in enumerate(groups) if x == g])
        sub = PairDynamics(d.inner[:, cols], d.cosine[:, cols], d.lbk[:, cols], d.g_sq, d.a_sq[cols], d.n_tokens_u)
        by_group[g] = {**_summary(sub), "n_v": len(cols)}
    nll = nll_summary(token_nll(model, processor, train))
    return {**_summary(d), "nll": nll["nll"], "ppl": nll["ppl"], "n_u": len(train), "n_v": len(chosen),
            "by_probe_group": by_group, "pairs": d}


def lbk_over_training(model, processor, corpus_samples: Sequence[Sample],
                      probes: Sequence[Sample] | Mapping[str, Sequence[Sample]], steps: int = 30, every: int = 5,
                      lr: float = 3e-4, batch_size: int = 8, optimizer: str = "adamw", n_u: int | None = 8,
                      n_v: int | None = 16, seed: int = 0, params: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """LBK and direction of a corpus while a copy of ``model`` is fine-tuned on it.

    Takes ``steps`` optimiser steps (``"sgd"`` or ``"adamw"``, weight decay 0, learning rate ``lr``) on
    random batches of ``batch_size`` corpus samples with TRL's SFT loss (NLL averaged over the completion
    tokens of the batch); at step 0, every ``every`` steps and at the end, measures :func:`corpus_dynamics`
    on a fixed set of ``n_u`` training samples and ``n_v`` probes. Returns one row per measurement:
    ``step``, ``loss`` (of the last batch; NaN at step 0), ``lbk``, ``lbk_median``, ``direction``,
    ``cosine``, ``frac_negative``, ``nll``. ``model`` itself is not changed."""
    if every < 1 or steps < 0:
        raise ValueError(f"need steps >= 0 and every >= 1, got steps={steps}, every={every}")
    if optimizer not in ("sgd", "adamw"):
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {optimizer!r}")
    _check_samples(corpus_samples, "corpus")
    work = copy.deepcopy(model).eval()
    opt_cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.AdamW
    opt = opt_cls([p for p in work.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    rng = np.random.default_rng([seed, 1])
    keys = ("lbk", "lbk_median", "direction", "cosine", "frac_negative", "nll")
    rows, loss = [], float("nan")
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            res = corpus_dynamics(work, processor, corpus_samples, probes, n_u, n_v, seed, params)
            rows.append({"step": step, "loss": loss, **{k: res[k] for k in keys}})
        if step == steps:
            break
        idx = rng.choice(len(corpus_samples), min(batch_size, len(corpus_samples)), replace=False)
        batch = _batch_for(work, processor, [corpus_samples[int(i)] for i in idx])
        lp = _label_logprobs(forward_logits(work, batch), batch.labels)
        nll = -(lp * batch.label_mask).sum() / batch.label_mask.sum()
        opt.zero_grad()
        nll.backward()
        opt.step()
        loss = nll.item()
    return rows


def corpora_frame(model, processor, corpora_samples: Mapping[str, Mapping[int, Sequence[Sample]]],
                  probes: Sequence[Sample] | Mapping[str, Sequence[Sample]], n_u: int | None = 16,
                  n_v: int | None = 32) -> "pd.DataFrame":
    """:func:`corpus_dynamics` for every corpus and seed (``{corpus: {seed: samples}}``; the seed also
    draws the samples and probes): one row per (corpus, seed) with ``lbk``, ``lbk_median``,
    ``direction``, ``cosine``, ``frac_negative``, ``nll`` and ``ppl``."""
    import pandas as pd

    keys = ("lbk", "lbk_median", "direction", "cosine", "frac_negative", "nll", "ppl")
    rows = []
    for name, by_seed in corpora_samples.items():
        for seed, samples in by_seed.items():
            res = corpus_dynamics(model, processor, samples, probes, n_u=n_u, n_v=n_v, seed=seed)
            rows.append({"corpus": name, "seed": seed, **{k: res[k] for k in keys}})
    return pd.DataFrame(rows)
