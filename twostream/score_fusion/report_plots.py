"""The report's figures, written as PNG files with matplotlib's Agg renderer.

Figures are built on `matplotlib.figure.Figure` directly rather than through pyplot, so no
global backend or figure state is touched (reports can be built from any process, with or
without a display, and figures are freed when they go out of scope).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from runkit.files import write_with
from twostream.score_fusion.report_data import CurvePoint

DPI = 100


def save(fig: Figure, path: Path) -> Path:
    write_with(path, lambda fh: fig.savefig(fh, format="png"))  # never through a link planted in the folder
    return path


def confusion_figure(matrix: np.ndarray, class_names: tuple[str, ...], title: str) -> Figure:
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
    return fig


def plot_confusion(matrix: np.ndarray, class_names: tuple[str, ...], title: str, path: Path) -> Path:
    return save(confusion_figure(matrix, class_names, title), path)


ZERO_MARK = 0.012  # height of the stub drawn for a 0 % bar, so that a zero is seen, not a gap


def per_class_figure(class_names: tuple[str, ...], matrices: dict[str, np.ndarray], title: str) -> Figure:
    """Grouped bars: per-class accuracy of each named row (streams, fusions) from its confusion
    matrix. Each class's label gives its test videos; with few bars, each bar its count of right
    videos; a 0 % bar is a visible stub labelled 0; a class without videos has no bar."""
    c = len(class_names)
    totals = next(iter(matrices.values())).sum(axis=1)
    fig = Figure(figsize=(max(6.0, min(0.3 * c * len(matrices) + 2, 40.0)), 4.8), dpi=DPI)
    ax = fig.add_subplot()
    width = 0.8 / len(matrices)
    x = np.arange(c)
    write_counts = c * len(matrices) <= 80
    for k, (name, matrix) in enumerate(matrices.items()):
        right = np.diag(matrix)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(totals > 0, right / np.maximum(totals, 1), np.nan)
        shown = np.where(values == 0, ZERO_MARK, values)  # NaN (no test videos): no bar
        xs = x + (k - (len(matrices) - 1) / 2) * width
        bars = ax.bar(xs, shown, width, label=name)
        for bar, value, count in zip(bars, values, right):
            if value == 0:
                bar.set_hatch("////")
                bar.set_edgecolor("black")
            if write_counts and not np.isnan(value):
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.01, str(count), ha="center",
                        va="bottom", fontsize=6)
    labels = [f"{name} ({n})" for name, n in zip(class_names, totals)] if c <= 60 else x
    ax.set_xticks(x, labels, rotation=90, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("video accuracy (class's test videos)")
    ax.set_xlabel("class (its test videos); on the bars: videos right; hatched stub: 0 %")
    ax.set_title(title, pad=24)
    # plain patches: a container's first bar, which the legend would copy, may be a hatched 0 % stub
    handles = [Patch(facecolor=container.patches[0].get_facecolor(), label=name)
               for name, container in zip(matrices, ax.containers)]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(len(matrices), 5), fontsize=8,
              frameon=False)
    fig.tight_layout()
    return fig


def plot_per_class(class_names: tuple[str, ...], matrices: dict[str, np.ndarray], title: str, path: Path) -> Path:
    return save(per_class_figure(class_names, matrices, title), path)


def _phase_label(phase: str, subsets: set[str | None]) -> str:
    if phase == "train":
        return "train (running, its sampled clips)"
    if phase != "val":
        return phase
    named = sorted(s for s in subsets if s)
    return f"validation ({', '.join(named)} videos)" if named else "validation"


def curves_figure(points: list[CurvePoint], title: str) -> Figure:
    """Loss and clip accuracy per epoch, one line per phase (train, validation, naming its videos),
    and the learning rate of each epoch (one line: the schedule's, not a phase's)."""
    fig = Figure(figsize=(12, 3.8), dpi=DPI)
    axes = fig.subplots(1, 3)
    phases = sorted({p.phase for p in points}, key=lambda ph: (ph != "train", ph))
    for key, ax, label in (("loss", axes[0], "loss"), ("accuracy", axes[1], "clip accuracy (top-1 of one clip)")):
        for phase in phases:
            series = [(p.epoch, getattr(p, key)) for p in points if p.phase == phase]
            if series:
                xs, ys = zip(*series)
                label_of = _phase_label(phase, {p.subset for p in points if p.phase == phase})
                ax.plot(xs, ys, marker="o", markersize=3, label=label_of)
        ax.set_ylabel(label)
        if ax.lines:
            ax.legend(fontsize=7)
    rates = sorted({p.epoch: p.lr for p in points if p.lr is not None}.items())
    if rates:
        xs, ys = zip(*rates)
        axes[2].plot(xs, ys, marker="o", markersize=3, color="black")
        if all(y > 0 for y in ys):
            axes[2].set_yscale("log")
    axes[2].set_ylabel("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{title}: clip accuracy per epoch (the table's accuracy is per video, over its clips)")
    fig.tight_layout()
    return fig


def plot_curves(points: list[CurvePoint], title: str, path: Path) -> Path:
    return save(curves_figure(points, title), path)
