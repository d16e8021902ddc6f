"""The model factory: tokenizer, chat template, processor, save/load, and TRL SFT on its chat format."""

import pytest
import torch

from jrft_utils import finetuning, generation, jigsaw, modeling, profiles, trainers, world


@pytest.fixture(scope="module")
def processor():
    return modeling.build_processor(profiles.resolve("smoke")["model"])


def test_vocabulary_has_digits_as_single_tokens_and_world_and_jigsaw_words(processor):
    tok = processor.tokenizer
    for d in "0123456789":
        assert tok.tokenize(d) == [d]
    assert tok.tokenize("4071") == ["4", "0", "7", "1"]
    vocab = tok.get_vocab()
    for word in (*world.VOCABULARY, *jigsaw.VOCABULARY):
        assert word in vocab
    assert len(set(modeling.vocabulary())) == len(modeling.vocabulary()) == len(tok)


def test_world_and_jigsaw_text_round_trips_without_unk(processor):
    tok = processor.tokenizer
    texts = [jigsaw.jigsaw_prompt(2, 2), jigsaw.jigsaw_prompt(3, 3)]
    texts += [t for cap in world.CAPABILITIES for s in world.generate(cap, 40, 2) for t in (s["prompt"], s["completion"])]
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids) == text
    assert tok.unk_token_id in tok("zebra", add_special_tokens=False)["input_ids"]


def test_chat_template_prompt_is_a_prefix_and_image_expands_to_patches(processor):
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "read the digits ."}]}]
    completion = [{"role": "assistant", "content": [{"type": "text", "text": "<think> a </think> <answer> 1 </answer>"}]}]
    p = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full = processor.apply_chat_template(prompt + completion, tokenize=False)
    assert full.startswith(p) and p.endswith("assistant ")
    assert full[len(p):].startswith("<think>")
    img = world.generate("ocr", 1, 0)[0]["image"]
    ids = processor(images=[img], text=[p], return_tensors="pt")["input_ids"][0]
    n_image = int((ids == processor.tokenizer.convert_tokens_to_ids(modeling.IMAGE)).sum())
    assert n_image == (84 // 14) ** 2


def test_save_load_round_trip_gives_identical_logits(processor, tmp_path):
    m = modeling.build_model(profiles.resolve("smoke")["model"], seed=0, processor=processor).eval()
    s = world.generate("vqa", 2, 0)
    inputs = processor(images=[x["image"] for x in s],
                       text=[generation.chat_prompt(processor, x["prompt"]) for x in s],
                       padding=True, return_tensors="pt")
    with torch.no_grad():
        before = m(**inputs).logits
    modeling.save_checkpoint(m, processor, tmp_path / "ckpt")
    m2, p2 = modeling.load_checkpoint(tmp_path / "ckpt")
    assert type(m2).__name__ == "LlavaForConditionalGeneration"
    assert p2.tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    assert p2.tokenizer.padding_side == "left"
    inputs2 = p2(images=[x["image"] for x in s], text=[generation.chat_prompt(p2, x["prompt"]) for x in s],
                 padding=True, return_tensors="pt")
    assert torch.equal(inputs["input_ids"], inputs2["input_ids"])
    assert torch.allclose(inputs["pixel_values"], inputs2["pixel_values"])
    with torch.no_grad():
        assert torch.equal(before, m2(**inputs2).logits)


def test_model_init_is_deterministic_by_seed(processor):
    a = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor).state_dict()
    b = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor).state_dict()
    c = modeling.build_model(profiles.resolve("smoke")["model"], 1, processor).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="00_base_model"):
        modeling.load_checkpoint(tmp_path / "nowhere")


def test_the_run_folders_are_under_the_run_root(monkeypatch, tmp_path):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path))
    config = profiles.resolve("cpu")
    assert config.run_dir == tmp_path / "cpu" and config.base_dir == tmp_path / "cpu" / "base"
    assert config.figures_dir == profiles.REPO_ROOT / "figures"  # the cpu profile's figures are the repository's
    assert profiles.resolve("smoke").figures_dir == tmp_path / "smoke" / "figures"


def test_training_dataset_serves_the_samples_own_images():
    """to_dataset keeps the images in memory and serves them by position (no encoding, no re-rendering)."""
    from jrft_utils import pretraining

    samples = world.generate("grounding", 3, 0) + world.generate("ocr", 2, 0)
    ds = pretraining.to_dataset(samples)
    rows = ds[1:4]
    assert [im for [im] in rows["images"]] == [s["image"] for s in samples[1:4]]
    assert rows["completion"][0][0]["content"][0]["text"] == samples[1]["completion"]
    with pytest.raises(ValueError, match="no training samples"):
        pretraining.to_dataset([])


def test_trl_sft_trainer_trains_on_the_chat_format(processor, tmp_path):
    """The later SFT stage trains through TRL's SFTTrainer on conversational prompt/completion + images."""
    from trl import SFTTrainer

    from jrft_utils import pretraining

    m = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor)
    ds = pretraining.to_dataset(world.generate("ocr", 8, 0))
    args = trainers.sft_config(profiles.section("smoke", "pretrain", steps=2, batch_size=4), tmp_path, 0, progress=False,
                                remove_unused_columns=False)
    trainer = SFTTrainer(model=m, args=args, train_dataset=ds, processing_class=processor)
    batch = next(iter(trainer.get_train_dataloader()))
    labels = batch["labels"][0]
    trained = processor.tokenizer.decode(labels[labels != -100])
    assert trained.startswith("<think>") and trained.endswith("<|im_end|>")  # completion-only loss
    before = {k: v.clone() for k, v in m.state_dict().items()}
    trainer.train()
    assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items())
    # no activation checkpointing on CPU (TRL's default is on; for tiny models it only recomputes)
    assert not trainer.args.activation_checkpointing and not m.is_activation_checkpointing


def test_freeze_image_side_leaves_the_language_model_to_train(processor):
    m = modeling.build_model(profiles.resolve("smoke")["model"], 0, processor)
    frozen = modeling.freeze_image_side(m)
    image = {n for n, _ in m.named_parameters() if n.startswith(("model.vision_tower.", "model.multi_modal_projector."))}
    assert image and frozen == sum(p.numel() for n, p in m.named_parameters() if n in image)
    assert all(not p.requires_grad for n, p in m.named_parameters() if n in image)
    assert all(p.requires_grad for n, p in m.named_parameters() if n not in image)  # decoder, embeddings, head
    assert modeling.image_side(modeling.build_text_model(processor.tokenizer, 0, 16, 1, 2, 1, 32)) == []


@pytest.mark.parametrize("freeze", [True, False])
def test_fine_tuning_with_freeze_vision_changes_the_language_model_only(freeze, tmp_path, monkeypatch):
    from jrft_utils import pretraining

    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))  # its own base: other tests expect none
    base = pretraining.pretrain(profiles.resolve("smoke"), progress=False)["checkpoint"]
    before = modeling.load_checkpoint(base)[0].state_dict()
    data = jigsaw.to_sft_gt(finetuning.jigsaw_splits(profiles.resolve("smoke"))["train"])
    cfg = profiles.section("smoke", "sft", steps=2, freeze_vision=freeze)
    trainers.train("sft", base, data, cfg, tmp_path / "sft", seed=0, progress=False)
    after = modeling.load_checkpoint(tmp_path / "sft" / "model")[0].state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    vision = {k for k in changed if k.startswith(("model.vision_tower.", "model.multi_modal_projector."))}
    assert any(k.startswith("model.language_model.") for k in changed)
    assert bool(vision) is not freeze
