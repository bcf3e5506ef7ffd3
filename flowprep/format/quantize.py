"""Mean flow subtraction, bound quantisation and the horizontal-flip sign rule.

The conventions every part of the project keeps, in one place, as pure functions on arrays:
- a flow field is float32 (H, W, 2), x (horizontal) then y (vertical) displacement in pixels;
- mean subtraction removes the field's mean vector (`field_mean`; the paper's camera-motion
  compensation), which is stored so the raw flow can be restored;
- quantisation clips to +-bound and maps linearly onto uint8 0..255 (128 ~ no motion), so
  dequantisation is exact up to one step, 2 * bound / 255;
- a horizontal flip mirrors the field and negates its x component; on uint8 data, x -> 255 - x,
  which is the exact negation after dequantisation.
"""
from __future__ import annotations

import cv2
import numpy as np

DEFAULT_BOUND = 20.0
LEVELS = 255  # uint8 codes 0..255


def quantization_step(bound: float) -> float:
    """Width in pixels of one uint8 code."""
    return 2.0 * bound / LEVELS


def quantize(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Clip a float flow to +-bound and map it to uint8: -bound -> 0, +bound -> 255."""
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    scaled = (np.clip(flow, -bound, bound) + bound) * (LEVELS / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def field_mean(flow: np.ndarray) -> np.ndarray:
    """Mean (x, y) vector of one (H, W, 2) float32 field, as float32 (2,) (OpenCV: one SIMD pass)."""
    return np.array(cv2.mean(flow)[:2], np.float32)


def quantize_planes(flow: np.ndarray, bound: float = DEFAULT_BOUND, shift: np.ndarray | None = None) -> np.ndarray:
    """`quantize(flow - shift, bound)` of one (H, W, 2) float32 field, as uint8 planes (2, H, W).

    The extractor's hot path: per plane one OpenCV pass that scales, offsets, rounds and
    saturates to 0..255 (saturation is the clip to +-bound), instead of five numpy passes.
    """
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    scale = LEVELS / (2.0 * bound)
    shift = np.zeros(2, np.float32) if shift is None else shift
    planes = np.empty((2, *flow.shape[:2]), np.uint8)
    for c, plane in enumerate(cv2.split(flow)):
        cv2.addWeighted(plane, scale, plane, 0.0, (bound - float(shift[c])) * scale, planes[c], cv2.CV_8U)
    return planes


def dequantize(codes: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of `quantize` up to one step: uint8 codes -> float32 pixels."""
    return codes.astype(np.float32) * np.float32(quantization_step(bound)) - np.float32(bound)


def hflip_flow(flow: np.ndarray) -> np.ndarray:
    """Mirror float flow fields left-right; x components change sign.

    Works on (..., H, W, 2) arrays (a single field or a stack).
    """
    flipped = flow[..., :, ::-1, :].copy()
    flipped[..., 0] *= -1
    return flipped


def hflip_flow_codes(codes: np.ndarray) -> np.ndarray:
    """Mirror uint8 flow codes left-right; x codes become 255 - x (exact negation)."""
    flipped = codes[..., :, ::-1, :].copy()
    flipped[..., 0] = LEVELS - flipped[..., 0]
    return flipped
