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
