"""Figures: one style for every notebook, saved as PNG and SVG into the profile's figures folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from jrft_utils import paper

sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def save_figure(fig: plt.Figure, name: str, out: Path) -> Path:
    """Save ``fig`` as ``<name>.png`` (150 dpi) and ``<name>.svg`` in the folder ``out`` (a run's
    ``config.figures_dir``); return the PNG's path."""
    fig.tight_layout()
    png = out / f"{name}.png"
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(out / f"{name}.svg", bbox_inches="tight")
    return png


def curves_frame(runs: dict[str, list[dict]], **labels: str) -> "pd.DataFrame":
    """Curve points (as :class:`jrft_utils.training.CurveCallback` writes them) of several runs as one
    long table: one row per (run, step, metric). ``runs`` maps a run label (e.g. ``"seed 0"``) to its
    points; ``labels`` become constant columns (e.g. ``method="SFT"``). Points of the text-only
    experiment (``task_acc``) give a "task exact" metric instead of the jigsaw ones."""
    import pandas as pd

    rows = []
    for run, points in runs.items():
        for p in points:
            metrics = ({"task exact": p["task_acc"]} if "task_acc" in p  # the text-only experiment (08)
                       else {"jigsaw exact": p["jigsaw_acc"], "jigsaw hit": p["jigsaw_hit"]})
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
    # the legend in one row under the panels: on the right, seaborn's legend overlapped the last panel
    sns.move_legend(grid, "upper center", bbox_to_anchor=(0.5, 0.0), ncol=data[hue].nunique(), frameon=False)
    grid.tight_layout()
    if title:
        grid.figure.suptitle(title, y=1.03)
    return grid.figure


def plot_frontier(frame, base_prior: float, title: str = "Forgetting frontier",
                  xlabel: str = "jigsaw exact accuracy (held-out)"):
    """Prior-knowledge retention (final mean prior accuracy / the base's) against final jigsaw exact
    accuracy, one point per run, marker per learning rate, colour per method."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    data = frame.assign(retention=frame["prior_mean"] / base_prior)
    sns.scatterplot(data=data, x="task_acc", y="retention", hue="method", style="learning rate", s=90, ax=ax)
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="base")
    ax.set(xlabel=xlabel, ylabel="prior knowledge retained (fraction of base)",
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


CORPUS_ORDER = ["gt", "teacher", "rft_rollouts", "early_rollouts"]


def plot_first_order(check):
    """Measured against first-order-predicted change of log-probability, one colour per step size."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    data = check.assign(step=check["lr"].map(lambda v: f"lr {v:g}"))
    sns.scatterplot(data=data, x="predicted", y="measured", hue="step", s=50, ax=ax)
    lim = max(data["predicted"].abs().max(), data["measured"].abs().max()) * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="grey", ls="--", lw=1, label="measured = predicted")
    ax.set(xscale="symlog", yscale="symlog", xlabel="first-order prediction  η⟨∇log π(x_v), ∇log π(x_u)⟩",
           ylabel="measured Δ log π(x_v) after one SGD step", title="The eNTK prediction against a real step")
    ax.legend(fontsize=8)
    return fig


def plot_corpus_bars(frame, metrics: list[str], labels: dict[str, str]):
    """One panel per metric: mean over seeds per corpus with +-1 sd error bars and the seeds as dots."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        order = [c for c in CORPUS_ORDER if c in set(frame["corpus"])]
        sns.barplot(data=frame, x="corpus", y=metric, order=order, errorbar="sd", ax=ax, alpha=0.7)
        sns.stripplot(data=frame, x="corpus", y=metric, order=order, color="black", size=4, ax=ax)
        ax.set(title=labels.get(metric, metric), xlabel="SFT corpus", ylabel=metric)
    return fig


def plot_over_steps(frame, metric: str, title: str, ylabel: str):
    """``metric`` against training step, one line per corpus."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(data=frame, x="step", y=metric, hue="corpus", hue_order=[c for c in CORPUS_ORDER if c in set(frame["corpus"])],
                 marker="o", ax=ax)
    ax.set(xlabel="fine-tuning step", ylabel=ylabel, title=title)
    return fig


def plot_symmetry(sym: dict):
    """Measured Δ log π(x_v | step on x_u) against Δ log π(x_u | step on x_v), one point per pair."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(sym["v_given_u"], sym["u_given_v"], s=40)
    lim = max(np.abs(sym["v_given_u"]).max(), np.abs(sym["u_given_v"]).max()) * 1.1
    ax.plot([-lim, lim], [-lim, lim], color="grey", ls="--", lw=1)
    ax.set(xlabel="Δ log π(x_v) after a step on x_u", ylabel="Δ log π(x_u) after a step on x_v",
           title="Symmetry of influence (one real SGD step each way)")
    return fig


def plot_nll_distributions(tokens):
    """Distribution of per-token NLL under the base model, one box per corpus (log scale)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    order = [c for c in CORPUS_ORDER if c in set(tokens["corpus"])]
    sns.boxplot(data=tokens.assign(nll=tokens["token NLL"] + 1e-4), x="corpus", y="nll", order=order, ax=ax,
                showfliers=False)
    ax.set(yscale="log", xlabel="SFT corpus", ylabel="per-token NLL under the base (nats, log scale)",
           title="How likely each corpus is under the base model")
    return fig


def plot_forgetting_vs(points, xs: list[str]):
    """Change of mean prior accuracy (one point per corpus and seed) against each column of ``xs``."""
    fig, axes = plt.subplots(1, len(xs), figsize=(5 * len(xs), 4), sharey=True)
    order = [c for c in CORPUS_ORDER if c in set(points["corpus"])]
    for ax, x in zip(np.atleast_1d(axes), xs):
        sns.scatterplot(data=points, x=x, y="prior change", hue="corpus", hue_order=order, s=70, ax=ax)
        ax.axhline(0, color="grey", lw=1, ls="--")
        ax.set(xlabel=x, ylabel="change of mean prior accuracy", title=f"Forgetting against {x}")
    return fig


def plot_main(summary: dict):
    """The paper's story in one figure: per method, held-out jigsaw exact accuracy and mean prior-knowledge
    accuracy (mean over seeds, +-1 sd error bars), from ``summary.json``."""
    import pandas as pd

    rows = [{"method": paper.METHOD_NAMES[m], "seed": s, "metric": metric, "accuracy": v}
            for m, e in summary["methods"].items()
            for metric, values in (("jigsaw exact", e.get("jigsaw_acc", [])), ("prior knowledge (mean)", e["prior"].get("mean", [])))
            for s, v in zip(summary["seeds"], values) if v is not None]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    sns.barplot(data=pd.DataFrame(rows), x="method", y="accuracy", hue="metric", errorbar="sd", ax=ax)
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="held-out accuracy",
           title=f"New task learned vs prior knowledge kept ({summary['profile']} profile, {len(summary['seeds'])} seeds)")
    ax.tick_params(axis="x", labelrotation=15)
    return fig
