"""How one stream's images are stored in a shard: JPEG, PNG, or raw uint8 with an HDF5 filter.

A codec is written as a short string, e.g. `jpeg:95`, `png`, `raw:lzf`, `raw:gzip:4`, `raw`.
Encoded codecs (JPEG, PNG) store one variable-length byte array per image, readable with any
image decoder; raw codecs store the uint8 array itself, chunked one image per chunk and
compressed by the HDF5 filter, readable with nothing but h5py.

The kinds are one registry, `CODECS`, like the flow backends' (flowprep.flow.registry): a kind
is a `CodecKind` entry that says what may follow its name and how an image is stored and read
back, and a new codec is one entry. A `Codec` is one kind with its options, what a config
carries and a shard's dataset names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

RAW_FILTERS = ("none", "lzf", "gzip")


class CodecError(ValueError):
    pass


@dataclass(frozen=True)
class Codec:
    kind: str  # the name of its entry in CODECS
    level: int | None = None  # JPEG quality, PNG compression or gzip level
    filter: str = "none"  # raw only: the HDF5 compression filter

    def __post_init__(self) -> None:
        if self.kind not in CODECS:
            raise CodecError(f"unknown codec kind {self.kind!r}; accepted: {', '.join(CODECS)}")

    @property
    def entry(self) -> CodecKind:
        return CODECS[self.kind]

    @property
    def encoded(self) -> bool:
        """True when images are stored as encoded image files (bytes + offsets), False for raw arrays."""
        return self.entry.encoded

    def __str__(self) -> str:
        return self.entry.name_of(self)

    def hdf5_filter(self) -> dict:
        """Keyword arguments for h5py's create_dataset that apply this codec's filter."""
        return self.entry.hdf5_filter(self)

    def encode(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W) or (H, W, 3 BGR) image -> what is stored (1-D bytes or the array)."""
        return self.entry.encode(self, image)

    def decode(self, stored: np.ndarray, grayscale: bool) -> np.ndarray:
        """Inverse of `encode`: returns (H, W) for grayscale, (H, W, 3) BGR otherwise."""
        return self.entry.decode(self, stored, grayscale)


@dataclass(frozen=True)
class CodecKind:
    """One way of storing images, an entry of the registry: its name, what may follow the name
    (`syntax`, for the help; `options`: (the whole text, the parts after the name) -> (level,
    filter), CodecError naming the text otherwise), and how an image is stored and read back."""

    name: str
    syntax: str
    options: Callable[[str, list[str]], tuple[int | None, str]]
    encoded: bool  # stored as encoded image files (bytes + offsets), not as uint8 arrays
    encode: Callable[[Codec, np.ndarray], np.ndarray]
    decode: Callable[[Codec, np.ndarray, bool], np.ndarray]
    name_of: Callable[[Codec], str]  # the normal form, as stored
    hdf5_filter: Callable[[Codec], dict] = lambda codec: {}


def _level(text: str, part: str, lo: int, hi: int) -> int:
    try:
        level = int(part)
    except ValueError:
        level = None
    if level is None or not lo <= level <= hi:
        raise CodecError(f"bad level {part!r} in codec {text!r}: expected an integer {lo}-{hi}")
    return level


def _image_file(name: str, extension: str, flag: int, what: str, lo: int, hi: int, default: int) -> CodecKind:
    """A kind stored as image files of `extension` by OpenCV, with an optional level lo-hi (`flag`)."""

    def options(text: str, parts: list[str]) -> tuple[int | None, str]:
        if len(parts) > 1:
            raise CodecError(f"bad codec {text!r}; accepted: {CODEC_HELP}")
        return (_level(text, parts[0], lo, hi) if parts else default), "none"

    def encode(codec: Codec, image: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(extension, image, [flag, codec.level])
        if not ok:
            raise CodecError(f"OpenCV could not encode a {image.shape} image as {codec}")
        return buf.reshape(-1)

    def decode(codec: Codec, stored: np.ndarray, grayscale: bool) -> np.ndarray:
        image = cv2.imdecode(stored, cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
        if image is None:
            raise CodecError(f"stored {codec} image does not decode ({stored.size} bytes)")
        return image

    return CodecKind(name, f"{name}[:{what} {lo}-{hi}]", options, True, encode, decode,
                     lambda codec: f"{codec.kind}:{codec.level}")


_GZIP_LEVEL = 4  # raw:gzip without a level


def _raw_options(text: str, parts: list[str]) -> tuple[int | None, str]:
    filt = parts[0] if parts else "none"
    if filt not in RAW_FILTERS or len(parts) > (2 if filt == "gzip" else 1):
        raise CodecError(f"bad raw codec {text!r}; accepted: {CODEC_HELP}")
    if filt != "gzip":
        return None, filt
    return (_level(text, parts[1], 0, 9) if len(parts) == 2 else _GZIP_LEVEL), filt


def _raw_filter(codec: Codec) -> dict:
    if codec.filter == "none":
        return {}
    if codec.filter == "lzf":
        return {"compression": "lzf"}
    return {"compression": "gzip", "compression_opts": codec.level}


RAW = CodecKind("raw", "raw[:none|lzf|gzip[:LEVEL 0-9]]", _raw_options, False,
                encode=lambda codec, image: image, decode=lambda codec, stored, grayscale: stored,
                name_of=lambda codec: ":".join(["raw", codec.filter] + ([str(codec.level)] if codec.level is not None
                                                                        else [])),
                hdf5_filter=_raw_filter)

CODECS: dict[str, CodecKind] = {k.name: k for k in (
    _image_file("jpeg", ".jpg", cv2.IMWRITE_JPEG_QUALITY, "QUALITY", 1, 100, 95),
    _image_file("png", ".png", cv2.IMWRITE_PNG_COMPRESSION, "LEVEL", 0, 9, 1),
    RAW,
)}
CODEC_HELP = ", ".join(k.syntax for k in CODECS.values())


def parse_codec(text: str) -> Codec:
    """Parse `jpeg:95`, `png`, `raw:lzf`, `raw:gzip:4`... into a Codec, or raise CodecError."""
    parts = text.strip().lower().split(":")
    kind = CODECS.get(parts[0])
    if kind is None:
        raise CodecError(f"unknown codec {text!r}; accepted: {CODEC_HELP}")
    level, filt = kind.options(text, parts[1:])
    return Codec(kind.name, level, filt)
