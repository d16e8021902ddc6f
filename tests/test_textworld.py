"""The text world of notebook 08: held-out splits, the counting task, its rewards and the teacher."""

import pytest

from jrft_utils import template, textworld


def test_held_out_items_are_never_trained_on():
    test = textworld.build_test_sets(1000)
    train = {cap: textworld.generate(cap, 3000, seed=0) for cap in textworld.CAPABILITIES}
    for cap in textworld.CAPABILITIES:
        assert test[cap], cap
        assert not {s["prompt"] for s in test[cap]} & {s["prompt"] for s in train[cap]}, cap
    assert len(test["arithmetic"]) == 200 and len(test["science"]) == 100


def test_science_test_is_balanced_and_answers_follow_the_taxonomy():
    test = textworld.build_test_sets(1000)["science"]
    assert sum(s["target"] == "yes" for s in test) == len(test) // 2
    robin = textworld._science_sample("robin", "gills")
    assert robin["target"] == "no" and "a robin is a bird . a bird has no gills" in robin["completion"]
    assert textworld._science_sample("whale", "lungs")["target"] == "yes"


def test_arithmetic_completions_are_right_and_use_digits_only():
    for s in textworld.generate("arithmetic", 200, seed=1):
        expression = s["prompt"].removeprefix("what is ").removesuffix(" ?")
        assert str(eval(expression)) == s["target"]  # noqa: S307 - our own digits and + / -
        assert 0 <= int(s["target"]) <= 9
        assert textworld.score(s["completion"], s["target"]) == 1.0


def test_generation_is_deterministic_and_checks_its_input():
    assert textworld.generate("science", 20, seed=3) == textworld.generate("science", 20, seed=3)
    assert textworld.generate("science", 20, seed=3) != textworld.generate("science", 20, seed=4)
    with pytest.raises(textworld.TextWorldError, match="unknown text capability"):
        textworld.generate("ocr", 5, seed=0)
    with pytest.raises(textworld.TextWorldError, match="split"):
        textworld.generate("science", 5, seed=0, split="val")
    with pytest.raises(textworld.TextWorldError, match="at least one"):
        textworld.generate("science", 0, seed=0)


def test_the_new_task_is_absent_from_pretraining():
    train = [s for cap in textworld.CAPABILITIES for s in textworld.generate(cap, 2000, seed=0)]
    assert not any("largest" in (s["prompt"] + s["completion"]).split() for s in train)
    assert not any(len([w for w in s["prompt"].split() if w.isdigit()]) > 3 for s in train)  # no digit lists


def test_tasks_are_distinct_disjoint_right_and_not_guessable():
    train = textworld.make_tasks(600, "train", seed=0)
    test = textworld.make_tasks(150, "test", seed=0)
    keys = lambda ts: {tuple(t["digits"]) for t in ts}  # noqa: E731
    assert len(keys(train)) == 600 and len(keys(test)) == 150 and not keys(train) & keys(test)
    for t in train + test:
        assert t["answer"] == max(t["digits"]) and t["digits"].count(t["answer"]) == 1 and 3 <= len(t["digits"]) <= 6
    answers = [t["answer"] for t in train]
    assert max(answers.count(a) for a in set(answers)) / len(answers) < 0.15  # no constant answer pays
    assert textworld.make_tasks(20, "train", seed=1) == textworld.make_tasks(20, "train", seed=1)
    with pytest.raises(textworld.TextWorldError, match="min_len"):
        textworld.make_tasks(5, "train", min_len=1)
    with pytest.raises(textworld.TextWorldError, match="distinct"):
        textworld.make_tasks(500, "test", min_len=2, max_len=2)


def test_rewards_credit_the_right_digit_and_the_format():
    assert textworld.acc_reward(["<think> x </think> <answer> 2 </answer>", "<answer> 3 </answer>", "2"],
                                answer=[2, 2, 2]) == [1.0, 0.0, 0.0]
    assert textworld.fmt_reward(["<think> x </think> <answer> 2 </answer>", "<answer> yes </answer>",
                                 [{"role": "assistant", "content": "<answer> 1 </answer>"}]], answer=[0, 0, 0]) == [1.0, 0.0, 0.5]
    assert textworld.parse_answer("<answer> 1 </answer> <answer> 2 </answer>") is None
    assert textworld.parse_answer("<answer> 1 2 </answer>") is None


def test_teacher_reasoning_is_right_and_in_its_own_style():
    completion = textworld.teacher_completion([3, 7, 2, 5])
    assert completion == "<think> i compare 3 , 7 , 2 , 5 . the largest is 7 </think> <answer> 7 </answer>"
    assert textworld.score_task(completion, 7) == {"acc": 1.0, "fmt": 1.0}
    assert template.follows(textworld.gt_completion(0))


def test_every_word_is_in_the_vocabulary():
    texts = [s["prompt"] + " " + s["completion"] for cap in textworld.CAPABILITIES for s in textworld.generate(cap, 500, seed=0)]
    texts += [t["prompt"] + " " + textworld.teacher_completion(t["digits"]) for t in textworld.make_tasks(50, "train")]
    words = {w for t in texts for w in t.split() if not w.isdigit() and w not in "+-=?.," and not w.startswith("<")}
    assert words <= set(textworld.VOCABULARY)


def test_the_foreign_words_are_every_word_the_base_never_read():
    pretraining = {w for cap in textworld.CAPABILITIES for s in textworld.generate(cap, 2000, seed=0)
                   for w in f"{s['prompt']} {s['completion']}".split()}
    assert textworld.FOREIGN_WORDS and not set(textworld.FOREIGN_WORDS) & pretraining
    assert set(textworld.FOREIGN_WORDS) | set(textworld.WORLD_WORDS) == set(textworld.VOCABULARY)
