"""The report's figures, written as PNG files with matplotlib's Agg renderer.

Figures are built on `matplotlib.figure.Figure` directly rather than through pyplot, so no
global backend or figure state is touched (reports can be built from any process, with or
without a display, and figures are freed when they go out of scope).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from flowprep.format.files import write_with
from twostream.score_fusion.report_data import CurvePoint

DPI = 100


def plot_confusion(matrix: np.ndarray, class_names: tuple[str, ...], title: str, path: Path) -> Path:
    """Row-normalised confusion matrix (true class per row), with counts written in the cells."""
    c = len(class_names)
    totals = matrix.sum(axis=1, keepdims=True)
    share = matrix / np.maximum(totals, 1)
    side = min(4 + 0.45 * c, 24)
    fig = Figure(figsize=(side + 1.5, side), dpi=DPI)
    ax = fig.add_subplot()
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's videos")
    ticks = np.arange(c)
    show_names = c <= 40  # beyond that the labels overlap; the axes keep class indices
    ax.set_xticks(ticks, class_names if show_names else ticks, rotation=90, fontsize=8)
    ax.set_yticks(ticks, class_names if show_names else ticks, fontsize=8)
    if c <= 20:
        for i in range(c):
            for j in range(c):
                if matrix[i, j]:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                            color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    write_with(path, lambda fh: fig.savefig(fh, format="png"))  # never through a link
    return path


def plot_per_class(class_names: tuple[str, ...], accuracies: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Grouped bars: per-class accuracy of each named row (e.g. spatial, temporal, best fusion)."""
    c = len(class_names)
    fig = Figure(figsize=(max(6.0, min(0.35 * c * len(accuracies), 40.0)), 4.5), dpi=DPI)
    ax = fig.add_subplot()
    width = 0.8 / len(accuracies)
    x = np.arange(c)
    for k, (name, values) in enumerate(accuracies.items()):
        ax.bar(x + (k - (len(accuracies) - 1) / 2) * width, values, width, label=name)  # NaN (a class without test videos): no bar
    ax.set_xticks(x, class_names if c <= 60 else x, rotation=90, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (test videos of the class)")
    ax.set_title(title, pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(accuracies), fontsize=8, frameon=False)
    fig.tight_layout()
    write_with(path, lambda fh: fig.savefig(fh, format="png"))  # never through a link
    return path


def plot_curves(points: list[CurvePoint], title: str, path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch, one line per phase (train, val)."""
    fig = Figure(figsize=(12, 3.6), dpi=DPI)
    axes = fig.subplots(1, 3)
    phases = sorted({p.phase for p in points}, key=lambda ph: (ph != "train", ph))
    for key, ax, label in (("loss", axes[0], "loss"), ("accuracy", axes[1], "accuracy"), ("lr", axes[2], "learning rate")):
        for phase in phases:
            series = [(p.epoch, getattr(p, key)) for p in points if p.phase == phase and getattr(p, key) is not None]
            if series:
                xs, ys = zip(*series)
                ax.plot(xs, ys, marker="o", markersize=3, label=phase)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        if key == "lr" and any(p.lr for p in points):
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    write_with(path, lambda fh: fig.savefig(fh, format="png"))  # never through a link
    return path
