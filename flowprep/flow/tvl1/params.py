"""The parameters of dual TV-L1 and their defaults: one declaration for its two backends, `tvl1`
(OpenCV, methods.py) and `tvl1-torch` (PyTorch, solver.py), so that both start from one set."""
from __future__ import annotations

from flowprep.flow.backend import Param

# OpenCV's own defaults use a 5-level pyramid with scale step 0.8: the coarsest level is 0.41x
# the input, so displacements beyond ~10 px are lost (average endpoint error 6.4 px on the 9
# FlyingChairs pairs of shared/data/flow_gt). nscales=8 alone gives 4.8 px; with scale step 0.7
# the coarsest level is 0.08x the input and the error drops to 3.2 px, and real 340x256 video
# runs faster than with OpenCV's defaults, as the solver converges sooner from a better coarse
# estimate. From that start, 3 warpings per level instead of 5 give the same error, a third
# faster. `make bench-flow-params` measures these (docs/benchmarks.md, "Choosing the TV-L1 defaults").
TVL1_PARAMS = (
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
)

# The learned TV-L1 layer's (tvl1/layer.py; twostream's learned-flow stream, `train --flow-param`):
# TV-L1's step sizes, as the layer's initial values (it learns them), and the iterations it unrolls,
# fixed so that it batches and backpropagates. By default one warping of 10 iterations at one scale
# (TVNet's and Representation Flow's order) on its input pooled by 2. `pool` and `lr_scale` say how
# the stream uses the layer.
_TVL1 = {p.name: p for p in TVL1_PARAMS}
LAYER_PARAMS = (
    _TVL1["tau"], _TVL1["lambda"], _TVL1["theta"],
    Param("nscales", int, 1, "pyramid levels, coarse to fine, each scale_step the size of the next"),
    _TVL1["scale_step"],
    Param("warps", int, 1, "warpings per pyramid level"),
    Param("inner_iterations", int, 10, "iterations per warping"),
    Param("pool", int, 2, "the layer's input (frames or feature maps) average-pooled by this factor, its flow "
                          "resized back: a quarter of the cost, twice the reach"),
    Param("lr_scale", float, 0.01, "the layer's parameters learn at this fraction of the learning rate (0: fixed)"),
)
_LAYER = {p.name: p for p in LAYER_PARAMS}
_POSITIVE = ("tau", "lambda", "theta")
_AT_LEAST_ONE = ("nscales", "warps", "inner_iterations", "pool")


def layer_params(overrides: dict | None = None) -> dict:
    """Every LAYER_PARAMS value: the defaults, with `overrides` (typed values or command-line text)
    checked; ValueError in one line naming the bad name or value and what is accepted."""
    values = {p.name: p.default for p in LAYER_PARAMS}
    for name, value in (overrides or {}).items():
        if name not in _LAYER:
            raise ValueError(f"unknown learned flow layer parameter {name!r}; accepted: {', '.join(_LAYER)}")
        try:
            values[name] = _LAYER[name].check(value)
        except ValueError as exc:
            raise ValueError(f"the flow layer's {exc}") from None
    for name in _POSITIVE:
        if not values[name] > 0:
            raise ValueError(f"the flow layer's {name} must be positive, got {values[name]!r}")
    for name in _AT_LEAST_ONE:
        if values[name] < 1:
            raise ValueError(f"the flow layer's {name} must be at least 1, got {values[name]!r}")
    if not 0 < values["scale_step"] < 1:
        raise ValueError(f"the flow layer's scale_step must be between 0 and 1, got {values['scale_step']!r}")
    if not values["lr_scale"] >= 0:
        raise ValueError(f"the flow layer's lr_scale must be 0 or more, got {values['lr_scale']!r}")
    return values
