"""A tiny random Qwen2.5-VL, built offline, that runs the gpu profile's model path (jrft_utils.qwen) on CPU.

Test-only: a word-level tokenizer over the given words, 2 vision blocks and 2 decoder layers, saved like a
real checkpoint so that :func:`jrft_utils.qwen.load` reads it with ``dtype="float32"``.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from jrft_utils.qwen import QwenVLProcessor

QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
    "<|video_pad|>",
)
# The tiny model's chat template: Qwen2.5-VL's turn structure, tokens separated by spaces (word-level).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|> {{ message['role'] }} "
    "{% if message['content'] is string %}{{ message['content'] }} "
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|> <|image_pad|> <|vision_end|> "
    "{% elif part['type'] == 'text' %}{{ part['text'] }} {% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|> "
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def build_tiny(path: str | Path, words: list[str], seed: int = 0) -> Path:
    """Save a tiny random Qwen2.5-VL with a word-level tokenizer over ``words`` (plus Qwen's special
    tokens, digits and punctuation) into ``path``, loadable with :func:`jrft_utils.qwen.load`
    (``dtype="float32"``)."""
    path = Path(path)
    vocab: dict[str, int] = {}
    for token in (*QWEN_SPECIAL_TOKENS, "<unk>", *string.digits, *string.punctuation, *words):
        vocab.setdefault(token, len(vocab))
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(r"[0-9]|[^\w\s<>|/]"), behavior="isolated")])
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<unk>", chat_template=TINY_CHAT_TEMPLATE)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)
    processor = QwenVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                                chat_template=TINY_CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    torch.manual_seed(seed)
    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 1024,
                     "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}, "tie_word_embeddings": True,
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"], "bos_token_id": None},
        vision_config={"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
                       "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "fullatt_block_indexes": [1], "window_size": 56},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True, bos_token_id=None,
    )
    model = Qwen2_5_VLForConditionalGeneration(config)
    gen = model.generation_config
    gen.eos_token_id, gen.pad_token_id, gen.do_sample, gen.max_length = config.text_config.eos_token_id, \
        config.text_config.pad_token_id, False, None
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
