"""Forward KL from the start (jrft_utils.divergence): the Monte Carlo estimate against the exact KL of a
tiny text model whose completions (at most two tokens) can be enumerated, and its bookkeeping."""

import copy

import numpy as np
import pytest
import torch

from jrft_utils import divergence, generation, jigsaw, modeling, profiles

PROMPT = "1 2 3"


@pytest.fixture(scope="module")
def pair():
    """A tokenizer, a tiny text model with sharpened outputs and a noisy copy of it, in float64."""
    tok = modeling.build_tokenizer(words=[])
    p = modeling.build_text_model(tok, 0, hidden=16, layers=1, heads=2, kv_heads=1, intermediate=32).double().eval()
    with torch.no_grad():
        p.model.norm.weight.mul_(20.0)  # random init gives near-uniform next-token distributions
    q = copy.deepcopy(p)
    torch.manual_seed(1)
    with torch.no_grad():
        for w in q.model.layers.parameters():
            w.add_(0.3 * torch.randn_like(w))
    return tok, (p, q)


def _next_logprobs(model, tok, prefixes: list[list[int]]) -> torch.Tensor:
    prompt = tok(generation.chat_prompt(tok, PROMPT, image=False), add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + p for p in prefixes])
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=ids).logits[:, -1], -1)


def exact_kl(p, q, tok) -> float:
    """KL over every completion of at most two tokens (the first end of turn ends it)."""
    eos, vocab = tok.eos_token_id, len(tok)
    lp1, lq1 = _next_logprobs(p, tok, [[]])[0], _next_logprobs(q, tok, [[]])[0]
    kl = float((lp1.exp() * (lp1 - lq1)).sum())
    firsts = [v for v in range(vocab) if v != eos]
    lp2, lq2 = _next_logprobs(p, tok, [[v] for v in firsts]), _next_logprobs(q, tok, [[v] for v in firsts])
    second = (lp2.exp() * (lp2 - lq2)).sum(-1)  # KL of the second token after each first one
    return kl + float((lp1[firsts].exp() * second).sum())


def test_estimate_matches_the_exact_kl_of_enumerable_completions(pair):
    tok, (p, q) = pair
    start = divergence.sample_start(p, tok, None, [PROMPT], samples_per_prompt=4000, max_new_tokens=2, seed=0,
                                    batch_size=1000)
    assert all(1 <= len(s.completion_ids) <= 2 for s in start.samples)
    est, exact = divergence.measure(start, q, tok, batch_size=1000), exact_kl(p, q, tok)
    assert exact > 0.1  # the two models differ enough for the test to mean something
    assert abs(est["kl"] - exact) < 4 * est["kl_se"] and est["kl_se"] < 0.1 * exact, (est, exact)
    assert est["n"] == 4000 and est["kl_think"] + est["kl_answer"] == pytest.approx(est["kl"])


def test_the_start_against_itself_is_zero_and_scores_match_sampling(pair):
    tok, (p, _) = pair
    start = divergence.sample_start(p, tok, None, [PROMPT, "4 5"], samples_per_prompt=50, max_new_tokens=2, seed=1)
    assert divergence.forward_kl(start, start.start_logprobs)["kl"] == 0.0
    assert divergence.measure(start, p, tok)["kl"] == pytest.approx(0.0, abs=1e-9)
    # the scored log-probability of a first token is the one it was sampled from
    first = _next_logprobs(p, tok, [[]])[0]
    assert all(torch.isclose(lp[0], first[s.completion_ids[0]]) for s, lp in zip(start.samples[:50], start.start_logprobs))
    with pytest.raises(ValueError, match="scored completions"):
        divergence.forward_kl(start, start.start_logprobs[:3])


def test_think_tokens_are_counted_through_the_closing_tag(pair):
    tok, _ = pair
    ids = tok("<think> 1 2 </think> <answer> 3 </answer>", add_special_tokens=False)["input_ids"]
    assert divergence.think_tokens(tok, ids) == 4
    assert divergence.think_tokens(tok, ids[:2]) == 0


def test_vision_language_samples_are_scored_with_their_images():
    cfg = profiles.resolve("smoke")
    processor = modeling.build_processor(cfg["model"])
    start_model = modeling.build_model(cfg["model"], 0, processor).eval()
    other = modeling.build_model(cfg["model"], 1, processor).eval()
    ds = jigsaw.build_dataset(cfg["jigsaw"], "test", size=3)
    prompts = [jigsaw.jigsaw_prompt(r, c) for r, c in zip(ds["rows"], ds["cols"])]
    start = divergence.sample_start(start_model, processor, list(ds["image"]), prompts, samples_per_prompt=2,
                                    max_new_tokens=6, seed=0)
    assert len(start.samples) == 6 and all(s.pixel_values is not None for s in start.samples)
    kl = divergence.measure(start, other, processor)
    assert np.isfinite(kl["kl"]) and kl["kl_se"] >= 0 and divergence.measure(start, start_model, processor)["kl"] == pytest.approx(0, abs=1e-4)
