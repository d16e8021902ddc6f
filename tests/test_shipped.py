"""The shipped bases: a base is installed instead of trained only for its own recipe and only when its files
match its manifest; the bases shipped in data/ match their manifests and score what their manifests say."""

from __future__ import annotations

import pytest
import torch

from jrft_utils import evaluation, modeling, pretraining, profiles, shipped, stages
from jrft_utils import textexperiment as tx


@pytest.fixture(scope="module")
def smoke_shipped(tmp_path_factory):
    """A smoke base pretrained in a run folder of its own and shipped (by :func:`shipped.write`) to a data
    folder of its own: ``(config, shipped data folder, its weights)``."""
    root = tmp_path_factory.mktemp("shipping")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JRFT_RUN_ROOT", str(root / "made"))
        config = profiles.resolve("smoke")
        info = pretraining.pretrain(config, progress=False)
        shipped.write(config.base_dir, root / "data" / "base", {"full": {"mean": 0.5}})
    return config, root / "data", {k: v.clone() for k, v in info["model"].state_dict().items()}


def test_a_base_of_the_same_recipe_is_installed_without_training(smoke_shipped, tmp_path, monkeypatch):
    config, data, weights = smoke_shipped
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "fresh"))
    monkeypatch.setattr(shipped, "DATA_DIR", data)
    monkeypatch.setattr(pretraining, "pretrain_vision", lambda *a, **k: pytest.fail("the shipped base was trained"))
    info = pretraining.pretrain(config, progress=False)
    assert info["shipped"] and info["cached"] and info["log"] and info["checkpoint"] == str(config.base_dir)
    assert all(torch.equal(weights[k], v) for k, v in info["model"].state_dict().items())
    assert pretraining.pretrain(config, progress=False)["shipped"]  # installed once, then a cached stage
    assert pretraining.load_pretrain_log(config)["steps"] == config["pretrain"]["steps"]


def test_another_recipe_or_a_rebuild_trains_its_own_base(smoke_shipped, tmp_path, monkeypatch):
    config, data, _ = smoke_shipped
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "fresh"))
    assert stages.record(data / "base") is None  # the run's stage record is not shipped
    manifest = shipped.read(data / "base")
    other = manifest["params"] | {"seed": manifest["params"]["seed"] + 1}
    assert shipped.reusable(tmp_path / "other", other, data / "base", rebuild=False) is None
    assert not (tmp_path / "other").exists()
    assert shipped.reusable(tmp_path / "same", manifest["params"], data / "base", rebuild=True) is None
    installed = shipped.reusable(tmp_path / "same", manifest["params"], data / "base", rebuild=False)
    assert installed["shipped"] == str(data / "base")
    assert shipped.reusable(tmp_path / "same", manifest["params"], data / "base", rebuild=True) is None


def test_a_shipped_base_that_does_not_match_its_manifest_is_refused(smoke_shipped, tmp_path):
    _, data, _ = smoke_shipped
    copy = tmp_path / "base"
    copy.mkdir()
    for path in (data / "base").iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert shipped.mismatches(copy) == []
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    (copy / "extra.bin").write_bytes(b"0")
    assert shipped.mismatches(copy) == ["config.json", "extra.bin"]
    with pytest.raises(ValueError, match="does not match its manifest"):
        shipped.install(copy, shipped.read(copy)["params"], tmp_path / "installed")


def test_only_a_profile_that_ships_with_its_own_settings_writes_to_data(tmp_path):
    smoke = profiles.resolve("smoke")
    never = lambda: pytest.fail("a base that is not shipped was scored")  # noqa: E731
    assert "does not ship" in shipped.ship(smoke, "base", tmp_path, {}, never)
    changed = profiles.resolve("cpu", pretrain={"steps": 10})
    assert "changed the profile's knobs" in shipped.ship(changed, "base", tmp_path, {}, never)


@pytest.mark.parametrize("name", ["base", "text_base"])
def test_the_shipped_bases_match_their_manifests_and_the_cpu_recipe(name):
    dest = shipped.DATA_DIR / name
    manifest = shipped.read(dest)
    assert manifest is not None, f"no shipped base in {dest}"
    assert shipped.mismatches(dest) == []
    assert sum((dest / f).stat().st_size for f in manifest["files"]) < 10e6
    cpu = profiles.resolve("cpu")
    recipe = (pretraining.base_params(cpu) if name == "base" else tx.base_params(cpu))
    assert manifest["recipe"] == stages.fingerprint(recipe)  # the cpu profile installs it
    klass = profiles.resolve("class")  # and so does the class profile, which shares the cpu's base knobs
    assert stages.fingerprint(pretraining.base_params(klass) if name == "base" else tx.base_params(klass)) == \
        manifest["recipe"]


def test_the_shipped_vision_base_meets_its_targets():
    full = shipped.read(shipped.DATA_DIR / "base")["prior"]["full"]
    assert full["mean"] >= 0.85 and all(acc >= 0.70 for acc in full.values()), full


def test_the_shipped_vision_base_scores_what_its_manifest_says(tmp_path):
    dest = shipped.DATA_DIR / "base"
    manifest = shipped.read(dest)
    model, processor = modeling.load_checkpoint(dest)
    config = profiles.resolve("cpu")
    sets = shipped.subset(evaluation.prior_test_sets(config))
    scores = evaluation.evaluate_prior(model, processor, sets, batch_size=config["world"]["eval_batch_size"],
                                       progress=False)
    assert scores == manifest["prior"]["subset"]
    assert manifest["prior"]["full"]["mean"] >= scores["mean"] - 0.2  # the subset is a sample of the full sets


def test_the_shipped_text_base_scores_what_its_manifest_says():
    manifest = shipped.read(shipped.DATA_DIR / "text_base")
    model, tokenizer = modeling.load_checkpoint(shipped.DATA_DIR / "text_base")
    config = profiles.resolve("cpu")
    scores = tx.evaluate(model, tokenizer, shipped.subset(tx.test_sets(config)),
                         tx.task_split(config, "test")[:shipped.SUBSET])
    assert scores == manifest["prior"]["subset"]
