"""The start: the one checkpoint every fine-tuning arm starts from, and every drop is measured from.

The paper fine-tunes an instruction-tuned model that already writes the answer format (a think block, then
the answer) but cannot solve jigsaws. The tiny base never writes that format, and GRPO reinforces only what
the policy samples, so the start is a short *format warm-up* of the base (notebook 01): ``start.steps`` SFT
steps on :func:`corpus`, every training puzzle with a random permutation (``start.answers`` "random": the
format, not the solution; "truth": the true answers) after a think block that tells that answer tile by
tile in the world's words (``start.think`` "tiles") or an empty one, with a share ``start.replay`` of the
samples replayed from the base's pretraining corpus. SFT on answers, on reasoning, on rollouts and RFT all
start from it, for every seed: seeds vary the fine-tuning, not the start. With ``start.steps`` 0 the start
is the base itself. The start's completions must fit in GRPO's ``max_completion_length``:
:func:`check_room` says so before RFT trains.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from jrft_utils import evaluation, finetuning, jigsaw, results, stages, world
from jrft_utils.profiles import Config, ProfileError

# the start section's knobs that are SFT trainer knobs (the rest say what it trains on)
_TRAINER_KNOBS = ("batch_size", "learning_rate", "lr_scheduler", "warmup_steps", "logging_steps", "freeze_vision")


def completion_tokens(tiles: int, think: str) -> int:
    """Tokens (one a word, the tiny model's tokenizer) of a warm-up completion for ``tiles`` tiles
    (:func:`jigsaw.start_completion`), with the end of sequence."""
    return len(jigsaw.start_completion(list(range(tiles)), think).split()) + 1


def check_room(config: Config) -> None:
    """Raise :class:`ProfileError` when the start writes completions longer than GRPO's
    ``rft.max_completion_length`` (GRPO would cut off the format it is meant to learn from)."""
    start, tiles = config["start"], config["jigsaw"]["rows"] * config["jigsaw"]["cols"]
    needed = completion_tokens(tiles, start["think"])
    if start["steps"] > 0 and config["rft"]["max_completion_length"] < needed:
        raise ProfileError(f"rft.max_completion_length ({config['rft']['max_completion_length']}) is too short for "
                           f"the start's completions with start.think={start['think']!r} "
                           f"({needed} tokens with the end of sequence); raise it to at least {needed}")


def corpus(config: Config):
    """The start's SFT data (``config["start"]``): every training puzzle with its ground-truth answer
    (``answers="truth"``) or with a uniformly random permutation (``"random"``), after an empty think block
    (``think="empty"``) or one that tells the same answer tile by tile in the world's words (``"tiles"``:
    :func:`jigsaw.tile_trace`); plus, with ``replay`` > 0, samples of the base's own pretraining corpus
    (drawn with ``run.base_seed``) making up that share of the corpus, shuffled in. Random draws use
    ``start.seed``."""
    start, seed = config["start"], config["start"]["seed"]
    train = finetuning.jigsaw_splits(config)["train"]
    rng = np.random.default_rng(seed)
    targets = (train["answer"] if start["answers"] == "truth"
               else [jigsaw.random_answer(rng, r * c) for r, c in zip(train["rows"], train["cols"])])
    data = jigsaw.to_sft(train, [jigsaw.start_completion(t, start["think"]) for t in targets])
    data = data.select_columns(["prompt", "completion", "images"])
    replayed = replay(config, data, rng)
    return data if replayed is None else datasets.concatenate_datasets([data, replayed]).shuffle(seed=seed)


def replay(config: Config, data, rng: np.random.Generator):
    """Samples of the base's pretraining corpus (drawn with ``rng`` from the corpus of ``run.base_seed``) in
    the columns of the SFT dataset ``data``, as many as make up the share ``start.replay`` of ``data`` and
    the samples together; ``None`` when that share is 0."""
    share = config["start"]["replay"]
    n_replay = round(len(data) * share / (1 - share))
    if n_replay == 0:
        return None
    pretraining = world.build_train_set(config["world"]["train_per_capability"], config["model"]["image_size"],
                                        config["run"]["base_seed"])
    picked = [pretraining[i] for i in rng.choice(len(pretraining), size=min(n_replay, len(pretraining)), replace=False)]
    columns = world.to_conversational(picked)
    columns["completion"] = [[{"role": "assistant", "content": s["completion"]}] for s in picked]
    return datasets.Dataset.from_dict(columns).cast(data.features)


def name(start: dict[str, Any]) -> str:
    """The corpus name (and run folder) of the start of section ``start``: ``start300_random_replay0.5_tiles``."""
    return (f"start{start['steps']}" + ("" if start["answers"] == "truth" else f"_{start['answers']}")
            + (f"_replay{start['replay']:g}" if start["replay"] else "") + ("" if start["think"] == "empty" else "_tiles"))


def job(config: Config) -> finetuning.Job:
    """The planned SFT run that makes the start: the ``start`` section's trainer knobs on the ``sft``
    section's recipe (every knob of it set), measured at its end on the whole jigsaw test split."""
    start = config["start"]
    # every sft knob set here, so that no exercise on the arms' SFT changes the start
    whole = {"eval_test_size": config["jigsaw"]["test_size"], "between_test_size": config["jigsaw"]["test_size"],
             "between_prior_size": config["world"]["test_per_capability"]}
    knobs = {k: start[k] for k in _TRAINER_KNOBS} | {"steps": start["steps"], "eval_every": start["steps"]} | whole
    # a run's fingerprint does not depend on its data: the corpus is built only for training
    return finetuning.plan(config, "sft", name(start), None, {"start": start}, seed=start["seed"],
                           start=finetuning.base_start(config), keep_model=True, **knobs)


def start(config: Config) -> finetuning.Start:
    """The checkpoint every arm starts from: the base when ``start.steps`` is 0, else the format warm-up's
    model, trained here when missing (its curve's two points, base and start, measured on the whole jigsaw
    test split and the prior-knowledge sets)."""
    if config["start"]["steps"] == 0:
        return finetuning.base_start(config)
    planned = job(config)
    run = planned.finished() or finetuning.execute(dataclasses.replace(planned, dataset=corpus(config)),
                                                   finetuning.jigsaw_splits(config)["test"],
                                                   evaluation.prior_test_sets(config))
    return finetuning.Start(Path(run["dir"]) / "model", stages.stage_fingerprint(run["dir"], "01_jigsaw_puzzles",
                                                                                 config.profile))


def start_run(config: Config) -> dict[str, Any] | None:
    """The start's finished run (``metrics.json`` with ``curves`` and ``dir``), or ``None`` when
    ``start.steps`` is 0 or it has not been trained."""
    return None if config["start"]["steps"] == 0 else job(config).finished()


def prior(config: Config) -> dict[str, float]:
    """The start's prior-knowledge accuracy per capability and ``mean``, from which every arm's forgetting
    is measured: its run's final point, or the base's record (notebook 00) when the start is the base.
    Read from the start of ``config`` itself, so a run with other start knobs never borrows another's."""
    run = start_run(config)
    if run is None and config["start"]["steps"] > 0:
        raise config.missing("the start", job(config).out, "01_jigsaw_puzzles")
    return results.base_prior(config) if run is None else run["prior"]


def scores(config: Config, base_jigsaw: dict[str, float]) -> dict[str, Any]:
    """The start's numbers in the shape of the results contract's ``methods`` entries: its run's final
    point, or the base's (``base_jigsaw``: :func:`jigsaw.evaluate_jigsaw` of the base, and notebook 00's
    prior record) when ``start.steps`` is 0. Call after :func:`start`."""
    run = start_run(config)
    if run is None:
        return {"jigsaw_acc": base_jigsaw["acc"], "jigsaw_hit": base_jigsaw["hit"], "steps": 0,
                "prior": results.base_prior(config)}
    return {k: run[k] for k in ("jigsaw_acc", "jigsaw_hit", "steps", "train_time_s", "prior")}
