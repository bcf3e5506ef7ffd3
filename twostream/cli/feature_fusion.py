"""`twostream fuse-features train|evaluate`: feature-level fusion of two trained streams."""
from __future__ import annotations

from pathlib import Path

import click

from runkit.cli import CONTEXT
from runkit.options import device_option
from twostream.cli import options as opt
from twostream.cli import runs
from twostream.core.config import EvalConfig
from twostream.feature_fusion.config import FIT_SUBSETS, FusionTrainConfig
from twostream.feature_fusion.heads import DEFAULT_HIDDEN, HEADS
from twostream.feature_fusion.heads import REGISTRY as HEAD_REGISTRY

STREAM_RUN = click.Path(path_type=Path)


def _checkpoint(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    return runs.checkpoint_of(value, what=f"'--{param.name}'")


@click.group("fuse-features", context_settings=CONTEXT)
def fuse_features() -> None:
    """Feature-level fusion: a head on the two trained streams' penultimate features (mid fusion),
    per-sample stream weights (attention), or their last feature maps (motion-guided spatial attention,
    cross-attention), the streams frozen or fine-tuned jointly; two 2D streams or two clip streams
    (docs/fusion.md)."""


@fuse_features.command("train", context_settings=CONTEXT)
@opt.extraction
@click.option("--spatial", required=True, type=STREAM_RUN, callback=_checkpoint,
              help="The spatial stream's run folder (twostream train --out) or its checkpoint.pt.")
@click.option("--temporal", required=True, type=STREAM_RUN, callback=_checkpoint,
              help="The motion stream's run folder or its checkpoint.pt: a temporal, dynamic-image or learned-flow "
                   "run; beside an RGB clip stream (--clip T), a flow clip stream of the same clips.")
@opt.run_out
@click.option("--method", "head", type=click.Choice(HEADS), default="mid", show_default=True,
              help="; ".join(f"{h.name}: {h.description}" for h in HEAD_REGISTRY.values()) + ".")
@click.option("--joint", is_flag=True,
              help="Fine-tune both streams with the head (at --stream-lr-scale x --lr); default: streams frozen.")
@opt.split
@click.option("--subset", type=click.Choice(FIT_SUBSETS), default="train", show_default=True,
              help="Videos the head learns from: the streams' training videos, or those they held out (train --holdout).")
@click.option("--hidden", type=click.IntRange(min=0), default=None,
              help=f"Hidden units of the head (0: linear, mid only; motion: 0 weighs places by the flow's "
                   f"magnitude, N learns them from the temporal map with N units). Default: "
                   f"{', '.join(f'{k} {v}' for k, v in DEFAULT_HIDDEN.items())}.")
@click.option("--dropout", type=float, default=0.5, show_default=True, help="On the concatenated features.")
@opt.augment_options(segments_help="1: one random pair per video per epoch; K: TSN segments, K pairs' logits averaged.",
                     flip_help="Random horizontal flip of both (flow x negated).")
@click.option("--color-jitter", type=float, default=0.0, show_default=True, help="Jitter of the RGB frame.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@opt.train_batch_size
@click.option("--lr", type=float, default=0.01, show_default=True, help="The head's learning rate.")
@click.option("--stream-lr-scale", type=float, default=0.1, show_default=True,
              help="--joint: the streams' learning rate as a fraction of --lr.")
@opt.schedule_options(lr_steps_help="Epochs after which 'step' multiplies lr by --gamma. Default: at 5/8 and 7/8 of "
                                    "the run.")
@opt.validation_options(val_every_help="Validate every N epochs (and after the last) on the streams' held-out videos "
                                       "when the head learns from their training videos (else none, or the test videos with "
                                       "--val-on-test); 0: never.")
@opt.tensorboard_option
@opt.run_options
@opt.resume
def train_command(resume: bool, **options) -> int:
    """Train a fusion head on two trained streams (twostream train's runs) on EXTRACTION.

    Writes OUT/checkpoint.pt after every epoch and OUT/metrics.jsonl; a run stopped at any point
    continues with the same command plus --resume.
    """
    config = opt.build_config(FusionTrainConfig, **options)
    from twostream.feature_fusion.trainer import (
        fit_fusion,  # deferred: torch takes seconds to import, and --help needs none of it
    )

    return opt.run_training(fit_fusion, config, resume)


@fuse_features.command("evaluate", context_settings=CONTEXT)
@opt.evaluation_options(subset_help="Which videos of the split: test; train (the streams' training videos); val "
                                    "(those they held out).",
                        clips_help="Pairs (frame and stack) per video, uniformly spaced.")
@opt.evaluation_run_options(batch_size_help="Pairs per batch.")
def evaluate_command(as_json: bool, **options) -> int:
    """Evaluate a fusion model with the test protocol; write per-video scores (for twostream report --fused).

    RUN is a 'fuse-features train' run folder (or its checkpoint.pt); scores go to RUN/scores_SUBSET.npz.
    """
    config = opt.evaluation_config(**options)
    from twostream.feature_fusion.evaluator import evaluate_fusion

    metrics, scores = evaluate_fusion(config)
    return opt.report_evaluation(config, metrics, scores, as_json, title=f"{scores.meta['fusion_method']} fusion, ")


@fuse_features.command("show", context_settings=CONTEXT)
@click.argument("run", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--video", "video_id", required=True, help="Video id.")
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="FILE.png.")
@click.option("--extraction", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Extraction folder. Default: the one the run was trained on (RUN/config.json).")
@click.option("--rows", type=click.IntRange(min=1), default=4, show_default=True,
              help="Positions shown, uniformly spaced over the video (one row each; clip streams: one row per "
                   "time step of the map).")
@device_option(help="Where the model runs (auto: a GPU when there is one).")
def show_command(run: Path, video_id: str, out: Path, extraction: Path | None, rows: int, device: str) -> int:
    """Where a motion head looks: a video's frames beside its weights of their places (a heat map);
    on clip streams, a row per time step of each clip's map, at the step's middle frame.

    RUN is a 'fuse-features train --method motion' run folder (or its checkpoint.pt).
    """
    if out.suffix.lower() != ".png":
        raise click.BadParameter(f"must end in .png, got {out.name!r}", param_hint="'--out'")
    checkpoint = runs.checkpoint_of(run)
    config = opt.build_config(EvalConfig, checkpoint=checkpoint, extraction=runs.extraction_of(checkpoint, extraction),
                              split=runs.split_of(checkpoint, None), out=out, clips=rows, crops="center",
                              device=device, workers=0)
    from twostream.feature_fusion.attention_picture import show_attention

    positions = show_attention(config, video_id, out)
    click.echo(f"wrote {out}: positions {', '.join(map(str, positions))}")
    return 0
