"""Notebook 09's question with several correct answers (jrft_utils.freedom): the questions and their
correct answers, the parser, the rewards, the targets of every SFT arm (the oracle's exactly), the start's
habit, and claim 12's judge on hand-made matched drops."""

import numpy as np
import pytest

from jrft_utils import claims, dynamics, finetuning, freedom, jigsaw, modeling, profiles, template, world
from jrft_utils.profiles import ProfileError

ANSWER = [2, 0, 3, 1]  # position p shows original tile ANSWER[p]; the original top row is tiles 0 and 1


def test_correct_positions_of_each_form():
    assert freedom.correct_positions("free", ANSWER, cols=2) == [1, 3]
    assert freedom.correct_positions("unique", ANSWER, cols=2) == [1]
    assert freedom.correct_positions("free", "3 1 2 0", cols=2) == [1, 3]
    assert freedom.correct_positions("unique", "3 1 2 0", cols=2) == [3]
    with pytest.raises(ValueError, match="unknown form"):
        freedom.correct_positions("several", ANSWER, cols=2)


def test_the_questions_use_only_words_the_tokenizer_knows():
    tok = modeling.build_tokenizer()
    for form in freedom.FORMS:
        text = freedom.prompt(form, 2, 2)
        assert text.startswith(jigsaw.jigsaw_prompt(2, 2).split(" . ")[0])
        unknown = [w for w in text.split() if tok.convert_tokens_to_ids(w) == tok.unk_token_id]
        assert not unknown, unknown
    assert set(freedom.QUESTIONS["free"].split()) <= set(jigsaw.VOCABULARY) | set(world.VOCABULARY) | {"."}


@pytest.mark.parametrize("position", [0, 1, 2, 3])
def test_the_parser_accepts_every_form_of_an_answer(position):
    text = freedom.completion(position)
    assert text == f"<think> </think> <answer> {position} </answer>"
    assert freedom.parse_position(text, 4) == position
    assert freedom.parse_position(f"<think> i count </think> <answer>{position}</answer>", 4) == position


@pytest.mark.parametrize("text", [
    "<think> </think> <answer> 1 3 </answer>",      # two positions
    "<think> </think> <answer> 4 </answer>",        # out of range on a 2 x 2
    "<think> </think> <answer> 01 </answer>",       # not an index as the model writes one
    "<think> </think> <answer> 1 . </answer>",      # extra words
    "<think> </think> <answer> </answer>",          # empty
    "<think> </think> 1",                           # no answer block
    "<think> </think> <answer> 1 </answer> <answer> 3 </answer>",  # several blocks
    None, 3,
])
def test_the_parser_rejects_near_misses(text):
    assert freedom.parse_position(text, 4) is None


def test_scores_and_rewards():
    correct = freedom.correct_positions("free", ANSWER, cols=2)
    right, wrong, broken = freedom.completion(3), freedom.completion(2), "<answer> 3"
    assert freedom.score(right, correct, 4) == {"acc": 1.0, "fmt": 1.0}
    assert freedom.score(wrong, correct, 4) == {"acc": 0.0, "fmt": 1.0}
    assert freedom.score(broken, correct, 4)["acc"] == 0.0 and freedom.score(broken, correct, 4)["fmt"] < 1.0
    # TRL passes conversational completions and the dataset's columns
    completions = [[{"role": "assistant", "content": c}] for c in (right, wrong)]
    kwargs = {"correct": [correct, correct], "rows": [2, 2], "cols": [2, 2]}
    assert freedom.acc_reward(completions, **kwargs) == [1.0, 0.0]
    assert freedom.fmt_reward(completions, **kwargs) == [1.0, 1.0]


def test_oracle_targets_are_the_renormalised_start_probabilities():
    rng = np.random.default_rng(0)
    logprobs = np.log(rng.dirichlet(np.ones(4), size=6)) - 0.5  # a start that also writes other things
    correct = [[1, 3], [0, 1], [2, 3], [0, 2], [1], [3]]
    q = freedom.oracle(logprobs, correct)
    p = np.exp(logprobs)
    for i, c in enumerate(correct):
        assert q[i].sum() == pytest.approx(1.0)
        assert q[i, c] == pytest.approx(p[i, c] / p[i, c].sum())
        assert (q[i, [a for a in range(4) if a not in c]] == 0).all()
    assert np.array_equal(freedom.targets("sft_oracle", correct, 4, logprobs), q)
    one, two = freedom.targets("sft_one", correct, 4), freedom.targets("sft_two", correct, 4)
    assert one[0].tolist() == [0, 1, 0, 0] and two[0].tolist() == [0, 0.5, 0, 0.5]
    assert one[4].tolist() == two[4].tolist() == q[4].tolist() == [0, 1, 0, 0]  # one correct answer: all agree
    with pytest.raises(ValueError, match="follows a model"):
        freedom.targets("sft_self", correct, 4)


def test_oracle_of_a_model_is_exact_over_its_enumerated_answers():
    cfg = profiles.resolve("smoke")["model"]
    processor = modeling.build_processor(cfg)
    model = modeling.build_model(cfg, 0, processor).eval().double()
    images = [world.build_test_sets(2, 84)["vqa"][i]["image"] for i in range(2)]
    prompts = [freedom.prompt("free", 2, 2)] * 2
    logprobs = freedom.candidate_logprobs(model, processor, images, prompts, 4)
    by_hand = dynamics.sequence_logprob(
        model, processor, [{"image": images[1], "prompt": prompts[1], "completion": freedom.completion(a)} for a in range(4)])
    assert np.allclose(logprobs[1], by_hand.numpy())
    assert (np.exp(logprobs).sum(1) <= 1).all()  # four of the model's disjoint completions
    q = freedom.oracle(logprobs, [[1, 3], [0, 2]])
    p = np.exp(logprobs)
    assert q[0, [1, 3]] == pytest.approx(p[0, [1, 3]] / p[0, [1, 3]].sum())
    assert q.sum(1) == pytest.approx([1.0, 1.0])


def test_draws_follow_the_targets_and_fixed_draws_repeat():
    q = np.array([[0, 0.25, 0, 0.75], [1.0, 0, 0, 0]])
    drawn = freedom.draw(q, 4000, np.random.default_rng(0))
    assert drawn.shape == (4000, 2)
    assert set(drawn[:, 0]) == {1, 3} and (drawn[:, 1] == 0).all()
    assert (drawn[:, 0] == 3).mean() == pytest.approx(0.75, abs=0.03)
    fixed = freedom.draw(q, 5, np.random.default_rng(1), fixed=True)
    assert (fixed == fixed[0]).all()


def test_habit_weights():
    w = freedom.habit_weights(4, 8.0)
    assert w.sum() == pytest.approx(1.0) and w[-1] / w[0] == pytest.approx(8.0)
    assert np.all(np.diff(w) > 0)
    assert freedom.habit_weights(4, 1.0) == pytest.approx([0.25] * 4)


def test_sft_dataset_repeats_the_puzzles_each_epoch():
    images = [world.build_test_sets(1, 84)[cap][0]["image"] for cap in ("vqa", "ocr")]
    rows = {"images": images, "prompts": ["p0", "p1"], "correct": [[0], [1]], "rows": [2, 2], "cols": [2, 2]}
    ds = freedom.sft_dataset(freedom.prompts_dataset(rows), np.array([[0, 1], [2, 3]]))
    assert len(ds) == 4
    assert [template.answer_text(c[0]["content"]) for c in ds["completion"]] == ["0", "1", "2", "3"]
    assert [p[0]["content"][1]["text"] for p in ds["prompt"]] == ["p0", "p1", "p0", "p1"]
    with pytest.raises(ValueError, match="answers for 3 questions"):
        freedom.sft_dataset(freedom.prompts_dataset(rows), np.zeros((1, 3), dtype=int))


def test_arms_and_profile_knobs():
    assert freedom.arms("free") == freedom.ARMS and freedom.arms("unique") == ("sft_one", "rft")
    with pytest.raises(ProfileError, match="freedom.forms"):
        profiles.resolve("smoke", freedom={"forms": ["several"]})
    with pytest.raises(ProfileError, match="solved"):
        profiles.resolve("smoke", freedom={"solved": 1.5})
    config = profiles.resolve("smoke")
    start = finetuning.Start(config.run_dir / "start", "x")
    with pytest.raises(ValueError, match="not run on the unique form"):
        freedom.plan(config, "sft_two", "unique", 0, start, 3e-4)


def _summary(free: dict, unique: dict) -> dict:
    return {"freedom": {"forms": {"free": {"matched": {"levels": [0.6, 0.8], "drop": free}},
                                  "unique": {"matched": {"levels": [0.4, 0.6], "drop": unique}}}}}


@pytest.mark.parametrize("free, unique, verdict", [
    ({"rft": [0.01, 0.02], "sft_one": [0.03, 0.08]}, {"rft": [0.05, 0.05], "sft_one": [0.05, 0.06]}, "yes"),
    ({"rft": [0.01, 0.02], "sft_one": [0.03, 0.08]}, {"rft": [0.01, 0.01], "sft_one": [0.05, 0.06]}, "partial"),
    ({"rft": [0.05, 0.08], "sft_one": [0.03, 0.08]}, {"rft": [0.05, 0.05], "sft_one": [0.05, 0.06]}, "no"),
    ({"rft": [0.01, 0.02], "sft_one": [0.04, None]}, {"rft": [0.05, 0.05], "sft_one": [0.05, 0.06]}, "yes"),
])
def test_claim_12_on_hand_made_matched_drops(free, unique, verdict):
    ours, judged, comparison = claims.freedom_decides(_summary(free, unique))
    assert judged == verdict and comparison == "matched"
    assert "free: at " in ours and "unique: at " in ours


def test_claim_12_without_notebook_09():
    assert claims.freedom_decides({})[1] == "no"
    assert "not run" in claims.freedom_decides({})[0]


def _found(rates: list[float], drop_at_top: float) -> dict:
    points = [{"arm": arm, "lr": lr, "seed": 0, "step": step, "task_acc": 0.5 + 0.1 * step,
               "prior_mean": 0.8 - (drop_at_top if lr == max(rates) and step == 2 else 0.0), "kl_new": 0.1 * step}
              for arm in ("sft_one", "rft") for lr in rates for step in (0, 1, 2)]
    matched = {"levels": [0.7], "drop": {"sft_one": [0.01], "rft": [0.03]}}
    return {"forms": {"free": {"frontier": points, "matched": matched, "r2_kl": 0.4}},
            "start": {"free": {"prior": {"mean": 0.8}}}}


def test_the_account_is_computed_from_the_numbers():
    text = freedom.describe(_found([1e-4, 1e-3], drop_at_top=0.5))
    assert "at 70.0% correct answers" in text and "SFT-1 1.0 < RFT 3.0" in text and "R^2 0.40" in text
    assert "At the highest rate (0.001) the runs lose 50 to 50 points" in text and "step size" in text
    assert "step size" not in freedom.describe(_found([1e-4, 1e-3], drop_at_top=0.05))  # not harmful there
    assert "highest rate" not in freedom.describe(_found([3e-4], drop_at_top=0.5))  # one rate: nothing to compare
    empty = _found([3e-4], 0.0)
    empty["forms"]["free"]["matched"] = {"levels": [], "drop": {}}
    assert "never rises above the start's accuracy" in freedom.describe(empty)
