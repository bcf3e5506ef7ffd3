"""The frozen configuration of `twostream fuse-features train`.

Validated on construction (a bad value raises ValueError naming it and what is accepted), logged
at start, stored as JSON in every fusion checkpoint and in RUN/config.json. The head's hidden
size depends on the head and is resolved here, so the stored config states every value used.
`fuse-features evaluate` uses `config.EvalConfig` (its `stream` stays None).
"""
from __future__ import annotations

from dataclasses import dataclass

from twostream.core.config import (
    ResumableConfig,
    check,
    check_choice,
    check_fit_fields,
    check_positive_int,
    check_split,
)
from twostream.feature_fusion.heads import HEADS, REGISTRY, HeadSpec

FIT_SUBSETS = ("train", "val")  # the streams' training videos, or those they held out (--holdout)


@dataclass(frozen=True)
class FusionTrainConfig(ResumableConfig):
    spatial: str  # the spatial stream's checkpoint (twostream train)
    temporal: str  # the temporal stream's checkpoint
    extraction: str  # extraction folder
    out: str  # run folder: checkpoint.pt, metrics.jsonl, config.json
    head: str = "mid"  # the fusion head (fuse-features train --method; heads.REGISTRY)
    joint: bool = False  # fine-tune the streams with the head; else they are frozen
    split: str = "split1"  # must be the split both streams were trained on
    subset: str = "train"  # which training-split videos the head learns from
    # head
    hidden: int | None = None  # None: the head's default (heads.REGISTRY)
    dropout: float = 0.5
    # sampling and augmentation, as in twostream train; the two streams share box and flip
    segments: int = 1
    multiscale_crop: bool = False
    flip: bool = True
    color_jitter: float = 0.0
    # optimisation (SGD, the trainer's schedules)
    epochs: int = 10
    batch_size: int | None = None  # None: twostream.core.schedule.default_batch_size of the videos it learns from
    lr: float = 0.01  # the head's
    stream_lr_scale: float = 0.1  # joint: the streams' learning rate as a fraction of lr
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    lr_steps: tuple[int, ...] | None = None
    gamma: float = 0.1
    seed: int = 0
    # validation during training, on the streams' held-out videos (when the head learns from
    # their training videos and they held some out); on the split's test videos only when asked
    val_every: int = 1
    val_clips: int = 5
    val_crops: str = "center"
    val_batch_size: int = 32
    val_on_test: bool = False
    tensorboard: bool | None = None  # RUN/tensorboard event files; None: when the package is installed
    # how the run executes: RunOptions

    def __post_init__(self) -> None:
        check_choice("fusion method", self.head, HEADS)
        check_split(self.split)
        check_choice("subset", self.subset, FIT_SUBSETS)
        if self.hidden is None:
            object.__setattr__(self, "hidden", REGISTRY[self.head].default_hidden)
        HeadSpec(self.head, self.hidden, self.dropout)  # validates hidden and dropout
        check_positive_int("segments", self.segments)
        check(0.0 <= self.color_jitter < 1.0, f"colour jitter must be in [0, 1), got {self.color_jitter!r}")
        check_positive_int("epochs", self.epochs)
        if self.batch_size is not None:
            check_positive_int("batch size", self.batch_size)
        check(self.lr > 0, f"learning rate must be positive, got {self.lr!r}")
        check(0.0 < self.stream_lr_scale <= 1.0, f"stream lr scale must be in (0, 1], got {self.stream_lr_scale!r}")
        check_fit_fields(self)

    @property
    def head_spec(self) -> HeadSpec:
        return HeadSpec(self.head, self.hidden, self.dropout)

    @property
    def name(self) -> str:
        """The run as reports name it: mid, attention, mid-joint, attention-joint, motion-learned, ..."""
        return self.head_spec.name + ("-joint" if self.joint else "")
