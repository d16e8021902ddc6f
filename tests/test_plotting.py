"""Figures draw a method, or the corpus it trains on, in the registry's colour."""

from __future__ import annotations

import json

import matplotlib
import pandas as pd
from matplotlib.colors import to_hex

from jrft_utils import jigsaw, methods, plotting, profiles

matplotlib.use("Agg")


def test_the_main_figure_colours_each_method_as_the_registry():
    summary = json.loads((profiles.REPO_ROOT / "figures" / "summary.json").read_text())
    ax = plotting.plot_main(summary).axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == [methods.name(m) for m in summary["methods"]]
    for container in ax.containers:
        for bar in container:
            x = round(bar.get_x() + bar.get_width() / 2)
            assert to_hex(bar.get_facecolor()) == methods.colour(names[x])


def test_curves_of_corpora_take_their_methods_colours():
    points = [{"step": s, "jigsaw_acc": 0.5, "jigsaw_hit": 0.5, "prior": {"mean": 0.5}} for s in (0, 10)]
    frame = pd.concat([plotting.curves_frame({"seed 0": points, "seed 1": points}, corpus=c) for c in ("gt", "teacher")])
    fig = plotting.plot_curves(frame, ["jigsaw exact"], hue="corpus")
    legend = {t.get_text(): to_hex(h.get_color()) for t, h in zip(fig.legends[0].texts, fig.legends[0].legend_handles)}
    assert legend == {"gt": methods.colour("sft_gt"), "teacher": methods.colour("sft_teacher")}
    assert "± 1 sd over seeds" in fig.legends[0].get_title().get_text()


def test_the_jigsaw_figures_draw():
    puzzles = jigsaw.generate_puzzles(2, "test", rows=2, cols=2, seed=0)
    assert len(plotting.convention_figure(puzzles[0]).axes) == 3
    assert len(plotting.gallery_figure({"test": puzzles}, per_split=2).axes) == 2
