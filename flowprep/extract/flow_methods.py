"""Optical flow backends behind one registry.

Every backend has two entry points, both built from a full, validated parameter dict:
- one pair: `flow(prev_gray, next_gray) -> (H, W, 2) float32`, the displacement that maps prev to
  next (forward flow when called as flow(frame_t, frame_t+1));
- a batch (`BatchFlow`): frames of many pairs in, (N, H, W) uint8 each, and out either their
  fields (`flow`) or the fields as flowprep stores them, mean-subtracted and quantised
  (`codes`). The OpenCV backends loop over the pairs (`PairLoop`); `tvl1-torch` computes the
  whole batch at once on a device (`flowprep.extract.tvl1_torch`, imported only when chosen).
Factories build their algorithm objects once, inside the process that uses them: OpenCV
algorithm objects cannot be pickled.

Parameters are declared with their defaults and types so the CLI (`flowprep methods`,
`--flow-param name=value`) and the stored extraction config share one description. The device
a backend runs on is not a parameter: it does not change what the shards hold.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import cv2
import numpy as np

from flowprep.format.quantize import field_mean, quantize_planes

FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class FlowError(Exception):
    """A batch of flow that could not be computed (e.g. out of device memory for even one pair)."""


class BatchFlow(Protocol):
    """Flow of a batch of pairs of one size: (N, H, W) uint8 grey frames `first` and `second`."""

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """(N, H, W, 2) float32: the displacement from each first frame to its second."""

    def codes(self, first: np.ndarray, second: np.ndarray, bound: float,
              mean_subtraction: bool) -> tuple[np.ndarray, np.ndarray]:
        """The fields as stored: uint8 code planes (N, 2, H, W) and the subtracted means (N, 2)."""


def check_batch(first: np.ndarray, second: np.ndarray) -> None:
    """A batch is pairs of frames of one size; anything else is refused, naming both shapes."""
    if first.shape != second.shape or first.ndim != 3 or first.shape[0] == 0:
        raise ValueError(f"a flow batch is N pairs of frames of one size, (N, H, W) and (N, H, W) with N >= 1; "
                         f"got {first.shape} and {second.shape}")


class PairLoop:
    """A one-pair backend as a BatchFlow: the pairs one after another, quantised on the CPU."""

    def __init__(self, flow: FlowFn) -> None:
        self.pair_flow = flow

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
                             f"backend ({', '.join(m.name for m in FLOW_METHODS.values() if m.batched)})")
        return PairLoop(self.create(params))


# --- TV-L1 (OpenCV contrib) -------------------------------------------------------------------
# OpenCV's own defaults use a 5-level pyramid with scale step 0.8: the coarsest level is 0.41x
# the input, so displacements beyond ~10 px are lost (average endpoint error 6.4 px on the 9
# FlyingChairs pairs of shared/data/flow_gt). nscales=8 alone gives 4.8 px; with scale step 0.7
# the coarsest level is 0.08x the input and the error drops to 3.2 px, and real 340x256 video
# runs faster than with OpenCV's defaults, as the solver converges sooner from a better coarse
# estimate. From that start, 3 warpings per level instead of 5 give the same error, a third
# faster. `make bench-flow-params` measures these (README, "Choosing the TV-L1 defaults").
_TVL1_SETTERS = {
    "tau": "setTau",
    "lambda": "setLambda",
    "theta": "setTheta",
    "nscales": "setScalesNumber",
    "warps": "setWarpingsNumber",
    "epsilon": "setEpsilon",
    "inner_iterations": "setInnerIterations",
    "outer_iterations": "setOuterIterations",
    "scale_step": "setScaleStep",
    "gamma": "setGamma",
    "median_filtering": "setMedianFiltering",
}


def _make_tvl1(params: Mapping[str, Any]) -> FlowFn:
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    for name, setter in _TVL1_SETTERS.items():
        getattr(algo, setter)(params[name])

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return algo.calc(prev, nxt, None)

    return flow


TVL1 = FlowMethod(
    name="tvl1",
    summary="Dual TV-L1 (Zach et al. 2007; OpenCV contrib), the flow of the two-stream and TSN papers. Accurate, ~1 pair/s at 340x256 on one core.",
    params=(
        Param("tau", float, 0.25, "time step of the numerical scheme"),
        Param("lambda", float, 0.15, "weight of the data term (smaller = smoother flow)"),
        Param("theta", float, 0.3, "tightness of the coupling between the two sub-problems"),
        Param("nscales", int, 8, "pyramid levels (OpenCV default 5; 8 handles large motion)"),
        Param("warps", int, 3, "warpings per pyramid level (OpenCV default 5)"),
        Param("epsilon", float, 0.01, "stopping threshold"),
        Param("inner_iterations", int, 30, "inner iterations per warping"),
        Param("outer_iterations", int, 10, "outer iterations per warping"),
        Param("scale_step", float, 0.7, "downscale factor between pyramid levels (OpenCV default 0.8)"),
        Param("gamma", float, 0.0, "weight of the illumination term"),
        Param("median_filtering", int, 5, "median filter size applied to the flow (1 = off)"),
    ),
    factory=_make_tvl1,
)


# --- TV-L1 in PyTorch ----------------------------------------------------------------------------------
def _torch_tvl1(params: Mapping[str, Any], device: str = "cpu"):
    from flowprep.extract.tvl1_torch import TorchTVL1, TVL1Params  # torch only when this backend is chosen

    return TorchTVL1(TVL1Params.from_method(params), device)


def _make_tvl1_torch(params: Mapping[str, Any]) -> FlowFn:
    backend = _torch_tvl1(params)
    return lambda prev, nxt: backend.flow(prev[None], nxt[None])[0]


TVL1_TORCH = FlowMethod(
    name="tvl1-torch",
    summary="OpenCV's dual TV-L1 in PyTorch, many pairs at once on a GPU (--device cuda) or the CPU; the same "
            "parameters and defaults as tvl1, and the same flow to float rounding.",
    params=TVL1.params,
    factory=_make_tvl1_torch,
    batch_factory=_torch_tvl1,
)


# --- Farneback ---------------------------------------------------------------------------------
def _make_farneback(params: Mapping[str, Any]) -> FlowFn:
    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(
            prev, nxt, None,
            params["pyr_scale"], params["levels"], params["winsize"], params["iterations"],
            params["poly_n"], params["poly_sigma"], 0,
        )

    return flow


FARNEBACK = FlowMethod(
    name="farneback",
    summary="Farneback polynomial-expansion flow (OpenCV). Fast (~80 pairs/s), less accurate.",
    params=(
        Param("pyr_scale", float, 0.5, "scale between pyramid levels (<1)"),
        Param("levels", int, 5, "pyramid levels"),
        Param("winsize", int, 15, "averaging window size"),
        Param("iterations", int, 3, "iterations per pyramid level"),
        Param("poly_n", int, 5, "neighbourhood of the polynomial expansion (5 or 7)"),
        Param("poly_sigma", float, 1.2, "Gaussian sigma of the polynomial expansion"),
    ),
    factory=_make_farneback,
)


# --- DIS ---------------------------------------------------------------------------------------
_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
_DIS_SETTERS = {
    "finest_scale": "setFinestScale",
    "patch_size": "setPatchSize",
    "patch_stride": "setPatchStride",
    "gradient_descent_iterations": "setGradientDescentIterations",
    "variational_refinement_iterations": "setVariationalRefinementIterations",
    "variational_refinement_alpha": "setVariationalRefinementAlpha",
    "variational_refinement_delta": "setVariationalRefinementDelta",
    "variational_refinement_gamma": "setVariationalRefinementGamma",
    "use_mean_normalization": "setUseMeanNormalization",
    "use_spatial_propagation": "setUseSpatialPropagation",
}


def _make_dis(params: Mapping[str, Any]) -> FlowFn:
    algo = cv2.DISOpticalFlow_create(_DIS_PRESETS[params["preset"]])
    for name, setter in _DIS_SETTERS.items():
        if params[name] is not None:  # None keeps the preset's value
            getattr(algo, setter)(params[name])

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        # DIS asserts contiguous input; a cropped view of a frame is not
        return algo.calc(np.ascontiguousarray(prev), np.ascontiguousarray(nxt), None)

    return flow


DIS = FlowMethod(
    name="dis",
    summary="Dense Inverse Search (Kroeger et al. 2016; OpenCV). Very fast; the medium preset is nearly as accurate as the TV-L1 default on FlyingChairs.",
    params=(
        Param("preset", str, "medium", "speed/quality preset", choices=tuple(_DIS_PRESETS)),
        Param("finest_scale", int, None, "finest pyramid level used (0 = full resolution)"),
        Param("patch_size", int, None, "patch size in pixels"),
        Param("patch_stride", int, None, "stride between patches"),
        Param("gradient_descent_iterations", int, None, "gradient descent iterations per patch"),
        Param("variational_refinement_iterations", int, None, "variational refinement iterations (0 = off)"),
        Param("variational_refinement_alpha", float, None, "smoothness weight of the refinement"),
        Param("variational_refinement_delta", float, None, "colour constancy weight of the refinement"),
        Param("variational_refinement_gamma", float, None, "gradient constancy weight of the refinement"),
        Param("use_mean_normalization", bool, None, "normalise patch means (robust to illumination)"),
        Param("use_spatial_propagation", bool, None, "propagate good patches to neighbours"),
    ),
    factory=_make_dis,
)


FLOW_METHODS: dict[str, FlowMethod] = {m.name: m for m in (TVL1, TVL1_TORCH, FARNEBACK, DIS)}


def get_method(name: str) -> FlowMethod:
    try:
        return FLOW_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown flow method {name!r}; choose one of: {', '.join(FLOW_METHODS)}") from None


def make_flow(name: str, params: Mapping[str, Any] | None = None) -> FlowFn:
    """Build the flow function of backend `name` with `params` over its defaults."""
    return get_method(name).create(params)
