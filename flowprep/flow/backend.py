"""What a flow backend is: its declared parameters (`Param`), its registry entry (`FlowMethod`)
and its two entry points, both built from a full, validated parameter dict:
- one pair: `flow(prev_gray, next_gray) -> (H, W, 2) float32`, the displacement that maps prev to
  next (forward flow when called as flow(frame_t, frame_t+1));
- a batch (`BatchFlow`): frames of many pairs in, (N, H, W) uint8 each, and out either their
  fields (`flow`) or the fields as flowprep stores them, mean-subtracted and quantised
  (`codes`). The OpenCV backends loop over the pairs (`PairLoop`); `tvl1-torch` computes the
  whole batch at once on a device (`flowprep.flow.tvl1.solver`, imported only when chosen).
Factories build their algorithm objects once, inside the process that uses them: OpenCV
algorithm objects cannot be pickled.

Parameters are declared with their defaults and types so the CLI (`flowprep methods`,
`--flow-param name=value`) and the stored extraction config share one description. The device
a backend runs on is not a parameter: it does not change what the shards hold. The backends
are one module each beside this one; `flowprep.flow.registry` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from flowprep.format.quantize import field_mean, quantize_planes

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class FlowError(Exception):
    """A batch of flow that could not be computed (e.g. out of device memory for even one pair)."""


class BatchFlow(Protocol):
    """Flow of a batch of pairs of one size: (N, H, W) uint8 grey frames `first` and `second`;
    everything the extraction's batcher (flowprep.extract.batched) asks of a backend."""

    # how the backend runs the flow, as a run's summary reports it (tvl1-torch: "triton",
    # "compile" or "eager"; a PairLoop: "pairs")
    path: str

    def fields_that_fit(self, height: int, width: int) -> int | None:
        """Fields of height x width that the device's free memory holds in one batch; None when
        nothing bounds it (the CPU): the batcher then keeps its own maximum."""

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """(N, H, W, 2) float32: the displacement from each first frame to its second."""

    def codes(self, first: np.ndarray, second: np.ndarray, bound: float,
              mean_subtraction: bool) -> tuple[np.ndarray, np.ndarray]:
        """The fields as stored: uint8 code planes (N, 2, H, W) and the subtracted means (N, 2)."""

    def transfers(self, bound: float, mean_subtraction: bool, max_fields: int) -> Any:
        """The steps of `codes` one at a time (upload, compute, download, finish), for the
        batcher to overlap one batch's copies with another's compute (flowprep.extract.overlap's
        `Transfers`); None for a backend with no device of its own."""


def check_batch(first: np.ndarray, second: np.ndarray) -> None:
    """A batch is pairs of frames of one size; anything else is refused, naming both shapes."""
    if first.shape != second.shape or first.ndim != 3 or first.shape[0] == 0:
        raise ValueError(f"a flow batch is N pairs of frames of one size, (N, H, W) and (N, H, W) with N >= 1; "
                         f"got {first.shape} and {second.shape}")


class PairLoop:
    """A one-pair backend as a BatchFlow: the pairs one after another, quantised on the CPU."""

    path = "pairs"

    def __init__(self, flow: FlowFn) -> None:
        self.pair_flow = flow

    def fields_that_fit(self, height: int, width: int) -> None:
        return None  # one pair at a time, in the process's own memory

    def transfers(self, bound: float, mean_subtraction: bool, max_fields: int) -> None:
        return None  # nothing to copy: the pairs are computed where they are

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        check_batch(first, second)
        return np.stack([self.pair_flow(a, b) for a, b in zip(first, second)])

    def codes(self, first: np.ndarray, second: np.ndarray, bound: float,
              mean_subtraction: bool) -> tuple[np.ndarray, np.ndarray]:
        check_batch(first, second)
        planes, means = [], []
        for a, b in zip(first, second):
            field = self.pair_flow(a, b)
            mean = field_mean(field) if mean_subtraction else np.zeros(2, np.float32)
            planes.append(quantize_planes(field, bound, mean))
            means.append(mean)
        return np.stack(planes), np.stack(means)


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    default: Any  # None means "the backend's own value" (e.g. a DIS preset's)
    help: str
    choices: tuple[str, ...] = ()

    def parse(self, text: str) -> Any:
        """Convert a command-line string to this parameter's type, or raise ValueError."""
        if self.choices:
            if text not in self.choices:
                raise ValueError(f"{self.name} must be one of {', '.join(self.choices)}, got {text!r}")
            return text
        if self.type is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{self.name} must be true or false, got {text!r}")
        try:
            return self.type(text)
        except ValueError:
            raise ValueError(f"{self.name} must be {self.type.__name__}, got {text!r}") from None

    def check(self, value: Any) -> Any:
        """Validate a value that is already typed (e.g. read back from a stored config)."""
        if value is None and self.default is None:
            return None
        if isinstance(value, str):
            return self.parse(value)
        if self.type is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if self.type is int and isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        if self.type is bool and isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise ValueError(f"{self.name} must be {self.type.__name__}, got {value!r}")


@dataclass(frozen=True)
class FlowMethod:
    name: str
    summary: str
    params: tuple[Param, ...]
    factory: Callable[[Mapping[str, Any]], FlowFn]
    # a backend that computes many pairs at once: (params, device) -> BatchFlow. Without one, the
    # batch entry point loops over `factory`'s pair function.
    batch_factory: Callable[[Mapping[str, Any], str], BatchFlow] | None = None

    @property
    def batched(self) -> bool:
        """True for backends that run whole batches on a device (the extraction feeds them in batches)."""
        return self.batch_factory is not None

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        accepted = ", ".join(p.name for p in self.params)
        raise ValueError(f"unknown parameter {name!r} for flow method {self.name!r}; accepted: {accepted}")

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Full parameter dict: defaults, with `overrides` validated and applied."""
        values = {p.name: p.default for p in self.params}
        for name, value in (overrides or {}).items():
            values[name] = self.param(name).check(value)
        return values

    def create(self, params: Mapping[str, Any] | None = None) -> FlowFn:
        return self.factory(self.resolve(params))

    def create_batch(self, params: Mapping[str, Any] | None = None, device: str = "cpu") -> BatchFlow:
        """The batch entry point on `device` ('cpu', 'cuda', 'cuda:N'; only batched backends run off the CPU)."""
        if self.batch_factory is not None:
            return self.batch_factory(self.resolve(params), device)
        if device != "cpu":
            raise ValueError(f"flow method {self.name!r} runs on the CPU only; --device {device} needs a batched "
                             f"backend (`flowprep methods` says which are)")
        return PairLoop(self.create(params))
