"""The registry of methods: the order of summary.json, the text setting's subset, one colour per method."""

from __future__ import annotations

import json

import pytest
import seaborn as sns

from jrft_utils import methods, profiles, results, textexperiment


def test_the_registry_holds_the_summarys_methods_and_corpora():
    summary = json.loads((profiles.REPO_ROOT / "figures" / "summary.json").read_text())
    assert tuple(summary["methods"]) == methods.keys() == results.METHODS  # the notebooks record in this order
    assert tuple(summary["corpora"]) == methods.corpora() == results.CORPORA
    assert methods.keys("text") == results.TEXT_METHODS == textexperiment.METHODS
    assert methods.corpora("text") == results.TEXT_CORPORA == textexperiment.CORPORA
    assert set(summary["text"]["methods"]) == set(methods.keys("text"))  # notebook 08 records base last
    assert set(summary["text"]["corpora"]) == set(methods.corpora("text"))


def test_corpora_and_methods_map_both_ways():
    assert methods.corpus_of("text") == textexperiment.CORPUS_OF == {
        "sft_gt": "gt", "sft_teacher": "teacher", "sft_rft_rollouts": "rft_rollouts", "sft_start_think": "start_think",
        "sft_random_trace": "random_trace", "sft_foreign_think": "foreign_think"}
    assert all(methods.method_of_corpus(c) == m for m, c in methods.corpus_of().items())
    assert "sft_early_rollouts" in methods.corpus_of() and "rft" not in methods.corpus_of()
    assert [methods.name(m) for m in methods.keys()] == [
        "Base", "Start", "SFT-Non-Rea", "RFT", "SFT-Rea-teacher", "SFT-Rea-GRPO-Rollout", "SFT-early-rollouts",
        "SFT-teacher-foreign", "SFT-start-think", "SFT-random-trace", "SFT-foreign-think"]
    assert methods.controls() == ("teacher_foreign", "start_think", "random_trace", "foreign_think")
    assert methods.controls("text") == ("start_think", "random_trace", "foreign_think")
    # the paper's arms alone: what claims 5-9 compare
    assert methods.keys("text", controls=False) == ("base", "sft_gt", "rft", "sft_teacher", "sft_rft_rollouts")
    assert methods.corpora(controls=False) == ("gt", "teacher", "rft_rollouts", "early_rollouts")
    assert set(methods.controls()) <= set(methods.corpora())  # a control is an arm: built, trained, recorded


def test_one_colourblind_safe_colour_per_method_by_key_name_or_corpus():
    colours = [m.colour for m in methods.METHODS]
    assert len(set(colours)) == len(colours)
    # the colourblind palette, then (notebook 09's SFT arms) seaborn's "dark" one
    assert set(colours) <= set(sns.color_palette("colorblind").as_hex()) | set(sns.color_palette("dark").as_hex())
    assert methods.keys("freedom") == ("rft", "sft_one", "sft_two", "sft_oracle", "sft_self", "sft_self_iter")
    assert methods.colour("rft") == methods.colour("RFT")
    assert methods.colour("teacher") == methods.colour("sft_teacher") == methods.colour("SFT-Rea-teacher")
    assert methods.palette(["gt", "RFT", "gt"]) == {"gt": methods.colour("sft_gt"), "RFT": methods.colour("rft")}
    with pytest.raises(KeyError, match="names no method"):
        methods.colour("RFT (GRPO)")
