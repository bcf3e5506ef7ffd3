"""Optical flow as colour: the Middlebury colour coding (Baker et al., "A Database and Evaluation
Methodology for Optical Flow", IJCV 2011), and the panels `flowprep show` draws. Pure functions
on arrays; all images are RGB uint8.

The coding: hue = direction, taken from a wheel of 55 colours in six ramps (red-yellow 15,
yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13, magenta-red 6; the uneven lengths
make equal angles look about equally different); saturation = magnitude, from white at rest to
the full hue at the normalising radius; beyond it the colour is darkened to 75%. In image
coordinates (y points down) rightward motion is red, downward yellow-orange, leftward cyan-blue,
upward violet-blue: the layout of the reference code, which looks the wheel up at the angle of
(-u, -v).

Why not torchvision.utils.flow_to_image, which draws the same wheel (tests/flowprep/tools/
test_flow_viz.py checks that the pictures agree): it scales each image by its own largest
vector, where `flowprep show` colours every frame and the legend on one scale (so colours compare
across frames, and the legend's edge is a stated number of pixels) and darkens what lies beyond
it; and flowprep needs no torch except for the GPU flow backend, and importing torchvision took
4.4-7.5 s on the development machine (`python -X importtime -c "import torchvision.utils"`),
against 0.4-0.6 s for all of `flowprep.tools.show`.
"""
from __future__ import annotations

import cv2
import numpy as np

# (length, which channel ramps, up or down); the other channels hold their value from the last ramp
WHEEL_SEGMENTS = ((15, 1, +1), (6, 0, -1), (4, 2, +1), (11, 1, -1), (13, 0, +1), (6, 2, -1))
BACKGROUND = 255
HEADER = 18  # title strip above each panel, px
GAP = 4  # between panels
MARGIN = 6  # around the picture
TEXT = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_wheel() -> np.ndarray:
    """(55, 3) float64 RGB colours in 0..255, starting at red and going through yellow, green,
    cyan, blue and magenta."""
    colours = []
    current = np.array([255.0, 0.0, 0.0])
    for length, channel, direction in WHEEL_SEGMENTS:
        for i in range(length):
            ramp = np.floor(255.0 * i / length)
            current[channel] = ramp if direction > 0 else 255.0 - ramp
            colours.append(current.copy())
        current[channel] = 255.0 if direction > 0 else 0.0
    return np.array(colours)


WHEEL = color_wheel()


def flow_to_rgb(flow: np.ndarray, max_magnitude: float) -> np.ndarray:
    """(H, W, 2) flow in pixels -> (H, W, 3) uint8 RGB; `max_magnitude` maps to full saturation."""
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    radius = np.hypot(u, v) / (max_magnitude if max_magnitude > 0 else 1.0)
    n = len(WHEEL)
    position = (np.arctan2(-v, -u) / np.pi + 1.0) / 2.0 * (n - 1)  # 0 .. n-1 around the wheel
    k0 = np.floor(position).astype(int)
    k1 = (k0 + 1) % n
    frac = (position - k0)[..., None]
    colour = ((1 - frac) * WHEEL[k0 % n] + frac * WHEEL[k1]) / 255.0
    inside = (radius <= 1)[..., None]
    colour = np.where(inside, 1 - radius[..., None] * (1 - colour), colour * 0.75)
    return np.floor(255.0 * colour).astype(np.uint8)


def direction_color(dx: float, dy: float) -> np.ndarray:
    """The fully saturated colour of motion (dx, dy) (image coordinates: +y is down)."""
    norm = float(np.hypot(dx, dy))
    return flow_to_rgb(np.array([[[dx, dy]]], np.float32), norm)[0, 0]


def wheel_legend(size: int, max_magnitude: float) -> np.ndarray:
    """A (size + caption, size, 3) legend: the colour of every displacement up to max_magnitude,
    drawn as a disc where a pixel's offset from the centre is the displacement it stands for."""
    r = (size - 1) / 2.0
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    offset = np.stack([(xs - r) / r, (ys - r) / r], axis=-1) * max_magnitude
    disc = flow_to_rgb(offset, max_magnitude)
    outside = np.hypot(xs - r, ys - r) > r
    disc[outside] = BACKGROUND
    caption = np.full((34, size, 3), BACKGROUND, np.uint8)
    put_text(caption, "hue: direction", 2, 13)
    put_text(caption, f"edge: {max_magnitude:.3g} px", 2, 29)
    return np.concatenate([disc, caption], axis=0)


def put_text(image: np.ndarray, text: str, x: int, y: int, scale: float = 0.38) -> None:
    cv2.putText(image, text, (x, y), FONT, scale, TEXT, 1, cv2.LINE_AA)


def labelled(image: np.ndarray, title: str, header: int = HEADER) -> np.ndarray:
    """The image below a white strip holding its title."""
    strip = np.full((header, image.shape[1], 3), BACKGROUND, np.uint8)
    put_text(strip, title, 2, header - 5)
    return np.concatenate([strip, image], axis=0)


def _pad(image: np.ndarray, height: int, width: int) -> np.ndarray:
    out = np.full((height, width, 3), BACKGROUND, np.uint8)
    out[: image.shape[0], : image.shape[1]] = image
    return out


def hstack(images: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    height = max(i.shape[0] for i in images)
    spacer = np.full((height, gap, 3), BACKGROUND, np.uint8)
    parts = []
    for k, image in enumerate(images):
        parts += ([spacer] if k else []) + [_pad(image, height, image.shape[1])]
    return np.concatenate(parts, axis=1)


def vstack(images: list[np.ndarray], gap: int = GAP) -> np.ndarray:
    width = max(i.shape[1] for i in images)
    spacer = np.full((gap, width, 3), BACKGROUND, np.uint8)
    parts = []
    for k, image in enumerate(images):
        parts += ([spacer] if k else []) + [_pad(image, image.shape[0], width)]
    return np.concatenate(parts, axis=0)


def frame_row(index: int, rgb: np.ndarray, forward: np.ndarray, backward: np.ndarray, max_magnitude: float) -> np.ndarray:
    """One row: RGB frame t, forward flow t (t -> t+1) and backward flow t (t+1 -> t), coloured."""
    return hstack([
        labelled(rgb, f"frame {index}"),
        labelled(flow_to_rgb(forward, max_magnitude), f"forward {index}->{index + 1}"),
        labelled(flow_to_rgb(backward, max_magnitude), f"backward {index + 1}->{index}"),
    ])


def legend_size(frame_height: int) -> int:
    return int(min(max(frame_height, 64), 160))


def compose(rows: list[np.ndarray], legend: np.ndarray, margin: int = MARGIN) -> np.ndarray:
    """Rows of frames with the legend beside them, on a white margin."""
    body = hstack([vstack(rows), labelled(legend, "legend")], gap=10)
    out = np.full((body.shape[0] + 2 * margin, body.shape[1] + 2 * margin, 3), BACKGROUND, np.uint8)
    out[margin:margin + body.shape[0], margin:margin + body.shape[1]] = body
    return out
