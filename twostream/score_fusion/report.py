"""`twostream report`: one folder per experiment, built from score files and training metrics.

    OUT/report.md            the page: table, figures, sources (embeds the PNGs below)
    OUT/table.txt, table.json  top-1 and mean class accuracy of every row
    OUT/confusion.png        confusion matrix of the best row
    OUT/confusion_<name>.png that of each stream and of the best fusion (when another row is best)
    OUT/per_class.png        per-class accuracy of every row, with counts
    OUT/curves_<name>.png    loss / clip accuracy / learning rate per epoch, from each metrics.jsonl

Rows: the spatial and temporal streams, the fused score files (`twostream fuse`), and any extra
score files (e.g. feature-level fusion) under names of their own. All must score the same test
videos with the same classes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from runkit.files import parse_json, read_regular_text, write_json_atomic, write_text_atomic
from twostream.core.run_folder import RUN_CONFIG_FILE
from twostream.core.scores import VideoScores, load_scores
from twostream.engine.metrics import confusion_matrix
from twostream.engine.metrics_log import MetricsLog, MetricsLogError
from twostream.score_fusion.report_data import (
    CurvePoint,
    PageFigure,
    ReportError,
    TableRow,
    best_row,
    curve_points,
    format_text_table,
    markdown_page,
    old_run_val_subset,
    table_row,
    validated_on_test,
)
from twostream.score_fusion.report_plots import plot_confusion, plot_curves, plot_per_class
from twostream.score_fusion.rules import align_scores
from twostream.score_fusion.run import read_fused_files

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")  # row names become file names


@dataclass(frozen=True)
class ReportConfig:
    spatial: Path
    temporal: Path
    out_dir: Path
    fused: tuple[Path, ...] = ()  # fused score files, or `twostream fuse` output folders
    extra: tuple[tuple[str, Path], ...] = ()  # (row name, score file): results added later, e.g. feature-level fusion
    curves: tuple[tuple[str, Path], ...] = ()  # (stream name, its metrics.jsonl)
    title: str = "Two-stream action recognition"

    def __post_init__(self) -> None:
        for kind, pairs in (("row", self.extra), ("curves", self.curves)):
            for name, _ in pairs:
                if not NAME_PATTERN.match(name):
                    raise ReportError(f"{kind} name {name!r} must be letters, digits and _ . + - (it names files)")
        curve_names = [n for n, _ in self.curves]
        if len(set(curve_names)) != len(curve_names):
            raise ReportError(f"curves named twice: {', '.join(curve_names)}")


def load_rows(config: ReportConfig) -> list[tuple[str, str, Path, VideoScores]]:
    """(name, kind, source, scores aligned to the spatial file's video order) of every row."""
    spatial = load_scores(config.spatial)
    rows = [("spatial", "stream", config.spatial, spatial),
            ("temporal", "stream", config.temporal, load_scores(config.temporal))]
    for path in config.fused:
        if Path(path).is_dir():
            rows += [(name, "fusion", file, load_scores(file)) for name, file in read_fused_files(path)]
        else:
            scores = load_scores(path)
            rows.append((str(scores.meta.get("fusion_method") or Path(path).stem), "fusion", Path(path), scores))
    rows += [(name, "extra", path, load_scores(path)) for name, path in config.extra]
    seen: dict[str, Path] = {}
    for name, _, source, _ in rows:
        if name in seen:
            raise ReportError(f"two rows named {name!r}: {seen[name]} and {source}; give extra rows other names")
        seen[name] = source
    return rows[:1] + [(name, kind, source, align_scores(spatial, scores, str(config.spatial), str(source)))
                       for name, kind, source, scores in rows[1:]]


def build_report(config: ReportConfig) -> list[TableRow]:
    rows = load_rows(config)
    table = [table_row(name, kind, str(source), scores) for name, kind, source, scores in rows]
    by_name = {name: scores for name, _, _, scores in rows}
    best = best_row(table)
    curves = [(name, read_curve(path)) for name, path in config.curves]
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)

    classes = by_name[best.name].class_names
    matrices = {name: confusion_matrix(scores.labels, scores.predictions(), scores.num_classes)
                for name, scores in by_name.items()}
    fused = [r for r in table if r.kind != "stream"]
    best_fusion = best_row(fused) if fused else None
    # the best row (confusion.png, as before), each stream, and the best fusion if another row is best
    shown = [best] + [r for r in table if r.kind == "stream" and r is not best]
    if best_fusion is not None and best_fusion is not best:
        shown.append(best_fusion)
    figures = []
    for row in shown:
        role = "best" if row is best else ("best fusion" if row is best_fusion else row.kind)
        file = "confusion.png" if row is best else f"confusion_{row.name}.png"
        figures.append(PageFigure(f"Confusion matrix: {row.name} ({role})", plot_confusion(
            matrices[row.name], classes, f"{row.name}: top-1 {100 * row.top1:.1f}% ({role})", out / file).name))
    figures.append(PageFigure("Per-class accuracy", plot_per_class(
        classes, matrices, "per-class video accuracy on the test videos", out / "per_class.png").name))
    for name, points in curves:
        figures.append(PageFigure(f"Training curves: {name}", plot_curves(points, f"{name} stream", out / f"curves_{name}.png").name))

    notes = [] if curves else ["No training metrics were given (twostream report --curves NAME=metrics.jsonl), so no curves."]
    notes += [note for note in (validated_on_test(name, points) for name, points in curves) if note]
    write_text_atomic(out / "report.md", markdown_page(config.title, table, figures, notes))
    write_text_atomic(out / "table.txt", format_text_table(table) + "\n")
    write_json_atomic(out / "table.json", {"title": config.title, "best": best.name, "rows": [r.to_dict() for r in table]})
    return table


def read_curve(path: Path) -> list[CurvePoint]:
    """The training curve in the metrics file at `path` (metrics_log.MetricsLog's format). Validation
    records written before they named their videos get them from the run's config.json beside the
    file, where that tells (old_run_val_subset)."""
    try:
        records = MetricsLog.read(path)
    except MetricsLogError as exc:
        raise ReportError(str(exc)) from None
    points = curve_points(records, str(path))
    try:
        config = parse_json(read_regular_text(Path(path).parent / RUN_CONFIG_FILE))
    except (OSError, ValueError):  # no run folder around the file, or not a config: nothing to add
        return points
    subset = old_run_val_subset(config) if isinstance(config, dict) else None
    return [replace(p, subset=subset) if p.phase == "val" and p.subset is None else p for p in points]

