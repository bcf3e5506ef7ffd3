"""`twostream train` and `twostream evaluate`: options -> a validated config -> trainer / evaluator."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from flowprep.cli_support import EXIT_INTERRUPTED

from .config import CROPS, DEVICE_HELP, PARTS, SCHEDULES, STREAM_DEFAULTS, EvalConfig, TrainConfig
from .backbones import BACKBONES
from .sampling import FLOW_STACKS, STREAMS


def _parse_steps(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated epoch numbers such as 20,30; got {value!r}") from None


def _config(cls, **options):
    """Build a config; its validation errors are usage errors (one line, exit status 2)."""
    try:
        return cls(**options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _defaults(name: str) -> str:
    return ", ".join(f"{stream} {values[name]}" for stream, values in STREAM_DEFAULTS.items())


_shards = click.option("--shards", required=True, type=click.Path(path_type=Path, file_okay=False),
                       help="Extraction folder written by 'flowprep extract'.")
_split = click.option("--split", default="split1", show_default=True,
                      help="Split column of the manifest (index.json): which videos are train and test.")
_workers = click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
                        help="DataLoader worker processes (0: load in the main process).")
_device = click.option("--device", default="auto", show_default=True, help=f"{DEVICE_HELP}.")
_threads = click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
                        help="Torch CPU threads (0: torch's default).")
_amp = click.option("--amp/--no-amp", default=True, show_default=True, help="Automatic mixed precision (CUDA only).")
_channels_last = click.option("--channels-last/--no-channels-last", default=True, show_default=True,
                              help="channels_last memory format (CUDA only).")


@click.command()
@_shards
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Run folder: checkpoint.pt, metrics.jsonl, config.json.")
@click.option("--stream", type=click.Choice(STREAMS), default="spatial", show_default=True)
@_split
@click.option("--holdout", type=float, default=0.0, show_default=True,
              help="Share of each class's training videos kept out of training: validation runs on them, and "
                   "'evaluate --part val' scores them for fusion.")
@click.option("--backbone", type=click.Choice(list(BACKBONES)), default="resnet18", show_default=True,
              help="torchvision model.")
@click.option("--pretrained", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Local state dict of the RGB backbone (e.g. torchvision's resnet18-f37072fd.pth); the temporal "
                   "stream gets it by cross-modality averaging.")
@click.option("--weights", default=None, metavar="NAME",
              help="torchvision's named weights (e.g. IMAGENET1K_V1); needs the model hub or its cache.")
@click.option("--flow-length", type=click.IntRange(min=1), default=10, show_default=True,
              help="L: flow fields per temporal input (2L channels).")
@click.option("--flow-stack", type=click.Choice(FLOW_STACKS), default="forward", show_default=True,
              help="bidirectional: L/2 backward fields before tau, L/2 forward from tau.")
@click.option("--mean-subtraction/--no-mean-subtraction", default=True, show_default=True,
              help="--no-mean-subtraction puts the mean flow vectors removed at extraction back.")
@click.option("--crop-size", type=click.IntRange(min=1), default=224, show_default=True)
@click.option("--segments", type=click.IntRange(min=1), default=1, show_default=True,
              help="1: one random frame/stack per video per epoch; K: TSN segment sampling, K clips averaged.")
@click.option("--multiscale-crop", is_flag=True, help="TSN's multi-scale corner cropping instead of a random crop.")
@click.option("--flip/--no-flip", default=True, show_default=True, help="Random horizontal flip (flow x negated).")
@click.option("--color-jitter", type=float, default=None,
              help=f"Brightness/contrast/saturation jitter, RGB only. Default: {_defaults('color_jitter')}.")
@click.option("--dropout", type=float, default=None, help=f"Before the classifier. Default: {_defaults('dropout')}.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=float, default=None, help=f"Learning rate. Default: {_defaults('lr')}.")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="step", show_default=True)
@click.option("--lr-steps", callback=_parse_steps, default=None, metavar="E1,E2",
              help="Epochs after which 'step' multiplies lr by --gamma. Default: the paper's, at 5/8 and 7/8 of the run.")
@click.option("--gamma", type=float, default=0.1, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--val-every", type=click.IntRange(min=0), default=1, show_default=True,
              help="Validate on the split's test videos every N epochs (and after the last); 0: never.")
@click.option("--val-clips", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--val-crops", type=click.Choice(CROPS), default="center", show_default=True)
@click.option("--val-batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@_workers
@_device
@_threads
@_amp
@_channels_last
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint (same options).")
def train(resume: bool, **options) -> int:
    """Train the spatial or the temporal stream on a split's training videos.

    Writes OUT/checkpoint.pt after every epoch and OUT/metrics.jsonl; a run stopped at any
    point continues with the same command plus --resume.
    """
    options["shards"], options["out"] = str(options["shards"]), str(options["out"])
    if options["pretrained"] is not None:
        options["pretrained"] = str(options["pretrained"])
    config = _config(TrainConfig, **options)
    from .trainer import fit  # deferred, as below: torch takes seconds to import, and --help needs none of it

    try:
        metrics = fit(config, resume=resume)
    except KeyboardInterrupt:  # the generic message says "run the same command again"; a run needs --resume
        click.echo(f"twostream: interrupted; continue from {Path(config.out) / 'checkpoint.pt'} with the same "
                   f"command plus --resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if "val" in metrics:
        from .evaluator import metric_lines

        click.echo(f"validation ({config.val_clips} clips x {config.val_crops} crop): "
                   + "; ".join(metric_lines(metrics["val"])))
    click.echo(f"checkpoint: {Path(config.out) / 'checkpoint.pt'}")
    return 0


@click.command("evaluate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="RUN/checkpoint.pt written by 'twostream train'.")
@_shards
@_split
@click.option("--part", type=click.Choice(PARTS), default="test", show_default=True,
              help="Which videos of the split: test; train (those trained on); val (those held out by --holdout).")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Per-video scores file (.npz). Default: scores_PART.npz beside the checkpoint.")
@click.option("--clips", type=click.IntRange(min=1), default=25, show_default=True,
              help="Frames or stacks per video, uniformly spaced.")
@click.option("--crops", type=click.Choice(CROPS), default="ten", show_default=True,
              help="ten: 4 corners + centre and their flips; center: the centre crop.")
@click.option("--stream", type=click.Choice(STREAMS), default=None, help="Refuse a checkpoint of the other stream.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Clips per batch.")
@_workers
@_device
@_threads
@_amp
@_channels_last
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate_command(checkpoint: Path, out: Path | None, as_json: bool, **options) -> int:
    """Evaluate a checkpoint with the test protocol; write per-video softmax scores for fusion."""
    if out is None:
        out = checkpoint.parent / f"scores_{options['part']}.npz"
    config = _config(EvalConfig, checkpoint=str(checkpoint), out=str(out), shards=str(options.pop("shards")), **options)
    from .evaluator import evaluate, metric_lines

    metrics, scores = evaluate(config)
    if as_json:
        click.echo(json.dumps({**metrics, "videos": len(scores.video_ids), "scores": str(out)}, indent=1))
    else:
        click.echo(f"{len(scores.video_ids)} {config.part} videos of {config.split}, "
                   f"{config.clips} clips x {config.crops} crops:")
        for line in metric_lines(metrics):
            click.echo("  " + line)
        click.echo(f"scores: {out}")
    return 0
