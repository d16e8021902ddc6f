"""Output freedom (notebook 09): when on-policy data matters. A jigsaw question with several correct
answers, beside the same kind of question with one.

With one correct output and a 0/1 reward, GRPO's gradient is SFT's gradient on that output, reweighted per
prompt: RFT has no room to stay closer to the start than SFT. With several correct outputs it has: it
reinforces the correct outputs it samples, the ones the start already finds likely, while SFT on one
canonical answer pushes the model to whichever answer the data happens to give. Two questions on the 2 x 2
puzzles of notebook 01 switch that condition on and off (:data:`QUESTIONS`):

- ``free``: "give a position of a tile from the top row": every position that shows a tile of the original
  top row is correct (``cols`` answers);
- ``unique``: "give the position of the top left tile": one answer.

A completion is ``<think> </think> <answer> 2 </answer>``, one position index, so every candidate answer can
be enumerated and its probability under a model computed exactly (:func:`candidate_logprobs`). The arms
(:data:`ARMS`) differ only in which correct answer they train on, written as target distributions
``q(a | x)`` over the correct answers ``C(x)`` (:func:`targets`):

    sft_one        q = 1 on the canonical answer, the first correct position in reading order
    sft_two        q uniform over C(x)
    sft_oracle     q(a | x) = pi_0(a | x) / sum_{c in C(x)} pi_0(c | x)     (the start's own preference)
    sft_self       one draw from the oracle's q per puzzle, kept for every epoch (SFT on the start's
                   correct samples)
    sft_self_iter  the same, drawn afresh each epoch from the current model (iterative self-SFT)
    rft            GRPO with rewards acc (the answer is in C(x)) + fmt, KL anchor beta to the start

Every SFT arm sees each training puzzle once an epoch; at each visit its answer is drawn from ``q``, so the
expected gradient is the soft-target gradient. On the unique form every ``q`` is the one correct answer:
one SFT arm (``sft_one``) stands for all of them.

The start of this notebook (:func:`start`) is notebook 01's start after a short format stage on both
questions with answers drawn from a *habit*: position ``p`` of ``k`` with weight ``habit ** (p / (k - 1))``
(position ``k - 1`` ``habit`` times as often as position 0), as a language model favours some answers over
others. It writes the format; it does not know the answer (the answers are not the solutions). Every arm
starts from it and every drop is measured from it, on a fixed subset of the prior-knowledge sets.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
import pandas as pd
import torch

from jrft_utils import distributed, divergence, dynamics, evaluation, finetuning, frontiers, generation, jigsaw, mechanism
from jrft_utils import methods, modeling, results, stages, template, trainers, warmup
from jrft_utils.profiles import FREEDOM_FORMS as FORMS
from jrft_utils.profiles import Config

QUESTIONS = {"free": "give a position of a tile from the top row .",
             "unique": "give the position of the top left tile ."}
ARMS = ("sft_one", "sft_two", "sft_oracle", "sft_self", "sft_self_iter", "rft")
SETTING = "vision"  # the points' setting in the results contract: the jigsaw experiment


def check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; forms: {FORMS}")


def arms(form: str) -> tuple[str, ...]:
    """The arms run on ``form``: all of :data:`ARMS` on ``free``; on ``unique``, whose SFT arms all train on
    the one correct answer, ``sft_one`` and ``rft``."""
    check_form(form)
    return ARMS if form == "free" else ("sft_one", "rft")


def prompt(form: str, rows: int, cols: int) -> str:
    """The user prompt of ``form`` on a rows x cols puzzle (the image comes before it)."""
    check_form(form)
    return f"the image is cut into {rows} x {cols} tiles and shuffled . " + QUESTIONS[form]


def correct_positions(form: str, answer: Any, cols: int) -> list[int]:
    """The correct answers of ``form`` for a puzzle with jigsaw ``answer`` (``answer[p]``: the original index of
    the tile at position ``p``), ascending: the positions showing an original top-row tile (``free``) or
    original tile 0 (``unique``)."""
    check_form(form)
    cells = jigsaw.answer_list(answer)
    if cells is None:
        raise ValueError(f"not a jigsaw answer: {answer!r}")
    return [p for p, q in enumerate(cells) if (q < cols if form == "free" else q == 0)]


def completion(position: int) -> str:
    """The completion answering ``position``: ``<think> </think> <answer> 2 </answer>``."""
    return template.completion(str(int(position)), "")


def parse_position(text: Any, tiles: int) -> int | None:
    """The position in the single answer block of ``text``: exactly one integer in ``0 .. tiles - 1``, else
    ``None`` (two numbers, a number out of range or with a leading zero, extra words, no or several answer
    blocks)."""
    try:
        block = template.single_answer_block(text)
        tokens = block.split() if block is not None else []
        if len(tokens) != 1 or not re.fullmatch(r"0|[1-9][0-9]*", tokens[0]) or int(tokens[0]) >= tiles:
            return None
        return int(tokens[0])
    except Exception:  # noqa: BLE001
        return None


def score(completion_: Any, correct: Sequence[int], tiles: int) -> dict[str, float]:
    """``acc`` (the answer is one of ``correct``) and ``fmt`` (0.5 for the template, 0.5 for one position
    index) of one completion; never raises."""
    try:
        text = template.to_text(completion_)
        position = parse_position(text, tiles)
        return {"acc": float(position is not None and position in list(correct)),
                "fmt": 0.5 * template.follows(text) + 0.5 * (position is not None)}
    except Exception:  # noqa: BLE001
        return {"acc": 0.0, "fmt": 0.0}


def _rewards(key: str, completions, correct, rows, cols) -> list[float]:
    return [score(c, corr, r * k)[key] for c, corr, r, k in zip(completions, correct, rows, cols)]


def acc_reward(completions, correct=None, rows=None, cols=None, **kwargs) -> list[float]:
    """TRL reward: 1 when the answer is one of the puzzle's correct positions (dataset column ``correct``)."""
    return _rewards("acc", completions, correct, rows, cols)


def fmt_reward(completions, correct=None, rows=None, cols=None, **kwargs) -> list[float]:
    """TRL reward: the template (0.5) and one position index as the answer (0.5)."""
    return _rewards("fmt", completions, correct, rows, cols)


# --------------------------------------------------------------------------------------------------
# Data and targets


def puzzles(config: Config, split: str):
    """The first ``freedom.train_size`` / ``test_size`` puzzles of the jigsaw's ``split``."""
    ds = finetuning.jigsaw_splits(config)[split]
    n = config["freedom"]["train_size" if split == "train" else "test_size"]
    return ds.select(range(min(n, len(ds))))


def rows_of(puzzles_, form: str) -> dict[str, list]:
    """Columns of ``form``'s questions on ``puzzles_``: ``images``, ``prompts``, ``correct``, ``rows``,
    ``cols``."""
    rows, cols = list(puzzles_["rows"]), list(puzzles_["cols"])
    return {"images": list(puzzles_["image"]), "prompts": [prompt(form, r, c) for r, c in zip(rows, cols)],
            "correct": [correct_positions(form, a, c) for a, c in zip(puzzles_["answer"], cols)],
            "rows": rows, "cols": cols}


def _conversation(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


def prompts_dataset(rows: dict[str, list]) -> datasets.Dataset:
    """The questions of :func:`rows_of` as a dataset of ``prompt`` (conversational) and ``images``, to be
    answered by :func:`sft_dataset`."""
    return datasets.Dataset.from_dict({"prompt": [_conversation(p) for p in rows["prompts"]],
                                       "images": [[im] for im in rows["images"]]})


def grpo_dataset(questions: datasets.Dataset, rows: dict[str, list]) -> datasets.Dataset:
    """GRPO's data: the questions (:func:`prompts_dataset` of ``rows``) with each puzzle's ``correct`` positions
    and grid (for the rewards)."""
    for column in ("correct", "rows", "cols"):
        questions = questions.add_column(column, rows[column])
    return questions


def sft_dataset(questions: datasets.Dataset, answers: np.ndarray) -> datasets.Dataset:
    """SFT data: ``answers[e, i]`` is the position question ``i`` of ``questions`` (:func:`prompts_dataset`) is
    answered with in epoch ``e``; the rows are the epochs one after another (the images are not re-encoded)."""
    epochs, n = answers.shape
    if n != len(questions):
        raise ValueError(f"answers for {n} questions, the dataset has {len(questions)}")
    return questions.select([i for _ in range(epochs) for i in range(n)]).add_column(
        "completion", [[{"role": "assistant", "content": completion(a)}] for a in answers.reshape(-1)])


def candidate_logprobs(model, processor, images, prompts: Sequence[str], tiles: int, batch_size: int = 64) -> np.ndarray:
    """``[n_prompts, tiles]``: ``model``'s exact log-probability of the completion answering each position
    (the whole completion, end of turn included)."""
    samples = [{"image": im, "prompt": p, "completion": completion(a)} for im, p in zip(images, prompts)
               for a in range(tiles)]
    with torch.no_grad():
        logprobs = dynamics.sequence_logprob(model, processor, samples, batch_size)
    return logprobs.double().numpy().reshape(len(prompts), tiles)


def oracle(logprobs: np.ndarray, correct: Sequence[Sequence[int]]) -> np.ndarray:
    """The start's probabilities renormalised over each prompt's correct answers (0 elsewhere)."""
    mask = np.zeros_like(logprobs, dtype=bool)
    for i, c in enumerate(correct):
        mask[i, list(c)] = True
    shifted = np.where(mask, logprobs - np.where(mask, logprobs, -np.inf).max(1, keepdims=True), -np.inf)
    q = np.exp(shifted)
    return q / q.sum(1, keepdims=True)


def targets(arm: str, correct: Sequence[Sequence[int]], tiles: int, logprobs: np.ndarray | None = None) -> np.ndarray:
    """``[n_prompts, tiles]``: the distribution over answers that SFT arm ``arm`` draws its answers from
    (``logprobs``: a model's :func:`candidate_logprobs`, for the arms that follow a model)."""
    q = np.zeros((len(correct), tiles))
    if arm == "sft_one":
        q[np.arange(len(correct)), [min(c) for c in correct]] = 1.0
    elif arm == "sft_two":
        for i, c in enumerate(correct):
            q[i, list(c)] = 1.0 / len(c)
    elif arm in ("sft_oracle", "sft_self", "sft_self_iter"):
        if logprobs is None:
            raise ValueError(f"{arm} follows a model: pass its candidate log-probabilities")
        q = oracle(logprobs, correct)
    else:
        raise ValueError(f"{arm!r} is not an SFT arm of {ARMS}")
    return q


def draw(q: np.ndarray, epochs: int, rng: np.random.Generator, fixed: bool = False) -> np.ndarray:
    """``[epochs, n]`` answers drawn from ``q`` (``[n, tiles]``) at every visit, or once per puzzle and
    repeated (``fixed``)."""
    cumulative = q.cumsum(1)
    cumulative /= cumulative[:, -1:]  # ends at 1 exactly, so a draw in [0, 1) never falls past the last answer
    picks = lambda: (rng.random((len(q), 1)) >= cumulative).sum(1)  # noqa: E731
    return np.stack([picks()] * epochs) if fixed else np.stack([picks() for _ in range(epochs)])


def spread(logprobs: np.ndarray, correct: Sequence[Sequence[int]]) -> dict[str, float]:
    """How a model spreads its probability over the correct answers, from :func:`candidate_logprobs`:
    ``p_correct`` (mean total probability of the correct answers), ``canonical_share`` (mean share of the
    canonical one among them), ``top_share`` (mean share of the likeliest one) and ``p_format`` (mean total
    probability of all candidates: the model writes an answer in the format)."""
    q = oracle(logprobs, correct)
    p = np.exp(logprobs)
    return {"p_correct": float(np.mean([p[i, list(c)].sum() for i, c in enumerate(correct)])),
            "canonical_share": float(np.mean([q[i, min(c)] for i, c in enumerate(correct)])),
            "top_share": float(q.max(1).mean()), "p_format": float(p.sum(1).mean())}


# --------------------------------------------------------------------------------------------------
# The start


def habit_weights(tiles: int, habit: float) -> np.ndarray:
    """The start's habit over positions: weight ``habit ** (p / (tiles - 1))`` for position ``p``, normalised."""
    w = habit ** (np.arange(tiles) / (tiles - 1))
    return w / w.sum()


def _restricted(weights: np.ndarray, allowed: Sequence[int]) -> np.ndarray:
    w = np.zeros_like(weights)
    w[list(allowed)] = weights[list(allowed)]
    return w / w.sum()


def start_corpus(config: Config) -> datasets.Dataset:
    """The format stage's SFT data: every training puzzle asked in each form, answered with a position drawn
    from :func:`habit_weights` (the format, not the solution), with notebook 01's share ``start.replay`` of
    samples replayed from the base's pretraining corpus."""
    cfg = config["freedom"]
    rng = np.random.default_rng(cfg["seed"])
    train = puzzles(config, "train")
    parts = []
    for form in FORMS:
        rows = rows_of(train, form)
        tiles = [r * c for r, c in zip(rows["rows"], rows["cols"])]
        habit = [habit_weights(k, cfg["habit"]) for k in tiles]
        # a share `solved` of the puzzles answered among the correct positions only, with the same habit
        answers = np.array([[rng.choice(len(w), p=_restricted(w, c) if rng.random() < cfg["solved"] else w)
                             for w, c in zip(habit, rows["correct"])]])
        parts.append(sft_dataset(prompts_dataset(rows), answers))
    data = datasets.concatenate_datasets(parts)
    replayed = warmup.replay(config, data, rng)
    return (data if replayed is None else datasets.concatenate_datasets([data, replayed])).shuffle(seed=cfg["seed"])


def _start_params(config: Config, shared: finetuning.Start) -> dict[str, Any]:
    return {"from": shared.fingerprint, "freedom": config["freedom"], "sft": config["freedom_sft"],
            "jigsaw": config["jigsaw"], "replay": config["start"]["replay"], "world": config["world"]}


def start(config: Config) -> finetuning.Start:
    """The checkpoint every arm of this notebook starts from: notebook 01's start
    (:func:`jrft_utils.warmup.start`) after ``freedom.start_steps`` SFT steps on :func:`start_corpus`
    (the ``freedom_sft`` recipe at ``freedom.start_learning_rate``); trained here when missing."""
    shared = warmup.start(config)
    params = _start_params(config, shared)
    out = config.run_dir / "freedom" / f"start-{stages.fingerprint(params)[:8]}"
    if stages.cached(out, params) is None:
        if out.exists():
            shutil.rmtree(out)
        cfg = config["freedom_sft"] | {"steps": config["freedom"]["start_steps"],
                                       "learning_rate": config["freedom"]["start_learning_rate"]}
        metrics = trainers.train("sft", shared.dir, start_corpus(config), cfg, out, config["freedom"]["seed"],
                                 launch=distributed.settings(config["run"]))
        stages.mark_done(out, params, metrics)
    return finetuning.Start(out / "model", stages.stage_fingerprint(out, "09_output_freedom", config.profile))


# --------------------------------------------------------------------------------------------------
# Runs


def prior_subset(config: Config) -> dict[str, list[dict[str, Any]]]:
    """The fixed subset of the prior-knowledge sets this notebook measures: the first
    ``freedom.prior_per_capability`` questions of each capability."""
    n = config["freedom"]["prior_per_capability"]
    return {cap: samples[:n] for cap, samples in evaluation.prior_test_sets(config).items()}


def evaluate(model, processor, test: dict[str, list], prior_sets, kl, batch_size: int = 128) -> dict[str, Any]:
    """One point: ``task_acc`` and ``task_fmt`` on ``test`` (:func:`rows_of`) by greedy decoding,
    ``canonical`` (the share of correct answers that are the canonical one), the ``prior`` suite and the
    forward KL from the start (``kl``: :func:`divergence.load_or_sample`)."""
    completions = generation.generate_completions(model, processor, test["images"], test["prompts"], max_new_tokens=8,
                                                  batch_size=batch_size, progress=False)
    tiles = [r * c for r, c in zip(test["rows"], test["cols"])]
    scores = [score(c, corr, k) for c, corr, k in zip(completions, test["correct"], tiles)]
    answered = [parse_position(c, k) for c, k in zip(completions, tiles)]
    right = [(a, corr) for a, corr, s in zip(answered, test["correct"], scores) if s["acc"]]
    prior = evaluation.evaluate_prior(model, processor, prior_sets, progress=False,  # in one batch: fewer decode steps
                                      batch_size=sum(len(v) for v in prior_sets.values()))
    return {"task_acc": float(np.mean([s["acc"] for s in scores])), "task_fmt": float(np.mean([s["fmt"] for s in scores])),
            "canonical": float(np.mean([a == min(c) for a, c in right])) if right else float("nan"),
            "prior": prior} | (divergence.measure_all(kl, model, processor) if kl else {})


@dataclass(frozen=True)
class Job:
    """One run of one arm on one form, planned in the main process (picklable, for a worker)."""

    arm: str
    form: str
    seed: int
    cfg: dict[str, Any]  # the trainer section (freedom_sft / freedom_rft) with this run's knobs
    config: Config
    start: finetuning.Start
    out: Path
    params: dict[str, Any]

    def finished(self) -> dict[str, Any] | None:
        done = stages.cached(self.out, self.params)
        return None if done is None else done | {"curves": trainers.load_curves(self.out), "dir": str(self.out)}


def plan(config: Config, arm: str, form: str, seed: int, start_: finetuning.Start, learning_rate: float) -> Job:
    """The :class:`Job` of ``arm`` on ``form`` for ``seed`` at ``learning_rate``."""
    if arm not in arms(form):
        raise ValueError(f"{arm!r} is not run on the {form} form; arms: {arms(form)}")
    section = "freedom_rft" if arm == "rft" else "freedom_sft"
    cfg = config.with_knobs(section, learning_rate=learning_rate)[section]
    params = {"arm": arm, "form": form, "seed": seed, "cfg": finetuning.run_recipe(cfg), "start": start_.fingerprint,
              "freedom": config["freedom"], "kl": kl_section(config)}
    out = config.run_dir / "freedom" / form / arm / f"lr{learning_rate:g}" / f"seed{seed}-{stages.fingerprint(params)[:8]}"
    return Job(arm, form, seed, cfg, config, start_, out, params)


def kl_section(config: Config) -> dict[str, Any]:
    """The profile's ``kl`` section with ``freedom.kl_prior_prompts`` prior-knowledge questions: this notebook
    needs the KL on its question (``kl_new``); ``kl_prior`` is a coarse second measure."""
    return config["kl"] | {"prior_prompts": config["freedom"]["kl_prior_prompts"]}


_SETS: dict[str, tuple] = {}  # by fingerprint, per process: a worker measures many runs on the same sets


def _sets(config: Config, form: str, start_: finetuning.Start):
    """What the points of ``form``'s runs from ``start_`` are measured on (the form's test questions, the prior
    subset, the start's KL samples), where the start's point is cached, and the form's training questions
    (as :func:`rows_of` and as :func:`prompts_dataset`)."""
    scored_on = {"start": start_.fingerprint, "form": form, "freedom": config["freedom"], "kl": kl_section(config),
                 "world": config["world"], "jigsaw": config["jigsaw"]}
    key = stages.fingerprint(scored_on)
    if key not in _SETS:
        test, train = rows_of(puzzles(config, "test"), form), rows_of(puzzles(config, "train"), form)
        prior = prior_subset(config)
        points = config.run_dir / "freedom" / "start_points"
        kl = divergence.load_or_sample(points / f"kl-{key}.pt", start_.dir, kl_section(config),
                                       (test["images"], test["prompts"]), divergence.questions(prior, with_images=True))
        _SETS[key] = test, prior, kl, points / f"{key}.json", train, prompts_dataset(train)
    return _SETS[key]


def execute(job: Job) -> dict[str, Any]:
    """Train ``job`` unless it is done; returns ``metrics.json``'s content with ``curves`` and ``dir``."""
    done = job.finished()
    if done is not None:
        return done
    if job.out.exists():
        shutil.rmtree(job.out)
    model, processor = modeling.load_checkpoint(job.start.dir)
    model.eval()
    test, prior, kl, start_cache, train, questions = _sets(job.config, job.form, job.start)
    curve = trainers.CurveCallback(partial(evaluate, processor=processor, test=test, prior_sets=prior, kl=kl),
                                   job.cfg["eval_every"], job.out / trainers.CURVES_FILE, start_cache=start_cache)
    rng = np.random.default_rng([job.seed, 9])
    launch = distributed.settings(job.config["run"])
    if job.arm == "rft":
        trainers.train("rft", job.start.dir, grpo_dataset(questions, train), job.cfg, job.out, job.seed, [curve], save_model=False,
                       reward_funcs=[acc_reward, fmt_reward], progress=False, launch=launch)
    elif job.arm == "sft_self_iter":
        _iterate(job, model, processor, train, questions, curve, rng, launch)
    else:
        tiles = train["rows"][0] * train["cols"][0]
        follows_start = job.arm in ("sft_oracle", "sft_self")
        logprobs = candidate_logprobs(model, processor, train["images"], train["prompts"], tiles) if follows_start else None
        answers = draw(targets(job.arm, train["correct"], tiles, logprobs), _epochs(job.cfg, train),
                       rng, fixed=job.arm == "sft_self")
        trainers.train("sft", job.start.dir, sft_dataset(questions, answers), job.cfg, job.out, job.seed, [curve],
                       save_model=False, progress=False, launch=launch)
    metrics = json.loads((job.out / trainers.METRICS_FILE).read_text())
    stages.mark_done(job.out, job.params, metrics)
    return job.finished()


def _epochs(cfg: dict[str, Any], train: dict[str, list]) -> int:
    n = len(train["prompts"])
    if (cfg["steps"] * cfg["batch_size"]) % n:
        raise ValueError(f"freedom_sft: steps x batch_size ({cfg['steps']} x {cfg['batch_size']}) must be whole epochs "
                         f"of the {n} training puzzles")
    return cfg["steps"] * cfg["batch_size"] // n


def _iterate(job: Job, model, processor, train: dict[str, list], questions: datasets.Dataset,
             curve: trainers.CurveCallback, rng: np.random.Generator, launch: distributed.Launch | None) -> None:
    """Iterative self-SFT: each epoch a fresh SFT run from the previous epoch's model, on answers drawn from
    that model renormalised over the correct ones; a curve point after each epoch."""
    epochs = _epochs(job.cfg, train)
    per_epoch = job.cfg["steps"] // epochs
    if job.cfg["eval_every"] != per_epoch:
        raise ValueError(f"iterative self-SFT measures once an epoch: freedom_sft.eval_every must be {per_epoch}")
    tiles = train["rows"][0] * train["cols"][0]
    curve.on_train_begin(None, None, None, model=model)
    source, seconds, clock = job.start.dir, 0.0, {}
    for epoch in range(epochs):
        logprobs = candidate_logprobs(model, processor, train["images"], train["prompts"], tiles)
        answers = draw(targets(job.arm, train["correct"], tiles, logprobs), 1, rng)
        out = job.out / f"epoch{epoch}"
        metrics = trainers.train("sft", source, sft_dataset(questions, answers), job.cfg | {"steps": per_epoch}, out,
                                 job.seed + epoch, progress=False, launch=launch)
        seconds += metrics["train_time_s"]
        clock = {k: clock.get(k, 0.0) + v for k, v in metrics["time_s"].items()}
        source = out / "model"
        model = modeling.load_checkpoint(source)[0]
        curve.measure(model, (epoch + 1) * per_epoch)
    for epoch in range(epochs):  # no model is kept, as by the other arms; the epochs' times are summed below
        shutil.rmtree(job.out / f"epoch{epoch}")
    clock["evaluation"] = clock.get("evaluation", 0.0) + curve.seconds
    final = {k: v for k, v in curve.points[-1].items() if k != "step"}
    record = {"steps": job.cfg["steps"], "train_time_s": seconds + curve.seconds, **final,
                "time_s": {k: round(v, 2) for k, v in clock.items()}}
    results.write_json_atomic(job.out / trainers.METRICS_FILE, record)


def run_all(config: Config, start_: finetuning.Start, seeds: Sequence[int]) -> dict[str, dict[str, dict[tuple, Any]]]:
    """Every run of every arm on every form: the main runs (each seed at the section's ``learning_rate``)
    and the sweep (first seed, each rate of ``lr_sweep``), ``run.workers`` at a time, cached run by run.
    Returns ``{form: {arm: {(lr, seed): run}}}``."""
    jobs: dict[tuple, Job] = {}
    for form in config["freedom"]["forms"]:
        for arm in arms(form):
            cfg = config["freedom_rft" if arm == "rft" else "freedom_sft"]
            keys = [(cfg["learning_rate"], s) for s in seeds] + [(lr, seeds[0]) for lr in cfg["lr_sweep"]]
            for lr, seed in dict.fromkeys(keys):
                jobs[(form, arm, lr, seed)] = plan(config, arm, form, seed, start_, lr)
    for form in config["freedom"]["forms"]:  # sample the start's KL completions once, before the workers read them
        _sets(config, form, start_)
    done = {key: job.finished() for key, job in jobs.items()}
    # GRPO's runs take longest: started first, so that no core waits alone on one at the end
    pending = {key: job for key, job in sorted(jobs.items(), key=lambda kv: kv[1].arm != "rft") if done[key] is None}
    if config["run"]["workers"] == 1:
        done |= {key: execute(job) for key, job in pending.items()}
    else:
        done |= finetuning.run_in_workers({key: (partial(execute, job), job.out.with_suffix(".log"))
                                           for key, job in pending.items()}, config["run"]["workers"], "freedom runs")
    out: dict[str, dict[str, dict[tuple, Any]]] = {}
    for (form, arm, lr, seed), run in done.items():
        out.setdefault(form, {}).setdefault(arm, {})[(lr, seed)] = run
    return out


def start_measures(config: Config, start_: finetuning.Start) -> dict[str, dict[str, Any]]:
    """Per form, the start's point (as every run's step 0) and :func:`spread` on the test puzzles."""
    model, processor = modeling.load_checkpoint(start_.dir)
    model.eval()
    out = {}
    for form in config["freedom"]["forms"]:
        test, prior, kl, cache = _sets(config, form, start_)[:4]
        if cache.exists():
            point = json.loads(cache.read_text())
        else:
            with torch.no_grad():
                point = {"step": 0, **evaluate(model, processor, test, prior, kl)}
            results.write_json_atomic(cache, point)
        tiles = test["rows"][0] * test["cols"][0]
        out[form] = point | spread(candidate_logprobs(model, processor, test["images"], test["prompts"], tiles),
                                   test["correct"])
    return out


# --------------------------------------------------------------------------------------------------
# Analysis


def points(runs: dict[str, dict[tuple, Any]]) -> list[dict[str, Any]]:
    """The frontier points of one form's runs (``{arm: {(lr, seed): run}}``), with ``canonical``."""
    out = []
    for arm, by_key in runs.items():  # points_from_runs keeps the runs' and their curves' order
        curves = [c for run in by_key.values() for c in run["curves"]]
        out += [p | {"canonical": c.get("canonical", float("nan"))}
                for p, c in zip(frontiers.points_from_runs(SETTING, arm, by_key, "task_acc"), curves, strict=True)]
    return out


def summarise(runs: dict[str, dict[str, dict[tuple, Any]]], starts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The results contract's ``freedom`` section: per form the ``frontier`` points, the ``matched`` drops
    (:func:`frontiers.compare`, RFT the reference) and ``r2_kl`` (forgetting against ``kl_new`` over every
    point, :func:`mechanism.fit`), and the start's measures."""
    forms = {}
    for form, by_arm in runs.items():
        pts = points(by_arm)
        start_prior = starts[form]["prior"]["mean"]
        drop = [start_prior - p["prior_mean"] for p in pts]
        forms[form] = {"frontier": pts, "matched": frontiers.compare(pts, start_prior),
                       "r2_kl": mechanism.fit([p["kl_new"] for p in pts], drop)[1]}
    return {"forms": forms, "start": starts}


def examples(config: Config, start_: finetuning.Start, n: int = 4) -> pd.DataFrame:
    """The first ``n`` test puzzles asked in each form: the correct positions, the canonical one (SFT-1's)
    and the start's probability of answering each position."""
    model, processor = modeling.load_checkpoint(start_.dir)
    model.eval()
    test = puzzles(config, "test").select(range(n))
    rows = []
    for form in config["freedom"]["forms"]:
        q = rows_of(test, form)
        tiles = q["rows"][0] * q["cols"][0]
        probs = np.exp(candidate_logprobs(model, processor, q["images"], q["prompts"], tiles))
        for i in range(n):
            rows.append({"form": form, "puzzle": i, "jigsaw answer": test[i]["answer"],
                         "correct": q["correct"][i], "canonical (SFT-1)": min(q["correct"][i])}
                        | {f"start p({a})": round(float(probs[i, a]), 3) for a in range(tiles)})
    return pd.DataFrame(rows)


def matched_frame(entry: dict[str, Any]) -> pd.DataFrame:
    """A form's ``matched`` entry as a table: points of prior knowledge lost at each matched accuracy."""
    return pd.DataFrame({methods.name(arm): [None if d is None else round(100 * d, 1) for d in drops]
                         for arm, drops in entry["drop"].items()},
                        index=pd.Index([f"{100 * level:.1f}" for level in entry["levels"]], name="correct answers (%)"))


def final_frame(runs: dict[str, dict[str, dict[tuple, Any]]], rates: dict[str, float],
                starts: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per form and arm, the main runs' final points at the shared rate (``rates``: ``{"sft", "rft"}``), mean
    over seeds: correct answers, prior knowledge lost, forward KL and the canonical share, in %, points and nats."""
    rows = []
    for form, by_arm in runs.items():
        for arm, by_key in by_arm.items():
            rate = rates["rft" if arm == "rft" else "sft"]
            finals = [run["curves"][-1] for (lr, _), run in by_key.items() if lr == rate]
            rows.append({"form": form, "arm": methods.name(arm), "seeds": len(finals),
                         "correct (%)": 100 * np.mean([c["task_acc"] for c in finals]),
                         "prior lost (pts)": 100 * np.mean([starts[form]["prior"]["mean"] - c["prior"]["mean"] for c in finals]),
                         "KL (nats)": np.mean([c.get("kl_new", np.nan) for c in finals]),
                         "canonical (%)": 100 * _nanmean([c.get("canonical", np.nan) for c in finals])})
    return pd.DataFrame(rows).set_index(["form", "arm"]).round(2)


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def describe(found: dict[str, Any]) -> str:
    """What was expected and what came out, from the ``freedom`` section's numbers."""
    lines = ["Expected (RL's Razor): on the free form SFT-1 forgets most at matched accuracy, SFT-2 less, "
             "RFT and SFT-oracle least, in the order of their forward KL; on the unique form no gap."]
    for form, entry in found["forms"].items():
        matched = entry["matched"]
        if not matched["levels"]:
            lines.append(f"{form}: RFT never rises above the start's accuracy, so no arm is compared at matched accuracy.")
            continue
        level = max(matched["levels"])
        reached = {arm: drops[-1] for arm, drops in matched["drop"].items() if drops[-1] is not None}
        order = " < ".join(f"{methods.name(a)} {100 * d:.1f}" for a, d in sorted(reached.items(), key=lambda x: x[1]))
        missing = [methods.name(a) for a in matched["drop"] if a not in reached]
        lines.append(f"{form}: at {100 * level:.1f}% correct answers, points of prior knowledge lost: {order}"
                     + (f" ({', '.join(missing)} never get there)" if missing else "")
                     + f"; forgetting against the forward KL: R^2 {entry['r2_kl']:.2f}.")
    if len({p["lr"] for entry in found["forms"].values() for p in entry["frontier"]}) > 1:
        lines.append(_highest_rate(found))
    return "\n".join(lines)


HARMFUL = 0.2  # a rate "decides" forgetting when every run at it loses at least this much (20 points)


def _highest_rate(found: dict[str, Any]) -> str:
    """What the runs at the highest learning rate lose by their last checkpoint, beside their KL."""
    finals = []
    for form, entry in found["forms"].items():
        start_prior = found["start"][form]["prior"]["mean"]
        top = max(p["lr"] for p in entry["frontier"])
        last = {}
        for p in entry["frontier"]:
            if p["lr"] == top and p["step"] >= last.get(p["arm"], {"step": -1})["step"]:
                last[p["arm"]] = p
        finals += [(start_prior - p["prior_mean"], p["kl_new"]) for p in last.values()]
    drops, kls = zip(*finals)
    line = (f"At the highest rate ({top:g}) the runs lose {100 * min(drops):.0f} to {100 * max(drops):.0f} points by "
            f"their last checkpoint, at forward KLs from {min(kls):.2f} to {max(kls):.2f} nats")
    return line + (": there the step size, not what the model learns to answer, decides what it forgets."
                   if min(drops) >= HARMFUL else ".")
