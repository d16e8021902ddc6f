"""TRL's trainers, used unmodified: their configs from a profile section, the callbacks that measure a
run, and :func:`train`, one fine-tuning of a saved checkpoint with ``SFTTrainer`` (SFT) or
``GRPOTrainer`` (RFT).

A :class:`CurveCallback` measures, every ``eval_every`` steps, held-out new-task accuracy and the whole
prior-knowledge suite, and writes the curve to ``curves.json`` next to the run's outputs: the learning
and forgetting curves of notebooks 02-04 and 08. Functions here take a section's knobs (``cfg``), never
a profile.

Every run's ``metrics.json`` also says where its time went (``time_s``): the curve points' evaluation and,
for GRPO, the sections TRL's trainer profiles itself (:class:`TrainerClock`); the reproduction's runner
sums them per stage (:func:`jrft_utils.reproduce.stage_times`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer
from trl.extras import profiling

from jrft_utils import distributed, jigsaw, results
from jrft_utils import modeling

CURVES_FILE = "curves.json"
METRICS_FILE = "metrics.json"


class CurveCallback(TrainerCallback):
    """Measures the model at step 0, every ``every`` steps and at the last step with ``evaluate`` (a
    function of the model returning a JSON-able dict, e.g. :func:`evaluate_all` with its sets bound:
    held-out jigsaw ``acc`` / ``hit`` and prior knowledge), and appends each point to ``path`` (JSON,
    written atomically).

    ``start_cache``: a JSON file for the step-0 point, which is the same for every run that starts from
    the same checkpoint and is scored on the same sets: measured once, then read back.

    ``between``: measures the intermediate points (neither step 0 nor the last) instead of ``evaluate``,
    given the model and the step-0 point, e.g. on fixed subsets of the sets (:func:`jrft_utils.finetuning.evaluate_between`)."""

    def __init__(self, evaluate: Callable[[Any], dict[str, Any]], every: int, path: str | Path,
                 start_cache: str | Path | None = None,
                 between: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None):
        if every < 1:
            raise ValueError(f"eval_every must be >= 1, got {every}")
        self.evaluate, self.every, self.path, self.between = evaluate, every, Path(path), between
        self.start_cache = Path(start_cache) if start_cache else None
        self.points: list[dict[str, Any]] = []
        self.seconds = 0.0  # spent measuring (a cached step-0 point costs nothing)

    def measure(self, model, step: int, intermediate: bool = False) -> dict[str, Any]:
        """One point of the curves for ``model`` at ``step`` (with ``between`` when ``intermediate``)."""
        was_training = model.training
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            measured = (self.between(model, self.points[0]) if intermediate and self.between
                        else self.evaluate(model))
            point = {"step": step, **measured}
        self.seconds += time.perf_counter() - t0
        model.train(was_training)
        self.points.append(point)
        results.write_json_atomic(self.path, self.points)
        return point

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not distributed.is_main():  # across processes (jrft_utils.distributed) the main one measures
            return
        if self.start_cache and self.start_cache.exists():
            self.points.append(json.loads(self.start_cache.read_text()))
            results.write_json_atomic(self.path, self.points)
            return
        point = self.measure(model, 0)
        if self.start_cache:
            results.write_json_atomic(self.start_cache, point)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if distributed.is_main() and state.global_step % self.every == 0:
            self.measure(model, state.global_step, intermediate=state.global_step < state.max_steps)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if distributed.is_main() and self.points[-1]["step"] != state.global_step:
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
        if distributed.is_main() and state.global_step == self.step:
            modeling.save_checkpoint(model, self.processor, self.path)


def _common_args(cfg: dict[str, Any], output_dir: Path, seed: int, progress: bool = True) -> dict[str, Any]:
    return dict(
        output_dir=str(output_dir), max_steps=cfg["steps"], learning_rate=cfg["learning_rate"],
        per_device_train_batch_size=distributed.per_device(cfg["batch_size"]), lr_scheduler_type=cfg["lr_scheduler"],
        warmup_steps=cfg["warmup_steps"], weight_decay=0.0, max_grad_norm=1.0, logging_steps=cfg["logging_steps"],
        save_strategy="no", report_to="none", seed=seed, data_seed=seed, bf16=False,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=not progress,
        # TRL turns activation checkpointing on by default: it saves the memory paper-scale models need on a GPU,
        # but on CPU it only recomputes tiny models' forward pass (docs/findings.md)
        activation_checkpointing=torch.cuda.is_available(),
    )


def sft_config(cfg: dict[str, Any], output_dir: Path, seed: int, progress: bool = True, **extra: Any):
    """``trl.SFTConfig`` from a profile's ``sft`` (or ``pretrain``) section: completion-only loss, no
    truncation (what VLM SFT needs on TRL); ``extra`` are further SFTConfig fields."""
    return SFTConfig(**_common_args(cfg, output_dir, seed, progress), max_length=None, completion_only_loss=True,
                     **extra)


def grpo_config(cfg: dict[str, Any], output_dir: Path, seed: int, progress: bool = True):
    """``trl.GRPOConfig`` from a profile's ``rft`` section; every rollout is logged (``log_completions``)
    to ``<output_dir>/completions/*.parquet`` with its rewards and step."""
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
          peft_config=None, reward_funcs: list | None = None, progress: bool = True,
          launch: distributed.Launch | None = None) -> dict[str, Any]:
    """Fine-tune the checkpoint at ``base_dir`` with ``method`` (``"sft"`` or ``"rft"``), the image side
    frozen when ``cfg["freeze_vision"]`` (:func:`modeling.freeze_image_side`), and, with
    ``save_model``, save the result to ``<output_dir>/model``; ``peft_config``: LoRA through PEFT;
    ``reward_funcs``: GRPO's rewards (default: the jigsaw rewards named in ``cfg["rewards"]``). Returns
    (and writes to ``metrics.json``) ``steps`` and ``train_time_s``, plus the final point of a
    :class:`CurveCallback` among ``callbacks``. ``launch``: train in several processes
    (:mod:`jrft_utils.distributed`; the launch's log in ``<output_dir>/launch``)."""
    if method not in ("sft", "rft"):
        raise ValueError(f"method must be 'sft' or 'rft', got {method!r}")
    output_dir = Path(output_dir)
    if launch is not None:
        job = partial(train, method, base_dir, train_dataset, cfg, output_dir, seed, callbacks, save_model,
                      peft_config, reward_funcs, progress)
        return distributed.launch(job, launch, output_dir / "launch")
    if {"image", "images"} <= set(train_dataset.column_names):
        # the trainers read one of the two; every batch would decode both images
        train_dataset = train_dataset.remove_columns("image")
    model, processor = modeling.load_checkpoint(base_dir)
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
            # with beta > 0 GRPO builds its reference model from the path it is given: the starting checkpoint
            trainer = GRPOTrainer(model=modeling.trainable_source(base_dir),
                                  reward_funcs=reward_funcs or reward_functions(cfg["rewards"]),
                                  args=grpo_config(cfg, output_dir, seed, progress), train_dataset=train_dataset,
                                  processing_class=processor, callbacks=callbacks, peft_config=peft_config)
        if cfg.get("freeze_vision"):  # before train(), which builds the optimiser over trainable weights
            modeling.freeze_image_side(trainer.model)
        t0 = time.perf_counter()
        with TrainerClock() as clock:
            trainer.train()
    if not distributed.is_main():  # the main process writes the run's results
        return {}
    metrics: dict[str, Any] = {"steps": trainer.state.global_step, "train_time_s": time.perf_counter() - t0}
    evaluation_s = 0.0
    for callback in callbacks:
        if isinstance(callback, CurveCallback):
            metrics |= {k: v for k, v in callback.points[-1].items() if k != "step"}
            evaluation_s += callback.seconds
    metrics["time_s"] = clock.parts(metrics["train_time_s"], evaluation_s)
    if save_model:
        modeling.save_checkpoint(trainer.model, processor, output_dir / "model")
    results.write_json_atomic(output_dir / METRICS_FILE, metrics)
    return metrics


class TrainerClock:
    """Collects the durations TRL's trainers measure with ``trl.extras.profiling`` (by section name), then
    passes them on (to an enclosing clock, or to TRL's experiment trackers)."""

    # GRPO's profiled sections that split a step: sampling, preparing the batch (sampling included), the loss
    SECTIONS = ("transformers.generate", "_prepare_inputs", "compute_loss")

    def __init__(self):
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self._original = profiling.ProfilingContext._log_metrics

    def __enter__(self):
        clock = self

        def record(context, duration: float) -> None:
            clock.seconds[context.name.split(".", 1)[-1]].append(duration)
            clock._original(context, duration)

        profiling.ProfilingContext._log_metrics = record
        return self

    def __exit__(self, *exc):
        profiling.ProfilingContext._log_metrics = self._original
        return False

    def parts(self, total: float, evaluation: float) -> dict[str, float]:
        """A run's ``total`` seconds split into ``evaluation`` (the curve points) and, from what the trainer
        profiled (GRPO: ``sampling``, the rest of preparing a batch as ``rewards_and_reference``, the
        policy's ``forward_and_loss``), the ``rest`` (backward passes, optimiser, batches, logging)."""
        generate, prepare, loss = (sum(self.seconds.get(name, [])) for name in self.SECTIONS)
        parts = {"evaluation": evaluation}
        if prepare:
            parts |= {"sampling": generate, "rewards_and_reference": prepare - generate, "forward_and_loss": loss}
        return {k: round(v, 2) for k, v in (parts | {"rest": total - sum(parts.values())}).items()}


def load_curves(output_dir: str | Path) -> list[dict[str, Any]]:
    """The curve points a :class:`CurveCallback` wrote into ``output_dir``."""
    path = Path(output_dir) / CURVES_FILE
    if not path.exists():
        raise FileNotFoundError(f"no curves at {path}: the training stage has not run")
    return json.loads(path.read_text())
