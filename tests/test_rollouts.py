"""Reading what the RFT policy samples: the reachability check of notebook 03."""

from __future__ import annotations

import pytest

from jrft_utils import generation, jigsaw, profiles, rollouts


@pytest.fixture(scope="module")
def puzzles():
    return jigsaw.build_dataset(profiles.section("smoke", "jigsaw"), "train", size=2)


def test_reachability_counts_what_the_samples_could_earn(puzzles, monkeypatch):
    truth = [jigsaw.answer_text(a) if not isinstance(a, str) else a for a in puzzles["answer"]]
    wrong_perm = " ".join(reversed(truth[1].split()))
    per_puzzle = {  # 4 samples per puzzle: right, repeated index, no tags, a valid but wrong permutation
        0: [f"<think> </think> <answer> {truth[0]} </answer>", "<think> </think> <answer> 0 0 0 0 </answer>",
            "3", f"<think> </think> <answer> {truth[0]} </answer>"],
        1: [f"<think> x </think> <answer> {wrong_perm} </answer>", "<think> </think> <answer> 1 </answer>",
            "<think> </think> <answer> 0 0 0 9 </answer>", "<think> </think> <answer> 0 0 0 0 </answer>"],
    }
    calls = []

    def fake_generate(model, processor, images, prompts, max_new_tokens, temperature, seed, desc):
        calls.append(temperature)
        assert len(images) == len(prompts) == 8 and prompts[0] == jigsaw.jigsaw_prompt(2, 2)
        return per_puzzle[0] + per_puzzle[1]

    monkeypatch.setattr(generation, "generate_completions", fake_generate)
    table = rollouts.reachability(None, None, puzzles, [1.0, 2.0], samples_per_puzzle=4)
    assert calls == [1.0, 2.0] and list(table["temperature"]) == [1.0, 2.0]
    row = table.iloc[0]
    assert row["template"] == 7 / 8
    assert row["answer shape"] == 5 / 8  # the two right, 0 0 0 0 twice, the wrong permutation
    assert row["valid permutation"] == 3 / 8
    assert row["exact"] == 2 / 8
    hits_of_wrong = sum(p == t for p, t in zip(wrong_perm.split(), truth[1].split())) / 4
    assert row["mean hit"] == pytest.approx((2 + hits_of_wrong) / 8)
