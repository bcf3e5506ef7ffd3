"""Synthetic videos with known motion, for tests: a textured square moving a fixed number of
pixels a frame over a static textured background, so the sign and size of flow can be asserted."""
from __future__ import annotations

import cv2
import numpy as np

from flowprep.demo.data import write_video  # noqa: F401  (the tests' video writer too)


def texture(height: int, width: int, seed: int, blur: float = 1.5) -> np.ndarray:
    """Smooth random grayscale texture, uint8: enough structure for every flow method to lock on."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), blur)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min() + 1e-9)
    return (smooth * 255).astype(np.uint8)


def moving_square_frames(n: int, width: int = 128, height: int = 96, square: int = 32,
                         velocity: tuple[int, int] = (2, 0), seed: int = 0) -> list[np.ndarray]:
    """n BGR frames: a square of its own texture starting at the centre, moving `velocity`
    (dx, dy) pixels per frame, over a static background texture."""
    background = texture(height, width, seed)
    patch = texture(square, square, seed + 1, blur=1.0)
    frames = []
    x0, y0 = width // 2 - square // 2, height // 2 - square // 2
    for t in range(n):
        img = background.copy()
        x, y = x0 + velocity[0] * t, y0 + velocity[1] * t
        img[y:y + square, x:x + square] = patch
        frames.append(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
    return frames


def square_box(t: int, width: int = 128, height: int = 96, square: int = 32,
               velocity: tuple[int, int] = (2, 0)) -> tuple[slice, slice]:
    """Rows and columns of the square's interior (2 px margin) in frame t."""
    x0, y0 = width // 2 - square // 2 + velocity[0] * t, height // 2 - square // 2 + velocity[1] * t
    return slice(y0 + 4, y0 + square - 4), slice(x0 + 4, x0 + square - 4)


