"""`flowprep export-rawframes`: an extraction folder written out as a denseflow/mmaction2 rawframes tree.

    out/<video_id>/img_00001.jpg, flow_x_00001.jpg, flow_y_00001.jpg, ...   (flowprep.rawframes.layout)
    out/<label_name>/<video_id>/...        with layout "class" (mmaction2's build_rawframes.py --level 2)
    out/<prefix>_train_split_1_rawframes.txt, <prefix>_val_split_1_rawframes.txt, ...
    out/flowprep_export.json               what import-rawframes needs to read it back (flowprep.rawframes.record)

so mmaction2's RawframeDataset (filename_tmpl 'img_{:05}.jpg' / 'flow_{}_{:05d}.jpg',
start_index 1) trains on our extraction. Flow images are the shard's quantised codes written as
they are (same bound, same 128 ~ zero mapping as denseflow), so no second quantisation happens;
`restore_mean` re-quantises with the subtracted mean added back, for flow as denseflow computes it.

Each video is written into `<video_id>.part/` and renamed when complete, so an interrupted
export leaves no half video under a final name, and running it again skips finished videos.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from joblib import delayed

from flowprep.extract.config import stored_flow, worker_count
from flowprep.extract.staged_run import worker_pool
from flowprep.format.codecs import CodecError
from flowprep.format.folder import ExtractionFolder, Failure, writing_path
from flowprep.format.folder_config import FolderConfig
from flowprep.format.folder_index import IndexEntry
from flowprep.format.manifest import validate_video_id
from flowprep.format.quantize import quantize
from flowprep.format.shards import ShardFormatError, VideoReader, open_shard, video_reader
from flowprep.rawframes.layout import (
    FLOW_KINDS,
    IMAGE_FORMATS,
    IMG,
    RawframesError,
    annotation_line,
    annotation_list_name,
    check_frame_dir,
    frame_name,
)
from flowprep.rawframes.record import EXPORT_RECORD, read_export_record, resume_problem, write_export_record
from runkit.files import open_for_writing, write_text_atomic
from runkit.lock import folder_lock
from runkit.safe_paths import check_inside, overlap_problem
from runkit.signals import leave_stops_to

log = logging.getLogger("flowprep")

LAYOUTS = ("flat", "class")  # OUT/<video>/ or OUT/<label_name>/<video>/
# OpenCV's default JPEG quality, which is what denseflow's cv::imwrite calls use
DENSEFLOW_JPEG_QUALITY = 95


@dataclass(frozen=True)
class ExportConfig:
    image_format: str = "jpg"  # jpg as denseflow writes; png for a lossless tree
    jpeg_quality: int = DENSEFLOW_JPEG_QUALITY
    # backward flow has no place in denseflow's layout; it is written under names mmaction2
    # ignores, so the tree loses nothing and `import-rawframes` can rebuild the shards
    backward: bool = True
    restore_mean: bool = False  # add the subtracted mean vectors back (re-quantises the flow)
    list_prefix: str | None = None  # annotation list names; None: the extraction folder's name
    workers: int = 1  # parallel processes; 0 = all cores
    overwrite: bool = False  # rewrite videos already in the tree
    layout: str = "flat"  # one of LAYOUTS

    def __post_init__(self) -> None:
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}")
        if not isinstance(self.jpeg_quality, int) or not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be an integer 1-100, got {self.jpeg_quality!r}")
        if self.list_prefix is not None and (not self.list_prefix or any(c.isspace() or c in "/\\" for c in self.list_prefix)):
            raise ValueError(f"list prefix must be a non-empty name without spaces or slashes, got {self.list_prefix!r}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be 0 (all cores) or positive, got {self.workers!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")

    def encode_params(self) -> list[int]:
        return [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality] if self.image_format == "jpg" else []


@dataclass(frozen=True)
class VideoExport:
    video_id: str
    files: int = 0
    bytes: int = 0
    error: str | None = None


@dataclass
class ExportSummary:
    exported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already complete in the tree
    failures: list[Failure] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    lists: list[Path] = field(default_factory=list)  # the annotation lists written

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        return [
            f"videos: {len(self.exported)} exported, {len(self.skipped)} already in the tree, {len(self.failures)} failed",
            f"files: {self.files} written, {self.bytes / 1e6:.1f} MB",
            *(f"annotation list: {p}" for p in self.lists),
        ]


def export_rawframes(extraction_dir: str | Path, out_dir: str | Path, video_ids: list[str] | None = None,
                     config: ExportConfig = ExportConfig()) -> ExportSummary:
    """Write the videos of an extraction folder (all, or `video_ids`) as a rawframes tree in `out_dir`.

    Writes one folder per video and mmaction2 annotation lists (one per split column and part,
    or `<prefix>_rawframes.txt` when the extraction has no splits) listing every requested video
    that is complete in the tree. A video that cannot be read is recorded in the summary's
    failures and left out; the others go on.
    """
    extraction_dir, out_dir = Path(extraction_dir), Path(out_dir)
    problem = overlap_problem(out_dir, extraction_dir, "the extraction")
    if problem:  # video folders and lists written among (or over) the shards, index.json and config.json
        raise RawframesError(problem)
    folder = ExtractionFolder(extraction_dir)
    index = folder.read_index()  # ids and shard names checked there: names from a folder are input
    entries = videos_to_export(index, video_ids, extraction_dir)
    dirs = {e.video_id: frame_dir(e, config.layout) for e in entries}  # refuse before any work, not after hours of it
    for e in entries:
        check_inside(out_dir, *video_paths(out_dir, dirs[e.video_id]), error=RawframesError)
    check_inside(out_dir, out_dir / EXPORT_RECORD, error=RawframesError)
    if folder.config_path.exists():  # a shard of another extraction dropped into the folder: refused
        folder.check_shards(sorted({e.shard for e in entries}))
    prefix = config.list_prefix or _default_prefix(extraction_dir)
    log.info("export config: %s", json.dumps(asdict(config), sort_keys=True))
    # one export at a time into a tree: two at once wrote each other's videos in two formats
    with folder_lock(out_dir, RawframesError, holder="another export"):
        return _export_locked(extraction_dir, out_dir, index, entries, dirs, prefix, config)


def _export_locked(extraction_dir: Path, out_dir: Path, index: dict[str, IndexEntry],
                   entries: list[IndexEntry], dirs: dict[str, str], prefix: str, config: ExportConfig) -> ExportSummary:
    """export_rawframes in its locked tree: the options checked against (and recorded before) any
    video, the videos, the lists, the final record."""
    previous = read_export_record(out_dir)
    record = export_record(extraction_dir, config, list(previous.annotation_lists) if previous else [], entries)
    if previous is not None and not config.overwrite:
        problem = resume_problem(out_dir, previous, record)
        if problem:
            raise RawframesError(problem)
    write_export_record(out_dir, record)  # a stopped export leaves its options for the next run to check

    summary = ExportSummary()
    todo = []
    for e in entries:
        if (out_dir / dirs[e.video_id]).is_dir() and not config.overwrite:
            summary.skipped.append(e.video_id)
        else:
            todo.append(e)
    jobs = [delayed(export_video)(extraction_dir / e.shard, e.video_id, out_dir, config, dirs[e.video_id],
                                  owner=os.getpid()) for e in todo]
    with worker_pool(jobs, worker_count(config.workers)) as results:  # capped at a process a core
        for result in results:
            if result.error:
                summary.failures.append(Failure(result.video_id, str(extraction_dir / index[result.video_id].shard),
                                                result.error))
            else:
                summary.exported.append(result.video_id)
                summary.files += result.files
                summary.bytes += result.bytes
    done = [e for e in entries if e.video_id in set(summary.exported) | set(summary.skipped)]
    summary.lists = write_annotation_lists(out_dir, prefix, done, dirs)
    # written last, naming the lists: a tree with a record is complete for what it lists
    write_export_record(out_dir, export_record(extraction_dir, config, [p.name for p in summary.lists], done))
    return summary


def frame_dir(entry: IndexEntry, layout: str) -> str:
    """The video's folder relative to the tree: `<video_id>` or `<label_name>/<video_id>`, checked
    to be one folder name each (a label name becomes a path only here, after the check) and to fit
    an annotation list line."""
    if layout == "flat":
        path = entry.video_id
    else:
        problem = validate_video_id(entry.label_name)
        if problem:
            raise RawframesError(f"label name {entry.label_name!r} of {entry.video_id} cannot be a class folder: "
                                 f"{problem.replace('video_id', 'a folder name')}; use --layout flat")
        path = f"{entry.label_name}/{entry.video_id}"
    check_frame_dir(path)
    return path


def export_record(extraction_dir: Path, config: ExportConfig, lists: list[str],
                  entries: list[IndexEntry]) -> dict:
    """The tree's record (flowprep.rawframes.record) of an export of `entries` with `config`,
    naming the annotation lists `lists`."""
    try:
        source: FolderConfig | None = ExtractionFolder(extraction_dir).read_config()
    except ShardFormatError:
        source = None  # an extraction folder without a readable config.json still exports
    bound = mean = None
    if source is not None:
        try:
            bound, mean = stored_flow(source.kind, source.settings)
        except (ValueError, TypeError):  # settings this flowprep does not parse: the record says it does not know
            pass
    if config.restore_mean:  # the images hold flow with its mean: not mean-subtracted, whatever the source did
        mean = False
    record = {"source": str(extraction_dir.resolve()),
              "source_config": None if source is None else source.stored(),
              "export": asdict(config),
              "bound": bound,
              "flow_mean_subtracted": mean,
              "layout": config.layout,
              "annotation_lists": lists,
              "label_names": {str(label): name for label, name in sorted({(e.label, e.label_name) for e in entries})}}
    return record


def videos_to_export(index: dict[str, IndexEntry], video_ids: list[str] | None, where: Path) -> list[IndexEntry]:
    """The index entries an export writes: `video_ids` (all, sorted, if None); an error naming any
    id the index lacks."""
    if video_ids is None:
        return [index[v] for v in sorted(index)]
    unknown = [v for v in video_ids if v not in index]
    if unknown:
        shown = ", ".join(repr(v) for v in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise RawframesError(f"{where}: no video {shown} in the index ({len(index)} videos, e.g. "
                             f"{', '.join(sorted(index)[:3])})")
    return [index[v] for v in dict.fromkeys(video_ids)]


def export_video(shard_path: Path, video_id: str, out_dir: Path, config: ExportConfig,
                 relative_dir: str | None = None, owner: int | None = None) -> VideoExport:
    """Write one video's folder (OUT/`relative_dir`, default OUT/<video_id>); never raises for a
    damaged shard, returns the reason instead. `owner`: the pid of the export's main process,
    which acts on stop signals for its worker processes."""
    if owner is not None:
        leave_stops_to(owner)
    cv2.setNumThreads(1)  # one core per worker: parallelism comes from processes
    final, part = video_paths(out_dir, relative_dir or video_id)
    try:
        check_inside(out_dir, final, part, error=RawframesError)  # again: a symlink made since is refused too
    except RawframesError as exc:
        return VideoExport(video_id, error=str(exc))
    try:
        if part.exists():
            shutil.rmtree(part)  # left by an interrupted export
        part.parent.mkdir(parents=True, exist_ok=True)
        part.mkdir()
        with open_shard(shard_path) as f:
            files, size = _write_video(video_reader(f, video_id), part, config)
        if final.exists():  # overwrite: the old folder goes only once the new one is complete
            shutil.rmtree(final)
        part.rename(final)
        return VideoExport(video_id, files, size)
    except (ShardFormatError, CodecError, RawframesError) as exc:
        reason = str(exc)
    except (OSError, KeyError) as exc:  # h5py reports damaged data as OSError / KeyError
        reason = f"{type(exc).__name__}: {exc}"
    shutil.rmtree(part, ignore_errors=True)
    return VideoExport(video_id, error=reason)


def video_paths(out_dir: Path, relative_dir: str) -> tuple[Path, Path]:
    """The folder a video is exported to (OUT/<video_id> or OUT/<label_name>/<video_id>), and the
    `.part` folder it is written in first: the two paths an export writes and deletes, each
    checked to lie inside --out before it is touched."""
    final = out_dir / relative_dir
    return final, writing_path(final)


def _write_video(video: VideoReader, folder: Path, config: ExportConfig) -> tuple[int, int]:
    files = size = 0

    def write(name: str, data: bytes) -> None:
        nonlocal files, size
        with open_for_writing(folder / name) as fh:  # never through a link planted in the folder
            fh.write(data)
        files += 1
        size += len(data)

    copy_jpeg = video.rgb_codec.kind == "jpeg" and config.image_format == "jpg"
    for i in range(video.num_frames):
        if copy_jpeg:
            # a stored RGB JPEG is already a .jpg file: copying it avoids a second generation of loss
            data = video.stored_rgb(i).tobytes()
        else:
            data = _encode(cv2.cvtColor(video.rgb(i), cv2.COLOR_RGB2BGR), config)
        write(frame_name(IMG, i, config.image_format), data)
    directions = ("forward", "backward") if config.backward else ("forward",)
    for direction in directions:
        x_kind, y_kind = FLOW_KINDS[direction]
        for i in range(video.num_frames - 1):
            if config.restore_mean:
                codes = quantize(video.flow(direction, i, restore_mean=True), video.bound)
            else:
                codes = video.flow_codes(direction, i)
            write(frame_name(x_kind, i, config.image_format), _encode(codes[..., 0], config))
            write(frame_name(y_kind, i, config.image_format), _encode(codes[..., 1], config))
    return files, size


def _encode(image: np.ndarray, config: ExportConfig) -> bytes:
    ok, buf = cv2.imencode("." + config.image_format, np.ascontiguousarray(image), config.encode_params())
    if not ok:
        raise RawframesError(f"OpenCV could not encode a {image.shape} image as {config.image_format}")
    return buf.tobytes()


def write_annotation_lists(out_dir: Path, prefix: str, entries: list[IndexEntry],
                           dirs: dict[str, str] | None = None) -> list[Path]:
    """mmaction2 lists `frame_dir total_frames label`, one per (split column, train|test).

    total_frames is the number of flow fields (T-1): one list then serves both streams, since
    an RGB model that never samples the last frame loses nothing, while a flow model given T
    would ask for flow_x_T, which does not exist.
    """
    columns = sorted({name for e in entries for name in e.splits})
    groups: dict[str, list[str]] = {}
    for e in entries:
        line = annotation_line((dirs or {}).get(e.video_id, e.video_id), e.num_frames - 1, e.label)
        if not columns:
            groups.setdefault(annotation_list_name(prefix, None, ""), []).append(line)
        for column in columns:
            part = e.splits.get(column, "unused")
            if part in ("train", "test"):
                groups.setdefault(annotation_list_name(prefix, column, part), []).append(line)
    paths = []
    check_inside(out_dir, *(out_dir / name for name in groups), error=RawframesError)
    for name, lines in sorted(groups.items()):
        path = out_dir / name
        write_text_atomic(path, "".join(line + "\n" for line in lines))
        paths.append(path)
    return paths


def _default_prefix(extraction_dir: Path) -> str:
    name = extraction_dir.resolve().name
    cleaned = "".join("_" if c.isspace() else c for c in name)
    return cleaned or "flowprep"
