"""The paper-scale model of the ``gpu`` profile: Qwen2.5-VL-3B/7B-Instruct, by hub id or local path.

The same notebooks run it instead of the tiny model when the profile's ``model.source`` names a Qwen2.5-VL
checkpoint (see docs/gpu.md). Three things differ from the tiny model's path:

- **The processor.** On transformers 5 without torchvision, ``Qwen2_5_VLProcessor`` cannot be built from a
  checkpoint (its video-processor slot needs torchvision and is type-checked). :class:`QwenVLProcessor`
  accepts ``video_processor=None`` and pairs the checkpoint's tokenizer with the PIL image processor
  (``Qwen2VLImageProcessorPil``); images only, which is all this project needs.
- **Precision and LoRA.** ``model.dtype`` (bf16 on GPU) and, with ``model.lora_r > 0``, LoRA adapters
  through PEFT (:func:`lora_config`, handed to TRL's trainers as ``peft_config``).
- **No pretraining.** Notebook 00 records where the weights come from instead of pretraining
  (:func:`write_source`); every later stage loads them through :func:`jrft_utils.modeling.load_checkpoint`.

The tests run this code on a tiny random Qwen2.5-VL (``tests/tiny_qwen.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import hf_hub_download
from transformers import (
    AutoTokenizer,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
)

SOURCE_FILE = "source.json"  # in a base folder: where the pretrained weights are


class ModelUnavailable(RuntimeError):
    """The Qwen2.5-VL weights could not be loaded (offline, or a wrong path)."""


class QwenVLProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` for images only: ``video_processor=None`` is accepted (no torchvision)."""

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name == "video_processor" and argument is None:
            return None
        return super().check_argument_for_proper_class(argument_name, argument)

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """Tokenizer, image processor and chat template (what :func:`load_processor` reads back)."""
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(save_directory)
        self.image_processor.save_pretrained(save_directory)
        if self.chat_template:
            (Path(save_directory) / "chat_template.jinja").write_text(self.chat_template)


def is_qwen_checkpoint(path: str | Path) -> bool:
    """Whether the local folder ``path`` holds a Qwen2.5-VL checkpoint."""
    config = Path(path) / "config.json"
    return config.exists() and json.loads(config.read_text()).get("model_type") == "qwen2_5_vl"


def load_processor(source: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The checkpoint's tokenizer and chat template with the PIL image processor, left padding."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v}
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(source, **pixels)
    template = _chat_template(source) or tokenizer.chat_template
    processor = QwenVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                                chat_template=template)
    processor.tokenizer.padding_side = "left"
    return processor


def _chat_template(source: str | Path) -> str | None:
    """The processor-level chat template Qwen2.5-VL checkpoints ship (``chat_template.json`` or
    ``.jinja``), if any."""
    for name in ("chat_template.jinja", "chat_template.json"):
        local = Path(source) / name
        try:
            path = local if local.exists() else Path(hf_hub_download(str(source), name))
        except Exception:  # noqa: BLE001 - not shipped under this name, or offline
            continue
        text = path.read_text()
        return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None


def load(source: str | Path, dtype: str = "bfloat16", min_pixels: int | None = None,
         max_pixels: int | None = None):
    """``(model, processor)`` of the Qwen2.5-VL checkpoint ``source`` (hub id or local folder), weights in
    ``dtype`` (a torch dtype name, or "auto": as saved), model in eval mode on the GPU when there is one. Raises :class:`ModelUnavailable` with what was tried and how to
    point the notebooks at a local copy."""
    try:
        processor = load_processor(source, min_pixels, max_pixels)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            source, dtype=dtype if dtype == "auto" else getattr(torch, dtype))
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        where = "the local folder" if Path(source).exists() else "the Hugging Face hub (or its local cache)"
        raise ModelUnavailable(
            f"could not load Qwen2.5-VL {str(source)!r} from {where}: {first_line}. Where there is internet, "
            f"download it with `huggingface-cli download {source} --local-dir DIR` and point the notebooks at "
            "it: -p model_source=DIR (or the gpu profile's model.source)") from err
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, processor


def write_source(base_dir: str | Path, source: str, dtype: str) -> Path:
    """Record in ``base_dir`` that the base model is the pretrained checkpoint ``source`` (notebook 00 of
    the gpu profile: nothing is pretrained, and a 7B model is not copied)."""
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    (base_dir / SOURCE_FILE).write_text(json.dumps({"source": str(source), "dtype": dtype}))
    return base_dir


def read_source(base_dir: str | Path) -> dict[str, str] | None:
    """What :func:`write_source` recorded in ``base_dir``, or ``None``."""
    path = Path(base_dir) / SOURCE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def lora_config(cfg: dict[str, Any]):
    """A PEFT ``LoraConfig`` for the language model's attention and MLP projections (the vision tower,
    whose blocks use the same names, stays frozen) when the ``model`` section's ``lora_r`` > 0, else
    ``None`` (full fine-tuning)."""
    if cfg.get("lora_r", 0) <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg["lora_r"], lora_alpha=cfg["lora_alpha"], lora_dropout=0.0, task_type="CAUSAL_LM",
                      target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
