"""The claims' verdicts and texts are frozen: for a frozen summary (``data/claims_summary.json``, a full
reproduction's) and for copies of it with parts missing, :func:`claims.evaluate` returns exactly the list
stored in ``data/claims_expected.json`` (computed when the claims were one function, before they became a
registry). The frozen summary keeps this test independent of the committed run's numbers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from jrft_utils import claims, profiles

EXPECTED = Path(__file__).parent / "data" / "claims_expected.json"
FROZEN_SUMMARY = Path(__file__).parent / "data" / "claims_summary.json"


def _cases(summary: dict) -> dict[str, dict]:
    """The frozen summary and variants of it with methods, corpora or the text section missing."""
    no_text = copy.deepcopy(summary)
    no_text.pop("text")
    few = copy.deepcopy(summary)
    few["methods"] = {k: few["methods"][k] for k in ("base", "sft_gt", "rft")}
    few["corpora"] = {}
    no_lbk = copy.deepcopy(summary)
    no_lbk["corpora"]["rft_rollouts"]["lbk"] = []
    no_lbk["text"]["corpora"] = {}
    no_early = copy.deepcopy(summary)
    del no_early["methods"]["sft_early_rollouts"]
    del no_early["text"]["methods"]["sft_teacher"]
    return {"committed": copy.deepcopy(summary), "empty": {}, "no_text": no_text, "base_sft_rft_only": few,
            "rollouts_without_lbk_text_without_corpora": no_lbk,
            "no_early_rollouts_text_without_teacher": no_early}


@pytest.mark.parametrize("case", list(json.loads(EXPECTED.read_text())))
def test_claims_are_byte_identical_to_the_frozen_output(case):
    summary = json.loads(FROZEN_SUMMARY.read_text())
    expected = json.loads(EXPECTED.read_text())[case]
    got = claims.evaluate(_cases(summary)[case])  # json.dumps: byte-identical, NaN and key order included
    assert json.dumps(got, ensure_ascii=False) == json.dumps(expected, ensure_ascii=False)


def test_the_committed_summary_holds_the_claims_of_its_numbers():
    summary = json.loads((profiles.REPO_ROOT / "figures" / "summary.json").read_text())
    assert claims.evaluate(summary) == summary["claims"]
