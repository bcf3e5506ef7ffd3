"""`flowprep export-rawframes` and `flowprep import-rawframes`: an extraction in and out of
denseflow/mmaction2's rawframes trees."""
from __future__ import annotations

from pathlib import Path

import click

from flowprep.cli.support import check_codec
from flowprep.extract.config import DEFAULT_FLOW_CODEC, DEFAULT_RGB_CODEC
from flowprep.format.codecs import CODEC_HELP, Codec
from flowprep.format.folder import ExtractionFolder
from flowprep.rawframes.export import LAYOUTS, ExportConfig, export_rawframes
from flowprep.rawframes.importer import ImportConfig, ImportRun, import_rawframes
from runkit.cli import CONTEXT, EXIT_OK, EXIT_SOME_FAILED, usage_error


@click.command("export-rawframes", context_settings=CONTEXT)
@click.argument("extraction", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False), help="Rawframes tree to write.")
@click.option("--video", "video_ids", multiple=True, help="Export only this video; repeatable. Default: all.")
@click.option("--format", "image_format", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True,
              help="jpg as denseflow writes; png for a lossless tree.")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG quality.")
@click.option("--backward/--no-backward", default=True, show_default=True,
              help="Also write backward flow (backward_flow_x/y_NNNNN, ignored by mmaction2); --no-backward gives "
                   "denseflow's exact layout.")
@click.option("--restore-means", "restore_mean", is_flag=True, help="Add the subtracted mean vectors back (re-quantises the flow).")
@click.option("--list-prefix", default=None, help="Annotation list names: PREFIX_train_split_1_rawframes.txt. "
                                                  "Default: the extraction folder's name.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="flat", show_default=True,
              help="OUT/<video>/ folders, or OUT/<class>/<video>/ (mmaction2's build_rawframes.py --level 2; the "
                   "class folder is the label name).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Parallel processes (0 = all cores).")
@click.option("--overwrite", is_flag=True, help="Rewrite videos already in the tree.")
def export_rawframes_command(extraction: Path, out: Path, video_ids: tuple[str, ...], image_format: str, quality: int,
                     backward: bool, restore_mean: bool, list_prefix: str | None, layout: str, workers: int,
                     overwrite: bool) -> int:
    """Write an extraction as a denseflow/mmaction2 rawframes tree with mmaction2 annotation lists."""
    try:
        config = ExportConfig(image_format, quality, backward, restore_mean, list_prefix, workers, overwrite, layout)
    except ValueError as exc:
        raise usage_error(exc) from None
    summary = export_rawframes(extraction, out, list(video_ids) or None, config)
    for line in summary.lines():
        click.echo(line)
    for f in summary.failures[:10]:
        click.echo(f"  failed {f.video_id}: {f.reason}")
    return EXIT_OK if summary.ok else EXIT_SOME_FAILED


@click.command("import-rawframes", context_settings=CONTEXT)
@click.argument("tree", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="Output folder.")
@click.option("--manifest", type=click.Path(path_type=Path), default=None,
              help="Labels and splits from a manifest; a row's frame folder is TREE/<path>, TREE/<path without "
                   "extension> or TREE/<video_id>.")
@click.option("--annotations", multiple=True, metavar="LIST",
              help="Labels and splits from mmaction2 annotation lists (frame_dir total_frames label), frame_dir "
                   "relative to TREE; repeatable, or a pattern such as 'lists/ucf101_{part}_split_{n}_rawframes.txt' "
                   "({part}: train, val or test; {n}: the split number). Default: the lists a flowprep export wrote "
                   "(TREE/flowprep_export.json), else TREE/<class>/<video>/ folders, labels in sorted class order "
                   "(or TREE/<video>/, label 0), no splits.")
@click.option("--bound", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The bound (px) the flow images were quantised with: denseflow's -b (its own default is 32; "
                   "mmaction2's build_rawframes.py passes 20), flow_extraction.py's --bound (20). Default: what "
                   "TREE/flowprep_export.json records, else 20.")
@click.option("--backward", type=click.Choice(["files", "negate"]), default=None,
              help="Backward flow from backward_flow_x/y files, or approximated from the forward flow (denseflow "
                   "trees have none). Default: files if the tree has them, else negate.")
@click.option("--mean-subtracted/--not-mean-subtracted", default=None,
              help="Whether the flow images had their mean vector subtracted (flowprep export: yes unless "
                   "--restore-mean; denseflow, mmaction2: no). Default: what TREE/flowprep_export.json records, else no.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None, help="Frame rate of the frames, if known.")
@click.option("--rgb-codec", default=DEFAULT_RGB_CODEC, show_default=True, callback=check_codec, help=CODEC_HELP)
@click.option("--flow-codec", default=DEFAULT_FLOW_CODEC, show_default=True, callback=check_codec, help=CODEC_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Parallel processes (0 = all cores).")
@click.option("--shard-size-mb", type=click.FloatRange(min=0, min_open=True), default=1024.0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Discard an earlier import (or extraction) in --out.")
@click.option("--follow-symlinks", is_flag=True,
              help="Read frame folders and images that are symlinks to files outside the tree (by default each "
                   "such video is a failure).")
def import_rawframes_command(tree: Path, out_dir: Path, manifest: Path | None, annotations: tuple[str, ...],
                             bound: float | None, backward: str | None, mean_subtracted: bool | None,
                             fps: float | None, rgb_codec: Codec, flow_codec: Codec, workers: int, shard_size_mb: float,
                             overwrite: bool, follow_symlinks: bool) -> int:
    """Pack an existing rawframes tree into shards without recomputing flow.

    Reads denseflow's and mmaction2's trees: img_NNNNN frames with flow_x_/flow_y_NNNNN or
    x_/y_NNNNN flow, numbered from 0 or 1, T-1 or T flow fields for T frames, in TREE/<video>/ or
    TREE/<class>/<video>/ folders; a flowprep export reads back with no options."""
    try:
        config = ImportConfig(bound=bound, backward_flow=backward, mean_subtracted=mean_subtracted, fps=fps,
                              rgb_codec=rgb_codec, flow_codec=flow_codec)
        run = ImportRun(tree, out_dir, config, manifest, workers, shard_size_mb, overwrite, tuple(annotations),
                        follow_symlinks)
    except ValueError as exc:
        raise usage_error(exc) from None
    summary = import_rawframes(run)
    for line in summary.lines():
        click.echo(line)
    for f in summary.failures[:10]:
        click.echo(f"  failed {f.video_id}: {f.reason}")
    if summary.failures:
        click.echo(f"  all failures: {ExtractionFolder(out_dir).failures_path}")
    return EXIT_OK if summary.ok else EXIT_SOME_FAILED
