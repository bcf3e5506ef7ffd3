"""A manifest for any folder-per-class tree (root/<class>/.../<video>), with a seeded, stratified
train/test split.

Labels are 0-based in sorted class-folder order. Each class is split on its own (stratified),
so a 30% test share holds for every class, not only overall: with n videos, round(n * share)
go to test, at least one of each part when n >= 2, all to train when n == 1. The same seed and
the same tree give the same split on any machine: videos are sorted before a seeded shuffle.

Where the paths start: `manifest check` and `extract` resolve a manifest's paths against its own
folder unless told `--video-root`. So when the manifest is written at or above the root (the usual
`flowprep manifest folder mydata --out my.csv`), its paths start from the manifest's folder
(`mydata/<class>/<video>`) and the readers find the videos with no flag; the manifest and the
videos can then move together. A manifest written elsewhere cannot say where the root is without
an absolute path or `..`, which manifests refuse (flowprep.format.manifest.check_path): its paths
start at the root, and the readers need `--video-root ROOT` (the command says so).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from flowprep.format.manifest import ManifestEntry, ManifestError, validate_video_id
from flowprep.format.names import check_label_name
from runkit.safe_paths import shown

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv")
SPLIT_COLUMN = "split1"


@dataclass(frozen=True)
class FolderManifestConfig:
    root: Path
    test_fraction: float = 0.3
    seed: int = 0
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test fraction must be in [0, 1), got {self.test_fraction!r}")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in self.extensions)
        if not exts or any(len(e) < 2 for e in exts):
            raise ValueError(f"extensions must be non-empty names like .mp4, got {self.extensions!r}")
        object.__setattr__(self, "extensions", exts)


def list_class_folders(root: Path, extensions: tuple[str, ...]) -> dict[str, list[str]]:
    """{class folder name: sorted video paths relative to root (posix)}; the disk-reading edge."""
    if not root.is_dir():
        raise ManifestError(f"video root {root} is not a folder")
    per_class: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        videos = sorted(p.relative_to(root).as_posix() for p in folder.rglob("*")
                        if p.is_file() and p.suffix.lower() in extensions)
        if videos:
            per_class[folder.name] = videos
    if not per_class:
        raise ManifestError(f"no class folders with videos ({', '.join(extensions)}) in {root}")
    return per_class


def stratified_split(per_class: dict[str, list[str]], test_fraction: float, seed: int) -> dict[str, str]:
    """{video path: train|test}, the same share of test videos in every class."""
    rng = np.random.default_rng(seed)
    parts = {}
    for cls in sorted(per_class):
        videos = sorted(per_class[cls])
        n = len(videos)
        n_test = int(round(n * test_fraction))
        if n >= 2 and test_fraction > 0:
            n_test = min(max(n_test, 1), n - 1)
        else:
            n_test = 0
        order = rng.permutation(n)
        test = {videos[i] for i in order[:n_test]}
        for v in videos:
            parts[v] = "test" if v in test else "train"
    return parts


def video_ids(paths: list[str]) -> dict[str, str]:
    """{path: id}: the file stem, or the path without suffix with '/' as '__' where stems collide."""
    stems: dict[str, int] = {}
    for p in paths:
        stems[PurePosixPath(p).stem] = stems.get(PurePosixPath(p).stem, 0) + 1
    ids = {}
    for p in paths:
        stem = PurePosixPath(p).stem
        ids[p] = stem if stems[stem] == 1 else PurePosixPath(p).with_suffix("").as_posix().replace("/", "__")
    return ids


def build_folder_manifest(per_class: dict[str, list[str]], test_fraction: float, seed: int) -> list[ManifestEntry]:
    classes = sorted(per_class)
    parts = stratified_split(per_class, test_fraction, seed)
    paths = [p for cls in classes for p in sorted(per_class[cls])]
    ids = video_ids(paths)
    entries, seen = [], {}
    for label, cls in enumerate(classes):
        problem = check_label_name(cls)  # the class folder's name becomes the label's name
        if problem:
            raise ManifestError(f"class folder {shown(cls)}: {problem}; rename the folder")
        for path in sorted(per_class[cls]):
            vid = ids[path]
            problem = validate_video_id(vid)
            if problem:  # a file name is input too: shown escaped, never raw
                raise ManifestError(f"{shown(path)}: {problem}")
            if vid in seen:
                raise ManifestError(f"{shown(seen[vid])} and {shown(path)} both get video id {shown(vid)}; rename one "
                                    f"of them")
            seen[vid] = path
            entries.append(ManifestEntry(vid, path, label, cls, ((SPLIT_COLUMN, parts[path]),)))
    return entries


def path_prefix(root: Path, manifest_dir: Path) -> str | None:
    """The root as a path relative to the manifest's folder ('' when they are one folder), or None
    when the root is not inside it (a relative path would need '..')."""
    try:
        rel = root.resolve().relative_to(manifest_dir.resolve())
    except ValueError:
        return None
    return "" if rel == Path(".") else rel.as_posix()


def with_prefix(entries: list[ManifestEntry], prefix: str) -> list[ManifestEntry]:
    """Entries whose paths start from the manifest's folder: `prefix/<path>`. Ids stay as they are."""
    if not prefix:
        return entries
    return [replace(e, path=f"{prefix}/{e.path}") for e in entries]


def folder_manifest(config: FolderManifestConfig, manifest_dir: Path | None = None) -> list[ManifestEntry]:
    """The manifest of config.root; with `manifest_dir` (where it will be written), paths relative to
    that folder when the root is inside it, else relative to the root (see the module's note)."""
    entries = build_folder_manifest(list_class_folders(config.root, config.extensions), config.test_fraction,
                                    config.seed)
    prefix = None if manifest_dir is None else path_prefix(config.root, manifest_dir)
    return entries if prefix is None else with_prefix(entries, prefix)
