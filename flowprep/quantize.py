"""Mean flow subtraction, bound quantisation and the horizontal-flip sign rule.

These are the conventions of DESIGN.md section 3, in one place, as pure functions on arrays:
- a flow field is float32 (H, W, 2), x (horizontal) then y (vertical) displacement in pixels;
- mean subtraction removes the field's mean vector (the paper's camera-motion compensation) and
  returns it so the raw flow can be restored;
- quantisation clips to +-bound and maps linearly onto uint8 0..255 (128 ~ no motion), so
  dequantisation is exact up to one step, 2 * bound / 255;
- a horizontal flip mirrors the field and negates its x component; on uint8 data, x -> 255 - x,
  which is the exact negation after dequantisation.
"""
from __future__ import annotations

import numpy as np

DEFAULT_BOUND = 20.0
LEVELS = 255  # uint8 codes 0..255


def quantization_step(bound: float) -> float:
    """Width in pixels of one uint8 code."""
    return 2.0 * bound / LEVELS


def subtract_mean(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (flow minus its mean vector, the mean vector as float32 (2,))."""
    mean = flow.reshape(-1, 2).mean(axis=0, dtype=np.float64).astype(np.float32)
    return flow - mean, mean


def quantize(flow: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Clip a float flow to +-bound and map it to uint8: -bound -> 0, +bound -> 255."""
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound!r}")
    scaled = (np.clip(flow, -bound, bound) + bound) * (LEVELS / (2.0 * bound))
    return np.rint(scaled).astype(np.uint8)


def dequantize(codes: np.ndarray, bound: float = DEFAULT_BOUND) -> np.ndarray:
    """Inverse of `quantize` up to one step: uint8 codes -> float32 pixels."""
    return codes.astype(np.float32) * np.float32(quantization_step(bound)) - np.float32(bound)


def clipped_fraction(flow: np.ndarray, bound: float) -> float:
    """Share of flow components whose magnitude exceeds the bound (lost to clipping)."""
    return float(np.mean(np.abs(flow) > bound))


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
