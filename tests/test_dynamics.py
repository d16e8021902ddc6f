"""Learning dynamics: batching, log-probabilities, per-sample gradients, first-order (eNTK) predictions,
LBK and direction (jrft_utils.dynamics), on a fresh smoke-profile model in float64."""

import numpy as np
import pytest
import torch

from jrft_utils import dynamics, jigsaw, modeling, profiles, teacher, world


@pytest.fixture(scope="module")
def tiny():
    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    return modeling.build_model(profiles.resolve("smoke")["model"], 0, processor).eval().double(), processor


@pytest.fixture(scope="module")
def probes():
    sets = world.build_test_sets(8, 84)
    return [sets["vqa"][0], sets["reasoning"][0], sets["ocr"][1]]


@pytest.fixture(scope="module")
def corpora():
    ds = jigsaw.build_dataset(profiles.section("smoke", "jigsaw"), "train", size=4)
    return {"gt": dynamics.jigsaw_samples(ds, [jigsaw.gt_completion(a) for a in ds["answer"]]),
            "teacher": dynamics.jigsaw_samples(ds, teacher.teacher_completions(ds, use_truth=True))}


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs() / b.abs()


def test_masks_cover_exactly_the_completion_tokens(tiny, probes, corpora):
    _, processor = tiny
    samples = [probes[0], corpora["teacher"][0], probes[1]]  # different lengths: right padding
    batch = dynamics.make_batch(processor, samples)
    tok = processor.tokenizer
    for i, s in enumerate(samples):
        ids = batch.input_ids[i][batch.completion_mask[i].bool()].tolist()
        assert tok.decode(ids, skip_special_tokens=False) == f"{s['completion']} <|im_end|>"
        assert torch.equal(batch.labels[i][batch.label_mask[i].bool()], torch.tensor(ids))
        real = int(batch.attention_mask[i].sum())
        assert batch.attention_mask[i, :real].all() and not batch.attention_mask[i, real:].any()
        assert (batch.input_ids[i, real:] == tok.pad_token_id).all()
        # the completion ends the real tokens and the prompt ends with the assistant header
        assert batch.completion_mask[i, real - 1] == 1 and batch.completion_mask[i, real:].sum() == 0
        prompt_ids = batch.input_ids[i][:real][~batch.completion_mask[i][:real].bool()].tolist()
        assert tok.decode(prompt_ids[-2:]) == "<|im_start|> assistant"


def test_sequence_logprob_equals_hand_computed_sum_and_ignores_padding(tiny, probes, corpora):
    m, processor = tiny
    s = corpora["teacher"][1]
    # by hand, with the model's own forward pass on the unpadded sample
    batch = dynamics.make_batch(processor, [s], dtype=torch.float64)
    with torch.no_grad():
        logits = m(input_ids=batch.input_ids, pixel_values=batch.pixel_values,
                   attention_mask=batch.attention_mask).logits[0]
    logp = torch.log_softmax(logits, -1)
    positions = torch.nonzero(batch.completion_mask[0]).flatten()
    by_hand = sum(logp[t - 1, batch.input_ids[0, t]] for t in positions.tolist())
    alone = dynamics.sequence_logprob(m, processor, [s])
    padded = dynamics.sequence_logprob(m, processor, [probes[0], s, probes[1]])
    assert torch.allclose(alone[0], by_hand, rtol=1e-10)
    assert torch.allclose(padded[1], by_hand, rtol=1e-10)
    nll = dynamics.token_nll(m, processor, [probes[0], s])
    assert len(nll[1]) == len(positions) and np.isclose(-nll[1].sum(), float(by_hand))
    summary = dynamics.nll_summary(nll)
    assert np.isclose(summary["ppl"], np.exp(summary["nll"]))
    assert np.isclose(summary["nll"], np.concatenate(nll).mean())


def test_static_forward_matches_the_model_forward_on_real_tokens(tiny, probes, corpora):
    m, processor = tiny
    batch = dynamics.make_batch(processor, probes + corpora["gt"][:1], dtype=torch.float64)
    with torch.no_grad():
        ref = m(input_ids=batch.input_ids, pixel_values=batch.pixel_values, attention_mask=batch.attention_mask).logits
        mine = dynamics.forward_logits(m, batch)
    real = batch.attention_mask.bool()
    assert torch.allclose(ref[real], mine[real], atol=1e-10)


@pytest.mark.parametrize("params", [None, ["model.language_model.layers.*", "lm_head.*"]])
def test_batched_per_sample_grads_equal_the_naive_loop(tiny, probes, corpora, params):
    m, processor = tiny
    samples = probes + corpora["teacher"][:2]
    batched = dynamics.per_sample_grads(m, processor, samples, params, chunk_size=2)
    loop = dynamics.per_sample_grads_loop(m, processor, samples, params)
    assert batched.shape == loop.shape == (len(samples), batched.shape[1])
    # eager attention (used under vmap) computes its softmax in float32 even for a float64 model, so
    # the two paths agree to ~1e-7, not to float64 precision
    assert torch.allclose(batched, loop, rtol=1e-5, atol=1e-6 * float(loop.abs().max()))
    assert m.config._attn_implementation == "sdpa"  # restored after the eager-attention vmap pass
    if params is not None:
        n = sum(p.numel() for name, p in m.named_parameters() if name.startswith("model.language_model.layers."))
        assert batched.shape[1] == n  # lm_head is tied to the embeddings, so it has no own name


def test_first_order_prediction_matches_a_small_step_and_not_a_huge_one(tiny, probes, corpora):
    m, processor = tiny
    before = [p.detach().clone() for p in m.parameters()]
    for x_u in (corpora["gt"][0], corpora["teacher"][1]):
        errors = {}
        for lr in (1e-4, 1e-5, 1.0):
            measured = dynamics.measured_change(m, processor, x_u, probes, lr)
            predicted = dynamics.predicted_change(m, processor, x_u, probes, lr)
            errors[lr] = _relative_error(measured, predicted)
        assert (errors[1e-5] < 0.10).all(), errors
        assert (errors[1e-5] < errors[1e-4] / 4).all(), errors  # the error is second order: ~ lr
        assert (errors[1.0] > 0.5).all(), errors  # a huge step is far from linear: the check can fail
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # weights restored
    rows = dynamics.first_order_check(m, processor, corpora["gt"][:1], probes[:2], [1e-5, 1.0])
    assert [(r["lr"], r["u"], r["v"]) for r in rows] == [(1e-5, 0, 0), (1e-5, 0, 1), (1.0, 0, 0), (1.0, 0, 1)]
    assert all(r["rel_error"] < 0.1 for r in rows[:2]) and all(r["rel_error"] > 0.5 for r in rows[2:])


def test_first_order_terms_are_symmetric_and_the_measured_ones_nearly(tiny, probes, corpora):
    m, processor = tiny
    u, v = corpora["teacher"][0], probes[1]
    assert torch.allclose(dynamics.predicted_change(m, processor, u, [v], 1e-4),
                          dynamics.predicted_change(m, processor, v, [u], 1e-4), rtol=1e-12)
    res = dynamics.symmetry(m, processor, [(u, v), (corpora["gt"][1], probes[0])], lr=1e-6)
    assert set(res) == {"v_given_u", "u_given_v", "first_order"}
    assert np.allclose(res["v_given_u"], res["first_order"], rtol=0.1)
    assert np.allclose(res["u_given_v"], res["first_order"], rtol=0.1)


def test_logit_gradient_norms_are_those_of_log_pi(tiny, corpora):
    m, processor = tiny
    s = corpora["gt"][2]
    batch = dynamics.make_batch(processor, [s], dtype=torch.float64)
    with torch.no_grad():
        logits = dynamics.forward_logits(m, batch)
    logits.requires_grad_(True)
    logp = (torch.log_softmax(logits[:, :-1], -1).gather(-1, batch.labels.unsqueeze(-1)).squeeze(-1)
            * batch.label_mask).sum()
    (g,) = torch.autograd.grad(logp, logits)
    assert torch.allclose(dynamics.logit_grad_sq_norms(m, processor, [s])[0], (g ** 2).sum())


def test_lbk_and_direction_follow_their_definitions(tiny, probes, corpora):
    m, processor = tiny
    train = corpora["gt"][:2] + corpora["teacher"][:1]
    d = dynamics.pair_dynamics(m, processor, train, probes)
    g_u = dynamics.per_sample_grads(m, processor, train)
    g_v = dynamics.per_sample_grads(m, processor, probes)
    inner = g_u @ g_v.T
    expected = inner ** 2 / (dynamics.logit_grad_sq_norms(m, processor, train)[:, None]
                             * dynamics.logit_grad_sq_norms(m, processor, probes)[None, :])
    assert torch.allclose(d.lbk, expected) and torch.allclose(d.inner, inner)
    assert torch.allclose(dynamics.lbk(m, processor, probes, train), d.lbk.T)  # symmetric in (u, v)
    assert ((d.cosine >= -1) & (d.cosine <= 1)).all()

    # direction = mean first-order change of log pi(probe) per unit lr for one SGD step on the
    # token-averaged SFT loss of the training set; check it against a real small step
    lr = 1e-6
    batch = dynamics.make_batch(processor, train, dtype=torch.float64)
    before_lp = dynamics.sequence_logprob(m, processor, probes)
    saved = [p.detach().clone() for p in m.parameters()]
    lp = torch.log_softmax(dynamics.forward_logits(m, batch)[:, :-1], -1).gather(-1, batch.labels.unsqueeze(-1))
    loss = -(lp.squeeze(-1) * batch.label_mask).sum() / batch.label_mask.sum()
    grads = torch.autograd.grad(loss, list(m.parameters()), materialize_grads=True)
    with torch.no_grad():
        for p, g in zip(m.parameters(), grads):
            p.sub_(lr * g)
    measured = float((dynamics.sequence_logprob(m, processor, probes) - before_lp).mean()) / lr
    with torch.no_grad():
        for p, s in zip(m.parameters(), saved):
            p.copy_(s)
    res = dynamics.direction(m, processor, train, probes)
    assert np.isclose(res["direction"], measured, rtol=0.1)
    assert np.isclose(res["cosine"], float(d.cosine.mean()))


def test_corpus_dynamics_and_lbk_over_training(tiny, corpora):
    m, processor = tiny
    sets = world.build_test_sets(8, 84)
    res = dynamics.corpus_dynamics(m, processor, corpora["teacher"], sets, n_u=3, n_v=5, seed=1)
    assert res["n_u"] == 3 and res["n_v"] == 5 and set(res["by_probe_group"]) == set(world.CAPABILITIES)
    assert res["lbk"] > 0 and np.isfinite(res["direction"]) and np.isclose(res["ppl"], np.exp(res["nll"]))
    again = dynamics.corpus_dynamics(m, processor, corpora["teacher"], sets, n_u=3, n_v=5, seed=1)
    assert again["lbk"] == res["lbk"]  # same seed, same pairs
    uneven = dynamics.corpus_dynamics(m, processor, corpora["gt"], sets, n_u=2, n_v=7, seed=0)
    assert sorted(g["n_v"] for g in uneven["by_probe_group"].values()) == [1, 1, 1, 2, 2]  # balanced
    before = [p.detach().clone() for p in m.parameters()]
    rows = dynamics.lbk_over_training(m, processor, corpora["gt"], sets, steps=3, every=2, batch_size=2,
                                      n_u=2, n_v=3, optimizer="sgd", lr=1e-3)
    assert [r["step"] for r in rows] == [0, 2, 3]
    assert np.isnan(rows[0]["loss"]) and all(np.isfinite(r["loss"]) and r["lbk"] > 0 for r in rows[1:])
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))  # trained a copy


def test_sft_dataset_samples_round_trip(corpora):
    ds = jigsaw.build_dataset(profiles.section("smoke", "jigsaw"), "train", size=2)
    completions = [c["completion"] for c in corpora["teacher"][:2]]
    samples = dynamics.sft_samples(jigsaw.to_sft(ds, completions))
    assert [s["completion"] for s in samples] == completions
    assert all(s["prompt"] == jigsaw.jigsaw_prompt(2, 2) for s in samples)


def test_bad_input_raises_clear_errors(tiny, probes, corpora):
    m, processor = tiny
    with pytest.raises(ValueError, match="no corpus"):
        dynamics.corpus_dynamics(m, processor, [], probes)
    with pytest.raises(ValueError, match="probe"):
        dynamics.corpus_dynamics(m, processor, corpora["gt"], [])
    with pytest.raises(ValueError, match="probe"):
        dynamics.corpus_dynamics(m, processor, corpora["gt"], {"vqa": []})
    with pytest.raises(ValueError, match="no probe"):
        dynamics.measured_change(m, processor, corpora["gt"][0], [], 1e-4)
    with pytest.raises(ValueError, match="lacks"):
        dynamics.sequence_logprob(m, processor, [{"image": probes[0]["image"], "prompt": "x"}])
    with pytest.raises(ValueError, match="no parameter matches"):
        dynamics.per_sample_grads(m, processor, probes, params=["nothing.*"])
    with pytest.raises(ValueError, match="no pairs"):
        dynamics.symmetry(m, processor, [], 1e-4)
    with pytest.raises(ValueError, match="optimizer"):
        dynamics.lbk_over_training(m, processor, corpora["gt"], probes, optimizer="lion")
