"""Where a reproduction's time goes, measured in one process: the hot paths of the cpu profile's
fine-tuning runs, each timed on the same checkpoint, and their ratios.

- a GRPO step of TRL's trainer, split into its parts with the trainer's own profiling (sampling
  ``rft.batch_size`` completions; rewards and the reference model's log-probabilities; the policy's forward
  pass and loss; backward pass and update), against one SFT step of ``sft.batch_size`` samples;
- one curve point of a fine-tuning run (held-out jigsaw and the prior-knowledge suite), one scored on
  fixed subsets (100 puzzles, 50 questions of each capability: what ``sft.between_test_size`` and
  ``between_prior_size`` would set), and the prior-knowledge evaluation per capability;
- the per-sample gradients of the eNTK (notebook 05), batched as ``jrft_utils.dynamics`` computes them.

Run: ``.venv/bin/python benchmarks/bench_hot_paths.py [--checkpoint data/base] [--profile cpu] [--steps 3]
[--threads 1]``. The default checkpoint is the shipped base, which does not write the jigsaw's format:
its GRPO completions run to ``rft.max_completion_length``, as the longest rollouts of a run do. Prints
a table of median seconds per call and each path's share of the time it belongs to; nothing is written.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jrft_utils import dynamics, evaluation, finetuning, jigsaw, modeling, profiles, trainers  # noqa: E402
from transformers import TrainerCallback  # noqa: E402


class StepClock(TrainerCallback):
    """Seconds of each training step (from its start to its end, set-up left out)."""

    def __init__(self):
        self.seconds: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds.append(time.perf_counter() - self._t0)


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _median_after_first(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] or seconds)  # the first step warms up


def grpo_parts(config: profiles.Config, checkpoint: Path, steps: int) -> dict[str, float]:
    """Seconds of a GRPO step of TRL's trainer (median over ``steps`` steps after a first one) and of its
    parts, from the sections the trainer profiles: sampling the completions (``generate``), the rest of
    ``_prepare_inputs`` (decoding, rewards, the reference model's log-probabilities), the policy's forward
    pass and loss (``compute_loss``), and the rest of the step (backward pass, optimiser, batch loading)."""
    train = jigsaw.to_grpo(finetuning.jigsaw_splits(config)["train"])
    cfg = config["rft"] | {"steps": steps + 1, "logging_steps": 1}
    step = StepClock()
    with trainers.TrainerClock() as clock, tempfile.TemporaryDirectory() as out:
        trainers.train("rft", checkpoint, train, cfg, out, seed=0, callbacks=[step], save_model=False, progress=False)
    total, (generate, prepare, loss) = _median_after_first(step.seconds), (
        _median_after_first(clock.seconds[name]) for name in trainers.TrainerClock.SECTIONS)
    return {"GRPO step": total, "  sampling the completions": generate,
            "  rewards and reference log-probabilities": prepare - generate,
            "  policy forward and loss": loss, "  backward, optimiser, batch loading": total - prepare - loss}


def sft_step(config: profiles.Config, checkpoint: Path, steps: int) -> float:
    """Seconds of an SFT step of TRL's trainer on the jigsaw's answers (median over ``steps`` after a first)."""
    split = finetuning.jigsaw_splits(config)["train"]
    data = jigsaw.to_sft(split, [jigsaw.gt_completion(a) for a in split["answer"]])
    cfg = config["sft"] | {"steps": steps + 1, "logging_steps": steps + 1}
    step = StepClock()
    with tempfile.TemporaryDirectory() as out:
        trainers.train("sft", checkpoint, data, cfg, out, seed=0, callbacks=[step], save_model=False, progress=False)
    return _median_after_first(step.seconds)


def evaluation_parts(config: profiles.Config, checkpoint: Path, repeats: int,
                     between: tuple[int, int] = (100, 50)) -> dict[str, float]:
    """Seconds of one curve point, of one scored on fixed subsets (``between``: puzzles, questions of each
    capability; :func:`finetuning.evaluate_between`) and of the prior-knowledge evaluation of each capability."""
    model, processor = modeling.load_checkpoint(checkpoint)
    model.eval()
    jigsaw_test, prior_sets = finetuning.evaluation_sets(config, "sft")
    batch = config["world"]["eval_batch_size"]
    max_new_tokens, (puzzles, questions) = config["jigsaw"]["max_new_tokens"], between
    with torch.no_grad():
        out = {"curve point (jigsaw + prior suite)": timed(lambda: finetuning.evaluate_all(
            model, processor, jigsaw_test, prior_sets, batch_size=batch, max_new_tokens=max_new_tokens), repeats)}
        start = finetuning.evaluate_all(model, processor, jigsaw_test, prior_sets, batch, max_new_tokens,
                                        prior_subset=questions)
        out[f"  point on subsets ({puzzles} puzzles, {questions} a capability)"] = timed(
            lambda: finetuning.evaluate_between(model, start, processor, jigsaw_test, prior_sets, puzzles, questions,
                                                batch, max_new_tokens), repeats)
        for name, items in prior_sets.items():
            out[f"  prior: {name} ({len(items)} items)"] = timed(
                lambda items=items, name=name: evaluation.evaluate_prior(model, processor, {name: items}, batch_size=batch,
                                                                          progress=False), repeats)
    return out


def entk_grads(config: profiles.Config, checkpoint: Path, repeats: int) -> float:
    """Seconds of the batched per-sample gradients of ``dynamics.n_u`` jigsaw samples (notebook 05)."""
    model, processor = modeling.load_checkpoint(checkpoint)
    split = finetuning.jigsaw_splits(config)["train"].select(range(config["dynamics"]["n_u"]))
    samples = dynamics.jigsaw_samples(split, [jigsaw.gt_completion(a) for a in split["answer"]])
    return timed(lambda: dynamics.per_sample_grads(model, processor, samples), repeats)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=profiles.REPO_ROOT / "data" / "base")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps of each trainer")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls of each evaluation")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    config = profiles.resolve(args.profile)
    rows = grpo_parts(config, args.checkpoint, args.steps)
    rows["SFT step"] = sft_step(config, args.checkpoint, args.steps)
    rows |= evaluation_parts(config, args.checkpoint, args.repeats)
    rows["eNTK per-sample gradients (n_u samples)"] = entk_grads(config, args.checkpoint, args.repeats)
    grpo, point = rows["GRPO step"], rows["curve point (jigsaw + prior suite)"]
    print(f"{args.profile} profile, {args.checkpoint}, {args.threads} thread(s); median seconds per call")
    for name, seconds in rows.items():
        share = ("" if not name.startswith("  ") else f"{seconds / point:6.1%} of a curve point" if "point" in name or "prior:" in name
                 else f"{seconds / grpo:6.1%} of a GRPO step")
        print(f"{name:<50} {seconds:8.3f} s  {share}")
    print(f"a GRPO step takes {grpo / rows['SFT step']:.1f}x an SFT step; a curve point {point / grpo:.1f}x a GRPO step")

if __name__ == "__main__":
    main()
