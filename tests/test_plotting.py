"""Figures draw a method, or the corpus it trains on, in the registry's colour."""

from __future__ import annotations

import json

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from jrft_utils import jigsaw, mechanism, methods, plotting, profiles, world

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


# ----------------------------------------------------------------------------------------------------
# Every figure that shows methods or corpora draws each one in the registry's colour: made here from small
# hand-made inputs, then read back from what matplotlib drew (legend entries, labelled lines, bars under a
# tick label).

ARMS = ("sft_gt", "rft", "sft_teacher", "sft_rft_rollouts")
CORPORA = ("gt", "teacher", "rft_rollouts")


def _handle_colour(handle) -> str | None:
    for get in ("get_color", "get_facecolor"):
        if hasattr(handle, get):
            colour = getattr(handle, get)()
            if len(colour) and not isinstance(colour, str) and hasattr(colour[0], "__len__"):
                colour = colour[0]  # a collection: its first face
            return to_hex(colour) if len(colour) else None
    return None


def _drawn_colours(fig) -> list[tuple[str, str]]:
    """(label, colour) of every legend entry, labelled line and labelled bar of ``fig``."""
    drawn = []
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    for legend in legends:
        drawn += [(t.get_text(), _handle_colour(h)) for t, h in zip(legend.texts, legend.legend_handles)]
    for ax in fig.axes:
        drawn += [(line.get_label(), to_hex(line.get_color())) for line in ax.lines
                  if not line.get_label().startswith("_")]
        ticks = {round(t.get_position()[0]): t.get_text() for t in ax.get_xticklabels()}
        for patch in ax.patches:  # bars (rectangles) and boxes (paths in data coordinates)
            box = (patch.get_bbox() if hasattr(patch, "get_x") else patch.get_path().get_extents())
            if box.width > 0 and round((box.x0 + box.x1) / 2) in ticks:
                drawn.append((ticks[round((box.x0 + box.x1) / 2)], to_hex(patch.get_facecolor())))
    return drawn


def _method_label(label: str) -> str | None:
    """The registry label a drawn label names (``'RFT (28 points)'`` -> ``'RFT'``), or None."""
    head = label.split(" (")[0]
    try:
        methods.colour(head)
    except KeyError:
        return None
    return head


def _points():
    rng = np.random.default_rng(0)
    return [{"arm": arm, "lr": lr, "seed": 0, "step": step, "task_acc": float(rng.uniform()),
             "prior_mean": float(rng.uniform(0.5, 0.9)), "kl_new": float(rng.uniform(0, 3))}
            for arm in ARMS for lr in (1e-4, 3e-4) for step in (0, 10, 20, 30)]


def _figures():
    curve = [{"step": s, "jigsaw_acc": s / 30, "jigsaw_hit": s / 30, "prior": {"mean": 0.8 - s / 100}} for s in (0, 10, 30)]
    curves = pd.concat([plotting.curves_frame({"seed 0": curve, "seed 1": curve}, method=methods.name(m)) for m in ARMS])
    bars = pd.DataFrame([{"corpus": c, "seed": s, "lbk": 1.0 + s, "direction": s - 1.0} for c in CORPORA for s in (0, 1, 2)])
    steps = pd.DataFrame([{"corpus": c, "step": s, "lbk": s + 1.0} for c in CORPORA for s in (0, 10)])
    tokens = pd.DataFrame([{"corpus": c, "token NLL": x} for c in CORPORA for x in (0.1, 1.0, 3.0)])
    versus = pd.DataFrame([{"corpus": c, "prior change": -0.1 * i, "nll": float(i), "lbk": 10.0 * i}
                           for i, c in enumerate(CORPORA, 1)])
    points = _points()
    measures = {m: {"nll": float(i), "lbk": 10.0 ** i} for i, m in enumerate(ARMS, 1) if m != "rft"}
    frame = mechanism.frame(points, 0.9, measures)
    return {
        "curves": plotting.plot_curves(curves, ["jigsaw exact", "prior mean"]),
        "frontier": plotting.plot_frontier(points, 0.9, levels=[0.3]),
        "corpus bars": plotting.plot_corpus_bars(bars, ["lbk", "direction"], {}),
        "over steps": plotting.plot_over_steps(steps, "lbk", "t", "LBK"),
        "nll boxes": plotting.plot_nll_distributions(tokens),
        "forgetting vs": plotting.plot_forgetting_vs(versus, ["nll", "lbk"]),
        "mechanism": plotting.plot_mechanism(frame, mechanism.compare(frame)),
        "drop vs kl": plotting.plot_drop_vs_kl({"free": points}, {"free": 0.9}, {"free": 0.5}),
        "prior": plotting.plot_prior({"base": {c: 0.8 for c in [*world.CAPABILITIES, "mean"]},
                                      "SFT-Non-Rea": {c: 0.5 for c in [*world.CAPABILITIES, "mean"]}}),
    }


def test_every_figure_draws_each_method_in_the_registry_colour():
    for name, fig in _figures().items():
        shown = [(label, _method_label(label), colour) for label, colour in _drawn_colours(fig)]
        methods_shown = [(label, method, colour) for label, method, colour in shown if method]
        assert methods_shown, f"{name}: no method found in what the figure drew"
        for label, method, colour in methods_shown:
            assert colour == methods.colour(method), f"{name}: {label!r} drawn in {colour}"
        plt.close(fig)


def test_the_frontier_draws_subset_points_hollow_and_says_so():
    points = _points()
    plain = plotting.plot_frontier(points, 0.9)
    assert not plain.texts
    marked = [p | {"subset": True} if p["step"] in (10, 20) else p for p in points]
    fig = plotting.plot_frontier(marked, 0.9)
    assert "fixed subsets" in fig.texts[0].get_text()
    hollow = [c for c in fig.axes[0].collections if len(c.get_offsets()) and not len(c.get_facecolors())]
    assert sum(len(c.get_offsets()) for c in hollow) == sum(p.get("subset", False) for p in marked)
    for c in hollow:  # each arm's hollow points in its registry colour
        assert tuple(c.get_edgecolors()[0][:3]) in {tuple(matplotlib.colors.to_rgb(methods.colour(a))) for a in ARMS}
    plt.close(plain), plt.close(fig)


def test_curves_mark_the_start_and_say_so():
    fig = _figures()["curves"]
    assert "dashed: step 0" in fig.legends[0].get_title().get_text()
    start_lines = [line for line in fig.axes[0].lines if line.get_linestyle() == "--"]
    assert len(start_lines) == 1 and start_lines[0].get_ydata()[0] == 0.0  # jigsaw exact at step 0


def test_learning_rates_are_listed_in_order_in_one_notation():
    check = pd.DataFrame([{"lr": lr, "predicted": 1e-3 * i, "measured": 1e-3 * i} for i, lr in enumerate((1e-2, 1e-4, 1e-3), 1)])
    labels = [t.get_text() for t in plotting.plot_first_order(check).axes[0].get_legend().texts]
    assert labels[:3] == ["lr 1e-04", "lr 1e-03", "lr 1e-02"]


def test_the_gallery_labels_each_answer():
    puzzles = jigsaw.generate_puzzles(2, "test", rows=2, cols=2, seed=0)
    titles = [ax.get_title() for ax in plotting.gallery_figure({"test": puzzles}, per_split=2).axes]
    assert titles[0].endswith(f"answer {puzzles[0].answer_text}")
