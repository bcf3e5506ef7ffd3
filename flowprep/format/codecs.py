"""How one stream's images are stored in a shard: JPEG, PNG, or raw uint8 with an HDF5 filter.

A codec is written as a short string, e.g. `jpeg:95`, `png`, `raw:lzf`, `raw:gzip:4`, `raw`.
Encoded codecs (JPEG, PNG) store one variable-length byte array per image, readable with any
image decoder; raw codecs store the uint8 array itself, chunked one image per chunk and
compressed by the HDF5 filter, readable with nothing but h5py.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CODEC_KINDS = ("jpeg", "png", "raw")
RAW_FILTERS = ("none", "lzf", "gzip")
CODEC_HELP = "jpeg[:QUALITY 1-100], png[:LEVEL 0-9], raw[:none|lzf|gzip[:LEVEL 0-9]]"


class CodecError(ValueError):
    pass


@dataclass(frozen=True)
class Codec:
    kind: str  # one of CODEC_KINDS
    level: int | None = None  # JPEG quality, PNG compression or gzip level
    filter: str = "none"  # raw only: the HDF5 compression filter

    @property
    def encoded(self) -> bool:
        """True when images are stored as encoded image files (bytes + offsets), False for raw arrays."""
        return self.kind != "raw"

    def __str__(self) -> str:
        if self.kind == "raw":
            parts = ["raw", self.filter] + ([str(self.level)] if self.level is not None else [])
            return ":".join(parts)
        return f"{self.kind}:{self.level}"

    def hdf5_filter(self) -> dict:
        """Keyword arguments for h5py's create_dataset that apply this codec's filter."""
        if self.kind != "raw" or self.filter == "none":
            return {}
        if self.filter == "lzf":
            return {"compression": "lzf"}
        return {"compression": "gzip", "compression_opts": self.level}

    def encode(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W) or (H, W, 3 BGR) image -> what is stored (1-D bytes or the array)."""
        if self.kind == "raw":
            return image
        if self.kind == "jpeg":
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.level])
        else:
            ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, self.level])
        if not ok:
            raise CodecError(f"OpenCV could not encode a {image.shape} image as {self}")
        return buf.reshape(-1)

    def decode(self, stored: np.ndarray, grayscale: bool) -> np.ndarray:
        """Inverse of `encode`: returns (H, W) for grayscale, (H, W, 3) BGR otherwise."""
        if self.kind == "raw":
            return stored
        flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR
        image = cv2.imdecode(stored, flag)
        if image is None:
            raise CodecError(f"stored {self} image does not decode ({stored.size} bytes)")
        return image


_DEFAULT_LEVEL = {"jpeg": 95, "png": 1, "gzip": 4}


def parse_codec(text: str) -> Codec:
    """Parse `jpeg:95`, `png`, `raw:lzf`, `raw:gzip:4`... into a Codec, or raise CodecError."""
    parts = text.strip().lower().split(":")
    kind = parts[0]
    if kind not in CODEC_KINDS:
        raise CodecError(f"unknown codec {text!r}; accepted: {CODEC_HELP}")
    if kind == "raw":
        filt = parts[1] if len(parts) > 1 else "none"
        if filt not in RAW_FILTERS or len(parts) > (3 if filt == "gzip" else 2):
            raise CodecError(f"bad raw codec {text!r}; accepted: {CODEC_HELP}")
        level = _parse_level(text, parts[2], 0, 9) if len(parts) == 3 else _DEFAULT_LEVEL.get(filt)
        return Codec("raw", level if filt == "gzip" else None, filt)
    if len(parts) > 2:
        raise CodecError(f"bad codec {text!r}; accepted: {CODEC_HELP}")
    lo, hi = (1, 100) if kind == "jpeg" else (0, 9)
    level = _parse_level(text, parts[1], lo, hi) if len(parts) == 2 else _DEFAULT_LEVEL[kind]
    return Codec(kind, level)


def _parse_level(text: str, part: str, lo: int, hi: int) -> int:
    try:
        level = int(part)
    except ValueError:
        level = None
    if level is None or not lo <= level <= hi:
        raise CodecError(f"bad level {part!r} in codec {text!r}: expected an integer {lo}-{hi}")
    return level
