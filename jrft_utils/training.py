"""Fine-tuning the base on the jigsaw: SFT with TRL's ``SFTTrainer``, RFT with TRL's ``GRPOTrainer``.

Both trainers are used unmodified and configured from a profile section (``sft`` or ``rft``). A
:class:`CurveCallback` measures, every ``eval_every`` steps, held-out jigsaw accuracy and the whole
prior-knowledge suite, and writes the curve to ``curves.json`` next to the run's outputs: the learning
and forgetting curves of notebooks 02-04.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from transformers import TrainerCallback

from jrft_utils import evaluation, generation, jigsaw, profiles, qwen, results, stages, world
from jrft_utils import model as model_factory

CURVES_FILE = "curves.json"
METRICS_FILE = "metrics.json"


class CurveCallback(TrainerCallback):
    """Measures the model at step 0, every ``every`` steps and at the last step with ``evaluate`` (a
    function of the model returning a JSON-able dict, e.g. :func:`evaluate_all` with its sets bound:
    held-out jigsaw ``acc`` / ``hit`` and prior knowledge), and appends each point to ``path`` (JSON,
    written atomically).

    ``start_cache``: a JSON file for the step-0 point, which is the same for every run that starts from
    the same checkpoint and is scored on the same sets: measured once, then read back."""

    def __init__(self, evaluate: Callable[[Any], dict[str, Any]], every: int, path: str | Path,
                 start_cache: str | Path | None = None):
        if every < 1:
            raise ValueError(f"eval_every must be >= 1, got {every}")
        self.evaluate, self.every, self.path = evaluate, every, Path(path)
        self.start_cache = Path(start_cache) if start_cache else None
        self.points: list[dict[str, Any]] = []

    def measure(self, model, step: int) -> dict[str, Any]:
        """One point of the curves for ``model`` at ``step``."""
        was_training = model.training
        model.eval()
        with torch.no_grad():
            point = {"step": step, **self.evaluate(model)}
        model.train(was_training)
        self.points.append(point)
        results.write_json_atomic(self.path, self.points)
        return point

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.start_cache and self.start_cache.exists():
            self.points.append(json.loads(self.start_cache.read_text()))
            results.write_json_atomic(self.path, self.points)
            return
        point = self.measure(model, 0)
        if self.start_cache:
            results.write_json_atomic(self.start_cache, point)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self.measure(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.points[-1]["step"] != state.global_step:
            self.measure(model, state.global_step)


class LossLog(TrainerCallback):
    """Collects the trainer's logged loss and token accuracy as rows (``step``, ``loss``,
    ``token_accuracy``, ``time_s``: ``perf_counter`` at the log)."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.rows.append({"step": state.global_step, "loss": float(logs["loss"]),
                              "token_accuracy": float(logs.get("mean_token_accuracy", float("nan"))),
                              "time_s": time.perf_counter()})


class SnapshotCallback(TrainerCallback):
    """Saves the model being trained (with ``processor``) to ``path`` once, at step ``step``: the early
    RFT checkpoint whose rollouts notebook 04 distils."""

    def __init__(self, processor, step: int, path: str | Path):
        self.processor, self.step, self.path = processor, step, Path(path)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            model_factory.save_checkpoint(model, self.processor, self.path)


def evaluate_all(model, processor, jigsaw_test, prior_test_sets: dict, batch_size: int = 64,
                 max_new_tokens: int = 48) -> dict[str, Any]:
    """Held-out jigsaw ``jigsaw_acc`` / ``jigsaw_hit`` / ``jigsaw_fmt`` and the ``prior`` suite (per
    capability and ``mean``) of ``model``, by greedy decoding (the curves' measurement)."""
    prompts = [jigsaw.jigsaw_prompt(r, c) for r, c in zip(jigsaw_test["rows"], jigsaw_test["cols"])]
    completions = generation.generate_completions(model, processor, list(jigsaw_test["image"]), prompts,
                                                  max_new_tokens=max_new_tokens, batch_size=batch_size)
    scores = jigsaw.evaluate_jigsaw(completions, list(jigsaw_test["answer"]))
    prior = evaluation.evaluate_prior(model, processor, prior_test_sets, batch_size=batch_size)
    return {"jigsaw_acc": scores["acc"], "jigsaw_hit": scores["hit"], "jigsaw_fmt": scores["fmt"],
            "prior": prior}


def _common_args(cfg: dict[str, Any], output_dir: Path, seed: int, progress: bool = True) -> dict[str, Any]:
    return dict(
        output_dir=str(output_dir), max_steps=cfg["steps"], learning_rate=cfg["learning_rate"],
        per_device_train_batch_size=cfg["batch_size"], lr_scheduler_type=cfg["lr_scheduler"],
        warmup_steps=cfg["warmup_steps"], weight_decay=0.0, max_grad_norm=1.0, logging_steps=cfg["logging_steps"],
        save_strategy="no", report_to="none", seed=seed, data_seed=seed, bf16=False,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=not progress,
        # TRL turns activation (gradient) checkpointing on by default; it saves memory that paper-scale models need on a
        # GPU, but on CPU it only recomputes the forward pass of tiny models: off there (measured: SFT 1.29x
        # and GRPO 1.05x faster, bit-identical weights after 40 SFT and 20 GRPO steps).
        activation_checkpointing=torch.cuda.is_available(),
    )


def sft_config(cfg: dict[str, Any], output_dir: Path, seed: int, progress: bool = True, **extra: Any):
    """``trl.SFTConfig`` from a profile's ``sft`` (or ``pretrain``) section: completion-only loss, no
    truncation (design.md's settings for VLM SFT on CPU); ``extra`` are further SFTConfig fields."""
    from trl import SFTConfig

    return SFTConfig(**_common_args(cfg, output_dir, seed, progress), max_length=None, completion_only_loss=True,
                     **extra)


def grpo_config(cfg: dict[str, Any], output_dir: Path, seed: int, progress: bool = True):
    """``trl.GRPOConfig`` from a profile's ``rft`` section; every rollout is logged (``log_completions``)
    to ``<output_dir>/completions/*.parquet`` with its rewards and step."""
    from trl import GRPOConfig

    args = _common_args(cfg, output_dir, seed, progress) | {"logging_steps": 1}
    return GRPOConfig(
        **args, num_generations=cfg["num_generations"], max_completion_length=cfg["max_completion_length"],
        temperature=cfg["temperature"], beta=cfg["beta"], loss_type=cfg["loss_type"],
        log_completions=True, num_completions_to_print=0,
    )


def reward_functions(names: list[str]) -> list:
    """The jigsaw reward functions named in ``names`` (``hit``, ``acc``, ``fmt``)."""
    known = {f.__name__.removesuffix("_reward"): f for f in jigsaw.REWARD_FUNCS}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"rewards must be a non-empty list of {sorted(known)}, got {names!r}")
    return [known[n] for n in names]


def train(method: str, base_dir: str | Path, train_dataset, cfg: dict[str, Any], output_dir: str | Path,
          seed: int, callbacks: list[TrainerCallback] = (), save_model: bool = True,
          peft_config=None, reward_funcs: list | None = None, progress: bool = True) -> dict[str, Any]:
    """Fine-tune the checkpoint at ``base_dir`` with ``method`` (``"sft"`` or ``"rft"``), the image side
    frozen when ``cfg["freeze_vision"]`` (:func:`model.freeze_image_side`), and, with
    ``save_model``, save the result to ``<output_dir>/model``; ``peft_config``: LoRA through PEFT;
    ``reward_funcs``: GRPO's rewards (default: the jigsaw rewards named in ``cfg["rewards"]``). Returns
    (and writes to ``metrics.json``) ``steps`` and ``train_time_s``, plus the final point of a
    :class:`CurveCallback` among ``callbacks``."""
    from trl import GRPOTrainer, SFTTrainer

    if method not in ("sft", "rft"):
        raise ValueError(f"method must be 'sft' or 'rft', got {method!r}")
    output_dir = Path(output_dir)
    model, processor = model_factory.load_checkpoint(base_dir)
    model.train()
    callbacks = list(callbacks)
    with warnings.catch_warnings():
        # TRL (before every GRPO generation) and PEFT read transformers' deprecated
        # `is_gradient_checkpointing`, which warns each time: 300 warnings in a 300-step run's output
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        if method == "sft":
            trainer = SFTTrainer(model=model, args=sft_config(cfg, output_dir, seed, progress), train_dataset=train_dataset,
                                 processing_class=processor, callbacks=callbacks, peft_config=peft_config)
        else:
            # GRPO builds its reference model from the checkpoint's path when beta > 0 (design.md).
            trainer = GRPOTrainer(model=model_factory.trainable_source(base_dir),
                                  reward_funcs=reward_funcs or reward_functions(cfg["rewards"]),
                                  args=grpo_config(cfg, output_dir, seed, progress), train_dataset=train_dataset,
                                  processing_class=processor, callbacks=callbacks, peft_config=peft_config)
        if cfg.get("freeze_vision"):  # before train(), which builds the optimiser over trainable weights
            model_factory.freeze_image_side(trainer.model)
        t0 = time.perf_counter()
        trainer.train()
    metrics: dict[str, Any] = {"steps": trainer.state.global_step, "train_time_s": time.perf_counter() - t0}
    for callback in callbacks:
        if isinstance(callback, CurveCallback):
            metrics |= {k: v for k, v in callback.points[-1].items() if k != "step"}
    if save_model:
        model_factory.save_checkpoint(trainer.model, processor, output_dir / "model")
    results.write_json_atomic(output_dir / METRICS_FILE, metrics)
    return metrics


def load_curves(output_dir: str | Path) -> list[dict[str, Any]]:
    """The curve points a :class:`CurveCallback` wrote into ``output_dir``."""
    path = Path(output_dir) / CURVES_FILE
    if not path.exists():
        raise FileNotFoundError(f"no curves at {path}: the training stage has not run")
    return json.loads(path.read_text())


def run_dir_for(profile: str, corpus: str, learning_rate: float, seed: int) -> Path:
    """Where the fine-tuning run on ``corpus`` at ``learning_rate`` and ``seed`` keeps its outputs."""
    return profiles.run_dir(profile) / "finetune" / corpus / f"lr{learning_rate:g}" / f"seed{seed}"


def _start(profile: str, cfg: dict[str, Any], seed: int, jigsaw_test, prior_test_sets: dict) -> tuple[Path, str]:
    """The checkpoint a run of section ``cfg`` starts from and its stage fingerprint: the base, or its
    cold start's model when ``cold_start_steps`` > 0 (trained here when missing)."""
    base_dir = model_factory.base_checkpoint_dir(profile)
    if cfg.get("cold_start_steps", 0) == 0:
        return base_dir, stages.stage_fingerprint(base_dir, "00_base_model", profile)
    cold = cold_start(profile, cfg["cold_start_steps"], seed, jigsaw_test, prior_test_sets,
                      cfg["cold_start_answers"], cfg["cold_start_replay"], cfg["cold_start_think"])
    return Path(cold["dir"]) / "model", stages.stage_fingerprint(cold["dir"], "03_rft", profile)


def start_checkpoint(profile: str, method: str, seed: int, **overrides: Any) -> Path:
    """Where the model a fine-tuning run of ``method`` (with ``overrides`` of its section) starts from is
    saved: the base, or the cold start's model (trained here when missing, with the run's evaluation sets)."""
    cfg = profiles.section(profile, method, **overrides)
    sets = evaluation_sets(profile, method) if cfg.get("cold_start_steps", 0) > 0 else (None, {})
    return _start(profile, cfg, seed, *sets)[0]


def _plan(profile: str, method: str, corpus: str, seed: int, jigsaw_test, prior_test_sets: dict,
          inputs: dict[str, str] | None, keep_model: bool, overrides: dict[str, Any]):
    """What a :func:`finetune` run starts from and the parameters that identify it: ``(cfg, base_dir,
    start, out, params)``. A cold start the run needs is trained here when it is missing."""
    cfg = profiles.section(profile, method, **overrides)
    base_dir, start = _start(profile, cfg, seed, jigsaw_test, prior_test_sets)
    out = run_dir_for(profile, corpus, cfg["learning_rate"], seed)
    params = {"method": method, "corpus": corpus, "cfg": cfg, "seed": seed, "keep_model": keep_model,
              "jigsaw": profiles.section(profile, "jigsaw"), "inputs": inputs or {}, "base": start}
    return cfg, base_dir, start, out, params


def finished_run(profile: str, method: str, corpus: str, seed: int, jigsaw_test, prior_test_sets: dict,
                 inputs: dict[str, str] | None = None, keep_model: bool = False,
                 **overrides: Any) -> dict[str, Any] | None:
    """What :func:`finetune` with these arguments returns when that run is already done, else ``None``
    (nothing is trained, except a missing cold start)."""
    out, params = _plan(profile, method, corpus, seed, jigsaw_test, prior_test_sets, inputs, keep_model, overrides)[3:]
    done = stages.cached(out, params)
    return None if done is None else done | {"curves": load_curves(out), "dir": str(out)}


def finetune(profile: str, method: str, corpus: str, train_dataset, jigsaw_test, prior_test_sets: dict,
             seed: int, inputs: dict[str, str] | None = None, keep_model: bool = False,
             **overrides: Any) -> dict[str, Any]:
    """One cached fine-tuning run of the profile's base (or of its cold start: :func:`cold_start`, when
    the section's ``cold_start_steps`` > 0): ``method`` (``"sft"`` / ``"rft"``) on the
    ``corpus`` (its name: ``gt``, ``teacher``, ...) with the profile's section ``method`` and
    ``overrides`` (e.g. ``learning_rate``). ``inputs`` names the fingerprints of the stages the corpus
    came from. Reused when nothing changed; the model is kept only with ``keep_model`` (then also a
    snapshot at step ``snapshot_step`` when the section has one > 0, in ``<dir>/snapshot``).

    Returns ``metrics.json``'s content plus ``curves`` and ``dir``."""
    import shutil

    cfg, base_dir, start, out, params = _plan(profile, method, corpus, seed, jigsaw_test, prior_test_sets, inputs,
                                              keep_model, overrides)
    done = stages.cached(out, params)
    if done is None:
        if out.exists():
            shutil.rmtree(out)  # a run killed half-way: start it again
        processor = model_factory.load_checkpoint(base_dir)[1]
        scored_on = {"start": start, "jigsaw": params["jigsaw"], "eval_test_size": len(jigsaw_test),
                     "world": profiles.section(profile, "world"), "benchmarks": profiles.section(profile, "benchmarks")}
        start_cache = profiles.run_dir(profile) / "finetune" / "start_points" / f"{stages.fingerprint(scored_on)}.json"
        evaluate = partial(evaluate_all, processor=processor, jigsaw_test=jigsaw_test, prior_test_sets=prior_test_sets,
                           max_new_tokens=params["jigsaw"]["max_new_tokens"], batch_size=scored_on["world"]["eval_batch_size"])
        callbacks = [CurveCallback(evaluate, cfg["eval_every"], out / CURVES_FILE, start_cache=start_cache)]
        if keep_model and cfg.get("snapshot_step", 0) > 0:
            callbacks.append(SnapshotCallback(processor, cfg["snapshot_step"], out / "snapshot"))
        train(method, base_dir, train_dataset, cfg, out, seed, callbacks, save_model=keep_model,
              peft_config=qwen.lora_config(profiles.section(profile, "model")))
        done = json.loads((out / METRICS_FILE).read_text())
        stages.mark_done(out, params, done)
    return done | {"curves": load_curves(out), "dir": str(out)}


def cold_start_corpus(profile: str, answers: str, replay: float, seed: int, think: str = "empty"):
    """The SFT data of a cold start: every training puzzle with its ground-truth answer
    (``answers="truth"``) or with a uniformly random permutation drawn with ``seed`` (``"random"``: the
    answer format without the solution), after an empty think block (``think="empty"``) or one that tells
    the same answer tile by tile in the world's words (``"tiles"``: :func:`jigsaw.tile_trace`); plus, with
    ``replay`` > 0, samples of the base's own pretraining corpus (:func:`world.build_train_set` with ``run.base_seed``) making up that
    share of the corpus, shuffled in."""
    import datasets

    profiles.section(profile, "rft", cold_start_answers=answers, cold_start_replay=replay, cold_start_think=think,
                     cold_start_steps=0)  # the knobs' checks (GRPO's room for the completions is the run's)
    train = jigsaw.load_or_build_splits(profile)["train"]
    rng = np.random.default_rng(seed)
    targets = (train["answer"] if answers == "truth"
               else [jigsaw.random_answer(rng, r * c) for r, c in zip(train["rows"], train["cols"])])
    corpus = jigsaw.to_sft(train, [jigsaw.cold_start_completion(t, think) for t in targets]).select_columns(
        ["prompt", "completion", "images"])
    n_replay = round(len(corpus) * replay / (1 - replay))
    if n_replay == 0:
        return corpus
    pretraining = world.build_train_set(profile, profiles.section(profile, "run")["base_seed"])
    picked = [pretraining[i] for i in rng.choice(len(pretraining), size=min(n_replay, len(pretraining)), replace=False)]
    columns = world.to_conversational(picked)
    columns["completion"] = [[{"role": "assistant", "content": s["completion"]}] for s in picked]
    replayed = datasets.Dataset.from_dict(columns).cast(corpus.features)
    return datasets.concatenate_datasets([corpus, replayed]).shuffle(seed=seed)


def cold_start_name(steps: int, answers: str = "truth", replay: float = 0.0, think: str = "empty") -> str:
    """The corpus name (and run folder) of a cold start: ``cold_start20``, ``cold_start100_random_replay0.5``,
    ``cold_start100_random_replay0.5_tiles``."""
    return (f"cold_start{steps}" + ("" if answers == "truth" else f"_{answers}") + (f"_replay{replay:g}" if replay else "")
            + ("" if think == "empty" else f"_{think}"))


def cold_start(profile: str, steps: int, seed: int, jigsaw_test, prior_test_sets: dict, answers: str = "truth",
               replay: float = 0.0, think: str = "empty") -> dict[str, Any]:
    """The cached cold start of a cold-started RFT run (``rft.cold_start_steps`` > 0; not the paper's
    recipe): ``steps`` steps of SFT with the profile's ``sft`` recipe on :func:`cold_start_corpus`, so
    that the policy writes answers in the jigsaw's format before GRPO samples from it. With random
    answers and replay it is a *format warm-up*: it teaches the format but not the solution, while the
    replayed pretraining samples hold prior knowledge. Its model is in ``<dir>/model``; its curves show
    what the cold start alone did to prior knowledge and jigsaw accuracy."""
    corpus = cold_start_corpus(profile, answers, replay, seed, think)
    return finetune(profile, "sft", cold_start_name(steps, answers, replay, think), corpus, jigsaw_test, prior_test_sets,
                    seed, keep_model=True, steps=steps, eval_every=steps)


def evaluation_sets(profile: str, method: str) -> tuple[Any, dict]:
    """The held-out sets a fine-tuning curve is measured on: the first ``eval_test_size`` puzzles of the
    jigsaw test split and the profile's prior-knowledge yardstick (:func:`evaluation.prior_test_sets`)."""
    test = jigsaw.load_or_build_splits(profile)["test"]
    n = min(profiles.section(profile, method)["eval_test_size"], len(test))
    return test.select(range(n)), evaluation.prior_test_sets(profile)


def run_method(profile: str, method: str, corpus: str, data, seeds: list[int], learning_rate: float,
               lr_sweep: list[float], keep_model: bool = False, **overrides: Any) -> dict[str, Any]:
    """The main runs (one per seed at ``learning_rate``) and the learning-rate sweep (first seed, each
    rate of ``lr_sweep``) of one method on one corpus: :func:`run_methods` for ``{corpus: data}``.

    Returns ``{"main": {seed: run}, "sweep": {lr: run}}`` (runs as :func:`finetune` returns them)."""
    return run_methods(profile, method, {corpus: data}, seeds, learning_rate, lr_sweep, keep_model, **overrides)[corpus]


def run_methods(profile: str, method: str, data: dict[str, Any], seeds: list[int], learning_rate: float,
                lr_sweep: list[float], keep_model: bool = False, **overrides: Any) -> dict[str, dict[str, Any]]:
    """For each corpus of ``data``, the main runs (one per seed at ``learning_rate``) and the learning-rate
    sweep (first seed, each rate of ``lr_sweep``) of ``method``; cached run by run. ``data`` maps a corpus
    name to its training dataset, or to a function of the seed returning ``(dataset, inputs)``
    (``inputs``: fingerprints of the stages that made it) for corpora that differ per seed.

    Runs that are not cached are trained ``run.workers`` at a time (:func:`train_runs`). The sweep's other
    rates are measured at the start and the end only (their curves are not drawn, the frontier needs
    their final point), which saves their intermediate evaluations.

    Returns ``{corpus: {"main": {seed: run}, "sweep": {lr: run}}}`` and writes each corpus's runs to
    :func:`method_results_path`."""
    recipe = profiles.section(profile, method, learning_rate=learning_rate, **overrides)
    jobs: dict[tuple, dict[str, Any]] = {}
    for corpus, source in data.items():
        for seed in seeds:
            jobs[(corpus, "main", seed)] = {"corpus": corpus, "source": source, "seed": seed, "keep_model": keep_model,
                                            "knobs": overrides | {"learning_rate": learning_rate}}
        for lr in lr_sweep:
            if lr != learning_rate:
                jobs[(corpus, "sweep", lr)] = {"corpus": corpus, "source": source, "seed": seeds[0], "keep_model": False,
                                               "knobs": overrides | sweep_knobs(recipe, lr)}
    done = train_runs(profile, method, jobs)
    out: dict[str, dict[str, Any]] = {}
    for corpus in data:
        main = {seed: done[(corpus, "main", seed)] for seed in seeds}
        sweep = {lr: main[seeds[0]] if lr == learning_rate else done[(corpus, "sweep", lr)] for lr in lr_sweep}
        out[corpus] = {"main": main, "sweep": sweep}
        _record_runs(profile, corpus, out[corpus])
    return out


def _record_runs(profile: str, corpus: str, runs: dict[str, Any]) -> None:
    """Write ``runs`` to :func:`method_results_path`; when the main runs recorded there are these very
    runs, the sweep rates recorded with them are kept (notebook 04 reads notebook 02's main ``gt`` runs
    back without their sweep)."""
    path = method_results_path(profile, corpus)
    if path.exists():
        before = load_method_results(profile, corpus, made_by="")
        if json.loads(json.dumps(before["main"])) == json.loads(json.dumps(runs["main"])):
            runs = runs | {"sweep": dict(sorted((before["sweep"] | runs["sweep"]).items()))}
    results.write_json_atomic(path, runs)


def train_runs(profile: str, method: str, jobs: dict[Any, dict[str, Any]], progress: bool = True) -> dict[Any, dict[str, Any]]:
    """The :func:`finetune` runs of ``jobs`` (``{key: {"corpus", "source", "seed", "keep_model", "knobs"}}``,
    ``source`` as in :func:`run_methods`), by key. Finished runs are read back; the others are trained one
    at a time in this process when the profile's ``run.workers`` is 1, else by :func:`run_in_workers`, each
    trainer's output in ``<run dir>.log``."""
    jigsaw_test, prior_tests = evaluation_sets(profile, method)
    done: dict[Any, dict[str, Any]] = {}
    pending: dict[Any, FinetuneJob] = {}
    for key, job in jobs.items():
        source = job["source"]
        dataset, inputs = source(job["seed"]) if callable(source) else (source, {})
        run = finished_run(profile, method, job["corpus"], job["seed"], jigsaw_test, prior_tests, inputs=inputs,
                           keep_model=job["keep_model"], **job["knobs"])
        if run is not None:
            done[key] = run
        else:
            pending[key] = FinetuneJob(profile, method, job["corpus"], dataset, job["seed"], inputs,
                                       job["keep_model"], job["knobs"])
    workers = profiles.section(profile, "run")["workers"]
    if workers == 1:
        for key, pending_job in pending.items():
            done[key] = pending_job.run(jigsaw_test, prior_tests)
    else:
        done |= run_in_workers({key: (partial(_run_with_own_sets, job), job.log_path()) for key, job in pending.items()},
                               workers, f"{method} runs", progress)
    return done


def run_in_workers(calls: dict[Any, tuple[Callable[[], Any], Path]], workers: int, desc: str,
                   progress: bool = True) -> dict[Any, Any]:
    """``{key: call()}`` for the ``calls`` (``{key: (call, log)}``, each ``call`` picklable: a module-level
    function or a partial of one), ``workers`` at a time, each in a spawned worker process on one thread
    (so a run's numbers do not depend on which other runs were cached) whose output (step logs, progress
    bars, warnings) goes to its ``log`` rather than to the notebook, which would otherwise receive it from
    the shared terminal."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    if not calls:
        return {}
    done = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_call_on_one_thread, call, log): key for key, (call, log) in calls.items()}
        for future in tqdm(as_completed(futures), total=len(futures), disable=not progress,
                           desc=f"{desc}, {workers} at a time"):
            done[futures[future]] = future.result()
    return done


@dataclass(frozen=True)
class FinetuneJob:
    """The arguments of one :func:`finetune` run that :func:`train_runs` has to train."""

    profile: str
    method: str
    corpus: str
    dataset: Any
    seed: int
    inputs: dict[str, Any]
    keep_model: bool
    knobs: dict[str, Any]

    def run(self, jigsaw_test, prior_tests: dict) -> dict[str, Any]:
        """Train the run in this process and return :func:`finetune`'s result."""
        return finetune(self.profile, self.method, self.corpus, self.dataset, jigsaw_test, prior_tests, self.seed,
                        inputs=self.inputs, keep_model=self.keep_model, **self.knobs)

    def log_path(self) -> Path:
        """Where the run's trainer output goes when it is trained in a worker process."""
        learning_rate = profiles.section(self.profile, self.method, **self.knobs)["learning_rate"]
        return run_dir_for(self.profile, self.corpus, learning_rate, self.seed).with_suffix(".log")


def _run_with_own_sets(job: FinetuneJob) -> dict[str, Any]:
    """A :func:`train_runs` job in a worker process, with its own copy of the evaluation sets."""
    return job.run(*evaluation_sets(job.profile, job.method))


def _call_on_one_thread(call: Callable[[], Any], log: Path) -> Any:
    """``call()`` in a :func:`run_in_workers` process: one thread, output to ``log``."""
    import os
    import sys

    log.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    with open(log, "w") as out:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        return call()


def sweep_knobs(recipe: dict[str, Any], learning_rate: float) -> dict[str, Any]:
    """The knobs of a sweep run at ``learning_rate`` of ``recipe`` (a profile section with its main rate):
    the rate, and at any rate but the main one a single evaluation at the end (``eval_every`` = ``steps``:
    such a run's curve is not drawn, the forgetting frontier reads its final point)."""
    end_only = {} if learning_rate == recipe["learning_rate"] else {"eval_every": recipe["steps"]}
    return {"learning_rate": learning_rate} | end_only


def method_results_path(profile: str, corpus: str) -> Path:
    """Where :func:`run_method` writes all runs of one corpus (main and sweep, with their curves)."""
    return profiles.run_dir(profile) / "finetune" / corpus / "runs.json"


def load_method_results(profile: str, corpus: str, made_by: str) -> dict[str, Any]:
    """The runs :func:`run_method` wrote for ``corpus`` (JSON keys become numbers again); ``made_by``
    names the notebook that makes them (e.g. ``"02_sft"``), for the error when they are missing."""
    path = method_results_path(profile, corpus)
    if not path.exists():
        raise profiles.missing_artifact(f"{corpus!r} runs", path, made_by, profile)
    raw = json.loads(path.read_text())
    return {"main": {int(k): v for k, v in raw["main"].items()},
            "sweep": {float(k): v for k, v in raw["sweep"].items()}}


def steps_to_reach(points: list[dict[str, Any]], accuracy: float, metric: str = "jigsaw_acc") -> int | None:
    """The first curve step whose ``metric`` is at least ``accuracy`` (``None`` if never reached)."""
    return next((p["step"] for p in points if p[metric] >= accuracy), None)


def summary_metrics(run: dict[str, Any]) -> dict[str, Any]:
    """A run's numbers in the shape of the results contract's ``methods`` entries."""
    return {k: run[k] for k in ("jigsaw_acc", "jigsaw_hit", "steps", "train_time_s", "prior")}


def final_table(runs: dict[Any, dict[str, Any]], key: str = "seed",
                base_prior: dict[str, float] | None = None) -> "pd.DataFrame":
    """One row per run (indexed by ``key``): final jigsaw accuracy, prior accuracy per capability and
    the change of its mean from ``base_prior`` (:func:`results.base_prior`; default: the curve's step 0,
    which is the base unless the run had a cold start), steps and training time."""
    import pandas as pd

    rows = []
    for name, run in runs.items():
        final = run["prior"]
        start = base_prior or run["curves"][0]["prior"]
        row = {key: name, "jigsaw exact": run["jigsaw_acc"], "jigsaw hit": run["jigsaw_hit"]}
        row |= {f"prior {cap}": acc for cap, acc in final.items()}
        row |= {"prior mean change": final["mean"] - start["mean"], "steps": run["steps"],
                "train time (s)": run["train_time_s"]}
        rows.append(row)
    return pd.DataFrame(rows).set_index(key)


def steps_to_reach_table(methods: dict[str, dict[int, dict[str, Any]]], accuracy: float) -> "pd.DataFrame":
    """Per method (``{name: {seed: run}}``): the steps each seed's curve needed to reach ``accuracy``
    held-out exact jigsaw accuracy (NaN: not reached within the run), their mean and the final accuracy."""
    import pandas as pd

    rows = []
    for name, runs in methods.items():
        reached = [steps_to_reach(r["curves"], accuracy) for r in runs.values()]
        rows.append({"method": name, "accuracy to reach": accuracy,
                     **{f"steps (seed {s})": x for s, x in zip(runs, reached)},
                     "mean steps": pd.Series(reached, dtype=float).mean(),
                     "seeds that reached it": sum(x is not None for x in reached),
                     "final exact (mean)": sum(r["jigsaw_acc"] for r in runs.values()) / len(runs)})
    return pd.DataFrame(rows).set_index("method")


def frontier_frame(sweeps: dict[str, dict[float, dict[str, Any]]], accuracy: str = "jigsaw_acc") -> "pd.DataFrame":
    """One row per sweep run (``{method: {learning_rate: run}}``): method, learning rate, final new-task
    exact accuracy (the runs' ``accuracy`` key: ``jigsaw_acc``, or the text task's ``task_acc``; column
    ``task_acc``) and mean prior accuracy."""
    import pandas as pd

    return pd.DataFrame([{"method": name, "learning rate": f"{lr:g}", "task_acc": run[accuracy],
                          "prior_mean": run["prior"]["mean"]}
                         for name, sweep in sweeps.items() for lr, run in sweep.items()])


def main_table(methods: dict[str, dict[int, dict[str, Any]]], accuracy: str = "jigsaw_acc",
               label: str = "jigsaw exact (%)", base_prior: dict[str, float] | None = None) -> "pd.DataFrame":
    """The paper's main table from our runs: per method (``{name: {seed: run}}``) the steps, final
    new-task accuracy (the runs' ``accuracy`` key, as column ``label``) and the change of each prior
    capability from ``base_prior`` (:func:`results.base_prior`; default: each run's curve at step 0, the
    base unless the run had a cold start) in points (x100), each as ``mean +- sd`` over seeds."""
    import numpy as np
    import pandas as pd

    def fmt(values: list[float], scale: float = 1.0) -> str:
        v = np.asarray(values, dtype=float) * scale
        return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"

    rows = []
    for name, runs in methods.items():
        runs = list(runs.values())
        row = {"method": name, "steps": fmt([r["steps"] for r in runs]),
               label: fmt([r[accuracy] for r in runs], 100)}
        for cap in runs[0]["prior"]:
            row[f"Δ {cap}"] = fmt([r["prior"][cap] - (base_prior or r["curves"][0]["prior"])[cap] for r in runs], 100)
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")
