"""Shared fixtures: keep every test's run artifacts out of the repository's runs/ and figures/."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_run_root(tmp_path_factory, monkeypatch):
    """Point JRFT_RUN_ROOT at a temporary folder for every test (smoke figures live under it too)."""
    root = tmp_path_factory.getbasetemp() / "runs"
    monkeypatch.setenv("JRFT_RUN_ROOT", str(root))
    return root
