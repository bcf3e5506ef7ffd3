"""The `flowprep` commands around extraction: manifests, inspect, verify, show, and rawframes in
and out. Each command builds its frozen config (validation errors become usage errors), calls
one module, and prints; exit status 3 means the command finished but found or left problems."""
from __future__ import annotations

import json
from pathlib import Path

import click

from flowprep.cli.support import EXIT_OK, EXIT_SOME_FAILED
from flowprep.extract.config import DEFAULT_FLOW_CODEC, DEFAULT_RGB_CODEC
from flowprep.format.codecs import CODEC_HELP, CodecError, parse_codec
from flowprep.format.quantize import DEFAULT_BOUND
from flowprep.manifests.check import CheckConfig, check_manifest
from flowprep.manifests.folder import VIDEO_EXTENSIONS, FolderManifestConfig, folder_manifest
from flowprep.manifests.kinetics import DEFAULT_TEMPLATE, check_template, kinetics_manifest
from flowprep.manifests.manifest import ManifestEntry, write_manifest
from flowprep.manifests.official import hmdb51_manifest, split_counts, ucf101_manifest
from flowprep.rawframes.export import ExportConfig, export_rawframes
from flowprep.rawframes.importer import ImportConfig, ImportRun, import_rawframes
from flowprep.tools.inspection import format_summary, format_video, inspect_path, inspect_video
from flowprep.tools.show import ShowConfig, show
from flowprep.tools.verify import verify_path

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _usage(exc: ValueError) -> click.UsageError:
    return click.UsageError(str(exc))


def _check_codec(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return str(parse_codec(value))
    except CodecError as exc:
        raise click.BadParameter(str(exc)) from None


def _write(entries: list[ManifestEntry], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out, entries)
    classes = len({e.label for e in entries})
    click.echo(f"wrote {out}: {len(entries)} videos, {classes} classes")
    for column, c in split_counts(entries).items():
        click.echo(f"  {column}: {c['train']} train / {c['test']} test / {c['unused']} unused")


# --- manifests ----------------------------------------------------------------------------------
@click.group("manifest", context_settings=CONTEXT)
def manifest_group() -> None:
    """Build dataset manifests, and check one against the videos on disk."""


_OUT = click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Manifest CSV to write.")


@manifest_group.command()
@click.option("--splits-dir", required=True, type=click.Path(path_type=Path),
              help="Folder of the official ucfTrainTestlist: classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt.")
@_OUT
def ucf101(splits_dir: Path, out: Path) -> int:
    """UCF101 from its official split lists: 13,320 videos, 3 splits, paths <class>/<file>.avi."""
    _write(ucf101_manifest(splits_dir), out)
    return EXIT_OK


@manifest_group.command()
@click.option("--splits-dir", required=True, type=click.Path(path_type=Path),
              help="Folder of the official testTrainMulti_7030_splits: <class>_test_split<1-3>.txt.")
@_OUT
def hmdb51(splits_dir: Path, out: Path) -> int:
    """HMDB51 from its official split files: 6,766 clips, 3 splits, paths <class>/<clip>.avi."""
    _write(hmdb51_manifest(splits_dir), out)
    return EXIT_OK


@manifest_group.command()
@click.argument("root", type=click.Path(path_type=Path))
@_OUT
@click.option("--test-fraction", type=float, default=0.3, show_default=True, help="Share of each class's videos in test.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split: same seed, same split.")
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Video file extensions to include; repeatable. Default: common video formats.")
def folder(root: Path, out: Path, test_fraction: float, seed: int, extensions: tuple[str, ...]) -> int:
    """Any ROOT/<class>/.../<video> tree, with a seeded train/test split stratified by class."""
    try:
        config = FolderManifestConfig(root, test_fraction, seed, extensions or VIDEO_EXTENSIONS)
    except ValueError as exc:
        raise _usage(exc) from None
    _write(folder_manifest(config), out)
    return EXIT_OK


@manifest_group.command()
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@_OUT
@click.option("--path-template", default=None, metavar="TEMPLATE",
              help="Where a clip's file is, relative to the video root. Fields: {label} {label_dir} {youtube_id} "
                   "{time_start} {time_end} {split}. Default: {label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4")
def kinetics(csv_files: tuple[Path, ...], out: Path, path_template: str | None) -> int:
    """Kinetics-style annotation CSVs (label,youtube_id,time_start,time_end,split), e.g. train.csv validate.csv."""
    try:
        template = check_template(path_template or DEFAULT_TEMPLATE)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--path-template'") from None
    _write(kinetics_manifest(list(csv_files), template), out)
    return EXIT_OK


@manifest_group.command()
@click.argument("manifest_path", metavar="MANIFEST", type=click.Path(path_type=Path))
@click.option("--video-root", type=click.Path(path_type=Path), default=None,
              help="Folder the manifest's paths are relative to. Default: the manifest's folder.")
@click.option("--full", is_flag=True, help="Decode every frame (finds truncated files; slow) instead of the first.")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True, help="Parallel processes (0 = all cores).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(manifest_path: Path, video_root: Path | None, full: bool, workers: int, as_json: bool) -> int:
    """Report missing and unreadable videos of MANIFEST before a long extraction. Exit 3 if any."""
    root = video_root if video_root is not None else manifest_path.parent
    report = check_manifest(CheckConfig(manifest_path, root, full, workers))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        for p in report.problems:
            click.echo(f"{p.kind}: {p.video_id}: {p.reason}")
        click.echo(f"{report.total} videos: {report.total - len(report.problems)} ok, {report.count('missing')} missing, "
                   f"{report.count('unreadable')} unreadable (video root {root})")
    return EXIT_OK if report.ok else EXIT_SOME_FAILED


# --- looking inside -----------------------------------------------------------------------------
@click.command("inspect", context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--video", "video_id", default=None, help="One video's attributes and flow statistics.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect_command(path: Path, video_id: str | None, as_json: bool) -> int:
    """What an extraction folder or a shard holds: videos, frames, classes, bytes, config, failures."""
    data = inspect_video(path, video_id) if video_id else inspect_path(path)
    if as_json:
        click.echo(json.dumps(data, indent=1, sort_keys=False))
    else:
        for line in (format_video(data) if video_id else format_summary(data)):
            click.echo(line)
    return EXIT_OK


@click.command("verify", context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="Check structure only; do not decode every frame.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(path: Path, quick: bool, as_json: bool) -> int:
    """Check that an extraction folder or shard is whole: exit 0 if all is well, 3 if problems were found."""
    report = verify_path(path, quick=quick)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        for p in report.problems:
            click.echo(f"problem: {p}")
        for note in report.notes:
            click.echo(f"note: {note}")
        decoded = "structure only" if quick else f"{report.frames_decoded} images decoded"
        verdict = "all well" if report.ok else f"{len(report.problems)} problem(s)"
        click.echo(f"{report.shards} shard(s), {report.videos} video(s), {decoded}: {verdict}")
    return EXIT_OK if report.ok else EXIT_SOME_FAILED


def _parse_frames(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        frames = tuple(int(v) for v in value.split(","))
        if all(f >= 0 for f in frames):
            return frames
    except ValueError:
        pass
    raise click.BadParameter(f"expected comma-separated frame indices >= 0, e.g. 0,10,20; got {value!r}")


@click.command("show", context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--video", "video_id", required=True, help="Video id.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="FILE.png (a grid of frames) or FILE.gif (animated, one frame per pair).")
@click.option("--frames", callback=_parse_frames, default=None, metavar="T,T,...",
              help="Frame indices to show (each with its flow t -> t+1). Default: evenly spaced.")
@click.option("--num-frames", type=click.IntRange(min=1), default=4, show_default=True, help="Rows of a PNG.")
@click.option("--max-frames", type=click.IntRange(min=1), default=100, show_default=True, help="Frames of a GIF.")
@click.option("--max-flow", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Magnitude (px) drawn fully saturated. Default: the largest shown.")
@click.option("--restore-mean/--as-stored", default=True, show_default=True,
              help="Show flow with its subtracted mean vector added back (the motion in the video), or as stored "
                   "(what the temporal stream sees).")
@click.option("--gif-fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True)
def show_command(path: Path, video_id: str, out: Path, frames: tuple[int, ...] | None, num_frames: int, max_frames: int,
         max_flow: float | None, restore_mean: bool, gif_fps: float) -> int:
    """RGB frames beside forward and backward flow in the Middlebury colour coding, with a colour-wheel legend."""
    try:
        config = ShowConfig(path, video_id, out, frames, num_frames, max_frames, max_flow, restore_mean, gif_fps)
    except ValueError as exc:
        raise _usage(exc) from None
    shown = show(config)
    click.echo(f"wrote {out}: frames {', '.join(map(str, shown[:10]))}{' ...' if len(shown) > 10 else ''}")
    return EXIT_OK


# --- rawframes ----------------------------------------------------------------------------------
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
@click.option("--restore-mean", is_flag=True, help="Add the subtracted mean vectors back (re-quantises the flow).")
@click.option("--list-prefix", default=None, help="Annotation list names: PREFIX_train_split_1_rawframes.txt. "
                                                  "Default: the extraction folder's name.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Parallel processes (0 = all cores).")
@click.option("--overwrite", is_flag=True, help="Rewrite videos already in the tree.")
def export_rawframes_command(extraction: Path, out: Path, video_ids: tuple[str, ...], image_format: str, quality: int,
                     backward: bool, restore_mean: bool, list_prefix: str | None, workers: int, overwrite: bool) -> int:
    """Write an extraction as a denseflow/mmaction2 rawframes tree with mmaction2 annotation lists."""
    try:
        config = ExportConfig(image_format, quality, backward, restore_mean, list_prefix, workers, overwrite)
    except ValueError as exc:
        raise _usage(exc) from None
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
              help="Labels and splits; a row's frame folder is TREE/<path without extension> or TREE/<video_id>. "
                   "Default: TREE/<class>/<video>/ folders, labels in sorted class order (or TREE/<video>/, label 0).")
@click.option("--bound", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_BOUND, show_default=True,
              help="The bound (px) the flow images were quantised with: denseflow's -b, 20 by default.")
@click.option("--backward", type=click.Choice(["files", "negate"]), default=None,
              help="Backward flow from backward_flow_x/y files, or approximated from the forward flow (denseflow "
                   "trees have none). Default: files if the tree has them, else negate.")
@click.option("--mean-subtracted", is_flag=True,
              help="The flow images already had their mean vector subtracted (flowprep export: yes; denseflow: no).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None, help="Frame rate of the frames, if known.")
@click.option("--rgb-codec", default=DEFAULT_RGB_CODEC, show_default=True, callback=_check_codec, help=CODEC_HELP)
@click.option("--flow-codec", default=DEFAULT_FLOW_CODEC, show_default=True, callback=_check_codec, help=CODEC_HELP)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Parallel processes (0 = all cores).")
@click.option("--shard-size-mb", type=click.FloatRange(min=0, min_open=True), default=1024.0, show_default=True)
@click.option("--overwrite", is_flag=True, help="Discard an earlier import (or extraction) in --out.")
def import_rawframes_command(tree: Path, out_dir: Path, manifest: Path | None, bound: float, backward: str | None,
                     mean_subtracted: bool, fps: float | None, rgb_codec: str, flow_codec: str, workers: int,
                     shard_size_mb: float, overwrite: bool) -> int:
    """Pack an existing rawframes tree (img_/flow_x_/flow_y_NNNNN images) into shards without recomputing flow."""
    try:
        config = ImportConfig(bound=bound, backward_flow=backward, mean_subtracted=mean_subtracted, fps=fps,
                              rgb_codec=rgb_codec, flow_codec=flow_codec)
        run = ImportRun(tree, out_dir, config, manifest, workers, shard_size_mb, overwrite)
    except ValueError as exc:
        raise _usage(exc) from None
    summary = import_rawframes(run)
    for line in summary.lines():
        click.echo(line)
    for f in summary.failures[:10]:
        click.echo(f"  failed {f.video_id}: {f.reason}")
    if summary.failures:
        click.echo(f"  all failures: {out_dir / 'failures.jsonl'}")
    return EXIT_OK if summary.ok else EXIT_SOME_FAILED

