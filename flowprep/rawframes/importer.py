"""`flowprep import-rawframes`: an existing denseflow/mmaction2 rawframes tree packed into shards.

No flow is recomputed: the quantised flow images become the shards' flow codes as they are, so
the result is an ordinary extraction folder (shards, index.json, failures.jsonl, config.json)
that `train` reads like any other. What the tree cannot tell is stated in an `ImportConfig`,
stored in every shard (the `extract_config` attribute, marked `"origin": "rawframes"`) and in
config.json under "import":
- the bound the flow images were quantised with (told, or from a flowprep export's record, else
  20 px: what mmaction2's build_rawframes.py passes to denseflow, whose own default is 32);
- whether their mean vectors were subtracted (told, or from the record, else no, as denseflow);
  the subtracted means themselves are unknown and stored as zeros;
- backward flow: read from backward_flow_{x,y}_NNNNN files (written by `flowprep
  export-rawframes`), or, for denseflow trees that have none, approximated from the forward
  field (`negate`, see `approximate_backward`).

Labels and splits come from a manifest, from mmaction2 annotation lists, from the lists a
flowprep export wrote (flowprep.rawframes.record), or else from the tree's class folders.

Resume works as for `flowprep extract`: staged videos are packed once, finished ones skipped.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path

import cv2
import numpy as np
from joblib import delayed

from flowprep.extract.config import ImportConfig, check_run_options, worker_count
from flowprep.extract.progress import Progress
from flowprep.extract.shard_writer import StagedVideo
from flowprep.extract.staged_run import (
    RunSummary,
    max_staged_bytes,
    pack_outcomes,
    process_outcomes,
    staged_run,
    when_room,
)
from flowprep.extract.video_job import VideoOutcome
from flowprep.format.codecs import CodecError
from flowprep.format.folder import ExtractionFolder, staging_path, writing_path
from flowprep.format.manifest import ManifestEntry, read_manifest, validate_video_id
from flowprep.format.names import check_label_name
from flowprep.format.quantize import DEFAULT_BOUND, LEVELS, dequantize
from flowprep.format.shards import VideoAttrs
from flowprep.rawframes.annotations import entries_from_annotations, expand_annotations
from flowprep.rawframes.layout import BACKWARD_X, FramePlan, RawframesError, is_frame_dir, plan_frames, scan_frame_dir
from flowprep.rawframes.record import EXPORT_RECORD, ExportRecord, read_export_record
from runkit.faults import disk_full, is_disk_full
from runkit.files import NotRegularFileError, parse_json, read_regular_bytes
from runkit.progress import format_duration
from runkit.safe_paths import RootGuard, check_inside, overlap_problem

log = logging.getLogger("flowprep")



@dataclass(frozen=True)
class ImportRun:
    """One `flowprep import-rawframes` invocation."""

    root: Path  # the rawframes tree
    out_dir: Path
    config: ImportConfig = field(default_factory=ImportConfig)
    manifest: Path | None = None  # labels and splits; None: annotation lists, or the tree's class folders
    workers: int = 0  # 0 = all cores
    shard_size_mb: float = 1024.0
    overwrite: bool = False
    # mmaction2 annotation lists (paths, or patterns with {part} and {n}: flowprep.rawframes.annotations)
    annotations: tuple[str, ...] = ()
    # read frame folders and images that resolve outside the tree (symlinks to elsewhere); by
    # default each such video is a failures record, as `flowprep extract --follow-symlinks`
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        check_run_options(self.workers, self.shard_size_mb)
        if self.manifest is not None and self.annotations:
            raise ValueError("give --manifest or --annotations, not both: both say the labels and splits")

    @property
    def n_workers(self) -> int:
        return worker_count(self.workers)


@dataclass(frozen=True)
class ImportSource:
    entry: ManifestEntry  # path: the frame folder relative to the tree's root
    frame_dir: Path | None  # None: no folder found for this manifest row


@dataclass(frozen=True)
class ImportOutcome(VideoOutcome):
    dropped: str = ""  # images left out of the video (FramePlan.dropped)


def import_lines(summary: RunSummary, c: ImportConfig, labels_from: str, told: str, dropped_videos: list[str],
                 unlisted_folders: list[str]) -> RunSummary:
    """The summary with import's own lines: where labels and splits came from (`labels_from`), the
    tree's folders in no list read (left out), the frames, what was assumed of the flow (`told`:
    where the bound and mean subtraction came from) and the videos that lost images ("video:
    images")."""
    backward = ("read from backward_flow_* files" if c.backward_flow == "files"
                else "approximated from the forward flow (no backward files)")
    dropped = [f"dropped: {len(dropped_videos)} video(s) had as many flow fields as frames; the last field of "
               f"each has no frame after it (e.g. {dropped_videos[0]})"] if dropped_videos else []
    unlisted = [f"left out: {len(unlisted_folders)} video folder(s) of the tree are in none of these lists (a "
                f"split that is neither train nor test, e.g. 'unused', is in no list), e.g. {unlisted_folders[0]}; "
                f"give --manifest naming them to import them too"] if unlisted_folders else []
    return replace(summary, details=[
        f"labels and splits: {labels_from}",
        *unlisted,
        f"frames: {summary.frames} in {format_duration(summary.seconds)}",
        f"assumed: flow quantised with bound {c.bound:g} px, mean {'' if c.mean_subtracted else 'not '}subtracted"
        f"{f' ({told})' if told else ''}; backward flow {backward}",
        *dropped,
    ])


# --- finding the videos -------------------------------------------------------------------------
def sources_from_manifest(entries: list[ManifestEntry], root: Path) -> list[ImportSource]:
    """Frame folder of each manifest row: its path itself (an annotation list's frame_dir), its
    path without the video extension (mmaction2's class/video layout, so the shipped
    UCF101/HMDB51 manifests work as they are), or root/<video_id> (a flat tree), whichever is a
    folder. The paths were checked not to leave the root (check_path, validate_video_id)."""
    sources = []
    for e in entries:
        path = Path(e.path)
        candidates = dict.fromkeys([root / path, root / path.with_suffix(""), root / e.video_id])
        found = next((c for c in candidates if c.is_dir()), None)
        sources.append(ImportSource(e, found))
    return sources


def sources_from_tree(root: Path) -> list[ImportSource]:
    """Every frame folder of a tree: root/<video>/ (label 0) or root/<class>/<video>/ (labels
    0-based in sorted class order), the two layouts denseflow and mmaction2 write."""
    if not root.is_dir():
        raise RawframesError(f"rawframes tree {root} is not a folder")
    # hidden folders are not classes: denseflow keeps its done markers in TREE/.done/
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    flat = sorted(p for p in folders if is_frame_dir(p))
    nested = sorted(p for c in folders if not is_frame_dir(c)
                    for p in c.iterdir() if p.is_dir() and is_frame_dir(p))
    if flat and nested:
        raise RawframesError(f"{root} mixes video folders ({flat[0].name}) and class folders ({nested[0].parent.name}); "
                             "give --manifest or --annotations to say which is which")
    if not flat and not nested:
        raise RawframesError(f"no frame folders (holding img_NNNNN.jpg, flow_x_NNNNN.jpg or x_NNNNN.jpg images) in {root} "
                             "or its subfolders")
    label_of = {name: i for i, name in enumerate(sorted({p.parent.name for p in nested}))}
    for name in label_of:  # a class folder's name becomes a label name, printed in logs and reports
        problem = check_label_name(name)
        if problem:
            raise RawframesError(f"{root / name}: {problem}")
    sources, seen = [], {}
    for p in flat or nested:
        problem = validate_video_id(p.name)
        if problem:
            raise RawframesError(f"{p}: {problem}")
        if p.name in seen:
            raise RawframesError(f"video folder name {p.name!r} is in both {seen[p.name]} and {p.parent}; "
                                 "video ids must be unique: give --manifest with distinct ids")
        seen[p.name] = p.parent
        label, name = (label_of[p.parent.name], p.parent.name) if nested else (0, "")
        entry = ManifestEntry(p.name, p.relative_to(root).as_posix(), label, name or str(label))
        sources.append(ImportSource(entry, p))
    return sources


def has_backward_files(folder: Path) -> bool:
    # a glob, not scan_frame_dir: a damaged folder is one video's failure, not the run's
    return any(folder.glob(f"{BACKWARD_X}_*"))


# --- one video ----------------------------------------------------------------------------------
def approximate_backward(forward_codes: np.ndarray, bound: float) -> np.ndarray:
    """Backward flow codes approximated from forward ones: B(p) = -F(p - F(p)).

    A pixel p of frame t+1 came from about p - F(p) in frame t, and moves back by minus the
    forward flow there. Exact for motion that is uniform over its own displacement; wrong in a
    band as wide as the motion at occlusion boundaries. Sampling is nearest-neighbour on the
    codes and negation is 255 - code, so no value is re-quantised.
    """
    flow = dequantize(forward_codes, bound)
    h, w = forward_codes.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    sampled = cv2.remap(forward_codes, xs - flow[..., 0], ys - flow[..., 1], cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_REPLICATE)
    return (LEVELS - sampled).astype(np.uint8)


def _read(path: Path, color: bool, size: tuple[int, int] | None) -> np.ndarray:
    try:  # a FIFO or device named like an image is refused, never waited on
        data = np.frombuffer(read_regular_bytes(path), np.uint8)
    except NotRegularFileError as exc:
        raise RawframesError(str(exc)) from None
    if not data.size:
        raise RawframesError(f"{path}: an empty file (0 bytes), not an image")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:  # some damaged files make OpenCV's decoders raise rather than return None
        raise RawframesError(f"{path}: does not decode as an image (OpenCV: {' '.join(str(exc).split())[-160:]})") \
            from None
    if image is None:
        raise RawframesError(f"{path}: does not decode as an image")
    if size is not None and (image.shape[1], image.shape[0]) != size:
        raise RawframesError(f"{path}: {image.shape[1]}x{image.shape[0]}, but the video's frames are {size[0]}x{size[1]}")
    return image


def import_video(source: ImportSource, config_json: str, staging_dir: Path, root: Path | None = None) -> VideoOutcome:
    """Pack one frame folder into a staging file; never raises for bad input, returns the reason.
    `root`: the tree, outside which no image may resolve (None: --follow-symlinks)."""
    cv2.setNumThreads(1)  # one core per worker: parallelism comes from processes
    started = time.perf_counter()
    entry, folder = source.entry, source.frame_dir
    if folder is None:
        return VideoOutcome(entry.video_id, entry.path, None, f"no frame folder {entry.path!r} under the tree's root")
    try:
        config = ImportConfig.from_dict(parse_json(config_json, dict))
        return _import(entry, folder, config, config_json, staging_dir, started, root)
    except (RawframesError, CodecError) as exc:
        reason = str(exc)
    except OSError as exc:
        if is_disk_full(exc):  # not this video's fault: every next one would fail too
            raise disk_full(staging_dir, exc) from None
        reason = f"I/O error: {exc}"
    return VideoOutcome(entry.video_id, str(folder), None, reason, seconds=time.perf_counter() - started)


def _import(entry: ManifestEntry, folder: Path, config: ImportConfig, config_json: str, staging_dir: Path,
            started: float, root: Path | None) -> VideoOutcome:
    plan = plan_frames(scan_frame_dir(folder), config.backward_flow == "files", str(folder))
    if root is not None:
        check_images_inside(root, folder, plan)
    first = _read(folder / plan.frames[0], color=True, size=None)
    size = (first.shape[1], first.shape[0])
    no_mean = np.zeros(2, np.float32)  # the means subtracted before quantisation, if any, are unknown
    with StagedVideo(staging_dir, entry.video_id, size[0], size[1], config.rgb_codec,
                     config.flow_codec, config.bound, config_json) as staged:
        for name in plan.frames:
            staged.add_frame(_read(folder / name, color=True, size=size))
        for i, names in enumerate(plan.forward):
            forward = _read_field(folder, names, size)
            staged.add_flow("forward", forward, no_mean)
            if config.backward_flow == "files":
                backward = _read_field(folder, plan.backward[i], size)
            else:
                backward = approximate_backward(forward, config.bound)
            staged.add_flow("backward", backward, no_mean)
        fps = config.fps or 0.0  # 0.0: unknown, as flowprep.extract.decode records a missing frame rate
        attrs = VideoAttrs(
            label=entry.label, label_name=entry.label_name, splits=json.dumps(entry.splits_dict, sort_keys=True),
            source_path=entry.path,
            # the tree holds no trace of the original video: its size is the frames' size
            source_width=size[0], source_height=size[1],
            fps_source=fps, fps_sampled=fps, width=size[0], height=size[1], num_frames=staged.frames,
            mean_subtracted=config.mean_subtracted,
        )
        path = staged.commit(attrs)
    return ImportOutcome(entry.video_id, str(folder), path, None, staged.frames, staged.pairs, 0.0,
                         time.perf_counter() - started, dropped=plan.dropped)


def check_images_inside(root: Path, folder: Path, plan: FramePlan) -> None:
    """A RawframesError naming the first image of the video that is a symlink to a file outside
    the tree: a tree is read as it stands, and a link in it is no way to read elsewhere."""
    guard = RootGuard(root)
    for name in chain(plan.frames, *plan.forward, *plan.backward):
        real = guard.outside(folder / name)
        if real is not None:
            raise RawframesError(f"{folder / name} is a symlink to {real!r}, outside the rawframes tree {str(root)!r}; "
                                 f"pass --follow-symlinks to allow it")


def outside_tree(sources: list[ImportSource], root: Path) -> tuple[list[ImportSource], list[VideoOutcome]]:
    """Split the videos into those whose frame folder lies in the tree and the failures of those
    whose folder (or class folder) is a symlink to elsewhere, as extract does for videos."""
    guard = RootGuard(root)
    kept, refused = [], []
    for s in sources:
        real = None if s.frame_dir is None else guard.outside(s.frame_dir)
        if real is None:
            kept.append(s)
        else:
            refused.append(VideoOutcome(s.entry.video_id, str(s.frame_dir), None,
                                        f"{str(s.frame_dir)!r} is a symlink to {real!r}, outside the rawframes tree "
                                        f"{str(root)!r}; pass --follow-symlinks to allow it"))
    return kept, refused


def _read_field(folder: Path, names: tuple[str, str], size: tuple[int, int]) -> np.ndarray:
    x = _read(folder / names[0], color=False, size=size)
    y = _read(folder / names[1], color=False, size=size)
    return np.stack([x, y], axis=-1)


# --- the whole tree -----------------------------------------------------------------------------
def resolve_backward(sources: list[ImportSource]) -> str:
    """'files' when the tree has backward flow files (judged by its first folder), else 'negate'."""
    first = next((s.frame_dir for s in sources if s.frame_dir is not None), None)
    return "files" if first is not None and has_backward_files(first) else "negate"


def find_sources(run: ImportRun, record: ExportRecord | None) -> tuple[list[ImportSource], str]:
    """The videos to import and where their labels and splits come from (said in the summary)."""
    if not run.root.is_dir():
        raise RawframesError(f"rawframes tree {run.root} is not a folder")
    problem = overlap_problem(run.out_dir, run.root, "the rawframes tree")
    if problem:  # the shards would be written among the frame folders, and scanned as one next time
        raise RawframesError(problem)
    if run.manifest is not None:
        return sources_from_manifest(read_manifest(run.manifest), run.root), f"manifest {run.manifest}"
    if run.annotations:
        lists = expand_annotations(list(run.annotations))
        names = record.label_names if record else None
        return sources_from_manifest(entries_from_annotations(lists, names), run.root), \
            f"{len(lists)} annotation list(s): {', '.join(str(a.path) for a in lists)}"
    if record is not None and record.annotation_lists:
        lists = expand_annotations(list(record.annotation_lists), relative_to=run.root)
        return sources_from_manifest(entries_from_annotations(lists, record.label_names), run.root), \
            f"the annotation lists {EXPORT_RECORD} names ({', '.join(record.annotation_lists)})"
    sources = sources_from_tree(run.root)
    nested = any("/" in s.entry.path for s in sources)
    return sources, ("class folders (labels in sorted class order), no splits" if nested
                     else "none (a flat tree without lists: every label 0, no splits)")


def unlisted_folders(run: ImportRun, record: ExportRecord | None, sources: list[ImportSource]) -> list[str]:
    """The frame folders of a flowprep export's tree (flat or class layout) that none of the lists
    its record names lists, read with no --manifest or --annotations: the videos whose split is
    neither train nor test ('unused') in every column. A round trip left 5 of 11 videos out with
    no word (issue 30). Relative paths, sorted; [] for any other import."""
    if run.manifest is not None or run.annotations or record is None or not record.annotation_lists:
        return []
    try:
        in_tree = sources_from_tree(run.root)
    except RawframesError:  # a tree that is not one layout: its lists are all there is to go by
        return []
    listed = {s.frame_dir.resolve() for s in sources if s.frame_dir is not None}
    return sorted(s.entry.path for s in in_tree if s.frame_dir is not None and s.frame_dir.resolve() not in listed)


def resolve_config(config: ImportConfig, record: ExportRecord | None) -> tuple[ImportConfig, str]:
    """Bound and mean subtraction as told, else as the export record says, else the defaults."""
    told = []
    bound, mean = config.bound, config.mean_subtracted
    if record is not None and bound is not None and record.bound is not None and record.bound != bound:
        log.warning("--bound %g differs from the bound %g that %s records; using %g", bound, record.bound,
                    EXPORT_RECORD, bound)
    if record is not None and mean is not None and record.mean_subtracted is not None and record.mean_subtracted != mean:
        log.warning("mean subtraction %s differs from what %s records (%s); using what was told", mean,
                    EXPORT_RECORD, record.mean_subtracted)
    if bound is None and record is not None and record.bound is not None:
        bound = record.bound
        told.append("bound")
    if mean is None and record is not None and record.mean_subtracted is not None:
        mean = record.mean_subtracted
        told.append("mean subtraction")
    resolved = replace(config, bound=DEFAULT_BOUND if bound is None else bound, mean_subtracted=bool(mean))
    return resolved, f"{' and '.join(told)} from {EXPORT_RECORD}" if told else ""


def check_out_paths(folder: ExtractionFolder, sources: list[ImportSource]) -> None:
    """Refuse, before anything is touched, a run whose staging files would land outside the output
    folder (a symlinked staging/ or video file left in a folder from elsewhere)."""
    staged = [staging_path(folder.staging_dir, s.entry.video_id) for s in sources]
    check_inside(folder.root, folder.staging_dir, *staged, *(writing_path(p) for p in staged),
                 error=RawframesError)


def import_rawframes(run: ImportRun, interactive: bool | None = None) -> RunSummary:
    """Pack every frame folder of the tree that is not yet in the output's shards."""
    started = time.perf_counter()
    record = read_export_record(run.root) if run.root.is_dir() else None
    sources, labels_from = find_sources(run, record)
    unlisted = unlisted_folders(run, record, sources)
    if unlisted:
        log.warning("%d video folder(s) of %s are in no annotation list %s names (e.g. %s): not imported",
                    len(unlisted), run.root, EXPORT_RECORD, unlisted[0])
    refused: list[VideoOutcome] = []
    if not run.follow_symlinks:
        sources, refused = outside_tree(sources, run.root)
    config, told = resolve_config(run.config, record)
    if config.backward_flow is None:
        config = replace(config, backward_flow=resolve_backward(sources))
    config_json = config.to_json()
    folder = ExtractionFolder(run.out_dir)
    check_out_paths(folder, sources)
    with staged_run(folder, "import", config, run.overwrite) as staging:
        todo = [s for s in sources if not staging.done(s.entry.video_id)]
        log.info("import config: %s", config_json)
        log.info("%d videos in %s: %d already done, %d to import; labels and splits: %s", len(sources), run.root,
                 len(sources) - len(todo), len(todo), labels_from)
        dropped: list[str] = []

        def note_dropped(outcome: VideoOutcome) -> None:
            if isinstance(outcome, ImportOutcome) and outcome.dropped:
                dropped.append(f"{outcome.video_id}: {outcome.dropped}")
                log.info("%s: dropped %s", outcome.video_id, outcome.dropped)

        # as extract's jobs: each waits while staging is full (its disk use bounded by the shard size), and
        # worker processes leave a Ctrl-C to this process, which ends them before it lets go of the lock
        max_staged = max_staged_bytes(run.shard_size_mb * 1e6)
        root = None if run.follow_symlinks else run.root
        jobs = [delayed(when_room)(import_video, staging.dir, max_staged, s, config_json, staging.dir, root,
                                   owner=os.getpid()) for s in todo]
        packed = pack_outcomes(staging, lambda: process_outcomes(jobs, run.n_workers),
                               Progress(len(jobs) + len(refused), interactive=interactive), config_json,
                               run.shard_size_mb * 1e6, failed_first=refused, on_success=note_dropped)
        summary = replace(packed, verb="imported", scope="found", total=len(sources) + len(refused),
                          skipped=len(sources) - len(todo), seconds=time.perf_counter() - started)
        return import_lines(summary, config, labels_from, told, dropped, unlisted)
