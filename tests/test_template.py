"""The completion template shared by every task, the tokenizer and the benchmark scorers."""

from __future__ import annotations

import numpy as np
import pytest

from jrft_utils import jigsaw, modeling, template, textworld, world


def test_a_completion_is_the_think_block_then_the_answer_block():
    assert template.completion("2 0 3 1") == "<think> </think> <answer> 2 0 3 1 </answer>"
    assert template.completion("7", think=" i  compare\n3 , 7 ") == "<think> i compare 3 , 7 </think> <answer> 7 </answer>"
    assert template.TAGS == ("<think>", "</think>", "<answer>", "</answer>")


def test_every_task_writes_its_completions_in_the_one_template():
    texts = [s["completion"] for cap in world.CAPABILITIES for s in world.generate(cap, 5, 0)]
    texts += [s["completion"] for cap in textworld.CAPABILITIES for s in textworld.generate(cap, 5, 0)]
    texts += [textworld.teacher_completion([3, 7, 2]), textworld.gt_completion(7), jigsaw.gt_completion([1, 0])]
    assert all(template.follows(t) for t in texts)


def test_the_tokenizer_keeps_the_tags_whole_and_its_vocabulary_order():
    vocab = modeling.vocabulary()
    assert vocab[:9] == ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<image>", *template.TAGS]
    words = [w for w in vocab if w in (*world.VOCABULARY, *jigsaw.VOCABULARY)]
    assert words == list(dict.fromkeys((*world.VOCABULARY, *jigsaw.VOCABULARY)))
    tok = modeling.build_tokenizer()
    text = template.completion("2 0", think="the image")
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


@pytest.mark.parametrize("completion, text", [
    ("<answer> 1 </answer>", "<answer> 1 </answer>"),
    ([{"role": "assistant", "content": "a"}], "a"),
    ({"role": "assistant", "content": "a"}, "a"),
    ([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "image"}, {"type": "text", "text": "b"}]}],
     "a  b"),
    (None, ""), (3, ""), ([{"content": 5}], ""),
])
def test_a_trl_completion_becomes_its_text(completion, text):
    assert template.to_text(completion) == text


@pytest.mark.parametrize("text, follows", [
    ("<think> x </think> <answer> 1 </answer>", True),
    ("\n<think></think><answer>1</answer> ", True),
    ("<answer> 1 </answer>", False),
    ("<think> x </think> <answer> 1 </answer> more", False),
    ("<answer> 1 </answer> <think> x </think>", False),
    ("<think> <think> </think> <answer> 1 </answer>", False),
    (None, False),
])
def test_following_the_template_is_exactly_one_think_then_one_answer_block(text, follows):
    assert template.follows(text) is follows


def test_the_blocks_are_read_back():
    text = "<think> a  b </think> <answer>  2 0 </answer>"
    assert template.think_block(text) == " a  b " and template.think_block("<answer> 1 </answer>") is None
    assert template.answer_block(text) == "  2 0 " and template.answer_block("<answer> 1") is None
    assert template.answer_block("<answer> 1 </answer> <answer> 2 </answer>") == " 1 "
    assert template.single_answer_block("<answer> 1 </answer> <answer> 2 </answer>") is None
    assert template.single_answer_block("</answer> 1 <answer>") is None
    assert template.single_answer_block(text) == "  2 0 "
    assert template.answer_text(text) == "2 0"
    assert template.answer_text("no  tags\n here") == "no tags here"  # the whole completion, collapsed
    assert template.answer_text("<answer></answer>") == ""
    assert template.without_think("<think> no </think><answer> yes </answer>") == " <answer> yes </answer>"


def test_length_matched_words_match_by_key_and_draw_lengths_for_the_rest():
    rng = np.random.default_rng(0)
    thinks = template.length_matched_words(("a", "b"), ["x", "y", "z"], {"x": 3, "y": 0}, rng)
    assert len(thinks[0].split()) == 3 and thinks[1] == "" and len(thinks[2].split()) in (0, 3)
    assert set(" ".join(thinks).split()) <= {"a", "b"}
    assert template.think_text("<think>  one   two </think> <answer> 3 </answer>") == "one two"
    assert template.think_text("no think") == ""
    with pytest.raises(ValueError, match="length"):
        template.length_matched_words(("a",), ["x"], {}, rng)
