"""`flowprep inspect`, `flowprep verify` and `flowprep show`: looking inside an extraction folder or
a shard. Each command builds its frozen config (validation errors become usage errors), calls one
module, and prints; exit status 3 means the command finished but found problems."""
from __future__ import annotations

import json
from pathlib import Path

import click

from flowprep.cli.support import JSON_OPTION
from flowprep.tools.inspection import format_summary, format_video, inspect_path, inspect_video
from flowprep.tools.show import ShowConfig, show
from flowprep.tools.verify import verify_path
from runkit.cli import CONTEXT, EXIT_OK, EXIT_SOME_FAILED, usage_error


@click.command("inspect", context_settings=CONTEXT)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--video", "video_id", default=None, help="One video's attributes and flow statistics.")
@JSON_OPTION
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
@JSON_OPTION
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
@click.option("--indices", "frames", callback=_parse_frames, default=None, metavar="T,T,...",
              help="Frame indices to show (each with its flow t -> t+1). Default: evenly spaced.")
@click.option("--rows", "num_frames", type=click.IntRange(min=1), default=4, show_default=True,
              help="Rows of a PNG: frames shown, evenly spaced.")
@click.option("--gif-frames", "max_frames", type=click.IntRange(min=1), default=100, show_default=True,
              help="Frames of a GIF, at most (evenly spaced).")
@click.option("--max-flow", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Magnitude (px) drawn fully saturated; faster motion is drawn darker. Default: the 99th "
                   "percentile of the magnitudes shown (the typical motion, not the few fastest pixels).")
@click.option("--restore-means/--as-stored", "restore_mean", default=True, show_default=True,
              help="Show flow with its subtracted mean vector added back (the motion in the video), or as stored "
                   "(what the temporal stream sees).")
@click.option("--gif-fps", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True)
def show_command(path: Path, video_id: str, out: Path, frames: tuple[int, ...] | None, num_frames: int, max_frames: int,
         max_flow: float | None, restore_mean: bool, gif_fps: float) -> int:
    """RGB frames beside forward and backward flow in the Middlebury colour coding, with a colour-wheel legend."""
    try:
        config = ShowConfig(path, video_id, out, frames, num_frames, max_frames, max_flow, restore_mean, gif_fps)
    except ValueError as exc:
        raise usage_error(exc) from None
    shown = show(config)
    click.echo(f"wrote {out}: frames {', '.join(map(str, shown[:10]))}{' ...' if len(shown) > 10 else ''}")
    return EXIT_OK
