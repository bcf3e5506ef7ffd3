"""`flowprep show`: a video's RGB frames beside their forward and backward flow, in the Middlebury
colour coding with its legend (flowprep.tools.flow_viz), as a PNG grid or an animated GIF.

One normalising magnitude serves every panel of a picture (unless given, a high percentile of the
magnitudes shown: `colour_scale`), so colours compare across frames and directions; the legend
states it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from flowprep.format.shards import open_shard, video_reader
from flowprep.tools.flow_viz import compose, frame_row, legend_size, wheel_legend
from flowprep.tools.inspection import find_video
from runkit.files import write_bytes_atomic, write_with

FORMATS = (".png", ".gif")


class ShowError(ValueError):
    """A request `show` cannot draw (a frame out of range); str() names it."""


@dataclass(frozen=True)
class ShowConfig:
    path: Path  # extraction folder or shard
    video_id: str
    out: Path  # .png: a grid of `num_frames` rows; .gif: one frame per pair
    frames: tuple[int, ...] | None = None  # explicit frame indices (each t shows flow t -> t+1)
    num_frames: int = 4  # evenly spaced rows of a PNG when `frames` is None
    max_frames: int = 100  # GIF length limit
    max_flow: float | None = None  # normalising magnitude in px; None: colour_scale's percentile
    restore_mean: bool = False  # show flow with its subtracted mean vector added back
    gif_fps: float = 8.0

    def __post_init__(self) -> None:
        if self.out.suffix.lower() not in FORMATS:
            raise ValueError(f"output must end in {' or '.join(FORMATS)}, got {self.out.name!r}")
        for name in ("num_frames", "max_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be a positive integer, got {value!r}")
        if self.max_flow is not None and not self.max_flow > 0:
            raise ValueError(f"max flow must be positive, got {self.max_flow!r}")
        if not self.gif_fps > 0:
            raise ValueError(f"GIF fps must be positive, got {self.gif_fps!r}")

    @property
    def gif(self) -> bool:
        return self.out.suffix.lower() == ".gif"


def pick_frames(num_pairs: int, config: ShowConfig) -> list[int]:
    """Indices t (0 <= t < T-1) to show: the given ones, every pair for a GIF, or evenly spaced."""
    if config.frames is not None:
        bad = [t for t in config.frames if not 0 <= t < num_pairs]
        if bad:
            raise ShowError(f"frame {bad[0]} is out of range: the video has flow for frames 0..{num_pairs - 1}")
        return list(config.frames)
    if config.gif:
        return list(range(min(num_pairs, config.max_frames)))
    count = min(num_pairs, config.num_frames)
    return sorted({int(round(x)) for x in np.linspace(0, num_pairs - 1, count)})


# The default scale: a high percentile of the magnitudes shown, not their maximum. A few pixels of
# much faster motion (a flow error at a border, a fast small object) would otherwise set the scale
# and leave the typical motion pastel or white; what exceeds it is drawn darker, past the legend's edge.
SCALE_PERCENTILE = 99.0


def colour_scale(fields: list[np.ndarray], max_flow: float | None = None) -> float:
    """The magnitude (px) drawn fully saturated: `max_flow` if given, else the SCALE_PERCENTILE-th
    percentile of the magnitudes of `fields` ((H, W, 2) arrays), else their largest, else 1."""
    if max_flow:
        return float(max_flow)
    magnitudes = np.concatenate([np.hypot(f[..., 0], f[..., 1]).ravel() for f in fields])
    scale = float(np.percentile(magnitudes, SCALE_PERCENTILE))
    if scale <= 0:  # almost nothing moves: the few pixels that do set the scale
        scale = float(magnitudes.max())
    return scale if scale > 0 else 1.0


def render(config: ShowConfig) -> tuple[list[np.ndarray], list[int]]:
    """The picture (one image) or the GIF's frames, RGB uint8, and the frame indices drawn."""
    shard = find_video(config.path, config.video_id)
    with open_shard(shard) as f:
        video = video_reader(f, config.video_id)
        indices = pick_frames(video.num_frames - 1, config)
        panels = [(t, video.rgb(t), video.flow("forward", t, config.restore_mean),
                   video.flow("backward", t, config.restore_mean)) for t in indices]
    max_flow = colour_scale([fl for _, _, fw, bw in panels for fl in (fw, bw)], config.max_flow)
    legend = wheel_legend(legend_size(panels[0][1].shape[0]), max_flow)
    rows = [frame_row(t, rgb, fw, bw, max_flow) for t, rgb, fw, bw in panels]
    if config.gif:
        return [compose([row], legend) for row in rows], indices
    return [compose(rows, legend)], indices


def write_picture(images: list[np.ndarray], out: Path, gif_fps: float) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        ok, data = cv2.imencode(".png", cv2.cvtColor(images[0], cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"cannot encode {out}")
        write_bytes_atomic(out, data.tobytes())  # only over a regular file, never through a link
        return
    from PIL import Image  # Pillow comes with matplotlib; only GIFs need it
    frames = [Image.fromarray(image) for image in images]
    write_with(out, lambda fh: frames[0].save(fh, format="GIF", save_all=True, append_images=frames[1:],
                                              duration=int(round(1000 / gif_fps)), loop=0))


def show(config: ShowConfig) -> list[int]:
    """Render and write; return the frame indices drawn."""
    images, indices = render(config)
    write_picture(images, config.out, config.gif_fps)
    return indices
