"""Per-video score files: what `evaluate` writes and fusion reads.

One `.npz` file (numpy's zip of plain arrays; written and read without pickle) holds:
    video_ids    (N,)   str      video ids, as in the extraction index
    labels       (N,)   int64    true class index
    scores       (N, C) float32  softmax scores averaged over the test protocol's clips
    class_names  (C,)   str
    meta         ()     str      JSON: stream, checkpoint, protocol, split, ...
Fusion is a pure function of two such files aligned by video id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from runkit.files import open_regular, parse_json, write_with

SCORES_FORMAT_VERSION = 1
# meta's keys for the subset of the split that was scored (test, train, val) and the extraction
# folder: the format's names since version 1 (the code says subset and extraction)
SUBSET_KEY, EXTRACTION_KEY = "part", "shards"


class ScoresError(ValueError):
    pass


@dataclass(frozen=True)
class VideoScores:
    video_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    class_names: tuple[str, ...]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.video_ids)
        if self.labels.shape != (n,) or self.scores.ndim != 2 or self.scores.shape[0] != n:
            raise ScoresError(f"inconsistent shapes: {n} video ids, labels {self.labels.shape}, scores {self.scores.shape}")
        if self.scores.shape[1] != len(self.class_names):
            raise ScoresError(f"scores have {self.scores.shape[1]} classes but {len(self.class_names)} class names")

    @property
    def num_classes(self) -> int:
        return self.scores.shape[1]

    def predictions(self) -> np.ndarray:
        return self.scores.argmax(axis=1)

    def accuracy(self) -> float:
        return float((self.predictions() == self.labels).mean()) if len(self.labels) else 0.0

    def aligned_to(self, video_ids: np.ndarray) -> "VideoScores":
        """The same scores, rows reordered to `video_ids`; every id must be present."""
        position = {v: i for i, v in enumerate(self.video_ids.tolist())}
        missing = [v for v in video_ids.tolist() if v not in position]
        if missing:
            raise ScoresError(f"{len(missing)} video(s) missing from the scores, e.g. {missing[0]!r}")
        order = np.array([position[v] for v in video_ids.tolist()], dtype=np.int64)
        return VideoScores(self.video_ids[order], self.labels[order], self.scores[order], self.class_names, self.meta)


def check_finite(path: Path, scores: VideoScores) -> None:
    """Refuse scores that are not all finite numbers (NaN, inf): fusing them gives an accuracy that
    means nothing (argmax of NaN is class 0), without a word."""
    if not np.issubdtype(scores.scores.dtype, np.number):
        raise ScoresError(f"{path}: scores of type {scores.scores.dtype}, not numbers")
    finite = np.isfinite(scores.scores)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise ScoresError(f"{path}: {len(bad)} of {len(scores.video_ids)} videos have scores that are not finite "
                          f"numbers (NaN or infinite), e.g. {str(scores.video_ids[bad[0]])!r}; evaluate the "
                          f"checkpoint again, or check it: a diverged run gives NaN")


def save_scores(path: str | Path, scores: VideoScores) -> None:
    """Write atomically (temporary file, then rename)."""
    write_with(Path(path), lambda fh: np.savez(
        fh,
        video_ids=np.asarray(scores.video_ids, dtype=str),
        labels=np.asarray(scores.labels, dtype=np.int64),
        scores=np.asarray(scores.scores, dtype=np.float32),
        class_names=np.asarray(scores.class_names, dtype=str),
        meta=np.asarray(json.dumps({**scores.meta, "scores_format_version": SCORES_FORMAT_VERSION})),
    ))


def load_scores(path: str | Path) -> VideoScores:
    path = Path(path)
    try:
        with open_regular(path) as fh, np.load(fh, allow_pickle=False) as data:
            meta = parse_json(str(data["meta"]))
            if not isinstance(meta, dict):
                raise ScoresError(f"{path}: its metadata is not a JSON object")
            version = meta.get("scores_format_version")
            if version != SCORES_FORMAT_VERSION:
                raise ScoresError(f"{path}: scores format version {version!r}, this code reads {SCORES_FORMAT_VERSION}")
            loaded = VideoScores(data["video_ids"], data["labels"], data["scores"],
                                 tuple(data["class_names"].tolist()), meta)
            check_finite(path, loaded)
            return loaded
    except FileNotFoundError:
        raise ScoresError(f"{path}: scores file not found") from None
    except (OSError, KeyError, ValueError) as exc:
        if isinstance(exc, ScoresError):
            raise
        raise ScoresError(f"{path}: not a readable scores file: {exc}") from None
