"""The largest numbers a file may state, and the one check a reader makes before a number read
from a file (a shard's attribute, a dataset's length, a manifest's label) sizes an allocation or
an index: a shard from elsewhere claiming a width of 10^6 or 10^10 offsets would otherwise ask
for terabytes, and a label of 10^12 would build a classifier with 10^12 outputs."""
from __future__ import annotations

from runkit.safe_paths import shown

MAX_CLASSES = 100_000  # labels 0..99,999: ImageNet-21k has 21,841 classes, Kinetics-700 700
MAX_FRAMES = 10_000_000  # sampled frames of one video: 92 hours at 30 frames/s
MAX_SIDE = 16_384  # pixels: twice 8K


def integer_problem(name: str, value: object, low: int, high: int) -> str | None:
    """Why `value` (named `name`) is not an integer in low..high, or None."""
    if type(value) is int and low <= value <= high:
        return None
    return f"{name} {shown(value)} is not an integer in {low}..{high:,}"


def label_problem(value: object) -> str | None:
    """Why `value` cannot be a class label (0-based, below MAX_CLASSES), or None."""
    return integer_problem("label", value, 0, MAX_CLASSES - 1)
