"""The frozen configurations of `flowprep extract`.

`ExtractConfig` holds everything that decides what the shards contain (sampling, size, flow
method and parameters, bound, codecs). It is validated on construction, stored as JSON in every
shard and in the output folder, and compared on resume: a folder made with another ExtractConfig
is refused. `ExtractRun` adds what only decides how the job runs (paths, workers, shard size).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from flowprep.extract.flow_methods import get_method
from flowprep.format.codecs import parse_codec
from flowprep.format.quantize import DEFAULT_BOUND

# Measured by `make bench-codecs` and `make bench-train` (README, "Choice of codecs"): JPEG keeps
# frames 5-10x smaller than lossless storage. Flow fields are smooth: at quality 80 a field takes
# half the space of quality 95 (denseflow's), the mean error is 0.026 px (a sixth of one
# quantisation step; TV-L1's own error is ~3 px), and the temporal stream's loader, which spends
# its time decoding flow, runs ~9% faster than with 90 or 95.
DEFAULT_RGB_CODEC = "jpeg:95"
DEFAULT_FLOW_CODEC = "jpeg:80"
DEFAULT_SIZE = (340, 256)  # width, height: TSN / denseflow's resolution for UCF101


@dataclass(frozen=True)
class ExtractConfig:
    flow_method: str = "tvl1"
    # Complete, resolved parameters of the flow method as sorted (name, value) pairs, so the
    # stored config states every value used, not only the ones a user overrode.
    flow_params: tuple[tuple[str, Any], ...] = ()
    width: int | None = DEFAULT_SIZE[0]
    height: int | None = DEFAULT_SIZE[1]
    short_side: int | None = None
    fps: float | None = None
    stride: int = 1
    max_frames: int | None = None
    bound: float = DEFAULT_BOUND
    mean_subtraction: bool = True
    rgb_codec: str = DEFAULT_RGB_CODEC
    flow_codec: str = DEFAULT_FLOW_CODEC

    def __post_init__(self) -> None:
        method = get_method(self.flow_method)
        resolved = method.resolve(dict(self.flow_params))
        object.__setattr__(self, "flow_params", tuple(sorted(resolved.items())))
        object.__setattr__(self, "rgb_codec", str(parse_codec(self.rgb_codec)))
        object.__setattr__(self, "flow_codec", str(parse_codec(self.flow_codec)))
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
        data = asdict(self)
        data["flow_params"] = self.flow_params_dict
        return data

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
        return cls.from_dict(json.loads(text))

    def describe_differences(self, other: "ExtractConfig") -> list[str]:
        """Human-readable `key: ours != theirs` lines, for the refuse-to-mix message."""
        mine, theirs = self.to_dict(), other.to_dict()
        lines = []
        for key in mine:
            if mine[key] != theirs[key]:
                if isinstance(mine[key], dict):
                    for sub in sorted(set(mine[key]) | set(theirs[key])):
                        if mine[key].get(sub) != theirs[key].get(sub):
                            lines.append(f"{key}.{sub}: {theirs[key].get(sub)!r} -> {mine[key].get(sub)!r}")
                else:
                    lines.append(f"{key}: {theirs[key]!r} -> {mine[key]!r}")
        return lines


@dataclass(frozen=True)
class ExtractRun:
    """One `flowprep extract` invocation: the extraction config plus how to run it."""

    manifest: Path
    video_root: Path
    out_dir: Path
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    workers: int = 0  # 0 = all cores
    shard_size_mb: float = 1024.0
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_run_options(self.workers, self.shard_size_mb)

    @property
    def n_workers(self) -> int:
        return worker_count(self.workers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": str(self.manifest),
            "video_root": str(self.video_root),
            "out_dir": str(self.out_dir),
            "workers": self.n_workers,
            "shard_size_mb": self.shard_size_mb,
            "overwrite": self.overwrite,
            "extract": self.extract.to_dict(),
        }


def check_run_options(workers: int, shard_size_mb: float) -> None:
    """Validate the options every shard-writing command has."""
    if workers < 0:
        raise ValueError(f"workers must be 0 (all cores) or positive, got {workers!r}")
    if not shard_size_mb > 0:
        raise ValueError(f"shard size must be positive, got {shard_size_mb!r} MB")


def worker_count(workers: int) -> int:
    """--workers as a process count: 0 means one per core."""
    return workers or (os.cpu_count() or 1)


def _positive(what: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
