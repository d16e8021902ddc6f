"""Fine-tuning runs of notebooks 02-04: each one planned once from the run's configuration, cached on
disk, and trained in this process or in worker processes; the main runs and learning-rate sweeps of a
method.

A run's folder is ``runs/<profile>/finetune/<corpus>/lr<rate>/seed<k>-<key>``, ``key`` being its cache
fingerprint (:mod:`jrft_utils.stages`) of everything that decides it: the method's knobs, the seed, the
jigsaw's knobs, the fingerprints of the stages its data came from and of the checkpoint it starts from
(:class:`Start`). A run whose fingerprint is unchanged is read back instead of trained, and a run with
other knobs (an exercise's) gets a folder of its own instead of replacing it. The list of a method's
runs (``runs.json``) goes to the configuration's :attr:`~jrft_utils.profiles.Config.out_dir`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from jrft_utils import distributed, divergence, evaluation, generation, jigsaw, qwen, results, stages, trainers
from jrft_utils import modeling
from jrft_utils.profiles import Config


@dataclass(frozen=True)
class Start:
    """The checkpoint a run starts from and the fingerprint of the stage that made it."""

    dir: Path
    fingerprint: str


def base_start(config: Config) -> Start:
    """The pretrained base of notebook 00 (the start itself when ``start.steps`` is 0: :mod:`jrft_utils.warmup`)."""
    return Start(config.base_dir, stages.stage_fingerprint(config.base_dir, "00_base_model", config.profile))


def jigsaw_splits(config: Config):
    """The profile's jigsaw splits (built and saved on first use)."""
    return jigsaw.load_or_build_splits(config["jigsaw"], config.keyed_dir(config.data_dir, "jigsaw",
                                                                         lambda c: c.sections["jigsaw"]))


def evaluation_sets(config: Config, method: str) -> tuple[Any, Any]:
    """The held-out sets a fine-tuning curve of ``method`` (``"sft"`` / ``"rft"``) is measured on: the
    first ``eval_test_size`` puzzles of the jigsaw test split and the prior-knowledge yardstick
    (:func:`evaluation.prior_test_sets`)."""
    test = jigsaw_splits(config)["test"]
    n = min(config[method]["eval_test_size"], len(test))
    return test.select(range(n)), evaluation.prior_test_sets(config)


def evaluate_all(model, processor, jigsaw_test, prior_test_sets, batch_size: int = 64,
                 max_new_tokens: int = 48, kl: dict[str, Any] | None = None,
                 prior_subset: int | None = None) -> dict[str, Any]:
    """Held-out jigsaw ``jigsaw_acc`` / ``jigsaw_hit`` / ``jigsaw_fmt`` and the ``prior`` suite (per
    capability and ``mean``) of ``model``, by greedy decoding (the curves' measurement); with ``kl`` (the
    start's samples, :func:`divergence.load_or_sample`) also the forward KL from the start
    (:func:`divergence.measure_all`); with ``prior_subset`` also ``prior_subset``, the suite's accuracies on
    the first ``prior_subset`` questions of each capability, read off the same answers (what
    :func:`evaluate_between` compares its subset with)."""
    images, prompts = _jigsaw_prompts(jigsaw_test)
    completions = generation.generate_completions(model, processor, images, prompts,
                                                  max_new_tokens=max_new_tokens, batch_size=batch_size)
    scores = jigsaw.evaluate_jigsaw(completions, list(jigsaw_test["answer"]))
    prior = evaluation.evaluate_prior(model, processor, prior_test_sets, batch_size=batch_size,
                                      return_completions=prior_subset is not None)
    point = {"jigsaw_acc": scores["acc"], "jigsaw_hit": scores["hit"], "jigsaw_fmt": scores["fmt"]}
    if prior_subset is not None:
        rows = prior.pop("completions")
        prior.pop("eval_time_s")
        point["prior_subset"] = evaluation.accuracies({cap: r[:prior_subset] for cap, r in rows.items()})
    return point | {"prior": prior} | (divergence.measure_all(kl, model, processor) if kl else {})


def evaluate_between(model, start_point: dict[str, Any], processor, jigsaw_test, prior_test_sets, test_size: int,
                     prior_subset: int, batch_size: int = 64, max_new_tokens: int = 48,
                     kl: dict[str, Any] | None = None) -> dict[str, Any]:
    """An intermediate curve point, scored on fixed subsets: the first ``test_size`` puzzles of
    ``jigsaw_test`` and the first ``prior_subset`` questions of each capability. Its ``prior`` is the
    estimate on the whole sets of :func:`evaluation.shifted`, from the subset's accuracies (kept as
    ``prior_subset``) and ``start_point``'s (an :func:`evaluate_all` point with ``prior_subset``);
    ``subset`` is ``True``. The forward KL is measured as at every point."""
    point = evaluate_all(model, processor, jigsaw_test.select(range(min(test_size, len(jigsaw_test)))),
                         evaluation.first_of_each(prior_test_sets, prior_subset), batch_size, max_new_tokens, kl)
    return point | {"prior_subset": point["prior"], "subset": True,
                    "prior": evaluation.shifted(point["prior"], start_point["prior_subset"], start_point["prior"])}


@dataclass(frozen=True)
class Job:
    """One fine-tuning run, planned by :func:`plan` in the main process: what it trains, from where, with
    which knobs, and where it goes. Picklable, so that a worker process can train it."""

    method: str  # "sft" or "rft"
    corpus: str
    dataset: Any
    seed: int
    cfg: dict[str, Any]  # the method's section with this run's knobs
    start: Start
    out: Path
    params: dict[str, Any]  # what the run's cache fingerprint is made of
    scoring: dict[str, Any]  # the sections the curves are scored with (jigsaw, world, benchmarks, kl)
    lora: dict[str, Any]  # the model section (LoRA adapters when lora_r > 0)
    keep_model: bool
    start_points: Path  # the folder of cached step-0 points
    between: tuple[int, int] | None = None  # puzzles, questions a capability of the points between the first and last
    launch: distributed.Launch | None = None  # train in several processes (run.processes > 1)

    def finished(self) -> dict[str, Any] | None:
        """What :func:`execute` returns, when the run is already done; else ``None``."""
        done = stages.cached(self.out, self.params)
        return None if done is None else done | {"curves": trainers.load_curves(self.out), "dir": str(self.out)}


def plan(config: Config, method: str, corpus: str, dataset, inputs: dict[str, str] | None, *, seed: int,
         start: Start, keep_model: bool = False, **knobs: Any) -> Job:
    """The :class:`Job` that fine-tunes ``start`` with ``method`` on ``dataset`` (the corpus named
    ``corpus``) for ``seed``, with ``knobs`` applied to the method's section of ``config``; ``inputs``
    names the fingerprints of the stages the corpus came from."""
    cfg = config.with_knobs(method, **knobs)[method]
    between = subset_sizes(config, cfg)
    params = {"method": method, "corpus": corpus, "cfg": run_recipe(cfg), "seed": seed, "keep_model": keep_model,
              "jigsaw": config["jigsaw"], "inputs": inputs or {}, "base": start.fingerprint, "kl": config["kl"]}
    params |= {"between": list(between)} if between else {}
    key = f"seed{seed}-{stages.fingerprint(params)[:8]}"
    out = config.run_dir / "finetune" / corpus / f"lr{cfg['learning_rate']:g}" / key
    return Job(method, corpus, dataset, seed, cfg, start, out, params,
               {"jigsaw": config["jigsaw"], "world": config["world"], "benchmarks": config["benchmarks"],
                "kl": config["kl"]},
               config["model"], keep_model, config.run_dir / "finetune" / "start_points", between,
               distributed.settings(config["run"]))


# the knobs that decide a run only when they make its intermediate points use subsets (plan: "between")
_SUBSET_KNOBS = ("between_test_size", "between_prior_size")


def run_recipe(cfg: dict[str, Any]) -> dict[str, Any]:
    """What of a method's section decides one run (its cache fingerprint): all but ``lr_sweep``, since the
    sweep's other rates do not change a run, and the subset sizes, which :func:`plan` adds only where they
    subset (a run scored on the whole sets is the same run whatever they say)."""
    return {k: v for k, v in cfg.items() if k != "lr_sweep" and k not in _SUBSET_KNOBS}


def subset_sizes(config: Config, cfg: dict[str, Any]) -> tuple[int, int] | None:
    """``(puzzles, questions per capability)`` the points between a run's first and last are scored on (the
    method section ``cfg``'s ``between_test_size`` and ``between_prior_size``), or ``None`` when they are
    the whole sets of :func:`evaluation_sets` or the yardstick is the paper's benchmarks (scored whole)."""
    if config["benchmarks"]["names"]:
        return None
    test = min(cfg["eval_test_size"], config["jigsaw"]["test_size"])
    questions = config["world"]["test_per_capability"]
    sizes = min(cfg["between_test_size"], test), min(cfg["between_prior_size"], questions)
    return None if sizes == (test, questions) else sizes


def execute(job: Job, jigsaw_test, prior_test_sets) -> dict[str, Any]:
    """Train ``job`` unless it is done, measuring its curves on the given sets; returns ``metrics.json``'s
    content plus ``curves`` and ``dir``. The model is kept only with ``keep_model`` (then also a
    snapshot at step ``snapshot_step`` when the section has one > 0, in ``<dir>/snapshot``)."""
    done = job.finished()
    if done is not None:
        return done
    if job.out.exists():
        shutil.rmtree(job.out)  # a run killed half-way: start it again
    processor = modeling.load_checkpoint(job.start.dir)[1]
    scored_on = {"start": job.start.fingerprint, "jigsaw": job.scoring["jigsaw"], "eval_test_size": len(jigsaw_test),
                 "world": job.scoring["world"], "benchmarks": job.scoring["benchmarks"], "kl": job.scoring["kl"]}
    kl = divergence.load_or_sample(job.start_points / f"kl-{stages.fingerprint(scored_on)}.pt", job.start.dir,
                                   job.scoring["kl"], _jigsaw_prompts(jigsaw_test),
                                   divergence.questions(prior_test_sets, with_images=True))
    scoring = dict(processor=processor, jigsaw_test=jigsaw_test, prior_test_sets=prior_test_sets, kl=kl,
                   max_new_tokens=job.scoring["jigsaw"]["max_new_tokens"], batch_size=job.scoring["world"]["eval_batch_size"])
    puzzles, questions = job.between or (None, None)
    evaluate = partial(evaluate_all, **scoring, prior_subset=questions)
    between = job.between and partial(evaluate_between, **scoring, test_size=puzzles, prior_subset=questions)
    start_cache = job.start_points / f"{stages.fingerprint(scored_on | ({'prior_subset': questions} if job.between else {}))}.json"
    callbacks = [trainers.CurveCallback(evaluate, job.cfg["eval_every"], job.out / trainers.CURVES_FILE,
                                        start_cache=start_cache, between=between)]
    if job.keep_model and job.cfg.get("snapshot_step", 0) > 0:
        callbacks.append(trainers.SnapshotCallback(processor, job.cfg["snapshot_step"], job.out / "snapshot"))
    trainers.train(job.method, job.start.dir, job.dataset, job.cfg, job.out, job.seed, callbacks,
                   save_model=job.keep_model, peft_config=qwen.lora_config(job.lora), launch=job.launch)
    metrics = json.loads((job.out / trainers.METRICS_FILE).read_text())
    stages.mark_done(job.out, job.params, metrics)
    return job.finished()


def _jigsaw_prompts(puzzles) -> divergence.Prompts:
    return list(puzzles["image"]), [jigsaw.jigsaw_prompt(r, c) for r, c in zip(puzzles["rows"], puzzles["cols"])]


def finetune(config: Config, method: str, corpus: str, dataset, seed: int, sets: tuple[Any, Any], start: Start,
             inputs: dict[str, str] | None = None, keep_model: bool = False, **knobs: Any) -> dict[str, Any]:
    """One cached fine-tuning run of ``start`` (:func:`jrft_utils.warmup.start`) in this process
    (:func:`plan`, then :func:`execute` on ``sets``, the ``(jigsaw_test, prior_test_sets)`` of
    :func:`evaluation_sets`)."""
    job = plan(config, method, corpus, dataset, inputs, seed=seed, start=start, keep_model=keep_model, **knobs)
    return execute(job, *sets)


def run_methods(config: Config, method: str, data: dict[str, Any], seeds: list[int], start: Start,
                keep_model: bool = False, sweep: bool = True) -> dict[str, dict[str, Any]]:
    """For each corpus of ``data``, the main runs (one per seed at the section's ``learning_rate``) and,
    with ``sweep``, the learning-rate sweep (first seed, each rate of the section's ``lr_sweep``) of
    ``method``, every run fine-tuning ``start`` (:func:`jrft_utils.warmup.start`); cached run by run.
    ``data`` maps a corpus name to its training dataset, or to a function of the seed returning
    ``(dataset, inputs)`` (``inputs``: fingerprints of the stages that made it) for corpora that differ per
    seed. Every run is measured every ``eval_every`` steps: the forgetting frontier reads all its points.

    Runs that are not cached are trained ``run.workers`` at a time (:func:`train_jobs`).

    Returns ``{corpus: {"main": {seed: run}, "sweep": {lr: run}}}`` and writes each corpus's runs to
    :func:`method_results_path`."""
    recipe = config[method]
    learning_rate = recipe["learning_rate"]
    rates = recipe["lr_sweep"] if sweep else [learning_rate]
    jobs: dict[tuple, Job] = {}
    for corpus, source in data.items():
        built = {seed: source(seed) if callable(source) else (source, {}) for seed in seeds}
        for seed in seeds:
            jobs[(corpus, "main", seed)] = plan(config, method, corpus, *built[seed], keep_model=keep_model,
                                                seed=seed, start=start)
        for lr in rates:
            if lr != learning_rate:
                jobs[(corpus, "sweep", lr)] = plan(config, method, corpus, *built[seeds[0]], seed=seeds[0],
                                                   start=start, learning_rate=lr)
    done = train_jobs(config, jobs)
    out: dict[str, dict[str, Any]] = {}
    for corpus in data:
        main = {seed: done[(corpus, "main", seed)] for seed in seeds}
        out[corpus] = {"main": main, "sweep": {lr: main[seeds[0]] if lr == learning_rate else done[(corpus, "sweep", lr)]
                                               for lr in rates}}
        _record_runs(config, corpus, out[corpus])
    return out


def run_method(config: Config, method: str, corpus: str, data, seeds: list[int], start: Start,
               keep_model: bool = False, sweep: bool = True) -> dict[str, Any]:
    """:func:`run_methods` for one corpus: ``{"main": {seed: run}, "sweep": {lr: run}}``."""
    return run_methods(config, method, {corpus: data}, seeds, start, keep_model, sweep)[corpus]


def _record_runs(config: Config, corpus: str, runs: dict[str, Any]) -> None:
    """Write ``runs`` to :func:`method_results_path`; when the main runs recorded there are these very
    runs, the sweep rates recorded with them are kept (notebook 04 reads notebook 02's main ``gt`` runs
    back without their sweep)."""
    path = method_results_path(config, corpus)
    if path.exists():
        before = load_method_results(config, corpus, made_by="")
        if json.loads(json.dumps(before["main"])) == json.loads(json.dumps(runs["main"])):
            runs = runs | {"sweep": dict(sorted((before["sweep"] | runs["sweep"]).items()))}
    results.write_json_atomic(path, runs)


def train_jobs(config: Config, jobs: dict[Any, Job], progress: bool = True) -> dict[Any, dict[str, Any]]:
    """The results of ``jobs`` by key. Finished runs are read back; the others are trained one at a time in
    this process when ``run.workers`` is 1, else by :func:`run_in_workers`, each trainer's output in
    ``<run dir>.log``, each worker with its own copy of the evaluation sets."""
    done = {key: job.finished() for key, job in jobs.items()}
    pending = {key: jobs[key] for key, run in done.items() if run is None}
    done = {key: run for key, run in done.items() if run is not None}
    workers = config["run"]["workers"]
    if workers == 1 and pending:
        sets = {method: evaluation_sets(config, method) for method in {job.method for job in pending.values()}}
        done |= {key: execute(job, *sets[job.method]) for key, job in pending.items()}
    elif pending:
        calls = {key: (partial(_execute_with_own_sets, config, job), job.out.with_suffix(".log"))
                 for key, job in pending.items()}
        done |= run_in_workers(calls, workers, f"{next(iter(pending.values())).method} runs", progress)
    return done


def _execute_with_own_sets(config: Config, job: Job) -> dict[str, Any]:
    """A :func:`train_jobs` job in a worker process, with its own copy of the evaluation sets."""
    return execute(job, *evaluation_sets(config, job.method))


def run_in_workers(calls: dict[Any, tuple[Callable[[], Any], Path]], workers: int, desc: str,
                   progress: bool = True) -> dict[Any, Any]:
    """``{key: call()}`` for the ``calls`` (``{key: (call, log)}``, each ``call`` picklable: a module-level
    function or a partial of one), ``workers`` at a time, each in a spawned worker process on one thread
    (so a run's numbers do not depend on which other runs were cached) whose output (step logs, progress
    bars, warnings) goes to its ``log`` rather than to the notebook, which would otherwise receive it from
    the shared terminal."""
    if not calls:
        return {}
    done = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_call_on_one_thread, call, log): key for key, (call, log) in calls.items()}
        for future in tqdm(as_completed(futures), total=len(futures), disable=not progress,
                           desc=f"{desc}, {workers} at a time"):
            done[futures[future]] = future.result()
    return done


def _call_on_one_thread(call: Callable[[], Any], log: Path) -> Any:
    """``call()`` in a :func:`run_in_workers` process: one thread, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    with open(log, "w") as out:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out.fileno(), 1), os.dup2(out.fileno(), 2)
        return call()


def method_results_path(config: Config, corpus: str) -> Path:
    """Where :func:`run_methods` writes all runs of one corpus (main and sweep, with their curves)."""
    return config.out_dir / "finetune" / corpus / "runs.json"


def load_method_results(config: Config, corpus: str, made_by: str) -> dict[str, Any]:
    """The runs :func:`run_methods` wrote for ``corpus`` (JSON keys become numbers again); ``made_by``
    names the notebook that makes them (e.g. ``"02_sft"``), for the error when they are missing. A run
    with changed knobs that has not made them itself reads the profile's own runs, when nothing that
    decides them changed (their method's knobs, the jigsaw's, the start's, the base)."""
    path = method_results_path(config, corpus)
    own = config.own()
    section = "rft" if corpus == "rft" else "sft"
    if not path.exists() and config.is_own(section, "jigsaw", "start") and config.base_dir == own.base_dir:
        path = method_results_path(own, corpus)
    if not path.exists():
        raise config.missing(f"{corpus!r} runs", method_results_path(config, corpus), made_by)
    raw = json.loads(path.read_text())
    return {"main": {int(k): v for k, v in raw["main"].items()},
            "sweep": {float(k): v for k, v in raw["sweep"].items()}}
