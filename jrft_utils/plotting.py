"""Figures: every plotting function of the package, in one style, saved as PNG and SVG into the profile's
figures folder. A method (or the SFT corpus it trains on) has the same colour in every figure: the
registry's (:func:`jrft_utils.methods.colour`)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter
from PIL import Image

from jrft_utils import frontiers, jigsaw, mechanism, methods, world

sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def save_figure(fig: plt.Figure, name: str, out: Path) -> Path:
    """Save ``fig`` as ``<name>.png`` (150 dpi) and ``<name>.svg`` in the folder ``out`` (a run's
    ``config.figures_dir``); return the PNG's path."""
    fig.tight_layout()
    png = out / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(out / f"{name}.svg", bbox_inches="tight")
    return png


def curves_frame(runs: dict[str, list[dict]], **labels: str) -> pd.DataFrame:
    """Curve points (as :class:`jrft_utils.trainers.CurveCallback` writes them) of several runs as one
    long table: one row per (run, step, metric). ``runs`` maps a run label (e.g. ``"seed 0"``) to its
    points; ``labels`` become constant columns (e.g. ``method="SFT"``). Points of the text-only
    experiment (``task_acc``) give a "task exact" metric instead of the jigsaw ones."""
    rows = []
    for run, points in runs.items():
        for p in points:
            metrics = ({"task exact": p["task_acc"]} if "task_acc" in p  # the text-only experiment (08)
                       else {"jigsaw exact": p["jigsaw_acc"], "jigsaw hit": p["jigsaw_hit"]})
            metrics |= {f"prior {k}": v for k, v in p["prior"].items()}
            rows += [{"run": run, "step": p["step"], "metric": k, "value": v, **labels} for k, v in metrics.items()]
    return pd.DataFrame(rows)


def plot_curves(frame: pd.DataFrame, metrics: list[str], hue: str = "method", title: str = "",
                col_wrap: int = 3) -> plt.Figure:
    """One panel per metric: value against training step, mean over runs (seeds) with a +-1 sd band.
    ``hue`` is a column of methods (display names or keys) or corpora, coloured as the registry says. A
    dashed line marks each metric's value at step 0 (the checkpoint every run starts from), so that what a
    method costs is visible from its first point on."""
    data = frame[frame["metric"].isin(metrics)]
    at_start = data[data["step"] == 0].groupby("metric")["value"].mean()
    grid = sns.relplot(data=data, x="step", y="value", hue=hue, col="metric", col_order=metrics, kind="line",
                       errorbar="sd", marker="o", col_wrap=min(col_wrap, len(metrics)), height=2.8,
                       aspect=1.2, facet_kws={"sharex": False, "sharey": True}, palette=methods.palette(data[hue]))
    grid.set_titles("{col_name}")
    for metric, ax in grid.axes_dict.items():
        if metric in at_start:
            ax.axhline(at_start[metric], color="grey", ls="--", lw=1, zorder=0)
    grid.set_axis_labels("training step", "accuracy (held-out)")
    grid.set(ylim=(-0.03, 1.03))
    # the legend in one row under the panels: on the right, seaborn's legend overlapped the last panel
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0.0), ncol=data[hue].nunique(), frameon=False,
                    title=f"{hue} (line: mean, band: ± 1 sd over seeds"
                          + ("; dashed: step 0, the checkpoint every run starts from)" if len(at_start) else ")"))
    grid.tight_layout()
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid.figure


def plot_frontier(points: list[dict[str, Any]], start_prior: float, title: str = "Forgetting frontier",
                  xlabel: str = "new-task exact accuracy (held-out)", levels: Sequence[float] = (),
                  reference: str = "start") -> plt.Figure:
    """Prior knowledge kept (mean prior accuracy / the ``reference`` checkpoint's, the one every run
    fine-tunes: the start, or the text setting's base) against new-task exact accuracy: every curve point of
    every run (``points``, :mod:`jrft_utils.frontiers` points) faint, each arm's Pareto frontier as a line,
    colour per method; dotted verticals at the matched ``levels``. Points scored on subsets (``subset``)
    are drawn hollow, and a note under the axes says so."""
    scale = start_prior if start_prior > 0 else 1.0  # a start that knows nothing (smoke): plain accuracy
    frame = pd.DataFrame(points)
    frame = frame.assign(kept=frame["prior_mean"] / scale, method=[methods.name(a) for a in frame["arm"]],
                         subset=frame["subset"].eq(True) if "subset" in frame else False)
    palette = methods.palette(frame["method"])
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    whole, subset = frame[~frame["subset"]], frame[frame["subset"]]
    sns.scatterplot(data=whole, x="task_acc", y="kept", hue="method", palette=palette, s=22, alpha=0.35,
                    linewidth=0, ax=ax, legend=False)
    for method, rows in subset.groupby("method"):
        ax.scatter(rows["task_acc"], rows["kept"], s=22, facecolors="none", edgecolors=palette[method], alpha=0.5, lw=0.8)
    if len(subset):
        fig.text(0.01, 0.005, "hollow: checkpoints between a run's first and last, scored on fixed subsets of the "
                 "held-out sets", fontsize=7, color="0.3")
    for arm, arm_points in frontiers.by_arm(points).items():
        front = frontiers.pareto(arm_points)
        ax.plot([p["task_acc"] for p in front], [p["prior_mean"] / scale for p in front], "-o", ms=4, lw=2,
                color=methods.colour(arm), label=f"{methods.name(arm)} ({len(arm_points)} points)")
    for level in levels:
        ax.axvline(level, color="grey", ls=":", lw=1)
    ax.axhline(1.0, color=methods.colour(reference), ls="--", lw=1, label=methods.name(reference))
    ylabel = (f"prior knowledge kept (fraction of the {methods.name(reference).lower()}'s)" if start_prior > 0
              else "mean prior accuracy")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(-0.03, 1.03))
    ax.legend(loc="lower left", fontsize=8, title="Pareto frontier; faint: every checkpoint", title_fontsize=8)
    return fig


def plot_rollout_rewards(rollouts: pd.DataFrame, title: str = "RFT rollouts") -> plt.Figure:
    """Mean reward of the logged rollouts per training step, one line per reward function."""
    columns = [c for c in rollouts.columns if c.endswith("_reward")]
    long = rollouts.groupby("step")[columns].mean().reset_index().melt("step", var_name="reward", value_name="mean")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.lineplot(data=long, x="step", y="mean", hue="reward", ax=ax)
    ax.set(xlabel="training step", ylabel="mean reward of the step's rollouts", title=title, ylim=(-0.03, 1.03))
    return fig


def _tilt_labels(ax: plt.Axes) -> None:
    """Tilt the x tick labels so that long corpus names do not run into each other."""
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")


def _corpus_order(corpora: pd.Series) -> list[str]:
    """The registry's corpora present in ``corpora``, in registry order."""
    return [c for c in methods.corpora() if c in set(corpora)]


def plot_first_order(check: pd.DataFrame) -> plt.Figure:
    """Measured against first-order-predicted change of log-probability, one colour per step size (the
    legend in increasing order)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    data = check.assign(step=check["lr"].map(lr_label))
    order = [lr_label(v) for v in sorted(check["lr"].unique())]
    sns.scatterplot(data=data, x="predicted", y="measured", hue="step", hue_order=order, s=50, ax=ax)
    lim = max(data["predicted"].abs().max(), data["measured"].abs().max()) * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="grey", ls="--", lw=1, label="measured = predicted")
    # symmetric log axes, linear within a hundredth of the largest change, so that their ticks fall on decades
    ax.set_xscale("symlog", linthresh=lim / 100)
    ax.set_yscale("symlog", linthresh=lim / 100)
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="first-order prediction  η⟨∇log π(x_v), ∇log π(x_u)⟩",
           ylabel="measured Δ log π(x_v) after one SGD step", title="The eNTK prediction against a real step")
    ax.legend(fontsize=8)
    return fig


def lr_label(lr: float) -> str:
    """A learning rate as every figure writes it (``lr 3e-04``)."""
    return f"lr {lr:.0e}"


def plot_corpus_bars(frame: pd.DataFrame, metrics: list[str], labels: dict[str, str]) -> plt.Figure:
    """One panel per metric: mean over seeds per corpus with +-1 sd error bars and the seeds as dots."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8))
    order = _corpus_order(frame["corpus"])
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        sns.barplot(data=frame, x="corpus", y=metric, order=order, hue="corpus", hue_order=order,
                    palette=methods.palette(order), legend=False, errorbar="sd", saturation=1, ax=ax)
        sns.stripplot(data=frame, x="corpus", y=metric, order=order, color="black", size=4, ax=ax)
        ax.set(title=labels.get(metric, metric), xlabel="SFT corpus", ylabel=metric)
        _tilt_labels(ax)
    fig.supxlabel("bar: mean ± 1 sd over seeds; dot: one seed", fontsize=9)
    return fig


def plot_over_steps(frame: pd.DataFrame, metric: str, title: str, ylabel: str) -> plt.Figure:
    """``metric`` against training step, one line per corpus."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    order = _corpus_order(frame["corpus"])
    sns.lineplot(data=frame, x="step", y=metric, hue="corpus", hue_order=order, palette=methods.palette(order),
                 marker="o", ax=ax)
    ax.set(xlabel="fine-tuning step", ylabel=ylabel, title=title)
    return fig


def plot_symmetry(sym: dict[str, np.ndarray]) -> plt.Figure:
    """Measured Δ log π(x_v | step on x_u) against Δ log π(x_u | step on x_v), one point per pair."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(sym["v_given_u"], sym["u_given_v"], s=40)
    lim = max(np.abs(sym["v_given_u"]).max(), np.abs(sym["u_given_v"]).max()) * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="grey", ls="--", lw=1)
    ax.set(xlabel="Δ log π(x_v) after a step on x_u", ylabel="Δ log π(x_u) after a step on x_v",
           title="Symmetry of influence (one real SGD step each way)")
    return fig


def plot_nll_distributions(tokens: pd.DataFrame, reference: str = "the start") -> plt.Figure:
    """Distribution of per-token NLL under ``reference`` (the model it was measured with), one box per
    corpus (log scale; box: quartiles, whiskers: 1.5 IQR)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    order = _corpus_order(tokens["corpus"])
    sns.boxplot(data=tokens.assign(nll=tokens["token NLL"] + 1e-4), x="corpus", y="nll", order=order, ax=ax,
                hue="corpus", hue_order=order, palette=methods.palette(order), legend=False, showfliers=False,
                saturation=1)
    ax.set(yscale="log", xlabel="SFT corpus (box: quartiles; whiskers: 1.5 IQR)",
           ylabel=f"per-token NLL under {reference} (nats, log scale)",
           title=f"How likely each corpus is under {reference}")
    _tilt_labels(ax)
    return fig


def plot_forgetting_vs(points: pd.DataFrame, xs: list[str]) -> plt.Figure:
    """Change of mean prior accuracy (one point per corpus and seed) against each column of ``xs``."""
    fig, axes = plt.subplots(1, len(xs), figsize=(5 * len(xs) + 1.5, 4), sharey=True, squeeze=False)
    order = _corpus_order(points["corpus"])
    for ax, x in zip(axes[0], xs):
        sns.scatterplot(data=points, x=x, y="prior change", hue="corpus", hue_order=order,
                        palette=methods.palette(order), s=70, ax=ax, legend=ax is axes[0][-1])
        ax.axhline(0, color="grey", lw=1, ls="--")
        ax.set(xlabel=x, ylabel="change of mean prior accuracy", title=f"Forgetting against {x}")
    sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1))  # beside the points, not over them
    fig.tight_layout()
    return fig


def plot_mechanism(points: pd.DataFrame, result: dict[str, Any], title: str = "What predicts forgetting") -> plt.Figure:
    """Drop of prior knowledge from the start (points) against each predictor of
    :mod:`jrft_utils.mechanism` (``points``: :func:`mechanism.frame`; ``result``: :func:`mechanism.compare`),
    one colour per method, each panel with its quadratic fit over the common points and its R^2."""
    shown = [name for name in mechanism.PREDICTORS if points[name].notna().any()]
    common = points.dropna(subset=shown)
    data = points.assign(method=[methods.name(a) for a in points["arm"]], drop_pts=100 * points["drop"])
    fig, axes = plt.subplots(1, len(shown), figsize=(4.6 * len(shown), 4.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], shown):
        sns.scatterplot(data=data.dropna(subset=[name]), x=name, y="drop_pts", hue="method",
                        palette=methods.palette(data["method"]), s=22, alpha=0.6, linewidth=0, ax=ax,
                        legend=ax is axes[0][0])
        coeffs, r2 = mechanism.fit(common[name], common["drop"])
        grid = np.linspace(common[name].min(), common[name].max(), 100)
        ax.plot(grid, 100 * np.polyval(coeffs, grid), color="black", lw=1.5, label="fit")
        ax.set(xscale="log" if name == "lbk" else "linear", xlabel=mechanism.NAMES[name],
               ylabel="prior knowledge lost from the start (points)", title=f"R$^2$ = {r2:.2f} ({len(common)} points)")
        if name == "lbk":  # labelled decades only: the minor ticks' labels overlap over a narrow range
            ax.xaxis.set_minor_formatter(NullFormatter())
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][0].get_legend().remove()  # one legend below the panels, over no point
    fig.suptitle(f"{title}: every checkpoint of every run (one dot each), quadratic fit over the SFT arms' points")
    fig.tight_layout()
    # under the figure's bottom edge, outside what tight_layout arranges; saving with a tight box keeps it
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5, fontsize=8, frameon=False)
    return fig


def plot_drop_vs_kl(points_by_form: dict[str, list[dict[str, Any]]], start_prior: dict[str, float],
                    r2: dict[str, float]) -> plt.Figure:
    """Notebook 09: prior knowledge lost from the start against the forward KL from it on the question's
    prompts, every checkpoint of every run, one panel per question form with its quadratic fit's R^2."""
    fig, axes = plt.subplots(1, len(points_by_form), figsize=(5.2 * len(points_by_form), 4.2), sharey=True, squeeze=False)
    for ax, (form, pts) in zip(axes[0], points_by_form.items()):
        frame = pd.DataFrame(pts)
        frame = frame.assign(method=[methods.name(a) for a in frame["arm"]],
                             drop_pts=100 * (start_prior[form] - frame["prior_mean"]))
        sns.scatterplot(data=frame, x="kl_new", y="drop_pts", hue="method", palette=methods.palette(frame["method"]),
                        s=22, alpha=0.7, linewidth=0, ax=ax)
        coeffs, _ = mechanism.fit(frame["kl_new"], frame["drop_pts"])
        grid = np.linspace(frame["kl_new"].min(), frame["kl_new"].max(), 100)
        ax.plot(grid, np.polyval(coeffs, grid), color="black", lw=1.5, label="quadratic fit")
        ax.set(xlabel="forward KL from the start (nats per completion)",
               ylabel="prior knowledge lost from the start (points)",
               title=f"{form} form: R$^2$ = {r2[form]:.2f} ({len(frame)} points)")
        ax.legend(fontsize=7)
    fig.suptitle("Forgetting against the forward KL from the start: every checkpoint of every run (one dot each)")
    fig.tight_layout()
    return fig


MAIN_METRICS = {"jigsaw exact": "", "prior knowledge (mean)": "//"}  # metric -> its bars' hatch


def plot_main(summary: dict[str, Any]) -> plt.Figure:
    """The paper's story in one figure: per method, held-out jigsaw exact accuracy (plain bars) and mean
    prior-knowledge accuracy (hatched), mean over seeds with +-1 sd error bars, from ``summary.json``.
    A bar has its method's colour; the hatch tells the metric."""
    rows = [{"method": methods.name(m), "seed": s, "metric": metric, "accuracy": v}
            for m, e in summary["methods"].items()
            for metric, values in (("jigsaw exact", e.get("jigsaw_acc", [])), ("prior knowledge (mean)", e["prior"].get("mean", [])))
            for s, v in zip(summary["seeds"], values) if v is not None]
    frame = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    sns.barplot(data=frame, x="method", y="accuracy", hue="metric", hue_order=list(MAIN_METRICS), errorbar="sd", ax=ax)
    names = list(dict.fromkeys(frame["method"]))  # the x categories, at x = 0, 1, ...
    for container, hatch in zip(ax.containers, MAIN_METRICS.values()):
        for bar in container:
            bar.set(facecolor=methods.colour(names[round(bar.get_x() + bar.get_width() / 2)]), hatch=hatch,
                    edgecolor="white")
    ax.legend(handles=[Patch(facecolor="grey", edgecolor="white", hatch=h, label=m) for m, h in MAIN_METRICS.items()],
              title="bar: mean ± 1 sd over seeds", loc="upper center", ncol=2, fontsize=8)
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="held-out accuracy",
           title=f"New task learned vs prior knowledge kept ({summary['profile']} profile, {len(summary['seeds'])} seeds)")
    ax.tick_params(axis="x", labelrotation=15)
    return fig


# ------------------------------------------------------------------------------- the base model (00, 08)


def plot_prior(results: dict[str, dict[str, float]], threshold: float | None = 0.7, title: str | None = None) -> plt.Figure:
    """Grouped bars of accuracy per capability (and the mean) for one or more methods
    (``{method key or display name: evaluate_prior result}``), with an optional dashed threshold line."""
    caps = [*world.CAPABILITIES, "mean"]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / len(results)
    for i, (label, res) in enumerate(results.items()):
        xs = np.arange(len(caps)) + (i - (len(results) - 1) / 2) * width
        vals = [res[c] for c in caps]
        bars = ax.bar(xs, vals, width, label=label, color=methods.colour(label))
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    if threshold is not None:
        ax.axhline(threshold, ls="--", c="grey", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_xticks(range(len(caps)), caps)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("held-out accuracy")
    ax.set_xlabel("capability (benchmark it stands for)")
    ax.set_title(title or "Prior knowledge per capability")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_loss(log: list[dict[str, float]], vision_log: list[dict[str, float]] | None = None,
              title: str = "Pretraining of the base model") -> plt.Figure:
    """Left (if ``vision_log``): the vision stage's loss and patch accuracy. Right: the SFT stage's loss
    (completion tokens only, log scale) and next-token accuracy against step."""
    panels = [("vision stage: what each image token's cell holds", vision_log, "patch_accuracy",
               "patch classification accuracy")] if vision_log else []
    panels.append(("SFT stage on the world's questions", log, "token_accuracy", "next-token accuracy"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 3.8), squeeze=False)
    for ax, (name, rows, acc_key, acc_label) in zip(axes[0], panels):
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["loss"] for r in rows], marker=".", label="loss")
        ax.set_yscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("cross-entropy (nats, log scale)")
        ax2 = ax.twinx()
        ax2.plot(steps, [r[acc_key] for r in rows], c="C1", marker=".", label=acc_label)
        ax2.set_ylabel(acc_label)
        ax2.set_ylim(0, 1)
        ax2.grid(False)
        wall = f" ({rows[-1]['time_s'] / 60:.1f} min)" if rows else ""
        ax.set_title(name + wall, fontsize=10)
        lines = ax.get_legend_handles_labels(), ax2.get_legend_handles_labels()
        ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="center right", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_examples(samples: list[dict[str, Any]], ncols: int | None = None) -> plt.Figure:
    """A figure of world samples: each image with its prompt (title) and reference completion (below)."""
    ncols = ncols or len(samples)
    nrows = -(-len(samples) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.3 * ncols, 4.5 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, s in zip(axes.flat, samples):
        ax.imshow(s["image"])
        ax.set_title(f"{s['capability']}\n" + textwrap.fill(s["prompt"], 32), fontsize=9)
        ax.text(0.5, -0.04, textwrap.fill(s["completion"], 38), transform=ax.transAxes, ha="center",
                va="top", fontsize=7.5, family="monospace")
    return fig


# ------------------------------------------------------------------------------------ jigsaw puzzles (01)


def _grid_axes(ax: plt.Axes, image: Image.Image, rows: int, cols: int, labels: Sequence[str], title: str) -> None:
    """Show ``image`` on ``ax`` with its tile grid drawn and ``labels[k]`` written in tile k (row-major)."""
    ax.imshow(image)
    h, w = image.height, image.width
    for r in range(1, rows):
        ax.axhline(r * h / rows - 0.5, color="white", lw=2)
    for c in range(1, cols):
        ax.axvline(c * w / cols - 0.5, color="white", lw=2)
    for k, text in enumerate(labels):
        r, c = divmod(k, cols)
        ax.text((c + 0.5) * w / cols, (r + 0.5) * h / rows, text, ha="center", va="center", fontsize=11,
                color="white", bbox={"boxstyle": "round", "facecolor": "black", "alpha": 0.6})
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def convention_figure(puzzle: jigsaw.Puzzle) -> plt.Figure:
    """The answer convention in one picture: the original image with each tile's index, the shuffled
    image with each position labelled by the original index of the tile it shows, and the answer."""
    n = puzzle.rows * puzzle.cols
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 1, 1]})
    _grid_axes(axes[0], puzzle.original, puzzle.rows, puzzle.cols, [f"tile {q}" for q in range(n)],
               "original: tile index q (row-major)")
    _grid_axes(axes[1], puzzle.image, puzzle.rows, puzzle.cols,
               [f"pos {p}\n= tile {q}" for p, q in enumerate(puzzle.answer)],
               "shuffled: position p shows tile answer[p]")
    axes[2].axis("off")
    lines = [f"answer = \"{puzzle.answer_text}\"", ""]
    lines += [f"position {p} <- tile {q}" for p, q in enumerate(puzzle.answer)]
    lines += ["", "unshuffle: put the tile at", "position p back at answer[p]"]
    axes[2].text(0.02, 0.98, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=10,
                 transform=axes[2].transAxes)
    axes[2].set_title(f"{puzzle.rows} x {puzzle.cols} puzzle from {puzzle.source}", fontsize=10)
    return fig


def gallery_figure(puzzles_by_split: dict[str, Sequence[jigsaw.Puzzle]], per_split: int = 6) -> plt.Figure:
    """A grid of shuffled puzzles, one row per split, each titled with its split, its source and its answer."""
    splits = list(puzzles_by_split)
    fig, axes = plt.subplots(len(splits), per_split, figsize=(1.9 * per_split, 2.2 * len(splits)), squeeze=False)
    for i, split in enumerate(splits):
        for j in range(per_split):
            ax = axes[i, j]
            ax.axis("off")
            if j < len(puzzles_by_split[split]):
                p = puzzles_by_split[split][j]
                ax.imshow(p.image)
                ax.set_title(f"{split}: {p.source}\nanswer {p.answer_text}", fontsize=8)
    return fig
