"""The README's results block is generated from figures/summary.json and must not be stale; claims are
judged from the summary's numbers."""

from __future__ import annotations

import re

import nbformat
import pytest

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


# ----------------------------------------------------------------------------------------------------
# What a reader sees first: what was found, a glossary, and no development history.

COMMIT = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b")
ISSUE = re.compile(r"\b[Ii]ssues?\s*#?\d+|(?<![\w&])#\d+(?![\w-])")
GLOSSED = ("base", "start", "warm-up", "prior knowledge / prior mean", "gt", "SFT-Non-Rea", "SFT-Rea-teacher", "SFT-Rea-GRPO-Rollout",
           "KL anchor", "forward KL", "NLL", "eNTK, LBK", "fmt", "jigsaw exact / hit / acc", "frontier", "matched accuracy")


def _reader_texts():
    yield "README.md", profiles.REPO_ROOT.joinpath("README.md").read_text()
    findings = profiles.REPO_ROOT.joinpath("docs", "findings.md").read_text()
    yield "docs/findings.md before its development-log appendix", findings.split("\n## Appendix")[0]
    for path in sorted((profiles.REPO_ROOT / "notebooks").glob("*.ipynb")):
        yield path.name, "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def test_the_readme_opens_with_what_was_found_and_a_glossary():
    text = profiles.REPO_ROOT.joinpath("README.md").read_text()
    assert text.index("<!-- found:start -->") < text.index("## Glossary") < text.index("<!-- results:start -->")
    found = text.split("<!-- found:start -->")[1].split("<!-- found:end -->")[0].strip().splitlines()
    assert 2 <= len([line for line in found if line.strip()]) <= 8
    glossary = text.split("## Glossary")[1].split("\n## ")[0]
    defined = {row.split("|")[1].strip() for row in glossary.splitlines() if row.startswith("| ") and "---" not in row}
    assert set(GLOSSED) <= defined


@pytest.mark.parametrize("pattern", [COMMIT, ISSUE], ids=["commit", "issue"])
def test_reader_facing_text_names_no_commit_and_no_issue(pattern):
    found = {name: pattern.findall(text) for name, text in _reader_texts()}
    assert not {name: hits for name, hits in found.items() if hits}


def test_the_history_patterns_find_what_they_look_for():
    assert COMMIT.search("the run at 69e6e5a") and not COMMIT.search("lr 3e-04, 2 x 2, seed 0, sha256, decade")
    assert ISSUE.search("Issue 3 asks") and ISSUE.search("see #12") and not ISSUE.search("notebook 03, &#39; [2.2](#22-the-committed-run)")


def test_render_found_groups_the_claims_by_verdict():
    summary = _summary(0.5, 0.89) | {"claims": claims.evaluate(_summary(0.5, 0.89))}
    found = report.render_found(summary)
    verdicts = {c["id"]: c["reproduced"] for c in summary["claims"]}
    reproduced = found.split("**Reproduced:**")[1].split("\n")[0] if "**Reproduced:**" in found else ""
    assert all((f" {i} " in f" {reproduced}") == (v == "yes") for i, v in verdicts.items() if i < 10)
    assert report.render_found({}) .startswith("*No results yet")


def test_every_generated_block_is_up_to_date():
    assert report.main(["--check"]) == 0, "run `python -m jrft_utils.report`"


def test_the_timing_says_how_many_runs_the_run_trained_itself():
    summary = {"profile": "cpu", "seeds": [0], "wall_time_s": 600.0, "machine": {"cpu": "x", "threads": 2},
               "timing": {"notebooks": {"00_base_model": 60.0}, "memory_gb": {"00_base_model": 1.0}}}
    assert "trained" not in report.render_timing(summary)  # an older record: nothing said
    summary["timing"]["runs_trained"] = 7
    assert "total 10 min (7 fine-tuning runs trained in it; any already in its run folder were read back, and a " \
        "run from a fresh clone" in report.render_timing(summary)
    summary["timing"]["runs_trained"] = 0
    assert "total 10 min (no fine-tuning run trained in it: it read every one back" in report.render_timing(summary)
