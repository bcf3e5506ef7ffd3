"""Dense Inverse Search (OpenCV): the `dis` backend."""
from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from flowprep.flow.backend import FlowFn, FlowMethod, Param

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
