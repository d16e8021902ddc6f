"""The data perspective (notebook 04): the SFT corpora on the same training puzzles, the paper's four and
our controls (:func:`jrft_utils.methods.controls`).

- ``gt``: the ground-truth answer only (SFT-Non-Rea).
- ``teacher``: the rule-based teacher's reasoning written for the ground-truth answer, then the answer
  (the analogue of SFT-Rea-4o: GPT-4o scores 0% on jigsaws, so its reasoning must be written knowing the
  answer; ours is too), in the base's own words and a solver's style (:mod:`jrft_utils.teacher`).
- ``rft_rollouts``: the final RFT model's own correct rollouts (SFT-Rea-GRPO-Rollout): ``num_samples``
  completions sampled per puzzle, the first exactly right one kept; puzzles with none are left out
  (unless ``corpora.require_correct`` is off, as in the smoke profile, where nothing is solved).
- ``early_rollouts``: rollouts of the early RFT snapshot (``rft.snapshot_step``), when its jigsaw accuracy
  was still low, *paired with the correct answer*: the rollout's ``<think>`` part is kept and its answer
  block replaced by the ground truth (our construction; the paper's is not known). One sample per puzzle.

Controls (all with the true answers; they test explanations, not methods):

- ``teacher_foreign``: the same teacher in words the base never saw, so that the corpus is unlikely under
  the start while saying the same thing.
- ``start_think``: a think block sampled from the start itself (as likely under it as sampling makes it,
  and as long as the rollouts'), then the true answer: the start's own data without RFT's authorship.
- ``random_trace``: a tile trace of a random permutation (drawn like the start's own training traces),
  then the true answer: the rollouts' form without their content.
- ``foreign_think``: a think block of words the start never read (:data:`teacher.FOREIGN_WORDS`, drawn at
  random), as many as the think block of the same puzzle's rollout in ``rft_rollouts`` (of a random
  rollout for a puzzle without one), then the true answer: the rollouts' length, unlikely under the start
  and saying nothing.

Rollout corpora (and ``foreign_think``) depend on the RFT run of the same seed; each built corpus is cached on disk under
``runs/<profile>/corpora/<name>/seed<k>-<key>`` (``key``: the fingerprint of what decides it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from jrft_utils import finetuning, generation, jigsaw, methods, stages, teacher, template, warmup
from jrft_utils import modeling
from jrft_utils.profiles import Config

CORPORA = methods.corpora()


class EmptyCorpusError(RuntimeError):
    """A rollout corpus with no sample (the RFT model solved nothing)."""


def check_corpus(name: str) -> None:
    """Raise ``ValueError`` for an unknown corpus name."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; corpora: {CORPORA}")


def rft_run_dir(config: Config, seed: int) -> Path:
    """The main RFT run of ``seed`` that notebook 03 recorded for ``config`` (:func:`finetuning.load_method_results`),
    whose final model and snapshot the rollouts come from."""
    runs = finetuning.load_method_results(config, "rft", made_by="03_rft")["main"]
    if seed not in runs:
        raise config.missing(f"RFT run of seed {seed}", finetuning.method_results_path(config, "rft"), "03_rft")
    return Path(runs[seed]["dir"])


def with_true_answer(completion: str, answer: str) -> str:
    """``completion``'s think part (empty if it has none) followed by the correct answer block."""
    return jigsaw.completion_text(answer, think=template.think_text(completion))


def sample_rollouts(checkpoint, train, num_samples: int, temperature: float, max_new_tokens: int,
                    batch_size: int, seed: int) -> list[list[str]]:
    """``num_samples`` sampled completions of the checkpoint for every puzzle of ``train``."""
    model, processor = modeling.load_checkpoint(checkpoint)
    prompts = [jigsaw.jigsaw_prompt(r, c) for r, c in zip(train["rows"], train["cols"])]
    flat = generation.generate_completions(
        model, processor, [im for im in train["image"] for _ in range(num_samples)],
        [p for p in prompts for _ in range(num_samples)], max_new_tokens=max_new_tokens,
        batch_size=batch_size, temperature=temperature, seed=seed, desc="sampling rollouts")
    return [flat[i:i + num_samples] for i in range(0, len(flat), num_samples)]


def completions_for(config: Config, name: str, train, seed: int) -> tuple[list[int], list[str]]:
    """The puzzles (row indices of ``train``) and target completions of corpus ``name``."""
    cfg = config["corpora"]
    answers = list(train["answer"])
    if name == "gt":
        return list(range(len(train))), [jigsaw.gt_completion(a) for a in answers]
    if name in ("teacher", "teacher_foreign"):
        style = "world" if name == "teacher" else "foreign"
        return list(range(len(train))), teacher.teacher_completions(train, use_truth=True, style=style)
    if name == "random_trace":
        rng = np.random.default_rng(seed)
        return list(range(len(train))), [jigsaw.completion_text(a, think=jigsaw.tile_trace(
            jigsaw.random_answer(rng, len(jigsaw.answer_list(a))))) for a in answers]
    if name == "foreign_think":
        rollouts = build(config, "rft_rollouts", seed)[0]
        lengths = {p: len(template.think_text(c[0]["content"]).split())
                   for p, c in zip(rollouts["puzzle"], rollouts["completion"])}
        thinks = template.length_matched_words(teacher.FOREIGN_WORDS, range(len(train)), lengths,
                                               np.random.default_rng(seed))
        return list(range(len(train))), [jigsaw.completion_text(a, think=t) for a, t in zip(answers, thinks)]
    if name == "start_think":
        room = config["rft"]["max_completion_length"]  # as long as GRPO's rollouts may be
        samples = sample_rollouts(warmup.start(config).dir, train, 1, cfg["temperature"], room, cfg["batch_size"], seed)
        return list(range(len(train))), [with_true_answer(s[0], a) for s, a in zip(samples, answers)]
    run = rft_run_dir(config, seed)
    checkpoint = run / ("model" if name == "rft_rollouts" else "snapshot")
    room = stages.record(run)["params"]["cfg"]["max_completion_length"]  # as long as GRPO's own rollouts
    samples = sample_rollouts(checkpoint, train, cfg["num_samples"] if name == "rft_rollouts" else 1,
                              cfg["temperature"], room, cfg["batch_size"], seed)
    if name == "early_rollouts":
        return list(range(len(train))), [with_true_answer(s[0], a) for s, a in zip(samples, answers)]
    rows, texts = [], []
    for i, (group, answer) in enumerate(zip(samples, answers)):
        correct = [c for c in group if jigsaw.score(c, answer)["acc"] == 1.0]
        if correct or not cfg["require_correct"]:
            rows.append(i)
            texts.append((correct or group)[0])
    return rows, texts


def share_of_gt(corpus, gt) -> float:
    """The share of ``corpus``'s completions that are, token for token, the ``gt`` completion of their
    puzzle (both built by :func:`build`). A rollout corpus whose policy writes no reasoning of its own is
    the ``gt`` corpus on a subset of the puzzles (share 1.0), and cannot differ from it by style."""
    answer = {p: c[0]["content"] for p, c in zip(gt["puzzle"], gt["completion"])}
    same = [answer.get(p) == c[0]["content"] for p, c in zip(corpus["puzzle"], corpus["completion"])]
    return sum(same) / len(same) if same else float("nan")


def trace_shares(corpus) -> dict[str, float]:
    """How a corpus's think blocks relate to its answers: the share of completions whose think block is a
    tile trace (:func:`jigsaw.tile_trace`, what the start with ``start.think="tiles"`` writes),
    and the share whose trace gives exactly the completion's own answer, a valid permutation (the rest
    think one thing and answer another)."""
    texts = [c[0]["content"] for c in corpus["completion"]]
    traces = [jigsaw.read_tile_trace(t) for t in texts]
    told = [tr is not None and jigsaw.parse_answer(t, len(tr)) == tr for tr, t in zip(traces, texts)]
    n = max(len(texts), 1)
    return {"tile trace": sum(tr is not None for tr in traces) / n, "trace = answer": sum(told) / n}


def build(config: Config, name: str, seed: int):
    """Corpus ``name`` for ``seed`` in TRL's SFT format (cached; column ``puzzle`` holds the training
    puzzle's row), and the fingerprints it depends on."""
    import datasets

    check_corpus(name)
    inputs = {}
    if name.endswith("rollouts") or name == "foreign_think":
        inputs["rft"] = stages.stage_fingerprint(rft_run_dir(config, seed), "03_rft", config.profile)
    if name == "start_think":
        inputs["start"] = warmup.start(config).fingerprint
    cfg = {k: v for k, v in config["corpora"].items() if k != "controls"}  # which corpora are built, not how
    params = {"name": name, "seed": seed, "cfg": cfg, "jigsaw": config["jigsaw"], "inputs": inputs}
    out = config.run_dir / "corpora" / name / f"seed{seed}-{stages.fingerprint(params)[:8]}"
    if stages.cached(out, params) is None:
        shutil.rmtree(out, ignore_errors=True)  # a build killed half-way
        train = finetuning.jigsaw_splits(config)["train"]
        rows, texts = completions_for(config, name, train, seed)
        if rows:
            jigsaw.to_sft(train.select(rows), texts).add_column("puzzle", rows).save_to_disk(str(out / "data"))
        stages.mark_done(out, params, {"size": len(rows), "of": len(train)})
    if stages.cached(out, params)["size"] == 0:
        raise EmptyCorpusError(f"corpus {name!r} (seed {seed}) is empty: the RFT model solved none of the "
                               "training puzzles in its samples (train RFT longer or raise corpora.num_samples)")
    fingerprint = stages.stage_fingerprint(out, "04_rollout_distillation", config.profile)
    return datasets.load_from_disk(str(out / "data")), inputs | {"corpus": fingerprint}


def build_available(config: Config, seeds: list[int]) -> tuple[dict[str, dict[int, Any]], dict[str, str]]:
    """Every corpus for every seed (the controls only with ``corpora.controls``), as ``{name: {seed:
    dataset}}``, leaving out (and reporting in the second dict) the corpora that came out empty for some seed."""
    built, missing = {}, {}
    for name in CORPORA:
        if name in methods.controls() and not config["corpora"]["controls"]:
            continue
        try:
            built[name] = {seed: build(config, name, seed)[0] for seed in seeds}
        except EmptyCorpusError as err:
            missing[name] = str(err)
    return built, missing
