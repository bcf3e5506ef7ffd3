"""Dual TV-L1, the flow of the two-stream and TSN papers, as two registry entries: `tvl1`
(OpenCV contrib, one pair at a time, computed here) and `tvl1-torch` (the same algorithm in
PyTorch on many pairs at once, solver.py, imported only when chosen: torch is not needed
otherwise). Both take the parameters of params.py."""
from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from flowprep.flow.backend import FlowFn, FlowMethod
from flowprep.flow.tvl1.params import TVL1_PARAMS

# OpenCV setter of each parameter (params.py says why the defaults differ from OpenCV's)
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
    params=TVL1_PARAMS,
    factory=_make_tvl1,
)


def _torch_tvl1(params: Mapping[str, Any], device: str = "cpu"):
    from flowprep.flow.tvl1.solver import TorchTVL1, TVL1Params  # torch only when this backend is chosen

    return TorchTVL1(TVL1Params.from_method(params), device)


def _make_tvl1_torch(params: Mapping[str, Any]) -> FlowFn:
    backend = _torch_tvl1(params)
    return lambda prev, nxt: backend.flow(prev[None], nxt[None])[0]


TVL1_TORCH = FlowMethod(
    name="tvl1-torch",
    summary="OpenCV's dual TV-L1 in PyTorch, many pairs at once on a GPU (--device cuda) or the CPU; the same "
            "parameters and defaults as tvl1, and the same flow to float rounding.",
    params=TVL1_PARAMS,
    factory=_make_tvl1_torch,
    batch_factory=_torch_tvl1,
)
