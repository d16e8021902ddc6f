"""Figures: one style for every notebook, saved as PNG and SVG into the profile's figures folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from jrft_utils import profiles

sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def save_figure(fig: plt.Figure, name: str, profile: str) -> Path:
    """Save ``fig`` as ``<name>.png`` (150 dpi) and ``<name>.svg`` in the profile's figures folder;
    return the PNG's path."""
    out = profiles.figures_dir(profile)
    fig.tight_layout()
    png = out / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(out / f"{name}.svg", bbox_inches="tight")
    return png


def curves_frame(runs: dict[str, list[dict]], **labels: str) -> "pd.DataFrame":
    """Curve points (as :class:`jrft_utils.training.CurveCallback` writes them) of several runs as one
    long table: one row per (run, step, metric). ``runs`` maps a run label (e.g. ``"seed 0"``) to its
    points; ``labels`` become constant columns (e.g. ``method="SFT"``)."""
    import pandas as pd

    rows = []
    for run, points in runs.items():
        for p in points:
            metrics = {"jigsaw exact": p["jigsaw_acc"], "jigsaw hit": p["jigsaw_hit"]}
            metrics |= {f"prior {k}": v for k, v in p["prior"].items()}
            rows += [{"run": run, "step": p["step"], "metric": k, "value": v, **labels} for k, v in metrics.items()]
    return pd.DataFrame(rows)


def plot_curves(frame, metrics: list[str], hue: str = "method", title: str = "", col_wrap: int = 3):
    """One panel per metric: value against training step, mean over runs with a +-1 sd band."""
    data = frame[frame["metric"].isin(metrics)]
    grid = sns.relplot(data=data, x="step", y="value", hue=hue, col="metric", col_order=metrics, kind="line",
                       errorbar="sd", marker="o", col_wrap=min(col_wrap, len(metrics)), height=2.8,
                       aspect=1.2, facet_kws={"sharex": False, "sharey": True})
    grid.set_titles("{col_name}")
    grid.set_axis_labels("training step", "accuracy (held-out)")
    grid.set(ylim=(-0.03, 1.03))
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid.figure


def plot_frontier(frame, base_prior: float, title: str = "Forgetting frontier"):
    """Prior-knowledge retention (final mean prior accuracy / the base's) against final jigsaw exact
    accuracy, one point per run, marker per learning rate, colour per method."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    data = frame.assign(retention=frame["prior_mean"] / base_prior)
    sns.scatterplot(data=data, x="jigsaw_acc", y="retention", hue="method", style="learning rate", s=90, ax=ax)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="base")
    ax.set(xlabel="jigsaw exact accuracy (held-out)", ylabel="prior knowledge retained (fraction of base)",
           title=title, xlim=(-0.03, 1.03))
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_rollout_rewards(rollouts, title: str = "RFT rollouts"):
    """Mean reward of the logged rollouts per training step, one line per reward function."""
    columns = [c for c in rollouts.columns if c.endswith("_reward")]
    long = rollouts.groupby("step")[columns].mean().reset_index().melt("step", var_name="reward", value_name="mean")
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.lineplot(data=long, x="step", y="mean", hue="reward", ax=ax)
    ax.set(xlabel="training step", ylabel="mean reward of the step's rollouts", title=title, ylim=(-0.03, 1.03))
    return fig
