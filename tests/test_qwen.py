"""The gpu profile's model path (Qwen2.5-VL), run on CPU with a tiny random Qwen2.5-VL built offline."""

from __future__ import annotations

import pytest
import torch

from tiny_qwen import build_tiny

from jrft_utils import evaluation, generation, jigsaw, profiles, qwen, results, trainers, world
from jrft_utils import modeling
from jrft_utils.profiles import REPO_ROOT


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny_qwen"), list(modeling.vocabulary()), seed=0)


@pytest.fixture
def base_dir(tiny_qwen, tmp_path):
    """A gpu-style base folder: it only records where the pretrained weights are."""
    return qwen.write_source(tmp_path / "base", str(tiny_qwen), "float32")


@pytest.fixture(scope="module")
def puzzles():
    return jigsaw.build_dataset(profiles.section("smoke", "jigsaw"), "train", size=4)


def test_the_gpu_profile_names_a_qwen_checkpoint_with_lora():
    cfg = profiles.section("gpu", "model")
    assert cfg["source"].startswith("Qwen/Qwen2.5-VL") and cfg["dtype"] == "bfloat16" and cfg["lora_r"] > 0
    assert profiles.section("cpu", "model")["source"] == "tiny"
    assert qwen.lora_config(profiles.section("cpu", "model")) is None


def test_tiny_qwen_loads_and_generates_through_the_shared_evaluator(tiny_qwen):
    model, processor = qwen.load(tiny_qwen, "float32")
    assert isinstance(processor, qwen.QwenVLProcessor) and processor.tokenizer.padding_side == "left"
    assert qwen.is_qwen_checkpoint(tiny_qwen)
    prompt = generation.chat_prompt(processor, "read the digits from left to right .")
    assert "<|vision_start|> <|image_pad|> <|vision_end|> read the digits" in prompt
    samples = world.generate("ocr", 3, 0)
    outs = generation.generate_completions(model, processor, [s["image"] for s in samples],
                                           [s["prompt"] for s in samples], max_new_tokens=4, progress=False)
    assert len(outs) == 3 and all(isinstance(o, str) for o in outs)
    completion = samples[0]["completion"]  # the template tags and digits are whole tokens
    assert processor.tokenizer.decode(processor.tokenizer(completion)["input_ids"]) == completion


def test_a_base_folder_points_at_the_pretrained_weights(base_dir, tiny_qwen):
    assert modeling.trainable_source(base_dir) == str(tiny_qwen)
    model, processor = modeling.load_checkpoint(base_dir)
    assert model.config.model_type == "qwen2_5_vl" and model.dtype == torch.float32


def test_unreachable_weights_say_what_was_tried_and_how_to_point_at_a_copy(monkeypatch, tmp_path):
    import huggingface_hub.constants

    # the hub reads HF_HUB_OFFLINE when it is imported: set the flag it reads, so nothing waits on a network
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(qwen.ModelUnavailable, match=r"'Qwen/No-Such-Model-7B'.*hub.*huggingface-cli download"
                                                    r".*model_source=DIR"):
        qwen.load("Qwen/No-Such-Model-7B")
    with pytest.raises(qwen.ModelUnavailable, match="local folder"):
        qwen.load(tmp_path)


def test_sft_with_lora_trains_and_saves_merged_weights(base_dir, tiny_qwen, puzzles, tmp_path):
    cfg = profiles.section("smoke", "sft", steps=2, batch_size=2, learning_rate=1e-2)
    lora = qwen.lora_config({"lora_r": 4, "lora_alpha": 8})
    metrics = trainers.train("sft", base_dir, jigsaw.to_sft_gt(puzzles), cfg, tmp_path / "sft", 0, peft_config=lora)
    assert metrics["steps"] == 2
    tuned, _ = modeling.load_checkpoint(tmp_path / "sft" / "model")
    base, _ = qwen.load(tiny_qwen, "float32")
    assert not any("lora" in k for k in tuned.state_dict())  # adapters merged, a plain checkpoint
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed and all("language_model" in k for k in changed)  # LoRA touched the decoder only


def test_full_fine_tuning_with_freeze_vision_leaves_the_vision_side_of_qwen_alone(base_dir, tiny_qwen, puzzles, tmp_path):
    cfg = profiles.section("smoke", "sft", steps=2, batch_size=2, learning_rate=1e-2, freeze_vision=True)
    trainers.train("sft", base_dir, jigsaw.to_sft_gt(puzzles), cfg, tmp_path / "sft", 0)
    tuned, _ = modeling.load_checkpoint(tmp_path / "sft" / "model")
    base, _ = qwen.load(tiny_qwen, "float32")
    assert [type(m).__name__ for m in modeling.image_side(base)] == ["Qwen2_5_VisionTransformerPretrainedModel"]
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])]
    assert changed and not any(".visual." in f".{k}" for k in changed)


def test_grpo_runs_on_the_tiny_qwen(base_dir, puzzles, tmp_path):
    import warnings

    cfg = profiles.section("smoke", "rft", steps=2, batch_size=4, num_generations=2, max_completion_length=8,
                           beta=0.0)  # from the model itself, no KL term: the gpu profile
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = trainers.train("rft", base_dir, jigsaw.to_grpo(puzzles), cfg, tmp_path / "rft", 0,
                                 save_model=False, peft_config=qwen.lora_config({"lora_r": 4, "lora_alpha": 8}))
    assert metrics["steps"] == 2
    # TRL's per-step read of a deprecated transformers property is silenced (it flooded notebook 03)
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]


def test_notebook_00_of_the_gpu_profile_runs_on_the_tiny_qwen_and_benchmark_copies(tiny_qwen, tmp_path):
    """Notebook 00 with profile=gpu: no pretraining, the base points at the (tiny) Qwen2.5-VL, and prior
    knowledge is scored on local copies of the six benchmarks, recorded for the later notebooks."""
    import datasets
    import papermill as pm
    from test_benchmarks import FIXTURES

    bench_dir = tmp_path / "benchmarks"
    for name, columns in FIXTURES.items():
        datasets.Dataset.from_dict(columns()).save_to_disk(str(bench_dir / name))
    pm.execute_notebook(str(REPO_ROOT / "notebooks" / "00_base_model.ipynb"), str(tmp_path / "00.ipynb"),
                        cwd=str(REPO_ROOT / "notebooks"), kernel_name="python3", progress_bar=False,
                        parameters={"profile": "gpu", "model_source": str(tiny_qwen), "train_per_capability": 2,
                                    "benchmark_dir": str(bench_dir)})
    # the notebook's own knobs: a run with changed knobs keeps its base and summary beside the profile's
    config = profiles.resolve("gpu", model={"source": str(tiny_qwen)}, world={"train_per_capability": 2})
    assert modeling.trainable_source(config.base_dir) == str(tiny_qwen)
    prior = results.load_summary(config)["methods"]["base"]["prior"]
    assert set(prior) == {*world.CAPABILITIES, "mean"}
    assert all(0.0 <= v[0] <= 1.0 for v in prior.values())
    suite = evaluation.prior_test_sets(config)  # a later notebook finds the recorded benchmark folder
    assert sorted(suite) == sorted(FIXTURES) and len(suite["pope"]) == 6
