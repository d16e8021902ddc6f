"""Every notebook runs end to end with papermill under the `smoke` profile, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jrft_utils import reproduce
from jrft_utils.profiles import REPO_ROOT

pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke_runs")
    result = subprocess.run([sys.executable, "-m", "jrft_utils.reproduce", "--profile", "smoke"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
                            env=os.environ | {"JRFT_RUN_ROOT": str(root)})
    return result, root / "smoke"


def test_smoke_reproduction_succeeds(smoke_run):
    result, _ = smoke_run
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "notebooks done" in result.stdout


@pytest.mark.parametrize("nb", reproduce.discover(), ids=lambda nb: nb.path.stem)
def test_notebook_executed(smoke_run, nb):
    _, run = smoke_run
    assert (run / "notebooks" / nb.path.name).exists()


def test_smoke_summary_follows_the_contract(smoke_run):
    _, run = smoke_run
    summary = json.loads((run / "figures" / "summary.json").read_text())
    assert summary["profile"] == "smoke"
    assert set(summary) >= {"profile", "seeds", "grid", "wall_time_s", "methods", "corpora", "claims"}
