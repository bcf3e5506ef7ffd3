"""The frozen configurations of the commands that write extraction folders.

`ExtractConfig` holds everything that decides what `flowprep extract` puts in the shards
(sampling, size, flow method and parameters, bound, codecs). It is validated on construction,
stored as JSON in every shard and in the folder's config.json, and compared on resume: a folder
made with another ExtractConfig is refused. Names are resolved once, when a config is made: it
carries the flow method's registry entry (FlowMethod) and the Codecs, and stores their names.
`ExtractRun` adds what only decides how the job runs (paths, workers, shard size).
`ImportConfig` is the same for `flowprep import-rawframes`: what imported shards contain and what
was assumed about the tree. `parse_settings` reads either back from what a folder or shard stores.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from flowprep.flow.backend import FlowMethod
from flowprep.flow.registry import FLOW_METHODS, get_method
from flowprep.format.codecs import Codec, parse_codec
from flowprep.format.quantize import DEFAULT_BOUND
from runkit.files import parse_json

# Measured by `make bench-codecs` and `make bench-train` (docs/benchmarks.md, "Choice of codecs"): JPEG keeps
# frames 5-10x smaller than lossless storage. Flow fields are smooth: at quality 80 a field takes
# half the space of quality 95 (denseflow's), the mean error is 0.026 px (a sixth of one
# quantisation step; TV-L1's own error is ~3 px), and the temporal stream's loader, which spends
# its time decoding flow, runs ~9% faster than with 90 or 95.
DEFAULT_RGB_CODEC = "jpeg:95"
DEFAULT_FLOW_CODEC = "jpeg:80"
# Frames keep their aspect ratio by default, shorter side 256: what mmaction2 does for Kinetics,
# whose videos (like a phone's) are mostly 16:9, which a fixed 340x256 would squash into 4:3.
# TSN_SIZE, 340x256, is the TSN protocol on UCF101 / HMDB51, whose 320x240 sources are 4:3 already;
# it is still there as `--size 340x256`, and folders made with it (before this default) store it.
DEFAULT_SHORT_SIDE = 256
TSN_SIZE = (340, 256)  # width, height
ORIGIN = "rawframes"  # ImportConfig's marker in the config a shard stores
BACKWARD_MODES = ("files", "negate")
SCHEDULER_TIMEOUT_S = 30.0  # --scheduler-timeout: distributed's own default for a connection


@dataclass(frozen=True)
class ExtractConfig:
    # the backend's registry entry; given a name (a stored config's, a test's), resolved here, once
    flow_method: FlowMethod = "tvl1"
    # Complete, resolved parameters of the flow method as sorted (name, value) pairs, so the
    # stored config states every value used, not only the ones a user overrode.
    flow_params: tuple[tuple[str, Any], ...] = ()
    # a fixed width x height, or a short side (the other side keeps the aspect ratio); neither
    # given: short side DEFAULT_SHORT_SIDE, resolved here so the stored config states it
    width: int | None = None
    height: int | None = None
    short_side: int | None = None
    fps: float | None = None
    stride: int = 1
    max_frames: int | None = None
    bound: float = DEFAULT_BOUND
    mean_subtraction: bool = True
    # the codecs; given names (`jpeg:95`), parsed here, once
    rgb_codec: Codec = DEFAULT_RGB_CODEC
    flow_codec: Codec = DEFAULT_FLOW_CODEC

    def __post_init__(self) -> None:
        if not isinstance(self.flow_method, FlowMethod):
            object.__setattr__(self, "flow_method", get_method(self.flow_method))
        resolved = self.flow_method.resolve(dict(self.flow_params))
        object.__setattr__(self, "flow_params", tuple(sorted(resolved.items())))
        resolve_codecs(self)
        if self.width is None and self.height is None and self.short_side is None:
            object.__setattr__(self, "short_side", DEFAULT_SHORT_SIDE)
        if self.short_side is not None:
            if self.width is not None or self.height is not None:
                raise ValueError("give either a fixed size (width x height) or a short side, not both")
            _positive("short side", self.short_side)
        else:
            if self.width is None or self.height is None:
                raise ValueError("give a fixed size (width x height) or a short side")
            _positive("width", self.width)
            _positive("height", self.height)
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps!r}")
        if self.fps is not None and self.stride != 1:
            raise ValueError(f"give either a target fps or a stride, not both (got fps={self.fps!r}, stride={self.stride!r})")
        _positive("stride", self.stride)
        if self.max_frames is not None and self.max_frames < 2:
            raise ValueError(f"max frames must be at least 2 (one frame pair), got {self.max_frames!r}")
        if not self.bound > 0:
            raise ValueError(f"bound must be positive, got {self.bound!r}")

    @property
    def flow_params_dict(self) -> dict[str, Any]:
        return dict(self.flow_params)

    def to_dict(self) -> dict[str, Any]:
        """As stored (config.json, every shard): the method and codecs by name."""
        data = {**_values(self), "flow_method": self.flow_method.name, "flow_params": self.flow_params_dict}
        return {**data, "rgb_codec": str(self.rgb_codec), "flow_codec": str(self.flow_codec)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ExtractConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown extraction config keys: {', '.join(sorted(unknown))}")
        data = dict(data)
        data["flow_params"] = tuple(sorted(dict(data.get("flow_params", {})).items()))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "ExtractConfig":
        return cls.from_dict(parse_json(text, dict))


@dataclass(frozen=True)
class ExtractRun:
    """One `flowprep extract` invocation: the extraction config plus how to run it."""

    manifest: Path
    video_root: Path
    out_dir: Path
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    # worker processes, or with a batched backend the threads beside each device; 0 = all cores
    workers: int = 0
    shard_size_mb: float = 1024.0
    overwrite: bool = False
    # where a batched backend computes flow: cpu, cuda, cuda:N, or several GPUs cuda:0,cuda:1 (one
    # process each). Not part of the extraction config: a run resumes on any device.
    device: str = "cpu"
    batch: int = 0  # flow fields per device batch; 0 = DEFAULT_BATCH for the device's kind
    # an extraction split into `num_parts` (SLURM array tasks, say): this run does part `part`,
    # the videos whose id hashes to it (`part_of`), into its own folder OUT/parts/...
    num_parts: int = 1
    part: int = 0
    # a Dask scheduler (tcp:// or tls://) whose workers run the per-video jobs, and the TLS
    # credentials of a tls:// one (None: distributed's own configuration, if any)
    scheduler: str | None = None
    tls_ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    scheduler_timeout: float = SCHEDULER_TIMEOUT_S  # to connect to the scheduler and read its handshake
    # read videos that resolve outside the video root (a symlink in it to elsewhere); by default
    # each is a failures record. Not part of the extraction config: it decides what is read, not how.
    follow_symlinks: bool = False
    # keep a video whose decoder reports damage, with a warning (in its shard and the run's output);
    # by default each is a failures record. Not part of the extraction config: it decides what is kept.
    allow_decode_errors: bool = False

    def __post_init__(self) -> None:
        check_run_options(self.workers, self.shard_size_mb)
        if not isinstance(self.num_parts, int) or self.num_parts < 1:
            raise ValueError(f"num parts must be a positive integer, got {self.num_parts!r}")
        if not isinstance(self.part, int) or not 0 <= self.part < self.num_parts:
            raise ValueError(f"part must be 0 to {self.num_parts - 1} (--num-parts {self.num_parts}), got {self.part!r}")
        if self.scheduler is not None:
            if not re.match(r"^(tcp|tls)://[^\s/]+:\d+$", self.scheduler):
                raise ValueError(f"scheduler must be tcp://HOST:PORT or tls://HOST:PORT, got {self.scheduler!r}")
            if self.extract.flow_method.batched:
                raise ValueError(f"--scheduler runs per-video jobs of the CPU backends; for {self.extract.flow_method.name} "
                                 f"on several machines use --num-parts and --part, one GPU each")
        if not (isinstance(self.scheduler_timeout, (int, float)) and 0 < self.scheduler_timeout < float("inf")):
            raise ValueError(f"scheduler timeout must be a positive number of seconds, got {self.scheduler_timeout!r}")
        given = [p is not None for p in (self.tls_ca_file, self.tls_cert, self.tls_key)]
        if any(given) and not (self.scheduler or "").startswith("tls://"):
            raise ValueError("--tls-ca-file, --tls-cert and --tls-key go with a tls:// --scheduler")
        if any(given) and not all(given):
            raise ValueError("a tls:// scheduler needs all three of --tls-ca-file, --tls-cert and --tls-key "
                             "(or none: distributed's configuration)")
        devices = parse_devices(self.device)
        if devices != ["cpu"] and not self.extract.flow_method.batched:
            batched = ", ".join(m.name for m in FLOW_METHODS.values() if m.batched)
            raise ValueError(f"--device {self.device} needs a batched flow backend ({batched}); "
                             f"{self.extract.flow_method.name} runs on the CPU")
        if self.batch < 0:
            raise ValueError(f"batch must be 0 (the device's default) or positive, got {self.batch!r}")

    @property
    def devices(self) -> list[str]:
        return parse_devices(self.device)

    @property
    def n_workers(self) -> int:
        """Worker processes, or threads per device: all cores (shared by the devices) unless given."""
        return self.workers or max(1, worker_count(0) // len(self.devices))

    @property
    def batch_fields(self) -> int:
        return self.batch or DEFAULT_BATCH["cuda" if self.devices[0].startswith("cuda") else "cpu"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "video_root": str(self.video_root),
            "out_dir": str(self.out_dir),
            "workers": self.n_workers,
            "shard_size_mb": self.shard_size_mb,
            "overwrite": self.overwrite,
            "device": self.device,
            "batch": self.batch_fields,
            "num_parts": self.num_parts,
            "part": self.part,
            "scheduler": self.scheduler,
            "scheduler_timeout": self.scheduler_timeout,
            "follow_symlinks": self.follow_symlinks,
            "allow_decode_errors": self.allow_decode_errors,
            "extract": self.extract.to_dict(),
        }


DEFAULT_BATCH = {"cuda": 1024, "cpu": 16}  # flow fields per device batch (both directions count)
DEVICE_HELP = "cpu, cuda, cuda:N, or several GPUs as cuda:0,cuda:1"
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def part_of(video_id: str, num_parts: int) -> int:
    """The part a video belongs to: from its id alone (a hash), so the same whatever the manifest's
    order, the number of workers or the machine, and the parts cover every video exactly once."""
    return int.from_bytes(hashlib.sha1(video_id.encode("utf-8")).digest()[:8], "big") % num_parts


def parse_devices(text: str) -> list[str]:
    """--device as a list of torch device names; ValueError naming the value otherwise."""
    devices = [d.strip() for d in str(text).split(",")]
    if not all(_DEVICE.match(d) for d in devices) or ("cpu" in devices and len(devices) > 1) \
            or len(set(devices)) != len(devices):
        raise ValueError(f"device must be {DEVICE_HELP}; got {text!r}")
    return devices


def check_run_options(workers: int, shard_size_mb: float) -> None:
    """Validate the options every shard-writing command has."""
    if workers < 0:
        raise ValueError(f"workers must be 0 (all cores) or positive, got {workers!r}")
    if not shard_size_mb > 0:
        raise ValueError(f"shard size must be positive, got {shard_size_mb!r} MB")


def worker_count(workers: int) -> int:
    """--workers as a process count: 0 means one per core."""
    return workers or (os.cpu_count() or 1)


def resolve_codecs(config: ExtractConfig | ImportConfig) -> None:
    """A frozen config's codecs as Codecs: those given by name parsed, once (CodecError naming the name)."""
    for name in ("rgb_codec", "flow_codec"):
        value = getattr(config, name)
        if not isinstance(value, Codec):
            object.__setattr__(config, name, parse_codec(value))


def _values(config: Any) -> dict[str, Any]:
    """A dataclass's fields and values in their order, not recursed into (asdict would turn a
    FlowMethod or a Codec into a dict)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _positive(what: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class ImportConfig:
    """What imported shards contain and what was assumed about the tree; stored with them."""

    origin: str = ORIGIN
    # the bound the flow images were quantised with, and whether their mean vectors had been
    # subtracted; None: from the tree's flowprep_export.json, else DEFAULT_BOUND (what
    # mmaction2's scripts pass to denseflow) and False, resolved when the run starts like
    # backward_flow, so a stored config is always resolved
    bound: float | None = None
    # one of BACKWARD_MODES; None: chosen from the tree when the run starts ('files' if its
    # folders hold backward_flow_* images, else 'negate')
    backward_flow: str | None = None
    mean_subtracted: bool | None = None
    fps: float | None = None  # the frame rate of the frames, when the user knows it
    rgb_codec: Codec = DEFAULT_RGB_CODEC  # given names, parsed here, once
    flow_codec: Codec = DEFAULT_FLOW_CODEC

    def __post_init__(self) -> None:
        if self.origin != ORIGIN:
            raise ValueError(f"origin must be {ORIGIN!r}, got {self.origin!r}")
        if self.bound is not None and not self.bound > 0:
            raise ValueError(f"bound must be positive, got {self.bound!r}")
        if self.backward_flow is not None and self.backward_flow not in BACKWARD_MODES:
            raise ValueError(f"backward flow must be one of {', '.join(BACKWARD_MODES)}, got {self.backward_flow!r}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive, got {self.fps!r}")
        resolve_codecs(self)

    def to_dict(self) -> dict[str, Any]:
        """As stored: the codecs by name."""
        return {**_values(self), "rgb_codec": str(self.rgb_codec), "flow_codec": str(self.flow_codec)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ImportConfig":
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown import config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


def parse_settings(kind: str, settings: dict[str, Any]) -> ExtractConfig | ImportConfig:
    """The config of a folder's kind ("extract" or "import", config.json's key) from its stored
    settings; ValueError or TypeError naming what does not parse."""
    if kind == "import":
        return ImportConfig.from_dict(settings)
    return ExtractConfig.from_dict(settings)


def parse_shard_settings(text: str) -> ExtractConfig | ImportConfig:
    """The config a shard stores (its `extract_config` attribute): imported shards say their origin."""
    data = parse_json(text, dict)
    return parse_settings("import" if data.get("origin") == ORIGIN else "extract", data)


def stored_flow(kind: str, settings: dict[str, Any]) -> tuple[float | None, bool | None]:
    """(bound, whether each field had its mean vector subtracted) of the flow a folder of `kind`
    stores, read from its stored settings by their owner; ValueError or TypeError if they do not parse."""
    config = parse_settings(kind, settings)
    if isinstance(config, ImportConfig):
        return config.bound, config.mean_subtracted
    return config.bound, config.mean_subtraction
