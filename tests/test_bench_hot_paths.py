"""The hot-path benchmark (benchmarks/bench_hot_paths.py) runs end to end on the smoke profile and reports
every path, with the GRPO step split into the sections TRL's trainer profiles."""

import importlib.util
import re

from jrft_utils import modeling, profiles


def _bench():
    spec = importlib.util.spec_from_file_location("bench_hot_paths", profiles.REPO_ROOT / "benchmarks" / "bench_hot_paths.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hot_path_benchmark_reports_every_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JRFT_RUN_ROOT", str(tmp_path / "runs"))
    cfg = profiles.resolve("smoke")["model"]
    processor = modeling.build_processor(cfg)
    checkpoint = tmp_path / "ckpt"
    modeling.save_checkpoint(modeling.build_model(cfg, 0, processor), processor, checkpoint)
    _bench().main(["--checkpoint", str(checkpoint), "--profile", "smoke", "--steps", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    for row in ("GRPO step", "sampling the completions", "reference log-probabilities", "policy forward",
                "backward", "SFT step", "curve point", "point on subsets", "prior: ocr", "eNTK"):
        assert row in out, out
    seconds = [float(s) for s in re.findall(r"\s([0-9]+\.[0-9]{3}) s", out)]
    assert seconds and all(s > 0 for s in seconds)
    assert re.search(r"a GRPO step takes [0-9.]+x an SFT step", out)
