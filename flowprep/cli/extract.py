"""`flowprep extract` (a dataset into shards) and `flowprep methods` (the flow backends and their
parameters)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from flowprep.cli.support import JSON_OPTION, OVERWRITE_HELP, check_codec, missing_hint, parse_size
from flowprep.extract.config import (
    DEFAULT_BATCH,
    DEFAULT_FLOW_CODEC,
    DEFAULT_RGB_CODEC,
    DEFAULT_SHORT_SIDE,
    DEVICE_HELP,
    SCHEDULER_TIMEOUT_S,
    ExtractConfig,
    ExtractRun,
)
from flowprep.extract.run import run_extract
from flowprep.flow.backend import FlowMethod
from flowprep.flow.registry import FLOW_METHODS, get_method
from flowprep.format.codecs import CODEC_HELP, Codec
from flowprep.format.folder import ExtractionFolder
from flowprep.format.shards import ShardFormatError
from runkit.cli import CONTEXT, EXIT_OK, EXIT_SOME_FAILED
from runkit.options import DEVICE_DEFAULT, device_option, out_folder_option, workers_option


def resolve_device(device: str, flow_method: FlowMethod) -> str:
    """--device auto: every GPU when the backend is batched and torch sees one, else the CPU (the
    CPU backends ignore devices). Any other value is passed on, and checked by ExtractRun."""
    if device != DEVICE_DEFAULT:
        return device
    if not flow_method.batched:
        return "cpu"
    import torch  # deferred: only a batched backend needs it, and --help none of it

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ",".join(f"cuda:{i}" for i in range(n)) if n else "cpu"


def parse_flow_params(method: FlowMethod, pairs: tuple[str, ...]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=VALUE, got {pair!r}", param_hint="'--flow-param'")
        try:
            params[name.strip()] = method.param(name.strip()).parse(text.strip())
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'--flow-param'") from None
    return params


@click.command(context_settings=CONTEXT)
@click.option("--manifest", required=True, type=click.Path(path_type=Path), help="Manifest CSV (data_manifests/README.md).")
@click.option("--video-root", type=click.Path(path_type=Path), default=None,
              help="Folder the manifest's paths are relative to. Default: the manifest's folder.")
@out_folder_option("Output folder: the extraction (shards, index.json).")
@click.option("--flow", "flow_method", type=click.Choice(list(FLOW_METHODS)), default="tvl1", show_default=True,
              callback=lambda ctx, param, name: get_method(name), help="Flow backend (see `flowprep methods`).")
@click.option("--flow-param", "flow_params", multiple=True, metavar="NAME=VALUE",
              help="Set a parameter of the flow backend; repeatable.")
@click.option("--size", callback=parse_size, default=None, metavar="WxH",
              help="Store frames at this fixed size, e.g. 340x256 for the TSN protocol on 4:3 datasets (UCF101, "
                   "HMDB51); it squashes other aspect ratios.")
@click.option("--short-side", type=click.IntRange(min=1), default=None,
              help=f"Resize so the shorter side has this many pixels, keeping the aspect ratio. Default "
                   f"{DEFAULT_SHORT_SIDE} (as mmaction2 for Kinetics) unless --size is given; resuming a folder "
                   f"without either keeps the size it was made with.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None, help="Sample frames at this rate.")
@click.option("--stride", type=click.IntRange(min=1), default=1, show_default=True, help="Keep every STRIDE-th frame.")
@click.option("--max-frames", type=click.IntRange(min=2), default=None, help="Keep the first N frames of each video (at most N).")
@click.option("--bound", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Clip flow to +-BOUND pixels before quantising to uint8.")
@click.option("--mean-subtraction/--no-mean-subtraction", default=True, show_default=True,
              help="Subtract each flow field's mean vector (camera-motion compensation); the means are stored.")
@click.option("--rgb-codec", default=DEFAULT_RGB_CODEC, show_default=True, callback=check_codec, help=CODEC_HELP)
@click.option("--flow-codec", default=DEFAULT_FLOW_CODEC, show_default=True, callback=check_codec, help=CODEC_HELP)
@workers_option(0, help="Parallel worker processes; with a batched backend (tvl1-torch), decoding threads per "
                         "device (0 = all cores).")
@device_option(help=f"Where a batched backend computes flow: {DEVICE_HELP}, or auto: every GPU with a "
                    f"batched backend when there is one, else cpu. Not part of the extraction config: a run resumes "
                    f"on any device.")
@click.option("--batch-size", "batch", type=click.IntRange(min=0), default=0, show_default=True,
              help=f"Flow fields per device batch (0 = {DEFAULT_BATCH['cuda']} on CUDA, {DEFAULT_BATCH['cpu']} on the "
                   f"CPU); an out-of-memory error halves it.")
@click.option("--num-parts", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the extraction into this many parts, one per machine or array task (docs/cluster.md).")
@click.option("--part", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which part this run extracts, 0 to NUM_PARTS-1: the videos whose id hashes to it.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run the per-video jobs on this Dask scheduler's workers (tls://HOST:PORT with TLS); the output "
                   "folder and the videos must be on a file system they share.")
@click.option("--tls-ca-file", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="With a tls:// scheduler: the CA certificate (default: distributed's configuration).")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="With a tls:// scheduler: this client's certificate.")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False, exists=True), default=None,
              help="With a tls:// scheduler: this client's private key.")
@click.option("--scheduler-timeout", type=click.FloatRange(min=0, min_open=True, max=1e6), default=SCHEDULER_TIMEOUT_S,
              show_default=True, metavar="SECONDS",
              help="With --scheduler: how long to wait for the scheduler to accept the connection and answer.")
@click.option("--shard-size-mb", type=click.FloatRange(min=0, min_open=True), default=1024.0, show_default=True,
              help="Target size of one shard file.")
@click.option("--overwrite", is_flag=True, help=OVERWRITE_HELP)
@click.option("--follow-symlinks", is_flag=True,
              help="Read videos that are symlinks to files outside the video root (by default each is a failure).")
@click.option("--allow-decode-errors", is_flag=True,
              help="Keep videos whose decoder reports damaged data, with a warning (by default each is a failure).")
def extract(manifest: Path, video_root: Path | None, out_dir: Path, flow_method: FlowMethod, flow_params: tuple[str, ...],
            size: tuple[int, int] | None, short_side: int | None, fps: float | None, stride: int, max_frames: int | None,
            bound: float, mean_subtraction: bool, rgb_codec: Codec, flow_codec: Codec, workers: int, device: str,
            batch: int, num_parts: int, part: int, scheduler: str | None, tls_ca_file: Path | None,
            tls_cert: Path | None, tls_key: Path | None, scheduler_timeout: float, shard_size_mb: float,
            overwrite: bool, follow_symlinks: bool, allow_decode_errors: bool) -> int:
    """Extract RGB frames and forward/backward flow of every video in a manifest into shards.

    Re-running the same command resumes: finished videos are skipped. Videos that cannot be
    read are listed in OUT/failures.jsonl and the run goes on; the exit status is then 3.
    """
    if size is not None and short_side is not None:
        raise click.UsageError("give --size or --short-side, not both")
    if size is None and short_side is None and not overwrite:
        # the default changed (340x256 -> short side 256): the same command still resumes a folder
        # made before, rather than being refused for a config that differs in a value never given
        size, short_side = stored_size(out_dir)
    width, height = size or (None, None)
    try:
        config = ExtractConfig(
            flow_method=flow_method,
            flow_params=tuple(parse_flow_params(flow_method, flow_params).items()),
            width=width, height=height, short_side=short_side,
            fps=fps, stride=stride, max_frames=max_frames,
            bound=bound, mean_subtraction=mean_subtraction,
            rgb_codec=rgb_codec, flow_codec=flow_codec,
        )
        run = ExtractRun(
            manifest=manifest,
            video_root=video_root if video_root is not None else manifest.parent,
            out_dir=out_dir, extract=config, workers=workers, shard_size_mb=shard_size_mb, overwrite=overwrite,
            device=resolve_device(device, flow_method), batch=batch, num_parts=num_parts, part=part, scheduler=scheduler,
            tls_ca_file=tls_ca_file, tls_cert=tls_cert, tls_key=tls_key, scheduler_timeout=scheduler_timeout,
            follow_symlinks=follow_symlinks, allow_decode_errors=allow_decode_errors,
        )
    except ValueError as exc:  # the config's own validation: a usage error
        raise click.UsageError(str(exc)) from None
    summary = run_extract(run)
    for line in summary.lines():
        click.echo(line)
    if summary.failures:
        for f in summary.failures[:10]:
            click.echo(f"  failed {f.video_id}: {f.reason}")
        more = len(summary.failures) - 10
        click.echo(f"  {'... and %d more; ' % more if more > 0 else ''}all failures: {summary.failures_file}")
        if any(f.reason.startswith("file not found") for f in summary.failures):
            click.echo(missing_hint(run.video_root, video_root is not None))
        return EXIT_SOME_FAILED
    return EXIT_OK


def stored_size(out_dir: Path) -> tuple[tuple[int, int] | None, int | None]:
    """(width, height) or short side of the extraction in `out_dir`, if it holds one with a
    readable config; (None, None) otherwise (a fresh folder, an import: the default applies, and
    staged_run reports any conflict)."""
    try:
        stored = ExtractionFolder(out_dir).read_config()
    except ShardFormatError:
        return None, None
    s = stored.settings
    if stored.kind != "extract":
        return None, None
    if s.get("short_side") is None and isinstance(s.get("width"), int) and isinstance(s.get("height"), int):
        logging.getLogger("flowprep").info("resuming %s at its stored size %dx%d", out_dir, s["width"], s["height"])
        return (s["width"], s["height"]), None
    return None, s.get("short_side") if isinstance(s.get("short_side"), int) else None


@click.command(context_settings=CONTEXT)
@JSON_OPTION
def methods(as_json: bool) -> int:
    """List the flow backends and their parameters (set with --flow-param NAME=VALUE)."""
    if as_json:
        click.echo(json.dumps({
            m.name: {"summary": m.summary, "params": {p.name: {"type": p.type.__name__, "default": p.default,
                                                               "help": p.help, "choices": list(p.choices)}
                                                      for p in m.params}}
            for m in FLOW_METHODS.values()}, indent=1))
        return EXIT_OK
    for m in FLOW_METHODS.values():
        click.echo(f"{m.name}: {m.summary}")
        for p in m.params:
            default = "preset's value" if p.default is None else repr(p.default)
            choices = f" [{'|'.join(p.choices)}]" if p.choices else ""
            click.echo(f"    {p.name:<36} {p.type.__name__:<5} default {default:<15} {p.help}{choices}")
        click.echo()
    return EXIT_OK
