"""Crops, flips, colour jitter and normalisation: pure functions on numpy images.

The loader's hot path, so each step is one cheap pass over uint8 data:
1. what a shard gives, cut to the crop box: an RGB frame (h, w, 3), or flow as uint8 code planes
   (2L, h, w) x0, y0, x1, y1, ... (flowprep's reader returns flow planar and already cut);
2. `resize_image` / `resize_planes` to the crop size, only for multi-scale crops; RGB goes
   `channels_first` -> uint8 planes (3, S, S);
3. `hflip_planes` / `hflip_flow_planes`: the mirror, and for flow flowprep's sign rule on codes
   (x -> 255 - x, `flowprep.format.quantize.hflip_flow_codes`, applied to the x planes);
4. `rgb_affine` / `flow_affine`: the (2, C) scale and shift that turn each channel's codes into
   the network input; the training step applies them to the uint8 batch on the device
   (`twostream.engine.loops.model_input`).
Geometry on codes is exact because dequantisation is affine.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flowprep.format.quantize import LEVELS, quantization_step

# torchvision's ImageNet statistics: the RGB backbones' pretrained weights expect them.
RGB_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
RGB_STD = np.array([0.229, 0.224, 0.225], np.float32)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 grey, as torchvision's jitter uses
# TSN's scales for multi-scale cropping, as fractions of the shorter side.
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)


@dataclass(frozen=True)
class CropBox:
    top: int
    left: int
    height: int
    width: int


def random_crop_box(height: int, width: int, size: int, rng: np.random.Generator) -> CropBox:
    """A size x size box at a uniformly random position."""
    return CropBox(int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1)), size, size)


def corner_boxes(height: int, width: int, crop_h: int, crop_w: int) -> list[CropBox]:
    """The four corners and the centre, in that order (top-left, top-right, bottom-left, bottom-right, centre)."""
    bottom, right = height - crop_h, width - crop_w
    return [CropBox(0, 0, crop_h, crop_w), CropBox(0, right, crop_h, crop_w), CropBox(bottom, 0, crop_h, crop_w),
            CropBox(bottom, right, crop_h, crop_w), CropBox(bottom // 2, right // 2, crop_h, crop_w)]


def multiscale_corner_box(height: int, width: int, rng: np.random.Generator,
                          scales: tuple[float, ...] = MULTISCALE_SCALES, max_distortion: int = 1) -> CropBox:
    """TSN's multi-scale corner crop: width and height each one of `scales` x the shorter side
    (at most `max_distortion` scale steps apart, so the aspect ratio stays moderate), placed at a
    corner or the centre. The caller resizes it to the crop size."""
    base = min(height, width)
    sizes = [int(base * s) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distortion]
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    boxes = corner_boxes(height, width, crop_h, crop_w)
    return boxes[int(rng.integers(len(boxes)))]


def center_box(height: int, width: int, size: int) -> CropBox:
    return corner_boxes(height, width, size, size)[4]


def three_boxes(height: int, width: int, size: int) -> list[CropBox]:
    """Three size x size boxes spread along the longer side (left, centre, right; or top, centre,
    bottom), centred on the other: the clip models' test crops (I3D, SlowFast: 3 crops per clip)."""
    if width >= height:
        top, lefts = (height - size) // 2, (0, (width - size) // 2, width - size)
        return [CropBox(top, left, size, size) for left in lefts]
    left, tops = (width - size) // 2, (0, (height - size) // 2, height - size)
    return [CropBox(top, left, size, size) for top in tops]


def eval_crops(height: int, width: int, size: int, crops: str) -> list[tuple[CropBox, bool]]:
    """The test protocol's (box, flip) pairs: `ten` = 4 corners + centre, then the same flipped;
    `center` = the centre crop only; `three` = `three_boxes`, unflipped."""
    if crops == "center":
        return [(center_box(height, width, size), False)]
    if crops == "three":
        return [(b, False) for b in three_boxes(height, width, size)]
    boxes = corner_boxes(height, width, size, size)
    return [(b, False) for b in boxes] + [(b, True) for b in boxes]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """(h, w, C) -> (size, size, C), bilinear; the image itself when it has that size already."""
    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR).reshape(size, size, image.shape[-1])


def resize_planes(planes: np.ndarray, size: int) -> np.ndarray:
    """(C, h, w) planes -> (C, size, size), bilinear, plane by plane; the planes themselves when
    they have that size already."""
    if planes.shape[1:] == (size, size):
        return planes
    return np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_LINEAR) for p in planes])


def channels_first(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (C, H, W); an (L, H, W, 2) flow stack -> (2L, H, W) planes x0, y0, x1, y1, ...
    Contiguous: a transposed view would reach the model with channels-last strides when loaded
    in the main process, and convolutions pick other kernels (other rounding) for those."""
    if image.ndim == 3:
        return np.ascontiguousarray(image.transpose(2, 0, 1))
    fields, height, width, _ = image.shape
    return np.ascontiguousarray(image.transpose(0, 3, 1, 2)).reshape(2 * fields, height, width)


def hflip_planes(planes: np.ndarray) -> np.ndarray:
    """Mirror (C, H, W) planes left-right (OpenCV flips the rows of the (C*H, W) view at once)."""
    c, h, w = planes.shape
    return cv2.flip(planes.reshape(c * h, w), 1).reshape(c, h, w)


def hflip_flow_planes(planes: np.ndarray) -> np.ndarray:
    """Mirror (2L, H, W) flow-code planes and negate every x plane: flowprep's rule
    (`hflip_flow_codes`, x -> 255 - x) on channel-first planes."""
    flipped = hflip_planes(planes)
    flipped[0::2] = LEVELS - flipped[0::2]
    return flipped


def jitter_factors(strength: float, rng: np.random.Generator) -> tuple[float, float, float]:
    """Brightness, contrast and saturation factors, each uniform in [1 - strength, 1 + strength]."""
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    return float(b), float(c), float(s)


def color_jitter(rgb: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """Scale brightness, contrast and saturation of float RGB planes (3, H, W) in [0, 1] by `factors`."""
    brightness, contrast, saturation = (np.float32(f) for f in factors)
    out = rgb * brightness
    mean_gray = np.tensordot(LUMA, out, axes=1).mean()
    out = (out - mean_gray) * contrast + mean_gray
    gray = np.tensordot(LUMA, out, axes=1)[None]
    out = gray + (out - gray) * saturation
    return np.clip(out, 0.0, 1.0)


def jitter_codes(planes: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """`color_jitter` on uint8 RGB planes (3, H, W), back to uint8 (rounded): the loader hands
    uint8 to the training step, which normalises on the device."""
    jittered = color_jitter(planes.astype(np.float32) * np.float32(1 / 255), factors)
    return np.rint(jittered * 255).astype(np.uint8)


# The network input is affine in the uint8 codes, channel by channel: input = code * scale + shift.
# The loader returns codes and the (2, C) [scale; shift] rows; `twostream.engine.loops.model_input` applies
# them to the batch on the device (a quarter of the bytes of float32 cross from the workers).
def rgb_affine() -> np.ndarray:
    """(2, 3) scale and shift of ImageNet normalisation, (code / 255 - mean) / std."""
    return np.stack([1 / (255 * RGB_STD), -RGB_MEAN / RGB_STD]).astype(np.float32)


def flow_affine(channels: int, bound: float, means: np.ndarray | None, flipped: bool) -> np.ndarray:
    """(2, 2L) scale and shift that turn flow codes into flow in units of the bound (about -1..1).

    flowprep's dequantisation is code * step - bound; dividing by the bound keeps inputs near unit
    scale whatever bound the shards were quantised with. `means` (L, 2), if given, are the mean
    vectors subtracted at extraction, put back (their x negated when the stack was flipped, as
    the field's was).
    """
    scale = np.full(channels, quantization_step(bound) / bound, np.float32)
    shift = np.full(channels, -1.0, np.float32)
    if means is not None:
        vectors = means.astype(np.float32).copy()
        if flipped:
            vectors[:, 0] *= -1
        shift += vectors.reshape(-1) / np.float32(bound)
    return np.stack([scale, shift])
