"""An extraction folder as the trainer sees it: its index, its config, its classes, and which
videos a split selects. Everything here is checked in the main process, before any worker
starts, so bad input is a one-line error instead of a traceback from a DataLoader worker.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_config import FolderConfig
from flowprep.format.folder_index import IndexEntry
from flowprep.format.shards import iter_video_groups, video_size
from twostream.core.errors import DataError
from twostream.data.sampling import is_short

log = logging.getLogger("twostream")


@dataclass(frozen=True)
class ExtractedDataset:
    root: Path
    index: dict[str, IndexEntry]
    config: FolderConfig  # how the folder was made: `flowprep extract` or `flowprep import-rawframes`
    class_names: tuple[str, ...]
    min_side: int  # the shorter side of the smallest stored frame: the largest crop the folder allows

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


# the largest label a dataset with few classes may have (a subset of a large dataset keeps its
# labels); beyond it, and beyond 10 outputs a class, the labels are not class indices
SPARSE_LABELS_ALLOWED = 1000


def class_names(index: dict[str, IndexEntry]) -> tuple[str, ...]:
    """Names of classes 0..max label over the whole index (all splits, so train and test agree)."""
    names: dict[int, str] = {}
    for entry in sorted(index.values(), key=lambda e: e.video_id):
        names.setdefault(entry.label, entry.label_name)
    outputs = max(names) + 1
    if outputs > max(SPARSE_LABELS_ALLOWED, 10 * len(names)):  # the classifier gets an output per label up to the largest
        raise DataError(f"labels run up to {max(names):,} but only {len(names):,} classes have videos: a model would "
                        f"get {outputs:,} outputs; labels are 0-based class indices, so number the classes 0..N-1 "
                        f"in the manifest")
    return tuple(names.get(k, f"class{k}") for k in range(outputs))


def open_extraction(root: str | Path) -> ExtractedDataset:
    """Read and check an extraction folder, made by `flowprep extract` or `flowprep import-rawframes`:
    its config, its index and every shard's header (format version)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"shard folder {root} does not exist (make one with 'flowprep extract --out {root}')")
    folder = ExtractionFolder(root)
    index = folder.read_index()
    if not index:
        raise DataError(f"{root}/index.json lists no videos")
    names = class_names(index)
    for line in folder.unfinished():  # train on what is complete, and say that it is only that
        # the classes too: a model made now has an output per class seen so far, not per class of the manifest
        log.warning("%s: using the %d video(s) of %d class(es) complete so far", line, len(index), len(names))
    config = folder.read_config()
    sides = [] if config.fixed_min_side is None else [config.fixed_min_side]
    for shard in sorted({e.shard for e in index.values()}):
        # checks now, naming the file: a regular file, the format version, made with the folder's config
        with folder.open_shard(shard, config) as f:
            if config.fixed_min_side is None:
                # frames of an import keep their tree's size, which only the videos' attributes tell
                sides += [min(video_size(g)) for g in iter_video_groups(f)]
    return ExtractedDataset(root, index, config, names, min(sides))


def videos_in_split(extraction: ExtractedDataset, split: str, subset: str) -> list[IndexEntry]:
    """The videos with splits[split] == subset (train or test), sorted by id; an error if there are none."""
    entries = extraction.index.values()
    available = sorted({name for e in entries for name in e.splits})
    if split not in available:
        raise DataError(f"split {split!r} is not in {extraction.root}/index.json; "
                        f"splits there: {', '.join(available) or 'none (the manifest had no split columns)'}")
    selected = sorted((e for e in entries if e.in_split(split, subset)), key=lambda e: e.video_id)
    if not selected:
        counts = Counter(e.splits.get(split, "absent") for e in entries)
        raise DataError(f"split {split!r} selects no {subset} videos in {extraction.root} "
                        f"({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))})")
    return selected


def split_holdout(entries: list[IndexEntry], fraction: float, seed: int) -> tuple[list[IndexEntry], list[IndexEntry]]:
    """Split training videos into (trained on, held out): in each class, the `fraction` of its
    videos (rounded, and never all of them) that rank first by a hash of (seed, video id).

    The hash makes the choice stable whatever the order or number of other videos, so
    `evaluate --subset val` finds the same held-out videos from the checkpoint's config. Fusion
    fits its learned methods on scores of videos the streams did not train on (docs/fusion.md).
    """
    if fraction == 0:
        return list(entries), []
    by_class: dict[int, list[IndexEntry]] = {}
    for e in entries:
        by_class.setdefault(e.label, []).append(e)
    held: set[str] = set()
    for videos in by_class.values():
        ranked = sorted(videos, key=lambda e: hashlib.sha1(f"{seed}:{e.video_id}".encode()).hexdigest())
        count = min(round(fraction * len(videos)), len(videos) - 1)
        held.update(e.video_id for e in ranked[:count])
    return [e for e in entries if e.video_id not in held], [e for e in entries if e.video_id in held]


def subset_videos(extraction: ExtractedDataset, split: str, subset: str, holdout: float, seed: int) -> list[IndexEntry]:
    """The videos of `subset`: 'test', 'train' (the training videos a run with this holdout trains
    on) or 'val' (those it holds out)."""
    if subset == "test":
        return videos_in_split(extraction, split, "test")
    trained, held = split_holdout(videos_in_split(extraction, split, "train"), holdout, seed)
    if subset == "train":
        return trained
    if not held:
        few = ", which keeps none of so few videos a class" if holdout else ""
        raise DataError(f"no held-out videos in split {split!r}: the run was trained with holdout {holdout}{few} "
                        f"(train with --holdout FRACTION to keep validation videos out of training)")
    return held


def check_stack_length(entries: list[IndexEntry], flow_length: int, what: str) -> None:
    """Refuse a stack longer than every video; warn about the videos the short-video rule pads."""
    longest = max(e.num_frames for e in entries)
    if is_short(longest, flow_length):
        raise DataError(f"flow length {flow_length} needs videos of at least {flow_length + 1} frames, but the longest "
                        f"of the {len(entries)} {what} videos has {longest}; pass a smaller --flow-length")
    short = [e for e in entries if is_short(e.num_frames, flow_length)]
    if short:
        log.warning("%d of %d %s videos have fewer than %d flow fields (e.g. %s, %d frames): each gives one "
                    "centred stack with its edge fields repeated (docs/training.md, short videos)",
                    len(short), len(entries), what, flow_length, short[0].video_id, short[0].num_frames)


def check_crop_size(extraction: ExtractedDataset, crop_size: int) -> None:
    if crop_size > extraction.min_side:
        raise DataError(f"crop size {crop_size} is larger than the stored frames' shorter side "
                        f"({extraction.min_side} px in {extraction.root}); pass --crop-size {extraction.min_side} or less")
