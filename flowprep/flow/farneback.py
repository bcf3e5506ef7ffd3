"""Farneback's polynomial-expansion flow (OpenCV): the `farneback` backend."""
from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from flowprep.flow.backend import FlowFn, FlowMethod, Param


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
