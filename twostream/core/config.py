"""The frozen configurations of `twostream train` and `twostream evaluate`.

Each is validated on construction (a bad value raises ValueError naming it and what is accepted),
logged at start, and stored: `TrainConfig` as JSON in every checkpoint and in RUN/config.json,
`EvalConfig` in the scores file's metadata. Defaults that depend on the stream (dropout, learning
rate, colour jitter) are given as None and resolved here, so the stored config states every value
used. Fields in `RUN_FIELDS` say how a run executes, not what it learns: they may differ when a
run is resumed; any other difference is refused.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from flowprep.api import layer_params
from runkit.files import parse_json
from twostream.core.backbones import IMAGE_BACKBONES, VIDEO_BACKBONES, family_of, is_video

STREAMS = ("spatial", "temporal", "dynamic-image", "learned-flow")
# streams on a window of --clip T RGB frames for a 2D backbone, motion without precomputed flow
# (twostream.data.motion_inputs): one dynamic image of them, or their flow by a learned TV-L1 layer
WINDOW_STREAMS = ("dynamic-image", "learned-flow")
# where the learned-flow stream's TV-L1 layer runs: on the window's grey frames, or on a ResNet's
# feature maps after its first stage (Representation Flow's placement; twostream.streams.motion_models)
FLOW_PLACEMENTS = ("frames", "features")
FLOW_FEATURE_FAMILIES = ("resnet",)  # the backbones cut at a stage for `--flow-on features`
FLOW_STACKS = ("forward", "bidirectional")  # twostream.data.sampling says what each stacks
SCHEDULES = ("step", "cosine")
# where a training sample's JPEG images are decoded: in the loader workers, or batched on the
# model's device in the training process (twostream.data.device_decode)
DECODE_ON = ("loader", "device")
CROPS = ("ten", "center", "three")  # test crops: 4 corners + centre and their flips; the centre only; three
# squares along the longer side (left, centre, right: the I3D/SlowFast test practice for clips)
SUBSETS = ("test", "train", "val")  # evaluate's choices; val = the training videos held out by --holdout
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"

# The paper's dropout (0.9 for the temporal net; 0.5 for the fine-tuned spatial net, as in TSN),
# TSN's learning rates for fine-tuning from ImageNet weights, and colour jitter for RGB only.
STREAM_DEFAULTS = {
    "spatial": {"dropout": 0.5, "lr": 0.001, "color_jitter": 0.2},
    "temporal": {"dropout": 0.9, "lr": 0.005, "color_jitter": 0.0},
    # a dynamic image is an RGB-like image for an ImageNet network: the spatial stream's fine-tuning
    "dynamic-image": {"dropout": 0.5, "lr": 0.001, "color_jitter": 0.0},
    # the learned layer's flow feeds a flow network: the temporal stream's, with the spatial dropout
    # (its input is the flow of one window, not a 10-field stack, and is far less redundant)
    "learned-flow": {"dropout": 0.5, "lr": 0.005, "color_jitter": 0.0},
}
# The share of each class's training videos held out for validation when no --holdout is given: the
# index's splits have train and test parts only, and validating on test would choose on the test set.
DEFAULT_HOLDOUT = 0.2
# The paper divides the learning rate by 10 after 50K and 70K of 80K iterations.
PAPER_STEP_FRACTIONS = (50 / 80, 70 / 80)


def paper_lr_steps(epochs: int) -> tuple[int, ...]:
    """The paper's decay points scaled to a run of `epochs` epochs (those that fall inside it)."""
    return tuple(sorted({round(f * epochs) for f in PAPER_STEP_FRACTIONS} & set(range(1, epochs))))


def check(condition: bool, message: str) -> None:
    """A ValueError saying `message` unless `condition`: how every config check refuses a value."""
    if not condition:
        raise ValueError(message)


def check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    check(value in choices, f"{what} must be one of {', '.join(choices)}; got {value!r}")


def check_positive_int(what: str, value: Any) -> None:
    check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
          f"{what} must be a positive integer, got {value!r}")


def check_non_negative_int(what: str, value: Any) -> None:
    check(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
          f"{what} must be a non-negative integer, got {value!r}")


def check_device(value: str) -> None:
    check(bool(DEVICE_PATTERN.match(value)), f"device must be {DEVICE_HELP}; got {value!r}")


def check_split(split: str) -> None:
    check(bool(split), "split must be a split column name such as split1, got an empty string")


def check_fit_fields(config: Any) -> None:
    """The fields, from momentum on, that TrainConfig and FusionTrainConfig share: SGD and its
    schedule (lr_steps resolved here: None means the paper's), validation during training, and the
    run options. Called last in their __post_init__, so the order of checks is theirs."""
    check(0.0 <= config.momentum < 1.0, f"momentum must be in [0, 1), got {config.momentum!r}")
    check(config.weight_decay >= 0, f"weight decay must be non-negative, got {config.weight_decay!r}")
    check_choice("schedule", config.schedule, SCHEDULES)
    steps = paper_lr_steps(config.epochs) if config.lr_steps is None else tuple(config.lr_steps)
    object.__setattr__(config, "lr_steps", steps)
    check(all(isinstance(s, int) and s >= 1 for s in steps) and list(steps) == sorted(set(steps)),
          f"lr steps must be increasing positive epoch numbers, got {list(steps)!r}")
    check(0 < config.gamma <= 1, f"gamma must be in (0, 1], got {config.gamma!r}")
    check_non_negative_int("seed", config.seed)
    check_non_negative_int("val every", config.val_every)
    check_positive_int("val clips", config.val_clips)
    check_choice("val crops", config.val_crops, CROPS)
    check_positive_int("val batch size", config.val_batch_size)
    config.check_run_options()


# The config files' key -> the field that holds it, where the two differ: issue 31 renamed the
# fields, not the file formats. Read one way by `renamed` and written back the other by `stored`, so
# that config.json, checkpoints and scores files keep the keys they have always had.
RENAMED_KEYS = {"shards": "extraction", "part": "subset", "method": "head"}
STORED_KEYS = {field: key for key, field in RENAMED_KEYS.items()}


def renamed(data: dict[str, Any]) -> dict[str, Any]:
    """A stored config dict with its keys as the configs' fields name them (RENAMED_KEYS)."""
    return {RENAMED_KEYS.get(k, k): v for k, v in data.items()}


def stored(data: dict[str, Any]) -> dict[str, Any]:
    """A dict of config fields with its keys as the files store them: the inverse of `renamed`."""
    return {STORED_KEYS.get(k, k): v for k, v in data.items()}


class JsonConfig:
    """to_json / from_json for the frozen dataclasses below (tuples travel as JSON lists), in the
    stored form: keys as the files name them (`stored`), in field order."""

    def field_values(self) -> dict[str, Any]:
        """The fields by their names in the code, in the order the stored dict gives them."""
        return asdict(self)  # type: ignore[call-overload]

    def to_dict(self) -> dict[str, Any]:
        return stored(self.field_values())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        data = renamed(data)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**data)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(parse_json(text, dict))


@dataclass(frozen=True, kw_only=True)
class RunOptions(JsonConfig):
    """How a command executes, not what it computes: the options `train`, `evaluate` and
    `fuse-features train/evaluate` share (all in RUN_FIELDS: a resumed run may change them).
    Keyword-only, so that a config's own fields, some without defaults, can follow them."""
    workers: int = 2  # DataLoader workers
    device: str = "auto"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    amp: bool = True  # automatic mixed precision, on CUDA only
    channels_last: bool = True  # on CUDA only

    def field_values(self) -> dict[str, Any]:
        data = super().field_values()
        # the config's own fields first, these last, where they were before this base held them (a
        # base's fields come first in asdict): the dicts stored in scores files keep their order
        return {**{k: v for k, v in data.items() if k not in RUN_OPTIONS}, **{k: data[k] for k in RUN_OPTIONS}}

    def check_run_options(self) -> None:
        """Called last by each config's __post_init__ (after its own checks, as before)."""
        check_non_negative_int("workers", self.workers)
        check_device(self.device)
        check_non_negative_int("threads", self.threads)


RUN_OPTIONS = tuple(f.name for f in fields(RunOptions))
# None asks for a default that depends on the data: the trainer resolves it when a run starts (a
# resumed run keeps its own), and the stored config holds the value used
RESOLVED_AT_START = frozenset({"batch_size"})


class ResumableConfig(RunOptions):
    """A training run's config: on resume, the stored one must match it but for RUN_FIELDS."""

    def learning_fields(self) -> dict[str, Any]:
        """The fields that decide what the run learns (compared on resume), under their stored
        names, as the message of a refused resume names them."""
        return stored({k: v for k, v in self.field_values().items() if k not in RUN_FIELDS})

    def differences(self, other: "ResumableConfig") -> list[str]:
        """`key: theirs -> ours` for every learning field that differs (a field resolved when the run
        starts, asked for as None, takes the stored run's value: twostream.engine.fit_loop)."""
        mine, theirs = self.learning_fields(), other.learning_fields()
        return [f"{k}: {theirs[k]!r} -> {mine[k]!r}" for k in mine
                if mine[k] != theirs[k] and not (k in RESOLVED_AT_START and mine[k] is None)]


@dataclass(frozen=True)
class TrainConfig(ResumableConfig):
    extraction: str  # extraction folder (flowprep extract --out)
    out: str  # run folder: checkpoint.pt, metrics.jsonl, config.json
    stream: str = "spatial"
    split: str = "split1"  # trains on the videos whose index entry says splits[split] == "train"
    holdout: float = DEFAULT_HOLDOUT  # share of each class's training videos kept out of training, for validation and fusion
    # input
    flow_length: int = 10  # L flow fields per temporal input: 2L channels
    flow_stack: str = "forward"
    mean_subtraction: bool = True  # False: put the stored mean vectors back into the flow at load time
    crop_size: int = 224
    # clip streams: T > 0 makes the stream a 3D network (a video backbone) on T frames (3 x T x H x W)
    # or T forward flow fields (2 x T x H x W), `clip_stride` frames apart; 0: the paper's 2D input
    clip: int = 0
    clip_stride: int = 1
    # how the shards' frames were sampled from the videos (`flowprep extract --fps/--stride`), as
    # the trainer read it from them: a clip of T frames spans T/fps seconds, so evaluation refuses
    # shards sampled otherwise. Set by the trainer, not an option.
    frames: str | None = None
    # training sampling and augmentation
    segments: int = 1  # 1: one random frame/stack per video per epoch (paper); K > 1: TSN segments
    multiscale_crop: bool = False  # TSN's multi-scale corner cropping instead of a plain random crop
    flip: bool = True
    color_jitter: float | None = None  # brightness/contrast/saturation strength; RGB only
    # model
    backbone: str = "resnet18"
    pretrained: str | None = None  # local state dict of the RGB backbone
    weights: str | None = None  # torchvision's named weights (needs the model hub or its cache)
    dropout: float | None = None
    # the spatial stream reads the flow stack (flow_length, flow_stack) beside its frame and pools
    # its last feature map where the stack moves (motion-guided spatial attention, parameter-free)
    motion_attention: bool = False
    # the learned-flow stream: where its TV-L1 layer runs (FLOW_PLACEMENTS) and the layer's parameters
    # (flowprep.flow.tvl1.params.LAYER_PARAMS: `--flow-param NAME=VALUE`), as (name, value) pairs,
    # every one resolved here, so the stored config states them all (a run stored before these
    # fields existed reads as the defaults, which are what it used)
    flow_on: str = "frames"
    flow_layer: tuple[tuple[str, Any], ...] = ()
    # optimisation
    epochs: int = 30
    batch_size: int | None = None  # None: twostream.core.schedule.default_batch_size of the training videos
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    lr_steps: tuple[int, ...] | None = None  # epochs after which the step schedule multiplies lr by gamma
    gamma: float = 0.1
    seed: int = 0
    # validation during training, with a fast protocol, on the held-out videos (--holdout); on the
    # split's test videos only when asked (val_on_test: a run without the field validated on them
    # when it held out nothing)
    val_every: int = 1  # epochs; 0 = never
    val_clips: int = 5
    val_crops: str = "center"
    val_batch_size: int = 32
    val_on_test: bool = False
    tensorboard: bool | None = None  # RUN/tensorboard event files; None: when the package is installed
    # where training samples are decoded (DECODE_ON); a run without the key decoded in the loader
    decode_on: str = "loader"
    # how the run executes: RunOptions

    def __post_init__(self) -> None:
        check_choice("stream", self.stream, STREAMS)
        check_split(self.split)
        check(0.0 <= self.holdout < 1.0, f"holdout must be a fraction in [0, 1), got {self.holdout!r}")
        check_positive_int("flow length", self.flow_length)
        check_choice("flow stack", self.flow_stack, FLOW_STACKS)
        if self.flow_stack == "bidirectional":
            check(self.flow_length % 2 == 0,
                   "a bidirectional stack takes L/2 fields each way, so the flow length must be even; "
                   f"got {self.flow_length}")
        check_positive_int("crop size", self.crop_size)
        check_positive_int("segments", self.segments)
        family_of(self.backbone)  # ValueError naming the accepted names
        check_non_negative_int("clip", self.clip)
        check_positive_int("clip stride", self.clip_stride)
        if self.stream in WINDOW_STREAMS:
            check(self.clip >= 2, f"the {self.stream} stream takes a window of --clip T frames (T >= 2, e.g. 10) "
                                  f"for a 2D backbone; got --clip {self.clip}")
            check(not is_video(self.backbone), f"the {self.stream} stream takes a 2D backbone (an image network: "
                                                f"{', '.join(IMAGE_BACKBONES)} or timm:NAME); got {self.backbone!r}")
        elif self.clip:
            check(is_video(self.backbone), f"--clip {self.clip} makes a 3D stream: the backbone must be a video "
                                            f"network ({', '.join(VIDEO_BACKBONES)}); got {self.backbone!r}")
            check(self.mean_subtraction, "--no-mean-subtraction is not available for clip streams (a clip's "
                                          "x and y channels share one shift per channel); leave the flow as stored")
            check(self.flow_stack == "forward", f"a flow clip is T consecutive forward fields; --flow-stack "
                                                 f"{self.flow_stack} applies to 2D stacks only")
        else:
            check(not is_video(self.backbone), f"{self.backbone} is a video network: give --clip T (frames per "
                                                f"clip, e.g. 16)")
        check(not self.motion_attention or (self.stream == "spatial" and not self.clip),
              "--motion-attention weighs a 2D spatial stream's feature map with the flow beside its frame; "
              f"got --stream {self.stream}" + (f" --clip {self.clip}" if self.clip else ""))
        self._check_flow_layer()
        check(self.pretrained is None or self.weights is None,
               f"give either --pretrained (a local file) or --weights (torchvision's), not both; "
               f"got {self.pretrained!r} and {self.weights!r}")
        defaults = STREAM_DEFAULTS[self.stream]
        for name in ("dropout", "lr", "color_jitter"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, defaults[name])
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout!r}")
        check(self.lr > 0, f"learning rate must be positive, got {self.lr!r}")
        check(0.0 <= self.color_jitter < 1.0, f"colour jitter must be in [0, 1), got {self.color_jitter!r}")
        check(self.stream == "spatial" or self.color_jitter == 0.0,
               f"colour jitter applies to RGB frames only; the {self.stream} stream takes 0, got {self.color_jitter!r}")
        check_positive_int("epochs", self.epochs)
        if self.batch_size is not None:
            check_positive_int("batch size", self.batch_size)
        check_choice("decode on", self.decode_on, DECODE_ON)
        check(self.decode_on == "loader" or (self.stream in ("spatial", "temporal") and not self.clip
                                             and not self.motion_attention),
              "--decode-on device decodes the frames and flow stacks of the 2D spatial and temporal streams; "
              f"use --decode-on loader for --stream {self.stream}"
              + (f" --clip {self.clip}" if self.clip else "") + (" --motion-attention" if self.motion_attention else ""))
        check_fit_fields(self)

    def _check_flow_layer(self) -> None:
        check_choice("flow on", self.flow_on, FLOW_PLACEMENTS)
        if self.stream != "learned-flow":
            check(self.flow_on == "frames" and not self.flow_layer,
                  f"--flow-on and --flow-param set the learned-flow stream's TV-L1 layer; got --stream {self.stream}")
            return
        check(self.flow_on == "frames" or family_of(self.backbone) in FLOW_FEATURE_FAMILIES,
              f"--flow-on features cuts the backbone after its first stage: a torchvision ResNet "
              f"({', '.join(b for b, f in IMAGE_BACKBONES.items() if f in FLOW_FEATURE_FAMILIES)}); "
              f"got {self.backbone!r}")
        try:
            pairs = dict(self.flow_layer)
        except (TypeError, ValueError):
            raise ValueError(f"flow layer parameters must be (name, value) pairs, got {self.flow_layer!r}") from None
        object.__setattr__(self, "flow_layer", tuple(sorted(layer_params(pairs).items())))

    @property
    def in_channels(self) -> int:
        if self.stream == "spatial" or self.stream in WINDOW_STREAMS:
            return 3
        return 2 if self.clip else 2 * self.flow_length

    @property
    def motion_channels(self) -> int:
        """Channels of the flow stack a motion-attended spatial stream reads beside its frame; else 0."""
        return 2 * self.flow_length if self.motion_attention else 0


RUN_FIELDS = frozenset({"extraction", "out", *RUN_OPTIONS, "val_every", "val_clips", "val_crops", "val_batch_size",
                        "val_on_test", "tensorboard", "decode_on"})


@dataclass(frozen=True)
class EvalConfig(RunOptions):
    checkpoint: str
    extraction: str  # extraction folder
    out: str  # per-video scores file (.npz)
    split: str = "split1"
    subset: str = "test"  # which videos of the split: test, train (those trained on), val (held out by --holdout)
    clips: int = 25  # frames or stacks per video, uniformly spaced
    crops: str = "ten"
    stream: str | None = None  # if given, the checkpoint must be of this stream
    batch_size: int = 16  # clips per batch (each clip is `crops` network inputs)
    # and how it executes: RunOptions

    def __post_init__(self) -> None:
        check_split(self.split)
        check_choice("subset", self.subset, SUBSETS)
        check_positive_int("clips", self.clips)
        check_choice("crops", self.crops, CROPS)
        if self.stream is not None:
            check_choice("stream", self.stream, STREAMS)
        check_positive_int("batch size", self.batch_size)
        self.check_run_options()
