"""What a report says, as pure functions: the accuracy table, training curves, the Markdown page.

Every number comes from score arrays (`table_rows`) or metrics records (`curve_points`); nothing is
typed in. twostream.score_fusion.report reads the files and writes the folder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from twostream.core.scores import VideoScores
from twostream.engine.metrics import mean_class_accuracy, top1_accuracy
from twostream.engine.metrics_log import ON_TEST

ROW_KINDS = ("stream", "fusion", "extra")


class ReportError(ValueError):
    """Input a report cannot use; str() names the file (and line) and the problem."""


@dataclass(frozen=True)
class TableRow:
    name: str
    kind: str  # stream | fusion | extra
    source: str  # the score file the numbers come from
    videos: int
    top1: float
    mean_class_accuracy: float

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "source": self.source, "videos": self.videos,
                "top1": self.top1, "mean_class_accuracy": self.mean_class_accuracy}


def table_row(name: str, kind: str, source: str, scores: VideoScores) -> TableRow:
    if kind not in ROW_KINDS:
        raise ReportError(f"row kind must be one of {', '.join(ROW_KINDS)}, got {kind!r}")
    predictions = scores.predictions()
    return TableRow(name, kind, source, len(scores.labels), top1_accuracy(scores.labels, predictions),
                    mean_class_accuracy(scores.labels, predictions, scores.num_classes))


def best_row(rows: list[TableRow]) -> TableRow:
    """Highest top-1, then highest mean class accuracy; the earlier row on a full tie."""
    return max(rows, key=lambda r: (r.top1, r.mean_class_accuracy, -rows.index(r)))


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def format_text_table(rows: list[TableRow]) -> str:
    best = best_row(rows)
    width = max(len("method"), *(len(r.name) for r in rows))
    lines = [f"{'method':<{width}}  {'kind':<6}  {'top-1 %':>7}  {'mean class %':>12}  {'videos':>6}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        mark = "  <- best" if r is best else ""
        lines.append(f"{r.name:<{width}}  {r.kind:<6}  {_percent(r.top1):>7}  {_percent(r.mean_class_accuracy):>12}  {r.videos:>6}{mark}")
    return "\n".join(lines)


def format_markdown_table(rows: list[TableRow]) -> str:
    best = best_row(rows)
    lines = ["| method | kind | top-1 % | mean class % | videos |", "|---|---|---:|---:|---:|"]
    for r in rows:
        name = f"**{r.name}**" if r is best else r.name
        lines.append(f"| {name} | {r.kind} | {_percent(r.top1)} | {_percent(r.mean_class_accuracy)} | {r.videos} |")
    return "\n".join(lines)


# --- training curves ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CurvePoint:
    epoch: int
    phase: str
    loss: float
    accuracy: float
    lr: float | None = None
    subset: str | None = None  # a val point's videos (metrics_log.HELD_OUT or ON_TEST); None: not recorded


def curve_points(records: list[dict], source: str) -> list[CurvePoint]:
    """Points of a trainer's metrics records (`engine.metrics_log.MetricsLog.read`, which checks
    each line). A resumed run may log an epoch again: the last record of an (epoch, phase) wins."""
    points: dict[tuple[int, str], CurvePoint] = {}
    for record in records:
        subset = record.get("subset")
        point = CurvePoint(record["epoch"], record["phase"], record["loss"], record["accuracy"], record["lr"],
                           None if subset is None else str(subset))
        points[(point.epoch, point.phase)] = point
    if not points:
        raise ReportError(f"{source}: no metrics records")
    return sorted(points.values(), key=lambda p: (p.phase, p.epoch))


def old_run_val_subset(config: dict) -> str | None:
    """The videos a run validated on, from its config.json, for metrics written before val records
    named them: a run made before --val-on-test existed (no such key) that held nothing out
    validated on its test videos; otherwise the config does not tell (None)."""
    if "val_on_test" not in config and config.get("holdout") == 0 and config.get("val_every", 1):
        return ON_TEST
    return None


def validated_on_test(name: str, points: list[CurvePoint]) -> str | None:
    """The report's note on a run that validated on its test videos (--val-on-test), if it did."""
    if any(p.subset == ON_TEST for p in points):
        return (f"{name} was validated on the test videos during training (--val-on-test): whatever was chosen by "
                f"watching its validation figures was chosen on the test set, so its test accuracy is optimistic.")
    return None


def fusion_sentence(rows: list[TableRow]) -> str:
    """Whether fusing helped, in words: the best fusion (or extra row) against the best single
    stream, by top-1; a tie or a loss is said as such, not as "+0.0 points"."""
    streams = [r for r in rows if r.kind == "stream"]
    fused = [r for r in rows if r.kind != "stream"]
    if not streams or not fused:
        return "No fusion to compare with the streams."
    stream, fusion = best_row(streams), best_row(fused)
    gain = 100 * (fusion.top1 - stream.top1)
    if round(gain, 1) > 0:
        return f"The best fusion, {fusion.name}, is +{gain:.1f} points over the best single stream, {stream.name}."
    if round(gain, 1) == 0:
        return (f"Fusion does not help here: the best fusion, {fusion.name}, ties the best single stream, "
                f"{stream.name}, at {_percent(stream.top1)} %.")
    return (f"Fusion does not help here: the best single stream, {stream.name} ({_percent(stream.top1)} %), beats "
            f"every fusion; the best, {fusion.name}, is {-gain:.1f} points lower.")


# --- the page ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageFigure:
    title: str
    file: str  # relative to the report folder


def markdown_page(title: str, rows: list[TableRow], figures: list[PageFigure], notes: list[str]) -> str:
    best = best_row(rows)
    lines = [f"# {title}", ""]
    if any(r.kind == "stream" for r in rows):
        lines += [f"Best: **{best.name}**, top-1 {_percent(best.top1)} % on {best.videos} test videos. "
                  f"{fusion_sentence(rows)}", ""]
    lines += ["## Accuracy", "", format_markdown_table(rows), "",
              "Top-1: share of test videos whose highest score is the true class. Mean class: the average "
              "over classes of each class's top-1. Computed by `twostream report` from these score files:", ""]
    lines += [f"- {r.name}: `{r.source}`" for r in rows]
    for figure in figures:
        lines += ["", f"## {figure.title}", "", f"![{figure.title}]({figure.file})"]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
