"""Pretraining of the base model on the prior-knowledge world (notebook 00).

It goes through TRL's ``SFTTrainer`` (completion-only loss on conversational prompt/completion data with
an ``images`` column), the same path the later SFT stage trains on, so the base and every later stage
share one chat format and one collator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from trl import SFTTrainer

from jrft_utils import evaluation, modeling, qwen, results, shipped, stages, template, trainers, world
from jrft_utils.profiles import Config


def to_dataset(samples: list[dict[str, Any]]):
    """Samples as a TRL conversational ``datasets.Dataset`` (prompt, completion, images).

    The dataset stores each sample's position in ``samples`` and looks its image up on access: the images
    already in memory are used as they are, instead of PNG-encoding every image into the dataset (or
    re-rendering world scenes, about 19 ms a pretraining step, measured). ``samples`` must therefore stay
    alive while the dataset is used."""
    from datasets import Dataset

    if not samples:
        raise ValueError("no training samples")
    columns = world.to_conversational(samples)
    del columns["images"]
    columns["sample_index"] = list(range(len(samples)))

    def with_images(batch: dict[str, list]) -> dict[str, list]:
        return {"prompt": batch["prompt"], "completion": batch["completion"],
                "images": [[samples[i]["image"]] for i in batch["sample_index"]]}

    dataset = Dataset.from_dict(columns)
    dataset.set_transform(with_images)
    return dataset


SHAPE_KEYS = tuple(f"{c} {s}" for c in world.COLOURS for s in world.SHAPES)
N_CONTENT = 1 + len(SHAPE_KEYS) + 10  # empty, a coloured shape, a digit


def cell_labels(spec: dict[str, Any]) -> list[int]:
    """What each grid cell holds: 0 empty, 1..12 a coloured shape, 13..22 a handwritten digit."""
    labels = [0] * world.GRID ** 2
    digit_values = world._digits()[1]
    for it in spec["items"]:
        if it["kind"] == "shape":
            labels[it["cell"]] = 1 + SHAPE_KEYS.index(f"{it['colour']} {it['shape']}")
        else:
            labels[it["cell"]] = 1 + len(SHAPE_KEYS) + int(digit_values[it["index"]])
    return labels


def patch_cells(model) -> torch.Tensor:
    """The world's grid cell (0..8, row-major) that each image token's patch lies in."""
    side = model.config.vision_config.image_size // model.config.vision_config.patch_size
    g = world.GRID
    return torch.tensor([(r * g // side) * g + c * g // side for r in range(side) for c in range(side)])


def image_token_features(model, processor, images: list) -> torch.Tensor:
    """The image tokens the decoder sees (vision tower, then projector): ``(images, patches, hidden)``."""
    px = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    feats = model.model.get_image_features(pixel_values=px)
    return torch.stack(list(getattr(feats, "pooler_output", feats)))


def pretrain_vision(model, processor, samples: list[dict[str, Any]], steps: int, batch_size: int,
                    learning_rate: float, seed: int, progress: bool = True) -> list[dict[str, float]]:
    """Stage 1: train the vision tower and projector to say, for every image token, what its grid cell
    holds and which cell it is (a linear probe head, dropped afterwards), as real VLMs start from a
    pretrained vision encoder. Without it the decoder learnt to copy its own think traces long before
    it learnt to look (measured: held-out mean 0.20 after 1,600 SFT steps)."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    patch_cell = patch_cells(model)
    head = torch.nn.Linear(model.config.text_config.hidden_size, N_CONTENT + world.GRID ** 2)
    params = [*model.model.vision_tower.parameters(), *model.model.multi_modal_projector.parameters(),
              *head.parameters()]
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    # one-cycle: a warm-up over 5% of the steps (at least 2), then cosine decay; too few steps for both
    # phases (OneCycleLR divides by zero when the warm-up is a single step) train at a constant rate
    warmup = max(2, round(0.05 * steps))
    sched = (torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=steps, pct_start=warmup / steps)
             if steps > warmup + 1 else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0))
    labels = torch.tensor([cell_labels(json.loads(s["spec"])) for s in samples])
    # digits are the slow class to learn (measured), so half of every batch shows handwritten digits
    with_digits = torch.tensor([i for i, row in enumerate(labels.tolist()) if max(row) > len(SHAPE_KEYS)])
    model.train()
    log, t0 = [], time.perf_counter()
    for step in tqdm(range(steps), desc="vision stage", disable=not progress):
        idx = torch.cat([torch.randint(len(samples), (batch_size - batch_size // 2,), generator=gen),
                         with_digits[torch.randint(len(with_digits), (batch_size // 2,), generator=gen)]])
        out = head(image_token_features(model, processor, [samples[i]["image"] for i in idx]))
        content = labels[idx][:, patch_cell]
        loss = torch.nn.functional.cross_entropy(out[..., :N_CONTENT].reshape(-1, N_CONTENT), content.reshape(-1))
        loss = loss + torch.nn.functional.cross_entropy(out[..., N_CONTENT:].reshape(-1, world.GRID ** 2),
                                                        patch_cell.repeat(batch_size))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 25 == 24 or step == steps - 1:
            acc = (out[..., :N_CONTENT].argmax(-1) == content).float().mean().item()
            log.append({"step": step + 1, "loss": loss.item(), "patch_accuracy": acc,
                        "time_s": time.perf_counter() - t0})
    return log


def use_pretrained(model_cfg: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """The base of a profile whose ``model.source`` is a pretrained checkpoint (gpu): nothing is trained;
    ``output_dir`` records the source (:func:`qwen.write_source`) as a finished stage. Returns what
    :func:`pretrain` returns, with empty logs and zero steps."""
    params = {"model": model_cfg}
    cached = stages.cached(output_dir, params) is not None
    if not cached:
        qwen.write_source(output_dir, model_cfg["source"], model_cfg["dtype"])
        stages.mark_done(output_dir, params, {"train_time_s": 0.0})
    model, processor = modeling.load_checkpoint(output_dir)
    return {"checkpoint": str(output_dir), "source": model_cfg["source"], "steps": 0, "train_time_s": 0.0,
            "vision_time_s": 0.0, "sft_time_s": 0.0, "vision_log": [], "log": [], "config": model_cfg,
            "params": modeling.count_parameters(model), "model": model, "processor": processor, "cached": cached}


def pretrain(config: Config, progress: bool = True, output_dir: Path | None = None,
             rebuild: bool = False) -> dict[str, Any]:
    """Build the model sized by ``config["model"]``, generate the world's training corpus with
    ``run.base_seed``, train it (:func:`pretrain_vision`, then :func:`pretrain_language`) and save the
    checkpoint to ``output_dir`` (default ``config.base_dir``). A checkpoint already made with the same
    settings is loaded instead (stage caching; ``cached`` is then True), and, unless ``rebuild``, the
    shipped base ``data/base`` when it was made with the same settings (:mod:`jrft_utils.shipped`;
    ``shipped`` is then True). When ``model.source`` names a pretrained checkpoint, nothing is trained
    (:func:`use_pretrained`).

    Returns the checkpoint path, the loss logs of both stages (step, loss, accuracy), the wall times,
    steps, steps/s and the parameter count; the log is also written to ``pretrain_log.json`` beside the
    checkpoint."""
    cfg, model_cfg, seed = config["pretrain"], config["model"], config["run"]["base_seed"]
    output_dir = Path(output_dir or config.base_dir)
    if model_cfg["source"] != "tiny":
        return use_pretrained(model_cfg, output_dir)
    per_capability = config["world"]["train_per_capability"]
    params = base_params(config)
    reuse = shipped.reusable(output_dir, params, shipped.DATA_DIR / "base", rebuild)
    if reuse is not None:
        model, processor = modeling.load_checkpoint(output_dir)
        return json.loads((output_dir / shipped.LOG).read_text()) | {
            "model": model, "processor": processor, "cached": True, "shipped": "shipped" in reuse}
    # pretrain.threads: 2 on idle cores; 1 when another busy process shares them (docs/findings.md)
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(seed)
    t_data = time.perf_counter()
    samples = world.build_train_set(per_capability, model_cfg["image_size"], seed)
    data_time = time.perf_counter() - t_data
    processor = modeling.build_processor(model_cfg)
    model = modeling.build_model(model_cfg, seed, processor)
    t_vision = time.perf_counter()
    vision_log = pretrain_vision(model, processor, samples, cfg["vision_steps"], cfg["vision_batch_size"],
                                 cfg["vision_learning_rate"], seed, progress=progress)
    vision_time = time.perf_counter() - t_vision
    log, train_time = pretrain_language(model, processor, samples, cfg, seed, output_dir / "trainer", progress)
    modeling.save_checkpoint(model, processor, output_dir)
    info = {"checkpoint": str(output_dir), "seed": seed, "steps": cfg["steps"],
            "train_time_s": vision_time + train_time, "vision_time_s": vision_time, "sft_time_s": train_time,
            "steps_per_s": cfg["steps"] / train_time, "vision_log": vision_log, "data_time_s": data_time, "n_samples": len(samples),
            "params": modeling.count_parameters(model), "log": log, "config": cfg}
    results.write_json_atomic(output_dir / shipped.LOG, info)
    stages.mark_done(output_dir, params, {"train_time_s": info["train_time_s"]})
    return info | {"model": model, "processor": processor, "cached": False, "shipped": False}


def pretrain_language(model, processor, samples: list[dict[str, Any]], cfg: dict[str, Any], seed: int,
                      trainer_dir: Path, progress: bool = True) -> tuple[list[dict[str, float]], float]:
    """The SFT stage of pretraining: ``SFTTrainer`` on the world's questions with the ``pretrain`` section
    ``cfg``, the vision tower frozen when ``cfg["freeze_vision"]``; leaves the model in eval mode, its
    processor padding on the left. Returns the loss log (times from the stage's start) and its wall time."""
    # the SFT stage trains the projector and the decoder on the vision stage's frozen tower, as LLaVA's
    # instruction tuning does (freeze_vision); fine-tuning later freezes the image side too (sft/rft.freeze_vision)
    model.model.vision_tower.requires_grad_(not cfg["freeze_vision"])
    torch.manual_seed(seed)
    log = trainers.LossLog()
    # the images are looked up on access from the `sample_index` column, which the trainer must therefore keep
    args = trainers.sft_config(cfg, trainer_dir, seed, progress=progress, remove_unused_columns=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=to_dataset(samples),
                         processing_class=processor, callbacks=[log])
    t0 = time.perf_counter()
    trainer.train()
    train_time = time.perf_counter() - t0
    model.model.vision_tower.requires_grad_(True)
    model.eval()
    processor.tokenizer.padding_side = "left"
    for row in log.rows:
        row["time_s"] -= t0
    return log.rows, train_time


def base_params(config: Config) -> dict[str, Any]:
    """What decides the tiny base (its stage parameters, whose fingerprint is its recipe): the pretraining
    and model sections, the world knob its corpus is drawn with, the seed and the vocabulary."""
    return {"pretrain": config["pretrain"], "world": config["world"]["train_per_capability"], "model": config["model"],
            "seed": config["run"]["base_seed"], "vocabulary": modeling.vocabulary()}


def ship_base(config: Config, model, processor, prior_sets, prior: dict[str, float]) -> str:
    """Ship the base in ``config.base_dir`` to ``data/base`` (:func:`shipped.ship`) with its scores:
    ``prior`` on the full ``prior_sets`` and the scores on their subset, measured here; returns what was
    done, in words."""
    return shipped.ship(config, "base", config.base_dir, prior, lambda: evaluation.evaluate_prior(
        model, processor, shipped.subset(prior_sets), batch_size=config["world"]["eval_batch_size"], progress=False))


def load_pretrain_log(config: Config) -> dict[str, Any]:
    """The log :func:`pretrain` wrote beside the base checkpoint."""
    path = config.base_dir / shipped.LOG
    if not path.exists():
        raise config.missing("pretraining log", path, "00_base_model")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------------
# Diagnosis: how well does the base read handwritten digits (OCR and reasoning depend on it)?
# ----------------------------------------------------------------------------------------------------
def digit_reading(model, processor, n_scenes: int = 300, seed: int = 1, batch_size: int = 100,
                  progress: bool = False) -> dict[str, dict[str, float]]:
    """The base's OCR answers on ``n_scenes`` fresh scenes (``seed``) per digit pool: ``"train_pool"``
    (the handwritten images pretraining drew from, in new scenes) and ``"held_out"`` (the test images),
    generated and scored by the prior-knowledge yardstick (:func:`evaluation.evaluate_prior`). Per pool:
    ``exact`` (its OCR score: the whole row right) and ``per_digit`` (the share of the row's digits read
    right in their position; a missing digit counts as wrong)."""
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be >= 1, got {n_scenes}")
    out = {}
    for pool, split in (("train_pool", "train"), ("held_out", "test")):
        samples = world.generate("ocr", n_scenes, seed, model.config.vision_config.image_size, split=split)
        scored = evaluation.evaluate_prior(model, processor, {"ocr": samples}, batch_size=batch_size,
                                           progress=progress, return_completions=True)
        answers = [template.answer_text(c).split() for c, _ in scored["completions"]["ocr"]]
        targets = [s["target"].split() for s in samples]
        right = sum(a[i:i + 1] == [d] for a, t in zip(answers, targets) for i, d in enumerate(t))
        out[pool] = {"exact": scored["ocr"], "per_digit": right / sum(len(t) for t in targets)}
    return out


def vision_digit_probe(model, processor, n_fit: int = 1000, n_score: int = 300, seed: int = 1,
                       batch_size: int = 100) -> dict[str, float]:
    """What the image tokens let a reader of digits reach at best, linearly: a logistic regression from
    the image tokens of a digit's cell (concatenated) to the digit, fit on the digits of ``n_fit`` OCR
    scenes drawn from the training images, scored on ``n_score`` fresh scenes of training images
    (``"train_pool"``) and of held-out images (``"held_out"``). A reference for :func:`digit_reading`
    set by the vision stage (the tower is frozen afterwards); not a strict ceiling, since the decoder
    reads the tokens non-linearly."""
    if min(n_fit, n_score) < 1:
        raise ValueError(f"n_fit and n_score must be >= 1, got {n_fit} and {n_score}")
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    patch_cell = patch_cells(model).numpy()
    size = model.config.vision_config.image_size

    def digits(n: int, seed_: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        samples = world.generate("ocr", n, seed_, size, split=split)
        xs, ys = [], []
        with torch.no_grad():
            for k in range(0, n, batch_size):
                batch = samples[k:k + batch_size]
                feats = image_token_features(model, processor, [s["image"] for s in batch]).numpy()
                for s, f in zip(batch, feats):
                    for it in json.loads(s["spec"])["items"]:
                        xs.append(f[patch_cell == it["cell"]].reshape(-1))
                        ys.append(int(world._digits()[1][it["index"]]))
        return np.array(xs), np.array(ys)

    was_training = model.training
    model.eval()
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(*digits(n_fit, seed, "train"))
    scores = {pool: float(probe.score(*digits(n_score, seed + 1, split)))
              for pool, split in (("train_pool", "train"), ("held_out", "test"))}
    if was_training:
        model.train()
    return scores
