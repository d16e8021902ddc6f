"""The text-only validation (notebook 08) on the smoke profile: the text base, its checkpoint, the
dynamics machinery on a text model, the fine-tuning stages, the summary's text section and claim 9."""

import json
from pathlib import Path

import pytest
import torch

from jrft_utils import claims, dynamics, generation, methods, profiles, results, stages, template, textworld
from jrft_utils import modeling
from jrft_utils import textexperiment as tx


@pytest.fixture(scope="module")
def text_model():
    tokenizer = modeling.build_tokenizer(tx.tokenizer_words())
    return modeling.build_text_model(tokenizer, 0, hidden=32, layers=1, heads=4, kv_heads=2, intermediate=64), tokenizer


def _samples(n=3):
    return [{"prompt": s["prompt"], "completion": s["completion"]} for s in textworld.generate("arithmetic", n, seed=0)]


def test_text_checkpoint_round_trip_keeps_the_word_level_tokenizer(text_model, tmp_path):
    model, tokenizer = text_model
    modeling.save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    assert modeling.is_text_only(tmp_path / "ckpt")
    loaded, tok = modeling.load_checkpoint(tmp_path / "ckpt")
    text = "<|im_start|> user what is 3 + 5 ? <|im_end|>"
    assert tok(text)["input_ids"] == tokenizer(text)["input_ids"]  # not Qwen2's BPE tokenizer
    assert tok.decode(tok(text)["input_ids"]) == text and tok.padding_side == "left"
    prompts = ["what is 3 + 5 ?", "does a robin have gills ?", "what is 1 + 1 - 2 ?"]
    assert generation.generate_completions(loaded, tok, None, prompts, 6, batch_size=2, progress=False) == \
        generation.generate_completions(loaded, tok, None, prompts, 6, batch_size=3, progress=False)


def test_text_batches_mask_exactly_the_completion(text_model):
    _, tokenizer = text_model
    samples = _samples()
    batch = dynamics.make_batch(tokenizer, samples)
    assert batch.pixel_values is None
    for i, s in enumerate(samples):
        ids = batch.input_ids[i][batch.completion_mask[i].bool()].tolist()
        assert tokenizer.decode(ids) == f"{s['completion']} <|im_end|>"
    with pytest.raises(ValueError, match="mix"):
        dynamics.make_batch(tokenizer, samples[:1] + [{**samples[1], "image": None}])


def test_text_per_sample_grads_match_the_loop_and_the_first_order_prediction(text_model):
    model, tokenizer = text_model
    model = model.double()
    samples = _samples(4)
    batched = dynamics.per_sample_grads(model, tokenizer, samples, chunk_size=3)
    looped = dynamics.per_sample_grads_loop(model, tokenizer, samples)
    # eager attention (used under vmap) takes its softmax in float32: agreement to ~1e-7 (as for vision)
    assert torch.allclose(batched, looped, rtol=1e-5, atol=1e-6 * float(looped.abs().max()))
    rows = dynamics.first_order_check(model, tokenizer, samples[:1], samples[1:], [1e-5])
    assert max(r["rel_error"] for r in rows) < 0.1
    model.float()


def test_text_experiment_end_to_end_on_smoke(tmp_path):
    config = profiles.resolve("smoke", text_corpora={"controls": True})
    results.start_summary(config)
    info = tx.pretrain(config, progress=False)
    assert not info["cached"] and tx.pretrain(config, progress=False)["cached"]
    rft = tx.finetune(config, "rft", 0, progress=False)
    assert rft["steps"] == 2 and [p["step"] for p in rft["curves"]] == [0, 1, 2]
    assert set(rft["curves"][0]) == {"step", "task_acc", "task_fmt", "prior", "kl_new", "kl_new_se", "kl_new_think",
                                     "kl_new_answer", "kl_prior", "kl_prior_se"}
    assert abs(rft["curves"][0]["kl_new"]) < 1e-4  # the base against itself
    corpus = tx.corpus_samples(config, "rft_rollouts", 0)  # the smoke profile keeps wrong rollouts too
    assert len(corpus) == len(tx.task_split(config, "train"))
    tasks = tx.task_split(config, "train")
    for name in ("start_think", "random_trace", "foreign_think"):  # the controls: their think, the true answer
        control = tx.corpus_samples(config, name, 0)
        assert [c["prompt"] for c in control] == [t["prompt"] for t in tasks]
        assert [textworld.parse_answer(c["completion"]) for c in control] == [t["answer"] for t in tasks]
    traces = [template.think_text(c["completion"]) for c in tx.corpus_samples(config, "random_trace", 0)]
    assert all(" = " in t for t in traces)  # an arithmetic trace of the base's own pretraining style
    rollout_length = {r["prompt"]: len(template.think_text(r["completion"]).split()) for r in corpus}
    for c in tx.corpus_samples(config, "foreign_think", 0):
        words = template.think_text(c["completion"]).split()
        assert set(words) <= set(textworld.FOREIGN_WORDS) and len(words) == rollout_length[c["prompt"]]
    runs = tx.run_methods(config, [0], progress=False)
    assert set(runs) == set(methods.keys("text")) - {"base"}  # the controls too: text_corpora.controls
    assert runs["sft_gt"][0]["curves"][0] == runs["rft"][0]["curves"][0]  # one base, one step-0 point
    main_rft = stages.stage_fingerprint(tx.rft_run_dir(config, 0), tx.NOTEBOOK, config.profile)
    sweep = tx.lr_sweep(config.with_knobs("text_sft", lr_sweep=[1e-4, 3e-4]), 0, progress=False)
    assert set(sweep["sft_gt"]) == set(sweep["rft"]) == {1e-4, 3e-4}
    for method in ("sft_gt", "rft"):
        assert sweep[method][1e-4]["dir"] == runs[method][0]["dir"]  # the main run, reused
        assert sweep[method][3e-4]["dir"] != runs[method][0]["dir"]
        assert [p["step"] for p in sweep[method][3e-4]["curves"]] == [0, 1, 2]  # every rate: its whole curve
    # a frontier-only GRPO run keeps no model and leaves the main run (whose rollouts are a corpus) alone
    assert (tx.rft_run_dir(config, 0) / "model").exists() and not (Path(sweep["rft"][3e-4]["dir"]) / "model").exists()
    assert stages.stage_fingerprint(tx.rft_run_dir(config, 0), tx.NOTEBOOK, config.profile) == main_rft
    frame = tx.corpus_dynamics(config, [0])
    assert tuple(frame["corpus"]) == methods.corpora("text")
    text = results.load_summary(config)["text"]
    assert set(text["methods"]) == set(methods.keys("text"))
    assert set(text["corpora"]["gt"]) == {"lbk", "direction", "nll_base"}
    # a changed recipe is a new stage in a folder of its own: the profile's own run is not replaced
    main = tx.rft_run_dir(config, 0)
    before = stages.stage_fingerprint(main, tx.NOTEBOOK, config.profile)
    other = tx.finetune(config, "rft", 0, progress=False, learning_rate=3e-4)
    assert Path(other["dir"]) == tx.rft_run_dir(config.with_knobs("text_rft", learning_rate=3e-4), 0) != main
    assert stages.stage_fingerprint(main, tx.NOTEBOOK, config.profile) == before
    with pytest.raises(ValueError, match="unknown text method"):
        tx.finetune(config, "sft_early_rollouts", 0)


def test_text_runs_train_in_worker_processes_and_are_read_back(tmp_path, monkeypatch):
    """With ``run.workers`` = 2 the text runs go to spawned one-thread workers (RFT first, its rollouts
    make a corpus), each with its trainer's output in ``<run dir>.log``; a second call reads them back."""
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path))
    config = profiles.resolve("smoke", run={"workers": 2})
    results.start_summary(config)
    tx.pretrain(config, progress=False)
    runs = tx.run_methods(config, [0], progress=False)
    assert tx.sft_methods(config, 0) == ["sft_gt", "sft_teacher", "sft_rft_rollouts"]  # the paper's arms alone
    assert {m: list(r) for m, r in runs.items()} == {m: [0] for m in ("rft", "sft_gt", "sft_teacher", "sft_rft_rollouts")}
    for by_seed in runs.values():
        assert "train_runtime" in Path(by_seed[0]["dir"]).with_suffix(".log").read_text()
    assert tx.run_methods(config, [0], progress=False) == runs
    sweep = tx.lr_sweep(config.with_knobs("text_sft", lr_sweep=[1e-4, 3e-4]).with_knobs("text_rft", lr_sweep=[1e-4, 3e-4]),
                        0, progress=False)
    assert sweep["sft_rft_rollouts"][1e-4] == runs["sft_rft_rollouts"][0]
    other = Path(sweep["rft"][3e-4]["dir"])
    assert other != Path(runs["rft"][0]["dir"]) and "train_runtime" in other.with_suffix(".log").read_text()


def test_missing_text_base_names_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="08_text_only"):
        tx.load_base(profiles.resolve("smoke"))


def _text_summary(drops: dict[str, float], nll: dict[str, float], lbk: dict[str, float]) -> dict:
    methods = {"base": {"task_acc": [0.2], "prior": {"mean": [1.0]}}}
    methods |= {m: {"task_acc": [0.9], "prior": {"mean": [1.0 - d]}} for m, d in drops.items()}
    return {"methods": methods, "corpora": {c: {"nll_base": [v], "lbk": [lbk[c]]} for c, v in nll.items()}}


ORDERED = {"sft_gt": 0.6, "rft": 0.1, "sft_teacher": 0.5, "sft_rft_rollouts": 0.2}
NLL = {"gt": 2, "teacher": 3, "rft_rollouts": 1}
LBK = {"gt": 3.0, "teacher": 2.0, "rft_rollouts": 1.0}


@pytest.mark.parametrize("drops, nll, lbk, verdict", [
    (ORDERED, NLL, LBK, "yes"),
    (ORDERED, NLL, {**LBK, "rft_rollouts": 9.0}, "partial"),  # LBK ordering reversed
    ({**ORDERED, "sft_teacher": 0.1}, NLL, LBK, "partial"),
    ({**ORDERED, "rft": 0.7}, NLL, LBK, "no"),
])
def test_claim_9_follows_the_text_numbers(drops, nll, lbk, verdict):
    ours, judged, comparison = claims.text_setting_agrees({"text": _text_summary(drops, nll, lbk)})
    assert judged == verdict and "RFT" in ours and comparison == "recipe"  # no frontiers: the shared recipe
    assert claims.text_setting_agrees({}) == ("not run (notebook 08)", "no", "recipe")


def test_record_text_rejects_unknown_names():
    results.start_summary(profiles.resolve("smoke"))
    with pytest.raises(ValueError, match="unknown text method"):
        results.record_text(profiles.resolve("smoke"), "method", "sft_early_rollouts", 0, {"task_acc": 0.1})
    with pytest.raises(ValueError, match="unknown text corpus metric"):
        results.record_text(profiles.resolve("smoke"), "corpus", "gt", 0, {"ppl": 1.0})
    summary = results.record_text(profiles.resolve("smoke"), "method", "rft", 0, {"task_acc": 0.5, "prior": {"mean": 0.9}})
    assert json.loads(results.summary_path(profiles.resolve("smoke")).read_text())["text"] == summary["text"]
