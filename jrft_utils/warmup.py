"""The checkpoint RFT starts from: the base, or a format warm-up trained on it (not the paper's recipe).

GRPO reinforces only what the policy samples, and the tiny base never writes the jigsaw's answer format.
With ``rft.cold_start_steps`` > 0, GRPO therefore starts from that many steps of SFT (the ``sft``
section's recipe) on :func:`corpus`: every training puzzle with its true answer (``cold_start_answers``
"truth") or with a random permutation ("random": the format, not the solution), after an empty think
block or one that tells that answer tile by tile (``cold_start_think`` "tiles"), with a share
``cold_start_replay`` of the samples replayed from the base's pretraining corpus. The warm-up's completions
must fit in GRPO's ``max_completion_length``: :func:`check_room` says so before anything is trained.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from jrft_utils import finetuning, jigsaw, stages, world
from jrft_utils.profiles import Config, ProfileError


def completion_tokens(tiles: int, think: str) -> int:
    """Tokens (one a word, the tiny model's tokenizer) of a warm-up completion for ``tiles`` tiles
    (:func:`jigsaw.cold_start_completion`), with the end of sequence."""
    return len(jigsaw.cold_start_completion(list(range(tiles)), think).split()) + 1


def check_room(rft: dict[str, Any], tiles: int) -> None:
    """Raise :class:`ProfileError` when the ``rft`` section's warm-up writes completions longer than GRPO's
    ``max_completion_length`` (GRPO would cut off the format it is meant to learn from)."""
    needed = completion_tokens(tiles, rft["cold_start_think"])
    if rft["cold_start_steps"] > 0 and rft["max_completion_length"] < needed:
        raise ProfileError(f"rft.max_completion_length ({rft['max_completion_length']}) is too short for the "
                           f"cold start's completions with cold_start_think={rft['cold_start_think']!r} "
                           f"({needed} tokens with the end of sequence); raise it to at least {needed}")


def corpus(config: Config, seed: int):
    """The SFT data of the warm-up of ``config["rft"]``: every training puzzle with its ground-truth answer
    (``cold_start_answers="truth"``) or with a uniformly random permutation drawn with ``seed``
    (``"random"``), after an empty think block (``cold_start_think="empty"``) or one that tells the same
    answer tile by tile in the world's words (``"tiles"``: :func:`jigsaw.tile_trace`); plus, with
    ``cold_start_replay`` > 0, samples of the base's own pretraining corpus (drawn with ``run.base_seed``)
    making up that share of the corpus, shuffled in."""
    rft = config["rft"]
    train = finetuning.jigsaw_splits(config)["train"]
    rng = np.random.default_rng(seed)
    targets = (train["answer"] if rft["cold_start_answers"] == "truth"
               else [jigsaw.random_answer(rng, r * c) for r, c in zip(train["rows"], train["cols"])])
    data = jigsaw.to_sft(train, [jigsaw.cold_start_completion(t, rft["cold_start_think"]) for t in targets])
    data = data.select_columns(["prompt", "completion", "images"])
    replay = rft["cold_start_replay"]
    n_replay = round(len(data) * replay / (1 - replay))
    if n_replay == 0:
        return data
    pretraining = world.build_train_set(config["world"]["train_per_capability"], config["model"]["image_size"],
                                        config["run"]["base_seed"])
    picked = [pretraining[i] for i in rng.choice(len(pretraining), size=min(n_replay, len(pretraining)), replace=False)]
    columns = world.to_conversational(picked)
    columns["completion"] = [[{"role": "assistant", "content": s["completion"]}] for s in picked]
    replayed = datasets.Dataset.from_dict(columns).cast(data.features)
    return datasets.concatenate_datasets([data, replayed]).shuffle(seed=seed)


def name(steps: int, answers: str = "truth", replay: float = 0.0, think: str = "empty") -> str:
    """The corpus name (and run folder) of a warm-up: ``cold_start20``, ``cold_start100_random_replay0.5``,
    ``cold_start100_random_replay0.5_tiles``."""
    return (f"cold_start{steps}" + ("" if answers == "truth" else f"_{answers}") + (f"_replay{replay:g}" if replay else "")
            + ("" if think == "empty" else f"_{think}"))


def start(config: Config, seed: int) -> finetuning.Start:
    """The checkpoint RFT starts from for ``seed``: the base when ``rft.cold_start_steps`` is 0, else the
    warm-up's model (trained here when missing, its curves measured on RFT's evaluation sets: they show
    what the warm-up alone did to prior knowledge and jigsaw accuracy)."""
    rft = config["rft"]
    if rft["cold_start_steps"] == 0:
        return finetuning.base_start(config)
    check_room(rft, config["jigsaw"]["rows"] * config["jigsaw"]["cols"])
    steps = rft["cold_start_steps"]
    # a run's fingerprint does not depend on its data: the corpus and the sets are built only for training
    job = finetuning.plan(config, "sft", name(steps, rft["cold_start_answers"], rft["cold_start_replay"],
                                              rft["cold_start_think"]),
                          None, None, seed=seed, start=finetuning.base_start(config), keep_model=True,
                          steps=steps, eval_every=steps)
    run = job.finished() or finetuning.execute(dataclasses.replace(job, dataset=corpus(config, seed)),
                                               *finetuning.evaluation_sets(config, "rft"))
    return finetuning.Start(Path(run["dir"]) / "model", stages.stage_fingerprint(run["dir"], "03_rft", config.profile))
