"""Adapters of the paper's real benchmarks: loading local copies, official scoring, the evaluator dict."""

import datasets
import huggingface_hub
import pytest
from PIL import Image

from jrft_utils import benchmarks, world
from jrft_utils.benchmarks import BenchmarkUnavailable


def _img(w=40, h=30, colour=(200, 30, 30)):
    return Image.new("RGB", (w, h), colour)


# Tiny tables in each benchmark's column format.
FIXTURES = {
    "refcoco": lambda: {"image": [_img(200, 100) for _ in range(4)],
                        "answer": [["man on left", "guy left"], ["red car"], ["dog"], ["tree"]],
                        "bbox": [[20.0, 10.0, 80.0, 40.0]] * 4, "question_id": ["1", "2", "3", "4"]},
    "docvqa": lambda: {"image": [_img() for _ in range(4)],
                       "question": [f"What is the total of form {i}?" for i in range(4)],
                       "answers": [["$1,000"], ["42", "forty-two"], ["ACME Corp"], ["1999"]],
                       "questionId": ["a", "b", "c", "d"]},
    "mme": lambda: {"image": [_img() for _ in range(6)],
                    "question": [f"Is there a {o} in this image? Please answer yes or no." for o in "abcdef"],
                    "answer": ["Yes", "No", "Yes", "No", "Yes", "No"],
                    "category": ["existence"] * 4 + ["code_reasoning"] * 2,
                    "question_id": ["existence/1.jpg", "existence/1.jpg", "existence/2.jpg",
                                    "existence/2.jpg", "code_reasoning/1.png", "code_reasoning/1.png"]},
    "mmstar": lambda: {"image": [_img() for _ in range(4)],
                       "question": ["What colour is the square?\nOptions: A: red, B: green, C: blue, D: black",
                                    "Which city is shown?\nOptions: A: Rome, B: Paris, C: Oslo, D: Lima",
                                    "How many cats?\nOptions: A: 1, B: 2, C: 3, D: 4",
                                    "Is it day?\nOptions: A: yes, B: no"],
                       "answer": ["A", "B", "C", "A"],
                       "category": ["coarse perception", "fine-grained perception", "math", "science"],
                       "index": [0, 1, 2, 3]},
    "pope": lambda: {"image": [_img() for _ in range(6)],
                     "question": [f"Is there a {o} in the image?" for o in ("cat", "dog", "car", "bus", "cup", "pen")],
                     "answer": ["yes", "no", "yes", "no", "yes", "no"],
                     "category": ["adversarial", "adversarial", "popular", "popular", "random", "random"],
                     "question_id": ["1", "2", "3", "4", "5", "6"]},
    "mmmu": lambda: {"id": ["validation_Art_1", "validation_Math_2", "validation_Physics_3"],
                     "question": ["Which painter made <image 1>?", "Compare <image 1> and <image 2>: area?",
                                  "What is the speed in m/s?"],
                     "options": ["['Monet', 'Picasso', 'Dali']", "['1', '2', '3', '4']", "[]"],
                     "answer": ["B", "D", "12.5"],
                     "question_type": ["multiple-choice", "multiple-choice", "open"],
                     "image_1": [_img(), _img(20, 10), _img()],
                     "image_2": [None, _img(30, 20), None]},
}


@pytest.fixture
def saved(tmp_path):
    """Saves a benchmark's fixture with ``save_to_disk`` and returns the folder."""
    def save(name):
        folder = tmp_path / name
        datasets.Dataset.from_dict(FIXTURES[name]()).save_to_disk(str(folder))
        return str(folder)
    return save


def test_registry_maps_the_six_benchmarks_to_the_paper_capabilities():
    caps = {name: b.capability for name, b in benchmarks.BENCHMARKS.items()}
    assert caps == {"refcoco": "grounding", "docvqa": "ocr", "mme": "vqa", "mmstar": "vqa",
                    "pope": "hallucination", "mmmu": "reasoning"}
    assert set(caps.values()) == set(world.CAPABILITIES)
    assert benchmarks.get("MME") is benchmarks.BENCHMARKS["mme"]
    assert len(benchmarks.get("mmmu").configs) == 30


@pytest.mark.parametrize("name", list(FIXTURES))
def test_load_reads_a_local_copy_and_builds_prompts(saved, name):
    folder = saved(name)
    full = benchmarks.load(name, source=folder)
    assert len(full) == len(next(iter(FIXTURES[name]().values())))
    part = benchmarks.load(name, source=folder, limit=2, seed=1)
    assert len(part) == 2 and part.column_names == full.column_names
    items = [it for row in part for it in benchmarks.get(name).items(row)]
    assert items and all(isinstance(it.image, Image.Image) and it.image.mode == "RGB" for it in items)
    assert all(isinstance(it.prompt, str) and len(it.prompt) > 10 for it in items)


def test_limit_is_a_fixed_seeded_subset_in_original_order(saved):
    folder = saved("pope")

    def ids(seed):
        return list(benchmarks.load("pope", source=folder, limit=3, seed=seed)["question_id"])

    assert ids(0) == ids(0)
    assert ids(0) == sorted(ids(0)) and len(set(ids(0))) == 3
    assert len({tuple(ids(s)) for s in range(6)}) > 1


def test_mme_limit_keeps_both_questions_of_an_image(saved):
    folder = saved("mme")
    for seed in range(4):
        ds = benchmarks.load("mme", source=folder, limit=3, seed=seed)
        assert len(ds) == 2 and ds["question_id"][0] == ds["question_id"][1]


def test_a_folder_in_another_format_is_refused_with_the_missing_columns(tmp_path):
    datasets.Dataset.from_dict({"image": [_img()], "prompt": ["hi"]}).save_to_disk(str(tmp_path / "x"))
    with pytest.raises(ValueError, match="answers"):
        benchmarks.load("docvqa", source=str(tmp_path / "x"))


def test_anls_gives_partial_credit_above_the_threshold_only():
    assert benchmarks.anls("ACME corp", ["acme  Corp"]) == 1.0
    assert benchmarks.anls("hello word", ["hello world"]) == pytest.approx(1 - 1 / 11)
    assert benchmarks.anls("abcdef", ["abcxyz"]) == 0.0  # NL = 0.5: no credit
    assert benchmarks.anls("abcdex", ["abcdef"]) == pytest.approx(1 - 1 / 6)
    assert benchmarks.anls("42", ["forty-two", "42"]) == 1.0  # max over the references
    assert benchmarks.anls("", ["x"]) == 0.0


def test_refcoco_scores_iou_at_half_in_the_qwen_frame():
    bench = benchmarks.get("refcoco")
    row = {k: v[0] for k, v in FIXTURES["refcoco"]().items()}
    items = bench.items(row)
    assert [it.prompt.count('"man on left"') + it.prompt.count('"guy left"') for it in items] == [1, 1]
    frame = items[0].image
    assert frame.size == (196, 112) and frame.width % 28 == 0 and frame.height % 28 == 0
    x0, y0, x1, y1 = items[0].ref["box"]
    assert (x0, y0, x1, y1) == pytest.approx((19.6, 11.2, 98.0, 56.0))
    w = x1 - x0
    right = f'```json\n[{{"bbox_2d": [{x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}], "label": "man"}}]\n```'
    assert bench.score(right, items[0].ref)["score"] == 1.0
    assert bench.score(f"{x0} {y0} {x0 + 0.55 * w} {y1}", items[0].ref)["score"] == 1.0  # IoU 0.55
    assert bench.score(f"({x0}, {y0}), ({x0 + 0.45 * w}, {y1})", items[0].ref)["score"] == 0.0  # IoU 0.45
    assert bench.score("I cannot find it.", items[0].ref) == {"iou": 0.0, "score": 0.0}
    assert [it.prompt for it in bench.items({**row, "answer": "dog"})] == \
        ['Locate "dog" in the image and output its bbox coordinates in JSON format.']


def test_mme_score_is_accuracy_plus_accuracy_plus_per_category():
    res = benchmarks.mme_scores([("existence", "1", True), ("existence", "1", True),
                                 ("existence", "2", True), ("existence", "2", False),
                                 ("code_reasoning", "1", False), ("code_reasoning", "1", False)])
    assert res["by_category"] == {"existence": pytest.approx(125.0), "code_reasoning": 0.0}
    assert res["perception"] == pytest.approx(125.0) and res["cognition"] == 0.0
    assert res["normalized"] == pytest.approx(125 / 400)
    with pytest.raises(ValueError, match="unknown MME category"):
        benchmarks.mme_scores([("vibes", "1", True)])


def test_pope_metrics_and_strict_yes_no_parsing():
    preds = [benchmarks.parse_yes_no(c) for c in ("Yes.", "yes, there is", "No", "There is no cat", "<answer>no</answer>")]
    assert preds == ["yes", "yes", "no", "other", "no"]
    m = benchmarks.pope_metrics(preds, ["yes", "no", "no", "yes", "yes"])
    # tp 1, fp 1, fn 2 (the "other" counts as not-yes), tn 1
    assert m["accuracy"] == pytest.approx(2 / 5) and m["yes_ratio"] == pytest.approx(2 / 5)
    assert m["precision"] == pytest.approx(1 / 2) and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))


@pytest.mark.parametrize("completion, expected", [
    ("B", "B"), ("(B)", "B"), ("B.", "B"), ("B. A painting by Picasso", "B"), ("The answer is B.", "B"),
    ("Answer: (C)", "C"), ("Picasso", "B"), ("It was painted by Salvador Dali.", "C"),
    ("I think C is right", "C"), ("<think>maybe A</think><answer>C</answer>", "C"), ("no idea", None),
])
def test_multiple_choice_parsing_variants(completion, expected):
    assert benchmarks.parse_choice(completion, {"A": "Monet", "B": "Picasso", "C": "Salvador Dali"}) == expected


def test_mmmu_open_answers_match_normalised_text_or_numbers():
    assert benchmarks.open_answer_correct("12.50", ["12.5"])
    assert benchmarks.open_answer_correct("The answer is 3.14159 m/s.", ["3.14"])
    assert benchmarks.open_answer_correct("Mitochondria.", ["mitochondria"])
    assert not benchmarks.open_answer_correct("12.6", ["12.5"])
    assert not benchmarks.open_answer_correct("the nucleus", ["mitochondria"])


def test_mmmu_items_paste_images_and_list_options():
    bench = benchmarks.get("mmmu")
    rows = datasets.Dataset.from_dict(FIXTURES["mmmu"]())
    mc, two, open_ = (bench.items(r)[0] for r in rows)
    assert "[image 1]" in mc.prompt and "A. Monet\nB. Picasso\nC. Dali" in mc.prompt and "letter" in mc.prompt
    assert two.image.size == (40 + 8 + 30, 20) and "side by side" in two.prompt
    assert open_.ref == {"multiple_choice": False, "options": {}, "answer": ["12.5"]}
    assert bench.score("D", two.ref)["score"] == 1.0 and bench.score("The answer is 12.5", open_.ref)["score"] == 1.0


def test_mmstar_options_are_read_from_the_question():
    assert benchmarks.mmstar_options(FIXTURES["mmstar"]()["question"][1]) == \
        {"A": "Rome", "B": "Paris", "C": "Oslo", "D": "Lima"}
    assert benchmarks.mmstar_options("No options here") == dict.fromkeys("ABCD", "")


REPLIES = {"pope": ["Yes.", "No.", "Yes.", "No.", "Yes.", "No."],  # all right
           "mme": ["Yes", "No", "Yes", "Yes", "Yes", "No"],  # existence image 2 half right
           "mmstar": ["A", "C", "C", "The answer is A"],  # the second is wrong
           "docvqa": ["$1,000", "42", "ACME Corp.", "2000"]}  # ANLS 1, 1, 1 - 1/10, 0


def _fake_model():
    """The benchmarks' rows and a fake ``generate`` that answers each prompt from REPLIES."""
    rows = {n: datasets.Dataset.from_dict(FIXTURES[n]()) for n in REPLIES}
    replies = {benchmarks.get(n).items(row)[0].prompt: REPLIES[n][i]
               for n, ds in rows.items() for i, row in enumerate(ds)}
    sizes = []

    def generate(images, prompts):
        assert len(images) == len(prompts) and all(isinstance(im, Image.Image) for im in images)
        sizes.append(len(prompts))
        return [replies[p] for p in prompts]
    return rows, generate, sizes


def test_evaluate_returns_the_evaluate_prior_dict_with_details():
    rows, generate, sizes = _fake_model()
    res = benchmarks.evaluate(generate, rows, batch_size=4, progress=False, return_details=True)
    assert set(res) == {"ocr", "vqa", "hallucination", "mean", "details", "completions"}
    assert max(sizes) == 4 and sum(sizes) == 6 + 6 + 4 + 4
    # existence: acc 75 + acc+ 50 (one of two images fully right); code_reasoning: 100 + 100
    assert res["details"]["mme"]["perception"] == pytest.approx(125.0)
    assert res["details"]["mme"]["cognition"] == pytest.approx(200.0)
    assert res["details"]["mme"]["normalized"] == pytest.approx(325 / 400)
    assert res["vqa"] == pytest.approx((325 / 400 + 3 / 4) / 2)
    assert res["hallucination"] == 1.0 and res["details"]["pope"]["f1"] == 1.0
    assert res["ocr"] == pytest.approx((1 + 1 + 0.9 + 0) / 4)
    assert res["details"]["docvqa"]["anls"] == res["ocr"]
    assert res["mean"] == pytest.approx((res["ocr"] + res["vqa"] + res["hallucination"]) / 3)
    assert [c for c, _ in res["completions"]["mmstar"]] == ["A", "C", "C", "The answer is A"]
    plain = benchmarks.evaluate(generate, rows, batch_size=16, progress=False)
    assert set(plain) == {"ocr", "vqa", "hallucination", "mean"} and plain["vqa"] == res["vqa"]


def test_evaluate_checks_its_inputs():
    rows = {"pope": datasets.Dataset.from_dict(FIXTURES["pope"]())}
    with pytest.raises(ValueError, match="3 completions for 6 prompts"):
        benchmarks.evaluate(lambda im, pr: ["yes"] * 3, rows, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="known benchmarks: refcoco, docvqa, mme, mmstar, pope, mmmu"):
        benchmarks.evaluate(lambda im, pr: ["yes"] * len(pr), {"pop": []}, progress=False)
    with pytest.raises(ValueError, match="no rows"):
        benchmarks.evaluate(lambda im, pr: ["yes"] * len(pr), {"pope": []}, progress=False)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="unknown benchmark 'refcocoo'.*refcoco, docvqa, mme, mmstar, pope, mmmu"):
        benchmarks.load("refcocoo")


def test_unreachable_hub_id_raises_benchmark_unavailable_with_the_remedy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # both read the variable at import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(BenchmarkUnavailable) as err:
        benchmarks.load("pope", source="no-such-org/no-such-pope")
    msg = str(err.value)
    assert isinstance(err.value, RuntimeError)
    assert "no-such-org/no-such-pope" in msg and "'test'" in msg
    assert 'datasets.load_dataset("lmms-lab/POPE", split="test").save_to_disk(DIR)' in msg
    assert "source=DIR" in msg


def test_missing_folder_raises_benchmark_unavailable(tmp_path):
    with pytest.raises(BenchmarkUnavailable, match=f"(?s)folder {tmp_path / 'nope'}: FileNotFoundError.*source=DIR"):
        benchmarks.load("docvqa", source=str(tmp_path / "nope"))


def test_default_sources_are_the_hub_ids_with_their_configs_and_splits(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    expected = {"refcoco": ("lmms-lab/RefCOCO", None, "val"), "docvqa": ("lmms-lab/DocVQA", "DocVQA", "validation"),
                "mme": ("lmms-lab/MME", None, "test"), "mmstar": ("Lin-Chen/MMStar", None, "val"),
                "pope": ("lmms-lab/POPE", None, "test"), "mmmu": ("MMMU/MMMU", "Accounting", "validation")}
    for name, call in expected.items():
        calls.clear()
        with pytest.raises(BenchmarkUnavailable, match="ConnectionError: offline") as err:
            benchmarks.load(name)
        assert calls == [call] and call[0] in str(err.value)
    assert "concatenate_datasets" in str(err.value)  # MMMU's hint joins its 30 subject configs


def test_model_generate_wraps_generate_completions_without_rebatching(monkeypatch):
    seen = {}

    def fake(model, processor, images, prompts, max_new_tokens, batch_size, progress, temperature):
        seen.update(model=model, n=len(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size,
                    progress=progress, temperature=temperature)
        return [f"out {p}" for p in prompts]

    monkeypatch.setattr(benchmarks.generation, "generate_completions", fake)
    generate = benchmarks.model_generate("M", "P", max_new_tokens=64)
    assert generate([_img()] * 3, ["a", "b", "c"]) == ["out a", "out b", "out c"]
    assert seen == {"model": "M", "n": 3, "max_new_tokens": 64, "batch_size": 3, "progress": False,
                    "temperature": 0.0}
