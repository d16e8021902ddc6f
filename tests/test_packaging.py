"""The dependency pins live in pyproject.toml; environment.yml must mirror them exactly."""

from __future__ import annotations

import re
import tomllib

from jrft_utils.profiles import REPO_ROOT


def _env_pins() -> list[str]:
    lines = (REPO_ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    return [ln.strip()[2:] for ln in lines[start + 1:] if ln.strip().startswith("- ")]


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert _env_pins() == deps


def test_every_dependency_is_pinned_exactly_and_torch_is_2_13():
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", d) for d in deps), deps
    assert "torch==2.13.0" in deps
    assert not any(d.startswith(("torchvision", "trl[")) for d in deps)


def test_ci_calls_the_readme_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
