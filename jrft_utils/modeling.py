"""The tiny vision-language model of the default profiles (notebook 00).

Everything is built from transformers' own classes, offline, so that TRL's trainers and the Auto classes
work unmodified:

- a word-level tokenizer (``tokenizers``) whose vocabulary is the special tokens, the digits 0-9 (one
  token each), punctuation and every word of the prior-knowledge world and of the jigsaw task;
- ``CLIPImageProcessorPil`` (no torchvision) and ``LlavaProcessor`` (one ``<image>`` placeholder expands
  to one token per 14 px patch);
- ``LlavaForConditionalGeneration``: a small CLIP vision tower, a projector and a small Qwen2 decoder.

Checkpoints are saved with ``save_pretrained`` and loaded with ``AutoModelForImageTextToText`` /
``AutoProcessor``.

Chat format (conversational, as TRL expects for VLMs)::

    <|im_start|> user <image> question <|im_end|> <|im_start|> assistant <think> ... </think> <answer> ... </answer> <|im_end|>
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Sequence

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from jrft_utils import jigsaw, qwen, template, world

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<|im_start|>", "<|im_end|>"
IMAGE = "<image>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, BOS, EOS, IMAGE, *template.TAGS)
ROLES: tuple[str, ...] = ("system", "user", "assistant")
DIGITS: tuple[str, ...] = tuple(string.digits)
PUNCTUATION: tuple[str, ...] = tuple(string.punctuation)

# Tokens are separated by spaces when decoded, so world texts are written space-separated and decode
# back to themselves. The image placeholder and the generation prompt are followed by a space so that
# the prompt alone is a prefix of prompt + completion (TRL relies on it).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|> {{ message['role'] }} "
    "{% if message['content'] is string %}{{ message['content'] }} "
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image> "
    "{% elif part['type'] == 'text' %}{{ part['text'] }} {% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|> "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def vocabulary(words: Sequence[str] | None = None) -> list[str]:
    """The tokenizer's vocabulary, in id order: special tokens, roles, digits, punctuation, then
    ``words`` (default: the words of the world and of the jigsaw task), each once."""
    words = (*world.VOCABULARY, *jigsaw.VOCABULARY) if words is None else tuple(words)
    vocab: list[str] = []
    for token in (*SPECIAL_TOKENS, *ROLES, *DIGITS, *PUNCTUATION, *words):
        if token not in vocab:
            vocab.append(token)
    return vocab


def build_tokenizer(words: Sequence[str] | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: words split on whitespace, every digit and punctuation mark its own token;
    ``words`` as in :func:`vocabulary`."""
    vocab = {tok: i for i, tok in enumerate(vocabulary(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(r"[0-9]"), behavior="isolated"),
        pre_tokenizers.Punctuation(behavior="isolated"),
    ])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins tokens with single spaces
    # The think/answer tags are whole tokens but not special: decoding with skip_special_tokens (as TRL
    # does before scoring rollouts) must keep them, or no rollout would ever follow the template.
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in template.TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token=UNK, pad_token=PAD, bos_token=BOS, eos_token=EOS,
        additional_special_tokens=[IMAGE],
        padding_side="left", model_max_length=512,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_processor(cfg: dict[str, Any]) -> LlavaProcessor:
    """Tokenizer + PIL image processor (``image_size`` square, CLIP normalisation) + ``LlavaProcessor``
    for a ``model`` section ``cfg``.

    Pads on the left (generation); TRL's SFT collator sets its own padding side per call."""
    size = cfg["image_size"]
    image_processor = CLIPImageProcessorPil(
        size={"height": size, "width": size}, crop_size={"height": size, "width": size},
        do_center_crop=False, do_resize=True, do_convert_rgb=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=build_tokenizer(), patch_size=cfg["patch_size"],
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE,
        image_token=IMAGE,
    )
    return processor


def build_model(cfg: dict[str, Any], seed: int, processor: LlavaProcessor | None = None):
    """A freshly initialised ``LlavaForConditionalGeneration`` sized by a ``model`` section ``cfg``."""
    processor = processor or build_processor(cfg)
    tok = processor.tokenizer
    torch.manual_seed(seed)
    vision = CLIPVisionConfig(
        hidden_size=cfg["vision_hidden"], intermediate_size=2 * cfg["vision_hidden"],
        num_hidden_layers=cfg["vision_layers"], num_attention_heads=cfg["vision_heads"],
        image_size=cfg["image_size"], patch_size=cfg["patch_size"], projection_dim=cfg["vision_hidden"],
    )
    text = _decoder_config(tok, cfg["text_hidden"], cfg["text_layers"], cfg["text_heads"], cfg["text_kv_heads"],
                           cfg["intermediate"])
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids(IMAGE),
        vision_feature_select_strategy="default", vision_feature_layer=-1, projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    return _greedy(LlavaForConditionalGeneration(config), tok)


def _decoder_config(tok, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int) -> Qwen2Config:
    """The small Qwen2 decoder's config for tokenizer ``tok`` (tied embeddings, 256 positions)."""
    return Qwen2Config(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=256,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )


def _greedy(model, tok):
    """``model`` with its generation config set to ``tok``'s special tokens and greedy decoding."""
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id, gen.bos_token_id = tok.eos_token_id, tok.pad_token_id, tok.bos_token_id
    gen.do_sample, gen.max_length = False, None
    return model


def build_text_model(tokenizer, seed: int, hidden: int, layers: int, heads: int, kv_heads: int,
                     intermediate: int):
    """A freshly initialised text-only ``Qwen2ForCausalLM`` for ``tokenizer`` (the text-only validation of
    notebook 08), built like the decoder of :func:`build_model`."""
    torch.manual_seed(seed)
    return _greedy(Qwen2ForCausalLM(_decoder_config(tokenizer, hidden, layers, heads, kv_heads, intermediate)), tokenizer)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def image_side(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules that turn an image into the language model's input: the tiny model's vision tower and
    projector, or Qwen2.5-VL's ``visual`` (its merger included), inside any wrapper; empty for a text-only
    model."""
    names = ("vision_tower", "multi_modal_projector", "visual")
    # at any depth: a PEFT wrapper nests the model
    return [module for name, module in model.named_modules() if name.rsplit(".", 1)[-1] in names]


def freeze_image_side(model: torch.nn.Module) -> int:
    """Stop training :func:`image_side`, so that fine-tuning changes the language model only; returns the
    number of parameters frozen."""
    modules = image_side(model)
    for module in modules:
        module.requires_grad_(False)
    return sum(count_parameters(m) for m in modules)


def save_checkpoint(model, processor, path: str | Path) -> Path:
    """Save model and processor with ``save_pretrained`` into ``path`` (created). A PEFT model is saved
    with its LoRA adapters merged into a copy of the weights (the model being trained is left as it is)."""
    import copy

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = copy.deepcopy(model).merge_and_unload()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def trainable_source(path: str | Path) -> str:
    """What a trainer loads the model of checkpoint folder ``path`` from: the pretrained checkpoint a
    gpu-profile base folder points to (:func:`qwen.write_source`), else the folder itself."""
    recorded = qwen.read_source(path)
    return recorded["source"] if recorded else str(path)


def load_checkpoint(path: str | Path):
    """Load ``(model, processor)`` saved by :func:`save_checkpoint` (model in eval mode, left padding), or
    the Qwen2.5-VL checkpoint a gpu-profile base folder points to. For a text-only checkpoint (notebook 08)
    the processor is the tokenizer.

    A missing checkpoint raises ``FileNotFoundError`` naming the notebook that makes it."""
    path = Path(path)
    recorded = qwen.read_source(path)
    if recorded:
        return qwen.load(recorded["source"], recorded["dtype"])
    if qwen.is_qwen_checkpoint(path):
        return qwen.load(path, "auto")
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: run notebooks/00_base_model.ipynb (same profile) first "
            "to pretrain and save the base model (python -m jrft_utils.reproduce --profile <profile> --only 00)"
        )
    if is_text_only(path):
        # AutoTokenizer would pick Qwen2's BPE tokenizer from the model type; ours is word-level
        tokenizer = PreTrainedTokenizerFast.from_pretrained(path)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model.eval()
        return model, tokenizer
    processor = AutoProcessor.from_pretrained(path)
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model, processor


def is_text_only(path: str | Path) -> bool:
    """Whether the checkpoint folder ``path`` holds a text-only model (no vision tower)."""
    config = AutoConfig.from_pretrained(path)
    return not hasattr(config, "vision_config")
