"""`twostream predict --live SOURCE`: classify a stream as it comes (a camera, a video file played
as a stream, an RTSP/HTTP URL OpenCV opens).

A sliding window holds the last W sampled frames as the extraction stores them, and the fields
between them: each new frame adds one pair's flow (only the directions the runs read: a forward
stack needs no backward field), so no field is computed twice. Every N frames the predictor's
protocol (by default one position, the centre crop) runs on the window as on a short video. The
frames/s sustained (frames read over the wall time, everything included) and the latency from the
arrival of a window's newest frame to its label are printed at the end and written to
OUT/live.json; OUT/annotated.avi (and --show's window, where a display exists) shows each frame
with the current label and the newest field's flow.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from flowprep.api import FrameSampler, VideoInfo, flow_to_rgb, frame_size, hstack, labelled
from flowprep.format.quantize import dequantize
from runkit.files import write_json_atomic
from twostream.core.errors import DataError
from twostream.data.clip_sampling import ClipSpec, clip_span
from twostream.data.paired import PairSpec
from twostream.predict.predictor import Predictor
from twostream.predict.video_input import DIRECTIONS, FrameCoder, MemoryVideo

log = logging.getLogger("twostream")
LIVE_FILE, ANNOTATED_FILE = "live.json", "annotated.avi"


def needs(layout) -> tuple[int, tuple[str, ...]]:
    """(frames one input spans, the flow directions it reads) of a network's input layout."""
    if isinstance(layout, PairSpec):
        return needs(layout.temporal)
    if isinstance(layout, ClipSpec):
        span = clip_span(layout.clip, layout.stride)
        return (span, ()) if layout.stream == "spatial" else (span + 1, ("forward",))
    if layout.stream == "spatial":
        return 1, ()
    return layout.flow_length + 1, DIRECTIONS if layout.flow_stack == "bidirectional" else ("forward",)


class LiveWindow:
    """The last `size` frames of one extraction's input and the fields between them."""

    def __init__(self, coder: FrameCoder, size: int) -> None:
        self.coder, self.size = coder, size
        self.frames: deque[np.ndarray] = deque(maxlen=size)
        self.planes = {d: deque(maxlen=size - 1) for d in DIRECTIONS}
        self.means = {d: deque(maxlen=size - 1) for d in DIRECTIONS}
        self.pairs = 0  # flow pairs computed, all told: one a frame after the first

    def add(self, frame_bgr: np.ndarray) -> None:
        rgb, fields = self.coder.add(frame_bgr)
        self.frames.append(rgb)
        self.pairs += bool(fields)
        for direction, (planes, mean) in fields.items():
            self.planes[direction].append(planes)
            self.means[direction].append(mean)

    @property
    def full(self) -> bool:
        return len(self.frames) == self.size

    def video(self) -> MemoryVideo:
        height, width = self.frames[0].shape[:2]
        video = MemoryVideo(self.coder.config, width, height)
        video.frames = list(self.frames)
        video.planes = {d: list(p) for d, p in self.planes.items()}
        video.means = {d: list(m) for d, m in self.means.items()}
        return video

    def newest_flow(self) -> np.ndarray | None:
        forward = self.planes["forward"] or self.planes["backward"]
        return dequantize(forward[-1].transpose(1, 2, 0), self.coder.config.bound) if forward else None


class Labeller:
    """The networks in a thread of their own, so frames (and their flow) keep coming while a window
    is scored: torch and OpenCV release the GIL, and on 2 cores the flow and the networks each get
    one. One window at a time: a label that falls due while the last is still computing is skipped
    (counted), so labels never queue up behind the stream and their latency stays bounded."""

    def __init__(self, predictor: Predictor, key: str) -> None:
        self.predictor, self.key = predictor, key
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labeller")
        self.pending: tuple[Future, int] | None = None
        self.skipped = 0

    def _score(self, video: MemoryVideo, arrived: float) -> tuple[float, np.ndarray]:
        scores = self.predictor.scores([{self.key: video}])[0]
        return time.perf_counter() - arrived, scores

    def due(self, video: MemoryVideo, index: int, arrived: float) -> None:
        if self.pending is not None:
            self.skipped += 1
            return
        self.pending = self.pool.submit(self._score, video, arrived), index

    def done(self, wait: bool = False) -> list[tuple[int, float, np.ndarray]]:
        """(frame, latency, scores) of the label that has come, if any."""
        if self.pending is None or not (wait or self.pending[0].done()):
            return []
        (future, index), self.pending = self.pending, None
        latency, scores = future.result()
        return [(index, latency, scores)]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def open_source(source: str) -> tuple[cv2.VideoCapture, float]:
    """A camera index, a file or a URL; (the capture, its stated frame rate or 0)."""
    capture = cv2.VideoCapture(int(source)) if source.isdigit() else cv2.VideoCapture(source)
    if not capture.isOpened():
        raise DataError(f"--live {source}: OpenCV cannot open it (expected a camera index such as 0, a video file, "
                        f"or an rtsp:// or http:// URL)")
    fps = capture.get(cv2.CAP_PROP_FPS)
    return capture, fps if np.isfinite(fps) and fps > 0 else 0.0


def has_display() -> bool:
    return sys.platform in ("win32", "darwin") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass
class LiveRun:
    frames: int = 0  # read from the source
    kept: int = 0  # sampled into the window
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    labels: list[dict] = field(default_factory=list)

    def record(self, said: tuple[int, float, np.ndarray], class_names: tuple[str, ...], top_k: int, echo) -> str:
        """Print and keep one label; the label's text for the annotated frames."""
        index, latency, scores = said
        order = np.argsort(-scores, kind="stable")[:top_k]
        top = [(class_names[i], float(scores[i])) for i in order]
        self.latencies.append(latency)
        self.labels.append({"frame": index, "top": [{"class": n, "score": s} for n, s in top],
                            "latency_ms": latency * 1000})
        echo(f"frame {index}: " + ", ".join(f"{n} ({s:.3f})" for n, s in top) + f"  [{latency * 1000:.0f} ms]")
        return f"{top[0][0]} {top[0][1]:.2f}"

    def summary(self, pairs: int) -> dict:
        latencies = np.array(self.latencies) * 1000
        return {"frames": self.frames, "frames_sampled": self.kept, "seconds": self.seconds,
                "frames_per_s": self.frames / self.seconds if self.seconds else 0.0, "labels": len(self.labels),
                "labels_per_s": len(self.labels) / self.seconds if self.seconds else 0.0,
                "latency_ms_median": float(np.median(latencies)) if latencies.size else None,
                "latency_ms_max": float(latencies.max()) if latencies.size else None,
                "flow_pairs_computed": pairs, "predictions": self.labels}


def run_live(predictor: Predictor, source: str, every: int = 10, window: int = 0, show: bool = False,
             out_dir: Path | None = None, max_frames: int | None = None, top_k: int = 1, echo=print) -> dict:
    """Classify `source` as it comes (module docstring); print each label and the summary; return
    the summary (live.json's content)."""
    if len(predictor.extractions) != 1:
        raise DataError("--live takes runs trained on one extraction (their inputs share one window)")
    config = next(iter(predictor.extractions.values()))
    key = config.to_json()
    spans, directions = zip(*(needs(s.layout) for s in predictor.scorers))
    size = window or max(spans)
    if size < max(spans):
        raise DataError(f"--window {window} is shorter than the runs' input, {max(spans)} frames")
    wanted = tuple(d for d in DIRECTIONS if any(d in ds for ds in directions))
    capture, fps = open_source(source)
    # the extraction's frame rate: a source at 30 fps into runs trained at 15 keeps every other frame
    sampler = FrameSampler(fps, config.fps if fps else None, config.stride)
    if config.fps and not fps:
        log.warning("--live %s states no frame rate: every frame is kept (the runs' frames were sampled at %g fps)",
                    source, config.fps)
    writer, showing, shown = None, show and has_display(), False
    if show and not showing:
        echo("no display here: --show draws nothing" + (f" (the annotated video goes to {out_dir / ANNOTATED_FILE})"
                                                         if out_dir else ""))
    run, live = LiveRun(), None
    labeller = Labeller(predictor, key)
    label = ""
    started = time.perf_counter()
    try:
        while max_frames is None or run.frames < max_frames:
            ok, frame = capture.read()
            arrived = time.perf_counter()
            if not ok:
                break
            index = run.frames
            run.frames += 1
            if not sampler.keep(index):
                continue
            if live is None:  # the first frame gives the size, as a video's header does
                height, width = frame.shape[:2]
                coder = FrameCoder(config, frame_size(VideoInfo(fps, width, height, 0), config), predictor.flow(key),
                                   wanted)
                live = LiveWindow(coder, size)
            live.add(frame)
            run.kept += 1
            for said in labeller.done():
                label = run.record(said, predictor.class_names, top_k, echo)
            if live.full and (run.kept - size) % every == 0:
                labeller.due(live.video(), index, arrived)
            if showing or out_dir is not None:
                picture = annotated(live, label)
                if out_dir is not None:
                    writer = writer or video_writer(out_dir / ANNOTATED_FILE, picture, fps or 25.0)
                    writer.write(picture)
                if showing:
                    showing = shown = show_frame(picture, echo)
        for said in labeller.done(wait=True):  # the last window's label
            run.record(said, predictor.class_names, top_k, echo)
    finally:
        run.seconds = time.perf_counter() - started
        labeller.close()
        capture.release()
        if writer is not None:
            writer.release()
        if shown:
            cv2.destroyAllWindows()
    if live is None:
        raise DataError(f"--live {source}: no frame could be read")
    summary = {**run.summary(live.pairs), "labels_skipped": labeller.skipped}
    latency = (f"; latency from frame to label {summary['latency_ms_median']:.0f} ms median, "
               f"{summary['latency_ms_max']:.0f} ms max" if run.latencies else f"; no label (a window is {size} frames)")
    echo(f"{run.frames} frames in {run.seconds:.2f} s: {summary['frames_per_s']:.1f} frames/s sustained, "
         f"{len(run.labels)} label(s) (one due every {every} frames, {labeller.skipped} skipped while the networks "
         f"were busy){latency}")
    summary = {"source": source, "method": predictor.describe, "window": size, "every": every, **summary}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / LIVE_FILE, summary)
    return summary


def annotated(live: LiveWindow, label: str) -> np.ndarray:
    """The newest frame (BGR, at the extraction's size) beside its flow picture, under the label."""
    frame = cv2.cvtColor(live.frames[-1], cv2.COLOR_RGB2BGR)
    flow = live.newest_flow()
    flow = np.zeros((*frame.shape[:2], 2), np.float32) if flow is None else flow
    picture = cv2.cvtColor(flow_to_rgb(flow, max(1.0, float(np.abs(flow).max()))), cv2.COLOR_RGB2BGR)
    return labelled(hstack([frame, picture]), label or "...")


def video_writer(path: Path, picture: np.ndarray, fps: float) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (picture.shape[1], picture.shape[0]))
    if not writer.isOpened():
        raise DataError(f"OpenCV cannot write the annotated video {path}")
    return writer


def show_frame(picture: np.ndarray, echo) -> bool:
    """Draw in the window; False (said once) when this OpenCV cannot show one (a headless build)."""
    try:
        cv2.imshow("twostream predict --live", picture)
        cv2.waitKey(1)
        return True
    except cv2.error:
        echo("this OpenCV build cannot open a window (opencv-python-headless?): --show draws nothing")
        return False
