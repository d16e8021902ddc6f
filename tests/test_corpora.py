"""The corpora's pure helpers: the early-rollouts construction, the comparison with the gt corpus, and the
controls built without a model."""

from __future__ import annotations

import math

import datasets

from jrft_utils import corpora, finetuning, jigsaw, methods, modeling, profiles, teacher, template, world


def _corpus(puzzles: list[int], texts: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"puzzle": puzzles,
                                       "completion": [[{"role": "assistant", "content": t}] for t in texts]})


def test_early_rollouts_keep_the_think_part_and_take_the_true_answer():
    assert corpora.with_true_answer("<think> tile 2 fits </think> <answer> 0 1 2 3 </answer>", "3 1 2 0") == \
        jigsaw.completion_text("3 1 2 0", think="tile 2 fits")
    assert corpora.with_true_answer("no template at all", "3 1 2 0") == jigsaw.gt_completion("3 1 2 0")


def test_share_of_gt_counts_completions_that_are_the_gt_completion_of_their_puzzle():
    answers = ["0 1 2 3", "3 2 1 0", "1 0 3 2"]
    gt = _corpus([0, 1, 2], [jigsaw.gt_completion(a) for a in answers])
    empty_think = _corpus([2, 0], [jigsaw.gt_completion(answers[2]), jigsaw.gt_completion(answers[0])])
    assert corpora.share_of_gt(empty_think, gt) == 1.0  # a subset of gt, in another order
    reasoned = _corpus([1, 2], [jigsaw.completion_text(answers[1], think="tile 3 is top left"),
                                jigsaw.gt_completion(answers[2])])
    assert corpora.share_of_gt(reasoned, gt) == 0.5
    assert math.isnan(corpora.share_of_gt(_corpus([], []), gt))


def test_trace_shares_count_tile_traces_and_those_that_tell_their_own_answer():
    texts = [jigsaw.completion_text([2, 0, 3, 1], think=jigsaw.tile_trace([2, 0, 3, 1])),  # tells its answer
             jigsaw.completion_text([1, 0, 3, 2], think=jigsaw.tile_trace([2, 2, 3, 1])),  # thinks one thing, answers another
             jigsaw.completion_text([1, 0, 3, 2], think="tile 1 in cell 2 . tile 0 in cell 0 ."),  # not tiles 0, 1, ... in order
             jigsaw.gt_completion([1, 0, 3, 2])]
    assert jigsaw.read_tile_trace(texts[1]) == [2, 2, 3, 1]
    assert jigsaw.read_tile_trace(texts[2]) is None and jigsaw.read_tile_trace(texts[3]) is None
    assert jigsaw.read_tile_trace("tile 0 in cell 2 .") is None  # outside the template
    corpus = {"completion": [[{"role": "assistant", "content": t}] for t in texts]}
    assert corpora.trace_shares(corpus) == {"tile trace": 0.5, "trace = answer": 0.25}


def test_the_controls_keep_the_true_answers_and_change_only_the_think_block():
    """``random_trace``: a tile trace of a random permutation (seeded), then the true answer; ``teacher`` and
    ``teacher_foreign``: one solver, in the base's words and in foreign ones, then the true answer."""
    config = profiles.resolve("smoke")
    train = finetuning.jigsaw_splits(config)["train"]
    answers = [jigsaw.answer_list(a) for a in train["answer"]]
    rows, texts = corpora.completions_for(config, "random_trace", train, 0)
    assert rows == list(range(len(train))) and [jigsaw.parse_answer(t, 4) for t in texts] == answers
    traces = [jigsaw.read_tile_trace(t) for t in texts]
    assert all(tr is not None and sorted(tr) == [0, 1, 2, 3] for tr in traces)
    assert sum(tr != a for tr, a in zip(traces, answers)) >= len(train) // 2  # the trace is not the answer
    assert corpora.completions_for(config, "random_trace", train, 0)[1] == texts
    assert corpora.completions_for(config, "random_trace", train, 1)[1] != texts
    world, foreign = (corpora.completions_for(config, n, train, 0)[1] for n in ("teacher", "teacher_foreign"))
    assert [jigsaw.parse_answer(t, 4) for t in world] == [jigsaw.parse_answer(t, 4) for t in foreign] == answers
    assert all("holds tile" in w and "meets" in f and "meets" not in w for w, f in zip(world, foreign))


def test_the_controls_are_built_only_when_the_profile_asks(monkeypatch):
    monkeypatch.setattr(corpora, "build", lambda config, name, seed: (name, {}))
    on = profiles.resolve("smoke")
    assert set(corpora.build_available(on, [0])[0]) == set(corpora.CORPORA)
    off = on.with_knobs("corpora", controls=False)
    assert set(corpora.build_available(off, [0])[0]) == set(corpora.CORPORA) - set(methods.controls())
    assert profiles.resolve("class")["corpora"]["controls"] is False


def test_foreign_think_is_as_long_as_the_rollouts_think_in_words_the_start_never_read(monkeypatch):
    """``foreign_think``: for a puzzle with a rollout, as many foreign words as its think block; for the
    others, the length of some rollout; then the true answer."""
    config = profiles.resolve("smoke")
    train = finetuning.jigsaw_splits(config)["train"]
    rollouts = _corpus([0, 2], [jigsaw.completion_text("0 1 2 3", think="tile 0 in cell 0 ."),  # 6 words
                                jigsaw.completion_text("0 1 2 3", think="x " * 9)])  # 9 words
    monkeypatch.setattr(corpora, "build", lambda config, name, seed: (rollouts, {}))
    rows, texts = corpora.completions_for(config, "foreign_think", train, 0)
    assert rows == list(range(len(train)))
    assert [jigsaw.parse_answer(t, 4) for t in texts] == [jigsaw.answer_list(a) for a in train["answer"]]
    thinks = [template.think_text(t).split() for t in texts]
    assert all(set(words) <= set(teacher.FOREIGN_WORDS) for words in thinks)
    assert len(thinks[0]) == 6 and len(thinks[2]) == 9 and {len(w) for w in thinks} == {6, 9}
    assert corpora.completions_for(config, "foreign_think", train, 0)[1] == texts  # seeded


def test_the_foreign_words_are_known_to_the_tokenizer_and_unread_by_the_start():
    prompt = set(jigsaw.jigsaw_prompt(3, 3).split())
    assert teacher.FOREIGN_WORDS and not set(teacher.FOREIGN_WORDS) & (set(world.VOCABULARY) | prompt)
    assert set(teacher.FOREIGN_WORDS) <= set(modeling.vocabulary())  # no unknown token
    trace = jigsaw.tile_trace([2, 0, 3, 1])  # what the start writes
    assert not set(trace.split()) & set(teacher.FOREIGN_WORDS)
