"""Synthetic videos with known motion, for tests: a textured square moving a fixed number of
pixels a frame over a static textured background, so the sign and size of flow can be asserted;
and `make_videos`, the one way the tests write such videos with their manifest."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from flowprep.demo.data import write_video

WIDTH, HEIGHT, FRAMES = 128, 96, 8
MOTIONS = {"right": (2, 0), "down": (0, 2), "left": (-2, 0), "up": (0, -2)}
SIX_DIRECTIONS = [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1)]


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


def directions(count: int) -> dict[str, tuple[int, int]]:
    """`count` videos v0, v1, ... moving one pixel a frame, in six directions taken in turn."""
    return {f"v{i}": SIX_DIRECTIONS[i % len(SIX_DIRECTIONS)] for i in range(count)}


def make_videos(root: Path, motions: dict[str, tuple[int, int]], frames: int = FRAMES,
                size: tuple[int, int] = (WIDTH, HEIGHT), square: int = 32, classes: int | None = None,
                tests: int | None = None, missing: bool = False) -> Path:
    """Videos `root`/<id>.avi of a square moving as `motions` says (video id -> pixels a frame, dx and
    dy), and their manifest; the manifest's path. Each video is a class of its own named by its id,
    or, given `classes`, video i is of class i % classes (named c0, c1, ...); the last `tests`
    videos (by default the second half) are split1's test videos, the others its training ones;
    `missing` adds a row whose file does not exist."""
    root.mkdir(parents=True, exist_ok=True)
    tests = len(motions) // 2 if tests is None else tests
    rows = ["video_id,path,label,label_name,split1"]
    for i, (video_id, velocity) in enumerate(motions.items()):
        write_video(root / f"{video_id}.avi", moving_square_frames(frames, *size, square, velocity=velocity, seed=i))
        label, name = (i, video_id) if classes is None else (i % classes, f"c{i % classes}")
        rows.append(f"{video_id},{video_id}.avi,{label},{name},{'test' if i >= len(motions) - tests else 'train'}")
    if missing:
        rows.append(f"ghost,ghost.avi,0,{next(iter(motions)) if classes is None else 'c0'},train")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"
