"""Dynamic images (Bilen, Fernando, Gavves, Vedaldi and Gould, CVPR 2016): a clip's appearance and
its evolution in one RGB-like image, by approximate rank pooling. Pure functions on numpy arrays.

Approximate rank pooling is a weighted sum of the T frames, d = sum_t alpha_t I_t, with the
paper's closed-form coefficients (eq. 6 of the journal version, TPAMI 2018)

    alpha_t = 2 (T - t + 1) - (T + 1) (H_T - H_{t-1}),   t = 1 .. T,

H_t the t-th harmonic number (H_0 = 0). They sum to 0, so what is constant over the clip (the
static background) cancels and what changes remains, with its direction in time. The reference
implementation (hbilen/dynamic-image-nets, vl_nnarpooltemporal.m) computes the same numbers as
sum_{j=t..T} (2j - T - 1) / j, and rescales the result to the image range before showing it or
feeding it to a network pretrained on images (dicnn/visualize_approximate_dynamic_images.m): the
image less its minimum, times 255 over its maximum, over all pixels and channels at once. So does
`dynamic_image`, which then rounds to uint8: from there a dynamic image is an RGB frame to the
loader (crops, flips, ImageNet normalisation) and to any 2D backbone with ImageNet weights.
"""
from __future__ import annotations

import numpy as np

FLAT = 128  # a clip in which nothing changes pools to zero everywhere: mid grey, not 0 / 0
# a pooled image whose values span less than this (grey levels) is flat: a change of one grey level
# over a clip pools to at least ~0.5, while a constant clip pools to float rounding (~1e-5), which
# the rescaling would otherwise stretch to 0..255
FLAT_RANGE = 1e-2


def harmonic(n: int) -> float:
    """H_n = 1 + 1/2 + ... + 1/n; H_0 = 0."""
    return float(np.sum(1.0 / np.arange(1, n + 1))) if n > 0 else 0.0


def rank_pool_coefficients(frames: int) -> np.ndarray:
    """alpha_1 .. alpha_T (float64) of approximate rank pooling over T = `frames` frames."""
    if frames < 1:
        raise ValueError(f"rank pooling needs at least one frame, got {frames!r}")
    h_t = harmonic(frames)
    return np.array([2.0 * (frames - t + 1) - (frames + 1) * (h_t - harmonic(t - 1)) for t in range(1, frames + 1)])


def rank_pool(frames: np.ndarray) -> np.ndarray:
    """The unnormalised dynamic image: (T, ...) frames -> (...) float32, sum_t alpha_t frame_t."""
    alpha = rank_pool_coefficients(frames.shape[0]).astype(np.float32)
    return np.tensordot(alpha, frames.astype(np.float32), axes=1)


def to_image_range(pooled: np.ndarray) -> np.ndarray:
    """The reference implementation's rescaling to 0..255 (minimum to 0, maximum to 255, over all
    pixels and channels), rounded to uint8; a flat image (nothing changed) is uniform `FLAT`."""
    low, high = float(pooled.min()), float(pooled.max())
    if high - low < FLAT_RANGE:
        return np.full(pooled.shape, FLAT, np.uint8)
    return np.rint((pooled - low) * np.float32(255.0 / (high - low))).astype(np.uint8)


def dynamic_image(frames: np.ndarray) -> np.ndarray:
    """(T, h, w, 3) uint8 RGB frames -> their (h, w, 3) uint8 dynamic image."""
    return to_image_range(rank_pool(frames))
