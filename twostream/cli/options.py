"""What `twostream train|evaluate` and `twostream fuse-features train|evaluate` share on the command
line: the options both kinds of run take, building a config from them, and the command bodies.

Option groups are decorators applying their options in order, so each command still lists its
options in the order of its own decorators; where the two commands' help texts differ, the group
takes the text as an argument.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import click

from runkit.cli import EXIT_INTERRUPTED
from runkit.options import device_option, loader_workers_option, out_folder_option
from runkit.signals import Stop
from twostream.cli.runs import checkpoint_of, extraction_of, split_of
from twostream.core.config import CROPS, DEVICE_HELP, SCHEDULES, SUBSETS, EvalConfig
from twostream.core.run_folder import CHECKPOINT_FILE, scores_file


def options(*decorators: Callable) -> Callable:
    """One decorator applying `decorators` as if written one above the other, in this order."""
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


def _parse_steps(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated epoch numbers such as 20,30; got {value!r}") from None


def build_config(cls, **values):
    """Build a config from options (paths as strings); its validation errors are usage errors (one line,
    exit status 2)."""
    values = {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
    try:
        return cls(**values)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


# EXTRACTION, the folder 'flowprep extract' (or import-rawframes) wrote, is the positional argument
# of the commands that read one (train, fuse-features train, like flowprep's export-rawframes);
# the commands that read a run take RUN and find the extraction in its config.json (--extraction).
# stored absolute in the run's config.json, so that 'evaluate RUN' finds it from any working directory
extraction = click.argument("extraction", metavar="EXTRACTION", type=click.Path(path_type=Path, file_okay=False),
                            callback=lambda ctx, param, value: value.absolute())
split = click.option("--split", default="split1", show_default=True,
                     help="Split column of the manifest (index.json): which videos are train and test.")
run_out = out_folder_option("Run folder: checkpoint.pt, metrics.jsonl, config.json.", dest="out")
resume = click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint (same options).")

# how a run executes (config.RUN_FIELDS): every command has these
run_options = options(
    loader_workers_option(2),
    device_option(help=f"{DEVICE_HELP} (auto: a GPU when there is one)."),
    click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Torch CPU threads (0: torch's default)."),
    click.option("--amp/--no-amp", default=True, show_default=True, help="Automatic mixed precision (CUDA only)."),
    click.option("--channels-last/--no-channels-last", default=True, show_default=True,
                 help="channels_last memory format (CUDA only)."),
)


def evaluation_options(subset_help: str, clips_help: str) -> Callable:
    """RUN to --crops: what an evaluate command evaluates, on which videos, under which protocol."""
    return options(
        click.argument("run", metavar="RUN", type=click.Path(path_type=Path)),
        click.option("--extraction", type=click.Path(path_type=Path, file_okay=False), default=None,
                     help="Extraction folder. Default: the one the run was trained on (RUN/config.json)."),
        click.option("--split", default=None,
                     help="Split column of the manifest (index.json). Default: the run's (RUN/config.json)."),
        click.option("--subset", type=click.Choice(SUBSETS), default="test", show_default=True,
                     help=subset_help),
        out_folder_option("Folder of the scores file scores_SUBSET.npz. Default: RUN.", dest="out", required=False),
        click.option("--clips", type=click.IntRange(min=1), default=25, show_default=True, help=clips_help),
        click.option("--crops", type=click.Choice(CROPS), default="ten", show_default=True,
                     help="ten: 4 corners + centre and their flips; center: the centre crop; three: 3 crops along the longer "
                          "side (clip streams' usual protocol)."),
    )


def evaluation_run_options(batch_size_help: str) -> Callable:
    """--batch-size to --json: how an evaluate command runs and prints."""
    return options(
        click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help=batch_size_help),
        run_options,
        click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON."),
    )


def augment_options(segments_help: str, flip_help: str) -> Callable:
    """--segments, --multiscale-crop, --flip: how a training sample is drawn."""
    return options(
        click.option("--segments", type=click.IntRange(min=1), default=1, show_default=True, help=segments_help),
        click.option("--multiscale-crop", is_flag=True,
                     help="TSN's multi-scale corner cropping instead of a random crop."),
        click.option("--flip/--no-flip", default=True, show_default=True, help=flip_help),
    )


def schedule_options(lr_steps_help: str) -> Callable:
    """--momentum to --seed: SGD and its learning-rate schedule (twostream.core.schedule)."""
    return options(
        click.option("--momentum", type=float, default=0.9, show_default=True),
        click.option("--weight-decay", type=float, default=5e-4, show_default=True),
        click.option("--schedule", type=click.Choice(SCHEDULES), default="step", show_default=True),
        click.option("--lr-steps", callback=_parse_steps, default=None, metavar="E1,E2", help=lr_steps_help),
        click.option("--gamma", type=float, default=0.1, show_default=True),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True),
    )


train_batch_size = click.option(
    "--batch-size", type=click.IntRange(min=1), default=None,
    help="Samples per optimisation step (a process's, under torchrun). Default: 32, halved down to 8 while an "
         "epoch of the training videos would have fewer than 8 steps (the log says which).")


tensorboard_option = click.option(
    "--tensorboard/--no-tensorboard", default=None,
    help="Also write RUN/tensorboard/ event files with metrics.jsonl's scalars (tensorboard --logdir RUN). "
         "Default: when the tensorboard package is installed (pip install 'twostream[tensorboard]').")


def validation_options(val_every_help: str) -> Callable:
    """--val-every to --val-batch-size: validation during training."""
    return options(
        click.option("--val-every", type=click.IntRange(min=0), default=1, show_default=True, help=val_every_help),
        click.option("--val-clips", type=click.IntRange(min=1), default=5, show_default=True),
        click.option("--val-crops", type=click.Choice(CROPS), default="center", show_default=True),
        click.option("--val-batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--val-on-test", is_flag=True,
                     help="When no training video is held out, validate on the split's test videos (the report then "
                          "says that the run was watched on its test set); without it there is no validation."),
    )


def run_training(fit: Callable, config, resume: bool) -> int:
    """The body of a train command: fit, then print the validation metrics and the checkpoint."""
    try:
        metrics = fit(config, resume=resume).metrics
    except KeyboardInterrupt as exc:  # the generic message says "run the same command again"; a run needs --resume
        if isinstance(exc, Stop) and exc.message:  # the loop saved a checkpoint and says so (runkit.signals)
            raise
        checkpoint = Path(config.out) / "checkpoint.pt"
        if checkpoint.is_file():
            click.echo(f"twostream: interrupted; continue from {checkpoint} with the same command plus --resume",
                       err=True)
        else:  # stopped while starting: no epoch began, so there is nothing to resume from
            click.echo(f"twostream: interrupted before the first checkpoint; nothing was saved in {config.out}: run "
                       f"the same command again to start it", err=True)
        sys.exit(exc.status if isinstance(exc, Stop) else EXIT_INTERRUPTED)
    # deferred: torch takes seconds to import, and --help needs none of it
    from twostream.core.world import current
    from twostream.streams.evaluator import metric_lines

    if not current().main:  # under torchrun the main process prints for all
        return 0
    if "val" in metrics:
        click.echo(f"validation on the {metrics['val'].get('subset', 'held-out')} videos ({config.val_clips} clips x "
                   f"{config.val_crops} crop): "
                   + "; ".join(metric_lines(metrics["val"])))
    click.echo(f"checkpoint: {Path(config.out) / CHECKPOINT_FILE}")
    return 0


def evaluation_config(run: Path, extraction: Path | None, split: str | None, out: Path | None, subset: str,
                      **values) -> EvalConfig:
    """An evaluate command's config: RUN (a run folder or its checkpoint.pt), the extraction and split
    from the run's config.json unless given, the scores written to OUT/scores_SUBSET.npz (OUT: RUN)."""
    checkpoint = checkpoint_of(run)
    folder = checkpoint.parent if out is None else out
    config = build_config(EvalConfig, checkpoint=checkpoint, extraction=extraction_of(checkpoint, extraction),
                          split=split_of(checkpoint, split), out=folder / scores_file(subset), subset=subset, **values)
    folder.mkdir(parents=True, exist_ok=True)
    return config


def report_evaluation(config: EvalConfig, metrics: dict, scores, as_json: bool, title: str = "") -> int:
    """The end of an evaluate command: the metrics (as JSON, or as lines after `title`) and the scores file."""
    from twostream.core.world import current
    from twostream.streams.evaluator import metric_lines

    if not current().main:
        return 0
    if as_json:
        click.echo(json.dumps({**metrics, "videos": len(scores.video_ids), "scores": config.out}, indent=1))
    else:
        click.echo(f"{title}{len(scores.video_ids)} {config.subset} videos of {config.split} in {config.extraction}, "
                   f"{config.clips} clips x {config.crops} crops:")
        for line in metric_lines(metrics):
            click.echo("  " + line)
        click.echo(f"scores: {config.out}")
    return 0
