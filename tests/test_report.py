"""The README's results block is generated from figures/summary.json and must not be stale; claims are
judged from the summary's numbers."""

from __future__ import annotations

from jrft_utils import claims, profiles, report


def _summary(gt_prior, rft_prior):
    base = {"jigsaw_acc": [0.0, 0.0], "jigsaw_hit": [], "steps": [], "train_time_s": [],
            "prior": {"mean": [0.9, 0.9]}}
    def method(acc, prior, steps):
        return {"jigsaw_acc": [acc, acc], "jigsaw_hit": [], "steps": [steps, steps], "train_time_s": [],
                "prior": {"mean": [prior, prior]}}
    return {"profile": "cpu", "seeds": [0, 1], "grid": [2, 2], "wall_time_s": 60.0,
            "methods": {"base": base, "sft_gt": method(0.9, gt_prior, 100), "rft": method(0.6, rft_prior, 2000)},
            "corpora": {}, "claims": []}


def test_readme_results_block_is_up_to_date():
    assert report.main(["--check"]) == 0, "README.md is stale: run `python -m jrft_utils.report`"


def test_claims_follow_the_numbers():
    judged = {c["id"]: c for c in claims.evaluate(_summary(gt_prior=0.5, rft_prior=0.89))}
    assert judged[1]["reproduced"] == "yes"
    assert judged[2]["reproduced"] == "yes" and "20.0x" in judged[2]["ours"]
    assert judged[3]["reproduced"] == "yes" and judged[4]["reproduced"] == "yes"
    flipped = {c["id"]: c for c in claims.evaluate(_summary(gt_prior=0.88, rft_prior=0.5))}
    assert flipped[3]["reproduced"] == "no" and flipped[4]["reproduced"] == "no"
    assert judged[6]["ours"] == "not run" and judged[6]["reproduced"] == "no"
    idle = _summary(gt_prior=0.5, rft_prior=0.89)  # an RFT that keeps everything because it learns nothing
    idle["methods"]["rft"]["jigsaw_acc"] = [0.01, 0.02]
    claim4 = {c["id"]: c for c in claims.evaluate(idle)}[4]
    assert claim4["reproduced"] == "partial" and "learned no jigsaw (+1.5 pts" in claim4["ours"]
    partial = _summary(0.5, 0.89) | {"corpora": {"gt": {"lbk": [2.0], "direction": [], "nll_base": [1.0]}}}
    assert {c["id"]: c for c in claims.evaluate(partial)}[7]["ours"] == "not run"  # no rollout corpus


def test_render_shows_every_method_and_claim():
    summary = _summary(0.5, 0.89) | {"claims": claims.evaluate(_summary(0.5, 0.89))}
    text = report.render(summary)
    assert "SFT-Non-Rea" in text and "RFT" in text and "| 9 |" in text
    assert "50.0" in text  # SFT's prior mean, in %
    assert "| SFT corpus |" not in text  # no corpora ran
    with_corpora = report.render(summary | {"corpora": {"gt": {"lbk": [2.0, 4.0], "direction": [-0.5, -0.5], "nll_base": [1.0, 1.0]}}})
    assert "| SFT corpus | LBK |" in with_corpora and "| gt | 3 ± 1.41 | -0.5 ± 0 | 1 ± 0 |" in with_corpora


def test_the_machine_that_made_the_numbers_is_recorded_and_shown(isolated_run_root):
    from jrft_utils import results

    info = results.machine()
    assert info["cpu_capability"] and info["torch"].startswith("2.") and info["threads"] >= 1
    results.record_fields(profiles.resolve("smoke"), machine=info)
    assert results.load_summary(profiles.resolve("smoke"))["machine"] == info
    text = report.render(_summary(0.5, 0.89) | {"machine": info})
    assert f"with {info['cpu_capability']} kernels" in text
    assert "kernels" not in report.render(_summary(0.5, 0.89))


def test_base_prior_reads_the_recorded_base_or_says_to_run_notebook_00(tmp_path, monkeypatch):
    import pytest

    from jrft_utils import results

    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    results.start_summary(profiles.resolve("smoke"))
    with pytest.raises(FileNotFoundError, match="run notebook 00 first"):
        results.base_prior(profiles.resolve("smoke"))
    results.record_method(profiles.resolve("smoke"), "base", 0, {"jigsaw_acc": 0.0, "jigsaw_hit": 0.0, "steps": 0, "train_time_s": 1.0,
                                               "prior": {"ocr": 0.8, "mean": 0.8}})
    assert results.base_prior(profiles.resolve("smoke")) == {"ocr": 0.8, "mean": 0.8}


def test_the_results_block_shows_matched_drops_and_puts_matched_claims_first():
    summary = _summary(gt_prior=0.5, rft_prior=0.89)
    summary["matched"] = {"vision": {"levels": [0.3, 0.6], "drop": {"rft": [0.01, 0.02], "sft_gt": [0.05, None]}},
                          "text": {"levels": [], "drop": {"rft": []}}}
    summary["claims"] = [{"id": 1, "text": "a", "paper": "", "ours": "x", "reproduced": "yes", "comparison": "recipe"},
                         {"id": 3, "text": "b", "paper": "", "ours": "y", "reproduced": "no", "comparison": "matched"}]
    block = report.render(summary)
    assert "| arm | at 30.0 % exact | at 60.0 % exact |" in block
    assert "| SFT-Non-Rea | 5.0 | – |" in block and "| RFT | 1.0 | 2.0 |" in block
    assert "No matched accuracy in the text setting" in block
    assert block.index("| 3 | b | matched |") < block.index("| 1 | a | recipe |")
    assert "04_forgetting_frontier.png" in block
