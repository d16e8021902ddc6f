"""The batched generator that every evaluation, rollout and corpus goes through."""

import pytest

from jrft_utils import generation, modeling, profiles, world


@pytest.fixture(scope="module")
def tiny():
    processor = modeling.build_processor(profiles.resolve("smoke")["model"])
    return modeling.build_model(profiles.resolve("smoke")["model"], 0, processor).eval(), processor


def test_batched_left_padded_generation_matches_one_by_one(tiny):
    m, p = tiny
    samples = world.generate("vqa", 3, 0) + world.generate("reasoning", 2, 0)  # prompts of different lengths
    images, prompts = [s["image"] for s in samples], [s["prompt"] for s in samples]
    batched = generation.generate_completions(m, p, images, prompts, max_new_tokens=6, batch_size=5, progress=False)
    single = generation.generate_completions(m, p, images, prompts, max_new_tokens=6, batch_size=1, progress=False)
    assert len(batched) == 5 and batched == single
    assert all("<|im_end|>" not in c and "<pad>" not in c for c in batched)


def test_mismatched_images_and_prompts_are_refused(tiny):
    m, p = tiny
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        generation.generate_completions(m, p, [None, None], ["a"])


def test_the_chat_prompt_ends_with_the_assistant_header(tiny):
    _, p = tiny
    assert generation.chat_prompt(p, "what is 1 + 1 ?").endswith("what is 1 + 1 ? <|im_end|> <|im_start|> assistant ")
    assert "<image>" in generation.chat_prompt(p, "x") and "<image>" not in generation.chat_prompt(p, "x", image=False)
