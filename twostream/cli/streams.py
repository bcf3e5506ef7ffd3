"""`twostream train` and `twostream evaluate`: options -> a validated config -> trainer / evaluator."""
from __future__ import annotations

import click

from flowprep.api import LAYER_PARAMS
from runkit.cli import CONTEXT
from twostream.cli import options as opt
from twostream.core.backbones import choices_text
from twostream.core.config import (
    DECODE_ON,
    DEFAULT_HOLDOUT,
    FLOW_PLACEMENTS,
    FLOW_STACKS,
    STREAM_DEFAULTS,
    STREAMS,
    TrainConfig,
)


def _defaults(name: str) -> str:
    return ", ".join(f"{stream} {values[name]}" for stream, values in STREAM_DEFAULTS.items())


def _name_value_pairs(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """NAME=VALUE texts -> (name, text) pairs; the config checks names and values."""
    pairs = []
    for text in values:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {text!r}")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


@click.command(context_settings=CONTEXT)
@opt.extraction
@opt.run_out
@click.option("--stream", type=click.Choice(STREAMS), default="spatial", show_default=True,
              help="spatial: RGB frames; temporal: stored flow; dynamic-image: one dynamic image of --clip T frames; "
                   "learned-flow: the flow of --clip T frames by a learned TV-L1 layer (docs/training.md).")
@opt.split
@click.option("--holdout", type=float, default=DEFAULT_HOLDOUT, show_default=True,
              help="Share of each class's training videos kept out of training (seeded, per class): validation "
                   "runs on them, and 'evaluate --subset val' scores them for fusion; 0 trains on all of them (and "
                   "validates on nothing, or with --val-on-test on the test videos).")
@click.option("--backbone", default="resnet18", show_default=True, metavar="NAME",
              help=f"The stream's network: {choices_text()}.")
@click.option("--pretrained", default=None, metavar="FILE|URL",
              help="State dict of the RGB backbone: a local file (e.g. torchvision's resnet18-f37072fd.pth, timm's "
                   "model.safetensors) or a URL (downloaded once into torch.hub's cache, a NAME-<sha256>.pth file's "
                   "hash checked); the temporal stream gets it by cross-modality averaging, a 3D ResNet a 2D "
                   "ResNet's by I3D inflation.")
@click.option("--weights", default=None, metavar="NAME",
              help="Named weights: torchvision's (IMAGENET1K_V1, DEFAULT or ResNet18_Weights.IMAGENET1K_V1; "
                   "KINETICS400_V1 for video networks) or, for timm:NAME, DEFAULT or a timm tag (in1k); needs "
                   "the model hub or its cache.")
@click.option("--flow-length", type=click.IntRange(min=1), default=10, show_default=True,
              help="L: flow fields per temporal input (2L channels).")
@click.option("--flow-stack", type=click.Choice(FLOW_STACKS), default="forward", show_default=True,
              help="bidirectional: L/2 backward fields before tau, L/2 forward from tau.")
@click.option("--restore-means", "mean_subtraction", flag_value=False, default=True,
              help="Put the mean flow vectors that extraction subtracted back into the flow (temporal stream; "
                   "flowprep extract --no-mean-subtraction stores the flow as computed instead).")
@click.option("--crop-size", type=click.IntRange(min=1), default=224, show_default=True)
@click.option("--clip", type=click.IntRange(min=0), default=0, show_default=True, metavar="T",
              help="T > 0: a 3D stream (a video --backbone such as r3d_18) on clips of T frames (RGB) or T forward "
                   "flow fields; 0: the paper's frame or 2L-channel stack. The dynamic-image and learned-flow "
                   "streams: the T frames of their window (2D backbone).")
@click.option("--clip-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames between a clip's steps.")
@click.option("--motion-attention", is_flag=True,
              help="Spatial stream: read the flow stack (--flow-length, --flow-stack) beside the frame and pool the "
                   "last feature map where it moves (motion-guided spatial attention, parameter-free), not evenly.")
@click.option("--flow-on", type=click.Choice(FLOW_PLACEMENTS), default="frames", show_default=True,
              help="learned-flow: where its TV-L1 layer runs: the window's grey frames, or a ResNet's feature maps "
                   "after its first stage (Representation Flow's placement).")
@click.option("--flow-param", "flow_layer", multiple=True, callback=_name_value_pairs, metavar="NAME=VALUE",
              help="learned-flow: set a parameter of its TV-L1 layer; repeatable. Names (defaults): "
                   + ", ".join(f"{p.name} ({p.default})" for p in LAYER_PARAMS)
                   + "; tau, lambda, theta are initial values, learned (docs/training.md).")
@opt.augment_options(segments_help="1: one random frame/stack per video per epoch; K: TSN segment sampling, K clips "
                                   "averaged.",
                     flip_help="Random horizontal flip (flow x negated).")
@click.option("--color-jitter", type=float, default=None,
              help=f"Brightness/contrast/saturation jitter, RGB only. Default: {_defaults('color_jitter')}.")
@click.option("--dropout", type=float, default=None, help=f"Before the classifier. Default: {_defaults('dropout')}.")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True)
@opt.train_batch_size
@click.option("--lr", type=float, default=None, help=f"Learning rate. Default: {_defaults('lr')}.")
@opt.schedule_options(lr_steps_help="Epochs after which 'step' multiplies lr by --gamma. Default: the paper's, at 5/8 "
                                    "and 7/8 of the run.")
@opt.validation_options(val_every_help="Validate on the held-out training videos every N epochs (and after the "
                                       "last); 0: never.")
@opt.tensorboard_option
@click.option("--decode-on", type=click.Choice(DECODE_ON), default="loader", show_default=True,
              help="Where the training samples' JPEG frames and flow fields are decoded: in the loader workers, or "
                   "batched on the model's device (a GPU's nvJPEG; spatial and temporal 2D streams, JPEG shards; "
                   "docs/training.md).")
@opt.run_options
@opt.resume
def train(resume: bool, **options) -> int:
    """Train a stream (spatial, temporal, dynamic-image or learned-flow) on a split's training videos of EXTRACTION (a
    'flowprep extract' output folder).

    Writes OUT/checkpoint.pt after every epoch and OUT/metrics.jsonl; a run stopped at any
    point continues with the same command plus --resume.
    """
    config = opt.build_config(TrainConfig, **options)
    from twostream.streams.trainer import (
        fit,  # deferred, as below: torch takes seconds to import, and --help needs none of it
    )

    return opt.run_training(fit, config, resume)


@click.command("evaluate", context_settings=CONTEXT)
@opt.evaluation_options(subset_help="Which videos of the split: test; train (those trained on); val (those held "
                                    "out by --holdout).",
                        clips_help="Frames or stacks per video, uniformly spaced.")
@click.option("--stream", type=click.Choice(STREAMS), default=None, help="Refuse a checkpoint of another stream.")
@opt.evaluation_run_options(batch_size_help="Clips per batch.")
def evaluate_command(as_json: bool, **options) -> int:
    """Evaluate a trained stream with the test protocol; write per-video softmax scores for fusion.

    RUN is a 'twostream train' run folder (or its checkpoint.pt); the extraction and split are the
    run's unless --extraction / --split say otherwise. Scores go to RUN/scores_SUBSET.npz (or --out).
    """
    config = opt.evaluation_config(**options)
    from twostream.streams.evaluator import evaluate

    metrics, scores = evaluate(config)
    return opt.report_evaluation(config, metrics, scores, as_json)
