"""The text-only validation (notebook 08): the paper's trade-off in a tiny language model.

The same steps as the vision experiment, on the text world of :mod:`jrft_utils.textworld`, through the
same machinery: TRL's trainers via :func:`trainers.train`, the :class:`trainers.CurveCallback`, stage
caching, :mod:`jrft_utils.dynamics` for LBK and NLL, and the summary (its ``text`` section).

1. :func:`pretrain`: a tiny ``Qwen2ForCausalLM`` learns arithmetic and science (cached stage).
2. :func:`run_methods`: SFT on answers (``sft_gt``), GRPO (``rft``), SFT on the teacher's reasoning
   (``sft_teacher``), SFT on the final RFT model's correct rollouts (``sft_rft_rollouts``) and the control
   arms (:func:`corpus_samples`), one run per seed, each with curves of task accuracy, prior knowledge and
   the forward KL from the base (profile section `kl`), trained `run.workers` at a time.
3. :func:`corpus_dynamics`: LBK, direction and NLL under the base of each SFT corpus.
"""

from __future__ import annotations

import json
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from trl import SFTTrainer

from jrft_utils import distributed, divergence, dynamics, finetuning, generation, methods, results, shipped, stages, template, textworld, trainers
from jrft_utils import modeling
from jrft_utils.profiles import Config

METHODS = methods.keys("text")
CORPORA = methods.corpora("text")
CORPUS_OF = methods.corpus_of("text")
NOTEBOOK = "08_text_only"
FROM_ROLLOUTS = ("rft_rollouts", "foreign_think")  # corpora made from the RFT model's rollouts of their seed


def run_dir(config: Config) -> Path:
    """Where the text experiment keeps its stages, each in a folder keyed by the fingerprint of what
    decides it (a run with other knobs gets a folder of its own)."""
    return config.run_dir / "text"


def base_dir(config: Config) -> Path:
    """The text base checkpoint (``text_base`` of the run folder, keyed like :func:`run_dir` by what
    decides it)."""
    return config.keyed_dir(config.run_dir, "text_base", lambda c: [
        c.sections[s] for s in ("text_model", "text_world", "text_pretrain")] + [c.sections["run"]["base_seed"]])


def conversational(prompt: str, completion: str | None = None) -> dict[str, Any]:
    """One TRL conversational row: ``prompt`` (a user turn) and, given, ``completion``."""
    row: dict[str, Any] = {"prompt": [{"role": "user", "content": prompt}]}
    if completion is not None:
        row["completion"] = [{"role": "assistant", "content": completion}]
    return row


def sft_dataset(samples: list[dict[str, Any]]):
    """``{"prompt", "completion"}`` samples as a TRL conversational prompt-completion ``Dataset``."""
    from datasets import Dataset

    if not samples:
        raise ValueError("no training samples")
    return Dataset.from_list([conversational(s["prompt"], s["completion"]) for s in samples])


def tokenizer_words() -> tuple[str, ...]:
    """Every word the text world, the task and the teacher use."""
    return textworld.VOCABULARY


# --------------------------------------------------------------------------------------------------
# The base


def base_params(config: Config) -> dict[str, Any]:
    """What decides the text base (its stage parameters, whose fingerprint is its recipe)."""
    return {"pretrain": config["text_pretrain"], "model": config["text_model"],
            "world": config["text_world"]["train_per_capability"], "seed": config["run"]["base_seed"],
            "vocabulary": tokenizer_words()}


def pretrain(config: Config, progress: bool = True, rebuild: bool = False) -> dict[str, Any]:
    """Build the tiny text decoder (``text_model``) and train it with ``SFTTrainer`` on the text world
    (``text_pretrain``, seed ``run.base_seed``; cached stage in :func:`base_dir`), unless the shipped base
    ``data/text_base`` has the same recipe and ``rebuild`` is off (:func:`shipped.reusable`). Returns the
    pretraining log (loss rows, time, parameter count, checkpoint), ``cached`` and ``shipped``."""
    cfg, model_cfg, world_cfg = config["text_pretrain"], config["text_model"], config["text_world"]
    seed = config["run"]["base_seed"]
    out = base_dir(config)
    params = base_params(config)
    reuse = shipped.reusable(out, params, shipped.DATA_DIR / "text_base", rebuild)
    if reuse is not None:
        return json.loads((out / shipped.LOG).read_text()) | {"cached": True, "shipped": "shipped" in reuse}
    shutil.rmtree(out, ignore_errors=True)
    torch.set_num_threads(config["pretrain"]["threads"])
    samples = [s for cap in textworld.CAPABILITIES
               for s in textworld.generate(cap, world_cfg["train_per_capability"], seed)]
    tokenizer = modeling.build_tokenizer(tokenizer_words())
    model = modeling.build_text_model(tokenizer, seed, **model_cfg)
    log = trainers.LossLog()
    trainer = SFTTrainer(model=model, args=trainers.sft_config(cfg, out / "trainer", seed, progress=progress),
                         train_dataset=sft_dataset(samples), processing_class=tokenizer, callbacks=[log])
    t0 = time.perf_counter()
    trainer.train()
    info = {"checkpoint": str(out), "seed": seed, "steps": cfg["steps"], "train_time_s": time.perf_counter() - t0,
            "n_samples": len(samples), "params": modeling.count_parameters(model), "log": log.rows}
    tokenizer.padding_side = "left"
    modeling.save_checkpoint(model.eval(), tokenizer, out)
    shutil.rmtree(out / "trainer", ignore_errors=True)
    results.write_json_atomic(out / shipped.LOG, info)
    stages.mark_done(out, params, {"train_time_s": info["train_time_s"]})
    return info | {"cached": False, "shipped": False}


def ship_base(config: Config, model, tokenizer, base_eval: dict[str, Any]) -> str:
    """Ship the text base to ``data/text_base`` (:func:`shipped.ship`) with ``base_eval`` (its scores on
    the full sets, :func:`evaluate`) and its scores on their subset, measured here; returns what was done,
    in words."""
    return shipped.ship(config, "text_base", base_dir(config), base_eval, lambda: evaluate(
        model, tokenizer, shipped.subset(test_sets(config)), task_split(config, "test")[:shipped.SUBSET]))


def load_base(config: Config):
    """``(model, tokenizer)`` of the text base; a clear error when notebook 08 has not made it."""
    path = base_dir(config)
    if not (path / stages.STAGE_FILE).exists():
        raise config.missing("text base model", path, NOTEBOOK)
    return modeling.load_checkpoint(path)


# --------------------------------------------------------------------------------------------------
# Evaluation


def test_sets(config: Config) -> dict[str, list[dict[str, Any]]]:
    """The fixed held-out prior-knowledge sets of the text world."""
    return textworld.build_test_sets(config["text_world"]["test_per_capability"])


def task_split(config: Config, split: str) -> list[dict[str, Any]]:
    """The new task's items of ``split`` (the profile's sizes and list lengths; the same for every seed)."""
    cfg = config["text_world"]
    n = cfg["task_train_size"] if split == "train" else cfg["task_test_size"]
    return textworld.make_tasks(n, split, seed=cfg["data_seed"], min_len=cfg["min_len"], max_len=cfg["max_len"])


def evaluate(model, tokenizer, prior_sets: dict[str, list[dict[str, Any]]], tasks: list[dict[str, Any]],
             batch_size: int = 100, max_new_tokens: int = 32, progress: bool = False,
             kl: dict[str, Any] | None = None) -> dict[str, Any]:
    """Greedy held-out ``task_acc`` / ``task_fmt`` on ``tasks`` and ``prior`` accuracy per capability
    (and ``mean``) on ``prior_sets``, in one batched generation pass; with ``kl`` (the base's samples,
    :func:`divergence.load_or_sample`) also the forward KL from the base (:func:`divergence.measure_all`)."""
    flat = [(cap, s) for cap, samples in prior_sets.items() for s in samples]
    prompts = [s["prompt"] for _, s in flat] + [t["prompt"] for t in tasks]
    outs = generation.generate_completions(model, tokenizer, None, prompts, max_new_tokens, batch_size,
                                           progress=progress, desc="text evaluation")
    per_cap: dict[str, list[float]] = {cap: [] for cap in prior_sets}
    for (cap, s), out in zip(flat, outs):
        per_cap[cap].append(textworld.score(out, s["target"]))
    prior = {cap: sum(v) / len(v) for cap, v in per_cap.items()}
    prior["mean"] = sum(prior[c] for c in per_cap) / len(per_cap)
    task_scores = [textworld.score_task(o, t["answer"]) for o, t in zip(outs[len(flat):], tasks)]
    return {"task_acc": sum(s["acc"] for s in task_scores) / len(tasks),
            "task_fmt": sum(s["fmt"] for s in task_scores) / len(tasks), "prior": prior} | (
        divergence.measure_all(kl, model, tokenizer) if kl else {})


def reachability(model, tokenizer, tasks: list[dict[str, Any]], samples_per_task: int = 8,
                 temperature: float = 1.0, max_new_tokens: int = 32, seed: int = 0) -> dict[str, Any]:
    """Share of sampled completions (``samples_per_task`` per task, as GRPO samples them) that follow
    the template, whose answer is one digit, and that are exactly right: whether GRPO can start."""
    prompts = [t["prompt"] for t in tasks for _ in range(samples_per_task)]
    outs = generation.generate_completions(model, tokenizer, None, prompts, max_new_tokens, 128,
                                           temperature=temperature, seed=seed, desc="sampling")
    answers = [t["answer"] for t in tasks for _ in range(samples_per_task)]
    scores = [textworld.score_task(o, a) for o, a in zip(outs, answers)]
    groups = [scores[i:i + samples_per_task] for i in range(0, len(scores), samples_per_task)]
    return {"samples": len(outs), "template": sum(map(template.follows, outs)) / len(outs),
            "one digit": sum(textworld.parse_answer(o) is not None for o in outs) / len(outs),
            "exact": sum(s["acc"] for s in scores) / len(outs),
            "groups with a right answer": sum(any(s["acc"] for s in g) for g in groups) / len(groups),
            "examples": outs[:4]}


# --------------------------------------------------------------------------------------------------
# Corpora and fine-tuning


def grpo_dataset(tasks: list[dict[str, Any]]):
    """Tasks as a TRL GRPO dataset: conversational ``prompt`` and ``answer`` (the rewards' truth)."""
    from datasets import Dataset

    return Dataset.from_list([conversational(t["prompt"]) | {"answer": t["answer"]} for t in tasks])


def rft_run_dir(config: Config, seed: int) -> Path:
    """The main GRPO run of ``seed``, whose final model writes the ``rft_rollouts`` corpus."""
    return _run_spec(config, "rft", seed, False, {})[1]


def corpus_samples(config: Config, name: str, seed: int) -> list[dict[str, Any]]:
    """Corpus ``name`` on the training tasks, as ``{"prompt", "completion"}`` samples:

    - ``gt``: the answer alone; ``teacher``: the teacher's trace, then the answer;
    - ``rft_rollouts``: ``num_samples`` completions of the final RFT model of ``seed`` per task, sampled at
      ``temperature``, the first right one kept; tasks with none are left out (unless ``require_correct``
      is off, as in the smoke profile);
    - controls, each with the true answer: ``start_think``, a think block sampled from the base (as long
      as GRPO's rollouts may be); ``random_trace``, the trace of a pretraining arithmetic problem drawn at
      random (the rollouts' form without their content); ``foreign_think``, words the base never read
      (:data:`textworld.FOREIGN_WORDS`), as many as the think block of the task's rollout.

    Sampled corpora are cached in the run folder."""
    if name not in CORPORA:
        raise ValueError(f"unknown text corpus {name!r}; corpora: {CORPORA}")
    tasks = task_split(config, "train")
    if name == "gt":
        return [{"prompt": t["prompt"], "completion": textworld.gt_completion(t["answer"])} for t in tasks]
    if name == "teacher":
        return [{"prompt": t["prompt"], "completion": textworld.teacher_completion(t["digits"])}
                for t in tasks]
    if name == "random_trace":
        traces = [template.think_text(s["completion"]) for s in textworld.generate("arithmetic", len(tasks), seed)]
        return _with_answers(tasks, traces)
    if name == "foreign_think":
        lengths = {r["prompt"]: len(template.think_text(r["completion"]).split())
                   for r in corpus_samples(config, "rft_rollouts", seed)}
        return _with_answers(tasks, template.length_matched_words(
            textworld.FOREIGN_WORDS, [t["prompt"] for t in tasks], lengths, np.random.default_rng(seed)))
    return _sampled_corpus(config, name, seed, tasks)


def _with_answers(tasks: list[dict[str, Any]], thinks: list[str]) -> list[dict[str, Any]]:
    """Each task's prompt and a completion of its think text and its true answer."""
    return [{"prompt": t["prompt"], "completion": template.completion(str(t["answer"]), think)}
            for t, think in zip(tasks, thinks)]


def _sampled_corpus(config: Config, name: str, seed: int, tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`corpus_samples`' sampled corpora, ``rft_rollouts`` (from the RFT model of ``seed``) and
    ``start_think`` (from the base), cached in the run folder."""
    cfg = {k: v for k, v in config["text_corpora"].items() if k != "controls"}  # which corpora are built, not how
    if name == "rft_rollouts":
        source, k, room = rft_run_dir(config, seed), cfg["num_samples"], cfg["max_new_tokens"]
        params = {"cfg": cfg, "seed": seed, "rft": stages.stage_fingerprint(source, NOTEBOOK, config.profile),
                  "world": config["text_world"]}
    else:
        source, k, room = base_dir(config), 1, config["text_rft"]["max_completion_length"]
        params = {"name": name, "cfg": cfg, "seed": seed, "room": room, "world": config["text_world"],
                  "base": stages.stage_fingerprint(source, NOTEBOOK, config.profile)}
    out = run_dir(config) / "corpora" / f"{name}_seed{seed}-{stages.fingerprint(params)[:8]}"
    if stages.cached(out, params) is None:
        model, tokenizer = modeling.load_checkpoint(source / "model" if name == "rft_rollouts" else source)
        outs = generation.generate_completions(model, tokenizer, None, [t["prompt"] for t in tasks for _ in range(k)],
                                               room, cfg["batch_size"], temperature=cfg["temperature"],
                                               seed=seed, desc=f"sampling {name}")
        if name == "start_think":
            kept = _with_answers(tasks, [template.think_text(o) for o in outs])
        else:
            kept = []
            for i, t in enumerate(tasks):
                right = [o for o in outs[i * k:(i + 1) * k] if textworld.score_task(o, t["answer"])["acc"] == 1.0]
                if right or not cfg["require_correct"]:
                    kept.append({"prompt": t["prompt"], "completion": (right or outs[i * k:(i + 1) * k])[0]})
        results.write_json_atomic(out / "corpus.json", kept)
        stages.mark_done(out, params, {"size": len(kept), "of": len(tasks)})
    return json.loads((out / "corpus.json").read_text())


def sft_arms(config: Config) -> list[str]:
    """The SFT methods of :data:`CORPUS_OF` the run trains: all of them, but the controls when
    ``text_corpora.controls`` is off."""
    return [m for m, c in CORPUS_OF.items() if config["text_corpora"]["controls"] or c not in methods.controls("text")]


def sft_methods(config: Config, seed: int) -> list[str]:
    """The :func:`sft_arms` that train for ``seed``: none that needs the RFT rollouts when the RFT model of
    ``seed`` solved no training task in its samples."""
    return [m for m in sft_arms(config)
            if CORPUS_OF[m] not in FROM_ROLLOUTS or corpus_samples(config, "rft_rollouts", seed)]


def _run_spec(config: Config, method: str, seed: int, frontier: bool, knobs: dict[str, Any]):
    """A :func:`finetune` run's recipe, folder and stage parameters."""
    if method not in CORPUS_OF and method != "rft":
        raise ValueError(f"unknown text method {method!r}; methods: {METHODS[1:]}")
    section = "text_rft" if method == "rft" else "text_sft"
    cfg = config.with_knobs(section, **knobs)[section]
    inputs = {"base": stages.stage_fingerprint(base_dir(config), NOTEBOOK, config.profile)}
    if CORPUS_OF.get(method) in FROM_ROLLOUTS:
        inputs["rft"] = stages.stage_fingerprint(rft_run_dir(config, seed), NOTEBOOK, config.profile)
    params = {"method": method, "cfg": finetuning.run_recipe(cfg), "seed": seed, "world": config["text_world"], "inputs": inputs,
              "kl": config["kl"]}
    key = f"seed{seed}-{stages.fingerprint(params)[:8]}"
    out = run_dir(config) / ("rft" if method == "rft" and not frontier else f"{method}/lr{cfg['learning_rate']:g}") / key
    return cfg, out, params


def finetune(config: Config, method: str, seed: int, progress: bool = True, *, frontier: bool = False,
             **knobs: Any) -> dict[str, Any]:
    """One cached fine-tuning run of the text base: ``rft`` (GRPO on the new task; ``knobs`` are
    ``text_rft`` knobs for this run) or an SFT method of :data:`CORPUS_OF` (``text_sft`` knobs). Returns
    ``metrics.json`` (steps, train time, final point) plus ``curves``. ``frontier``: a GRPO run of the
    frontier's sweep at a rate other than the main runs' (kept in its own folder, without its model)."""
    cfg, out, params = _run_spec(config, method, seed, frontier, knobs)
    base = base_dir(config)
    done = stages.cached(out, params)
    if done is None:
        shutil.rmtree(out, ignore_errors=True)
        tokenizer = modeling.load_checkpoint(base)[1]
        prior_sets, tasks = test_sets(config), task_split(config, "test")
        scored_on = params["world"] | params["inputs"] | {"kl": params["kl"]}
        kl = divergence.load_or_sample(run_dir(config) / "start_points" / f"kl-{stages.fingerprint(scored_on)}.pt",
                                       base, config["kl"], (None, [t["prompt"] for t in tasks]),
                                       divergence.questions(prior_sets, with_images=False))
        evaluate_fn = partial(evaluate, tokenizer=tokenizer, prior_sets=prior_sets, tasks=tasks, kl=kl)
        start_cache = run_dir(config) / "start_points" / f"{stages.fingerprint(scored_on)}.json"
        callbacks = [trainers.CurveCallback(evaluate_fn, cfg["eval_every"], out / trainers.CURVES_FILE,
                                            start_cache=start_cache)]
        if method == "rft":
            data, kind, rewards = grpo_dataset(task_split(config, "train")), "rft", list(textworld.REWARD_FUNCS)
        else:
            data, kind, rewards = sft_dataset(corpus_samples(config, CORPUS_OF[method], seed)), "sft", None
        trainers.train(kind, base, data, cfg, out, seed, callbacks,
                       save_model=method == "rft" and not frontier, reward_funcs=rewards, progress=progress,
                       launch=distributed.settings(config["run"]))
        done = json.loads((out / trainers.METRICS_FILE).read_text())
        stages.mark_done(out, params, done)
    return done | {"curves": trainers.load_curves(out), "dir": str(out)}


def finetune_runs(config: Config, calls: dict[Any, dict[str, Any]], progress: bool = True) -> dict[Any, dict[str, Any]]:
    """:func:`finetune` for each of ``calls`` (``{key: {"method", "seed"[, "frontier"][, "overrides"]}}``),
    by key. Finished runs are read back; the others are trained one at a time in this process when
    ``run.workers`` is 1, else by :func:`finetuning.run_in_workers` (each run's trainer output in
    ``<run dir>.log``), as the vision runs are."""
    workers = config["run"]["workers"]
    done, pending = {}, {}
    for key, c in calls.items():
        frontier, knobs = c.get("frontier", False), c.get("knobs", {})
        _, out, params = _run_spec(config, c["method"], c["seed"], frontier, knobs)
        if workers == 1 or stages.cached(out, params) is not None:
            done[key] = finetune(config, c["method"], c["seed"], progress, frontier=frontier, **knobs)
        else:
            pending[key] = (partial(finetune, config, c["method"], c["seed"], False, frontier=frontier, **knobs),
                            out.with_suffix(".log"))
    return done | finetuning.run_in_workers(pending, workers, "text runs", progress)


def run_methods(config: Config, seeds: list[int], progress: bool = True) -> dict[str, dict[int, dict[str, Any]]]:
    """Every fine-tuning method for every seed with the ``text_sft`` / ``text_rft`` recipes
    (:func:`finetune_runs`; RFT first: its rollouts make a corpus), recorded in the summary's ``text``
    section together with the base (the curves' step 0). A seed whose RFT model solved no training task
    has no ``sft_rft_rollouts`` or ``sft_foreign_think`` run."""
    rft_runs = finetune_runs(config, {seed: {"method": "rft", "seed": seed} for seed in seeds}, progress)
    # the RFT runs come first: the rft_rollouts corpus of each seed is sampled from its RFT model
    sft_calls = {(method, seed): {"method": method, "seed": seed} for seed in seeds for method in sft_methods(config, seed)}
    sft_runs = finetune_runs(config, sft_calls, progress)
    by_method = {"rft": {seed: rft_runs[seed] for seed in seeds}} | {
        method: {seed: sft_runs[method, seed] for seed in seeds if (method, seed) in sft_runs} for method in sft_arms(config)}
    for method, by_seed in by_method.items():
        for seed, run in by_seed.items():
            results.record_text(config, "method", method, seed, summary_metrics(run))
    first = next(iter(by_method["rft"].values()))
    for seed in seeds:
        results.record_text(config, "method", "base", seed, {"task_acc": first["curves"][0]["task_acc"],
                                                              "prior": first["curves"][0]["prior"]})
    return by_method


def lr_sweep(config: Config, seed: int, progress: bool = True) -> dict[str, dict[float, dict[str, Any]]]:
    """Every SFT corpus at each rate of ``text_sft.lr_sweep`` and GRPO at each rate of
    ``text_rft.lr_sweep`` for one seed; runs at the main rates are reused from :func:`run_methods`
    (:func:`finetune_runs`; GRPO first: its main run's rollouts make a corpus). Returns
    ``{method: {learning_rate: run}}``, for the forgetting frontier (each run measured every
    ``eval_every`` steps)."""
    sft_cfg, rft_cfg = config["text_sft"], config["text_rft"]
    rft_runs = finetune_runs(config, {lr: {"method": "rft", "seed": seed, "frontier": lr != rft_cfg["learning_rate"],
                                           "knobs": {"learning_rate": lr}} for lr in rft_cfg["lr_sweep"]},
                             progress)
    arms = sft_methods(config, seed)
    sft_runs = finetune_runs(config, {(method, lr): {"method": method, "seed": seed, "knobs": {"learning_rate": lr}}
                                      for method in arms for lr in sft_cfg["lr_sweep"]}, progress)
    by_method = {method: {lr: sft_runs[method, lr] for lr in sft_cfg["lr_sweep"]} for method in arms}
    return by_method | {"rft": {lr: rft_runs[lr] for lr in rft_cfg["lr_sweep"]}}


def summary_metrics(run: dict[str, Any]) -> dict[str, Any]:
    """A run's numbers in the shape of the summary's ``text.methods`` entries."""
    return {k: run[k] for k in ("task_acc", "steps", "train_time_s", "prior")}


def corpus_dynamics(config: Config, seeds: list[int]) -> "pd.DataFrame":
    """LBK, direction and NLL under the base of every corpus (and seed), against the prior-knowledge test
    sets as probes (the profile's ``dynamics.n_u`` / ``n_v``); recorded in the summary."""
    import pandas as pd

    model, tokenizer = load_base(config)
    cfg = config["dynamics"]
    probes = test_sets(config)
    rows = []
    trained = {seed: sft_methods(config, seed) for seed in seeds}
    for name in CORPORA:
        for seed in seeds:
            if methods.method_of_corpus(name) not in trained[seed]:
                continue
            samples = corpus_samples(config, name, seed)
            res = dynamics.corpus_dynamics(model, tokenizer, samples, probes, n_u=cfg["n_u"], n_v=cfg["n_v"], seed=seed)
            rows.append({"corpus": name, "seed": seed, "size": len(samples),
                         **{k: res[k] for k in ("lbk", "direction", "cosine", "nll", "ppl")}})
            results.record_text(config, "corpus", name, seed,
                                {"lbk": res["lbk"], "direction": res["direction"], "nll_base": res["nll"]})
    return pd.DataFrame(rows)
