"""`twostream fuse` (score-level fusion of the two streams) and `twostream report`."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from runkit.cli import CONTEXT
from runkit.options import out_folder_option
from twostream.cli.runs import curves_of, fit_scores_of, scores_of
from twostream.score_fusion.report_data import format_text_table
from twostream.score_fusion.rules import FUSION_RULES, FusionParams
from twostream.score_fusion.run import RESULTS_FILE, FuseConfig, run_fuse

log = logging.getLogger(__name__)

SCORE_FILE = click.Path(path_type=Path, dir_okay=False)
RUN_OR_SCORES = click.Path(path_type=Path)  # a run folder or a scores file (twostream.cli.runs.scores_of)


def parse_ratio(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, float]:
    try:
        spatial, temporal = (float(v) for v in value.split(":"))
        if spatial >= 0 and temporal >= 0 and spatial + temporal > 0:
            return spatial, temporal
    except ValueError:
        pass
    raise click.BadParameter(f"expected SPATIAL:TEMPORAL non-negative numbers, not both 0, e.g. 1:1.5; got {value!r}")


def parse_named_paths(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, Path], ...]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise click.BadParameter(f"expected NAME=FILE, e.g. spatial=runs/spatial/metrics.jsonl; got {value!r}")
        pairs.append((name.strip(), Path(path.strip())))
    return tuple(pairs)


@click.command(context_settings=CONTEXT)
@click.argument("spatial", metavar="RUN_SPATIAL", type=RUN_OR_SCORES)
@click.argument("temporal", metavar="RUN_TEMPORAL", type=RUN_OR_SCORES)
@click.option("--fit-spatial", type=SCORE_FILE, default=None,
              help="Spatial scores of training-split videos held out from stream training; the learned methods fit "
                   "on them. Default: RUN_SPATIAL/scores_val.npz when both runs have one.")
@click.option("--fit-temporal", type=SCORE_FILE, default=None, help="Temporal scores of the same training-split videos.")
@click.option("--method", "rules", multiple=True, type=click.Choice(list(FUSION_RULES)),
              help="Fusion method; repeatable. Default: every method the inputs allow (the learned ones need --fit-*).")
@click.option("--ratio", "weights", default="1:1.5", show_default=True, callback=parse_ratio, metavar="S:T",
              help="Spatial:temporal weights of the 'weighted' method.")
@click.option("--weight-steps", type=click.IntRange(min=2), default=21, show_default=True,
              help="Grid of temporal weights 0..1 tried by 'weighted-val'.")
@click.option("--svm-c", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True, help="C of the linear SVM.")
@click.option("--logreg-c", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Inverse regularisation of the logistic regression.")
@out_folder_option("Output folder: <method>.npz and fusion.json.")
def fuse(spatial: Path, temporal: Path, fit_spatial: Path | None, fit_temporal: Path | None, rules: tuple[str, ...],
         weights: tuple[float, float], weight_steps: int, svm_c: float, logreg_c: float, out_dir: Path) -> int:
    """Fuse the two streams' per-video scores; write OUT/<method>.npz and OUT/fusion.json.

    RUN_SPATIAL and RUN_TEMPORAL are the streams' run folders (their scores_test.npz; and their
    scores_val.npz, when both have one, to fit the learned methods on) or two score files.
    """
    if fit_spatial is None and fit_temporal is None:
        fit_spatial, fit_temporal = fit_scores_of(spatial, temporal) or (None, None)
    spatial, temporal = scores_of(spatial, "test", "RUN_SPATIAL"), scores_of(temporal, "test", "RUN_TEMPORAL")
    config = FuseConfig(spatial=spatial, temporal=temporal, out_dir=out_dir, fit_spatial=fit_spatial,
                        fit_temporal=fit_temporal, rules=rules,
                        params=FusionParams(weights=weights, weight_steps=weight_steps, svm_c=svm_c, logreg_c=logreg_c))
    log.info("fuse config: %s", config.to_dict())
    result = run_fuse(config)
    click.echo(format_text_table(result.rows))
    if result.skipped:
        click.echo(f"skipped {', '.join(result.skipped)}: they learn from training-split scores (--fit-spatial, --fit-temporal)")
    for warning in result.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"fused scores and {RESULTS_FILE} in {out_dir}")
    return 0


@click.command(context_settings=CONTEXT)
@click.argument("spatial", metavar="RUN_SPATIAL", type=RUN_OR_SCORES)
@click.argument("temporal", metavar="RUN_TEMPORAL", type=RUN_OR_SCORES)
@click.option("--fused", multiple=True, type=click.Path(path_type=Path),
              help="A fused score file, or a `twostream fuse` output folder (all its methods); repeatable.")
@click.option("--row", "extra", multiple=True, callback=parse_named_paths, metavar="NAME=FILE",
              help="Another row from a score file, e.g. mid-fusion=runs/mid/scores_test.npz; repeatable.")
@click.option("--curves", multiple=True, callback=parse_named_paths, metavar="NAME=FILE",
              help="Training curves of a stream from its metrics.jsonl, e.g. spatial=runs/spatial/metrics.jsonl; "
                   "repeatable. The run folders' metrics.jsonl are drawn too (as spatial and temporal).")
@click.option("--title", default="Two-stream action recognition", show_default=True, help="The report's heading.")
@out_folder_option("Report folder.")
def report(spatial: Path, temporal: Path, fused: tuple[Path, ...], extra: tuple[tuple[str, Path], ...],
           curves: tuple[tuple[str, Path], ...], title: str, out_dir: Path) -> int:
    """Build a report folder: accuracy table, confusion matrix, per-class accuracy, training curves, report.md.

    RUN_SPATIAL and RUN_TEMPORAL are the streams' run folders (their scores_test.npz and metrics.jsonl)
    or two score files.
    """
    named = {name for name, _ in curves}
    curves = tuple(c for c in curves_of(spatial, temporal) if c[0] not in named) + tuple(curves)
    spatial, temporal = scores_of(spatial, "test", "RUN_SPATIAL"), scores_of(temporal, "test", "RUN_TEMPORAL")
    from twostream.score_fusion.report import (  # deferred: matplotlib takes a third of a second to import
        ReportConfig,
        build_report,
    )

    config = ReportConfig(spatial=spatial, temporal=temporal, out_dir=out_dir, fused=fused, extra=extra,
                          curves=curves, title=title)
    log.info("report config: %s", config)
    table = build_report(config)
    click.echo(format_text_table(table))
    click.echo(f"report: {out_dir / 'report.md'}")
    return 0
