"""Classify new videos with trained runs: load a stream run, two of them and their fusion, or a
fuse-features run, in one call, and score video files or frames with the streams' test protocol.

    predictor = Predictor.load(spatial="runs/spatial", temporal="runs/temporal")
    predictor.predict("new.mp4").top(5)      # [(class name, score), ...]

A video's input is computed as the extraction the runs were trained on computed it
(twostream.predict.video_input: the settings each checkpoint stores); the protocol is evaluate's
(`clips` positions uniformly spaced x `crops`, softmax averaged: twostream.data.datasets.EvalSamples
and twostream.engine.loops.predict_samples, the same code); two streams' scores are combined by a
score fusion (twostream.predict.fusion), `twostream fuse`'s default weighted mean unless told.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from flowprep.api import BatchFlow, ExtractConfig, FlowError, VideoError
from flowprep.format.folder import ExtractionFolder
from flowprep.format.folder_index import IndexEntry
from flowprep.format.shards import ShardFormatError
from twostream.core.checkpoint import load_checkpoint, load_weights
from twostream.core.config import CROPS, check_choice, check_positive_int
from twostream.core.device import Device, resolve_device
from twostream.core.errors import CheckpointError, DataError
from twostream.core.run_folder import CHECKPOINT_FILE
from twostream.data.datasets import EvalSamples, Layout
from twostream.data.extraction import class_names as index_class_names
from twostream.data.motion_inputs import stream_layout
from twostream.engine.loops import predict_samples
from twostream.engine.metrics import video_scores
from twostream.feature_fusion.checkpoint import build_two_stream, load_fusion_checkpoint, pair_spec
from twostream.predict.fusion import DEFAULT_RULE, ScoreFusion, folder_fusion, named_fusion
from twostream.predict.video_input import MemoryVideo, decode_video, extraction_settings, flow_backend, frames_video
from twostream.score_fusion.rules import FUSION_RULES, FusionError
from twostream.streams.motion_models import build_stream_model

log = logging.getLogger("twostream")

# The paper's protocol (evaluate's default) and a fast one: 3 positions, the centre crop only
# (about 80x less network work; `make demo` and the live mode use it).
DEFAULT_CLIPS, DEFAULT_CROPS = 25, "ten"
FAST_CLIPS, FAST_CROPS = 3, "center"


def checkpoint_path(run: str | Path) -> Path:
    """RUN/checkpoint.pt for a run folder, the file itself for a checkpoint file."""
    run = Path(run)
    path = run / CHECKPOINT_FILE if run.is_dir() else run
    if not path.is_file():
        raise DataError(f"{run} is not a run: expected a run folder holding {CHECKPOINT_FILE} (twostream train --out, "
                        f"fuse-features train --out) or a checkpoint file")
    return path


@dataclass(frozen=True)
class Scorer:
    """One network that scores videos: a stream run's, or a fuse-features run's over both streams."""
    kind: str  # spatial, temporal or feature-fusion
    checkpoint: Path
    model: nn.Module
    layout: Layout
    class_names: tuple[str, ...]
    extract: ExtractConfig
    describe: str


def run_class_names(state: dict, path: Path) -> tuple[str, ...]:
    """The class names a checkpoint stores (its extraction's label names, recorded at training);
    for a checkpoint without them, those of the extraction its config names if it is still there,
    else 'class N', said once."""
    count = int(state["num_classes"])
    stored = state.get("class_names")
    if isinstance(stored, (list, tuple)) and len(stored) == count and all(isinstance(n, str) for n in stored):
        return tuple(stored)
    names, whence = tuple(f"class {k}" for k in range(count)), "'class N'"
    extraction = getattr(state.get("config"), "extraction", None)
    try:
        found = index_class_names(ExtractionFolder(Path(extraction)).read_index()) if extraction else ()
        if len(found) == count:
            names, whence = found, f"those of its extraction {extraction}"
    except (OSError, ValueError, TypeError, ShardFormatError):  # an extraction folder that is gone or damaged: the fallback
        pass
    log.warning("%s records no class names (a run from before they were stored); using %s", path, whence)
    return names


def load_scorer(run: str | Path) -> Scorer:
    """A stream run (twostream train) or a fuse-features run, its weights loaded, in eval mode."""
    path = checkpoint_path(run)
    try:
        state = load_checkpoint(path)
    except CheckpointError as stream_error:
        try:
            state = load_fusion_checkpoint(path)
        except CheckpointError:
            raise stream_error from None
        spatial, temporal = state["spatial_config"], state["temporal_config"]
        model = build_two_stream(spatial, temporal, state["num_classes"], state["head"], state["config"].joint)
        load_weights(model, state["model"], path)
        return Scorer("feature-fusion", path, model.eval(), pair_spec(spatial, temporal), run_class_names(state, path),
                      extraction_settings(state.get("extract_config"), str(path)),
                      f"{state['config'].name} fusion of {spatial.backbone} streams")
    config = state["config"]
    layout = stream_layout(config)
    model = build_stream_model(config, state["num_classes"])
    load_weights(model, state["model"], path)
    return Scorer(config.stream, path, model.eval(), layout, run_class_names(state, path),
                  extraction_settings(state.get("extract_config"), str(path)), f"{config.stream} {config.backbone}")


@dataclass(frozen=True)
class Prediction:
    """One video's scores over the classes (softmax probabilities averaged over the protocol's
    inputs, or what the fusion method gives: `score_kind`)."""
    source: str
    scores: np.ndarray
    class_names: tuple[str, ...]
    score_kind: str

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.scores))]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(-self.scores, kind="stable")[:k]
        return [(self.class_names[i], float(self.scores[i])) for i in order]


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str


class _Videos:
    """The datasets' video source (EvalSamples reads `source.video(entry)`) over videos in memory."""

    def __init__(self, videos: list[MemoryVideo]) -> None:
        self.videos = videos

    def video(self, entry: IndexEntry) -> MemoryVideo:
        return self.videos[int(entry.video_id)]


class Predictor:
    def __init__(self, scorers: list[Scorer], fusion: ScoreFusion | None = None, clips: int = DEFAULT_CLIPS,
                 crops: str = DEFAULT_CROPS, device: str = "auto", batch_size: int = 16,
                 flow_device: str | None = None) -> None:
        check_positive_int("clips", clips)
        check_choice("crops", crops, CROPS)
        check_positive_int("batch size", batch_size)
        if not scorers:
            raise DataError("give a spatial run, a temporal run, both, or a fuse-features run")
        names = scorers[0].class_names
        for other in scorers[1:]:
            if other.class_names != names:
                raise DataError(f"{scorers[0].checkpoint} and {other.checkpoint} were trained on other classes "
                                f"({len(names)} vs {len(other.class_names)}; first {names[:1]} vs {other.class_names[:1]})")
        if len(scorers) == 2 and fusion is None:
            fusion = named_fusion(DEFAULT_RULE)
        self.scorers, self.fusion, self.clips, self.crops, self.batch_size = scorers, fusion, clips, crops, batch_size
        self.class_names = names
        self.device: Device = resolve_device(device, amp=True, channels_last=False)
        for scorer in scorers:
            self.device.place(scorer.model)
        # one decode per distinct extraction (two runs of one extraction share it), one flow backend each
        self.extractions: dict[str, ExtractConfig] = {s.extract.to_json(): s.extract for s in scorers}
        self._flows: dict[str, BatchFlow] = {}
        # a batched flow backend (tvl1-torch) computes on the networks' GPU; the OpenCV ones on the CPU
        self.flow_device = flow_device or str(self.device.device)

    @classmethod
    def load(cls, *runs: str | Path, fusion: str | Path | None = None, fusion_method: str | None = None,
             clips: int = DEFAULT_CLIPS, crops: str = DEFAULT_CROPS, device: str = "auto",
             batch_size: int = 16) -> "Predictor":
        """A spatial run, a temporal run or both (run folders or checkpoints, in any order), and how
        to fuse two: `fusion` a `twostream fuse` folder (its `fusion_method`, by default the one
        with the best top-1 there), a score-fusion method's name (average, weighted; default
        weighted, as `twostream fuse`), or a fuse-features run, which needs no stream run."""
        scorers = [load_scorer(run) for run in runs]
        if fusion is not None and str(fusion) not in FUSION_RULES and checkpoint_like(fusion):
            scorers.append(load_scorer(fusion))
        kinds = [s.kind for s in scorers]
        if "feature-fusion" in kinds and len(kinds) > 1:
            raise DataError("a fuse-features run holds both streams: give it alone (--fusion RUN), without stream runs")
        if len(set(kinds)) != len(kinds) or len(kinds) > 2 or (len(kinds) == 2 and "spatial" not in kinds):
            raise DataError(f"give one spatial run, one temporal run or both (the temporal one may be a dynamic-image "
                            f"or learned-flow run); got {', '.join(kinds) or 'none'}")
        score_fusion = None
        if len(kinds) == 2:
            score_fusion = fusion_of(fusion, fusion_method, scorers[0].class_names)
        elif kinds != ["feature-fusion"] and (fusion is not None or fusion_method is not None):
            raise DataError("a score fusion combines two streams: give a spatial and a temporal run")
        return cls(scorers, score_fusion, clips, crops, device, batch_size)

    @property
    def describe(self) -> str:
        streams = " + ".join(s.describe for s in self.scorers)
        how = f", {self.fusion.name} fusion" if self.fusion else ""
        return f"{streams}{how}; {self.clips} clips x {self.crops} crops"

    @property
    def score_kind(self) -> str:
        return self.fusion.score_kind if self.fusion else "softmax probability"

    def flow(self, key: str) -> BatchFlow:
        if key not in self._flows:
            self._flows[key] = flow_backend(self.extractions[key], self.flow_device)
        return self._flows[key]

    # --- inputs ---------------------------------------------------------------------------------
    def decode(self, path: str | Path) -> dict[str, MemoryVideo]:
        """The video file as each extraction of the runs stores it (VideoError: why it cannot be)."""
        return {key: decode_video(path, config, self.flow(key)) for key, config in self.extractions.items()}

    def frames(self, frames) -> dict[str, MemoryVideo]:
        return {key: frames_video(frames, config, self.flow(key)) for key, config in self.extractions.items()}

    # --- scoring --------------------------------------------------------------------------------
    def scores(self, videos: list[dict[str, MemoryVideo]], clips: int | None = None,
               crops: str | None = None) -> np.ndarray:
        """(N, C): the videos' scores, each network's by the protocol, fused."""
        per_scorer = [self.scorer_scores(s, [v[s.extract.to_json()] for v in videos], clips, crops)
                      for s in self.scorers]
        if self.fusion is None:
            return per_scorer[0]
        # the spatial run's scores, then the motion run's (temporal, dynamic-image or learned-flow)
        first = [s.kind for s in self.scorers].index("spatial")
        spatial, temporal = per_scorer[first], per_scorer[1 - first]
        return np.asarray(self.fusion.combine(spatial.astype(np.float64), temporal.astype(np.float64)), np.float32)

    def scorer_scores(self, scorer: Scorer, videos: list[MemoryVideo], clips: int | None = None,
                      crops: str | None = None) -> np.ndarray:
        entries = [IndexEntry(str(i), "(in memory)", 0, "", v.num_frames, {}) for i, v in enumerate(videos)]
        items = EvalSamples(_Videos(videos), entries, scorer.layout, clips or self.clips, crops or self.crops)
        loader = DataLoader(items, batch_size=self.batch_size, num_workers=0)
        sample_scores, _ = predict_samples(scorer.model, loader, self.device, f"predict {scorer.kind}", interactive=False)
        return video_scores(items.video_index, sample_scores, len(videos))

    # --- the calls ------------------------------------------------------------------------------
    def predict(self, video) -> Prediction:
        """One video: a file's path, or its frames ((T, H, W, 3) uint8 RGB, numpy or torch,
        already sampled at the extraction's rate). VideoError or DataError when it cannot be read."""
        if isinstance(video, (str, Path)):
            decoded, source = self.decode(video), str(video)
        else:
            decoded, source = self.frames(video), "frames"
        return Prediction(source, self.scores([decoded])[0], self.class_names, self.score_kind)

    def predict_files(self, paths: Iterable[str | Path], videos_per_batch: int = 8) -> Iterator[Prediction | Failure]:
        """Each file's Prediction, or its Failure (one line why), in the order given; decoded and
        scored `videos_per_batch` at a time (the network batches the clips of all of them)."""
        pending: list[tuple[str, dict[str, MemoryVideo] | Failure]] = []
        for path in paths:
            try:
                pending.append((str(path), self.decode(path)))
            except (VideoError, FlowError) as exc:
                pending.append((str(path), Failure(str(path), str(exc))))
            except cv2.error as exc:
                pending.append((str(path), Failure(str(path), "OpenCV error: " + " ".join(str(exc).split()))))
            if len(pending) == videos_per_batch:
                yield from self._scored(pending)
                pending = []
        yield from self._scored(pending)

    def _scored(self, pending: list[tuple[str, dict[str, MemoryVideo] | Failure]]) -> list[Prediction | Failure]:
        decoded = [videos for _, videos in pending if not isinstance(videos, Failure)]
        scores = iter(self.scores(decoded)) if decoded else iter(())
        return [videos if isinstance(videos, Failure) else
                Prediction(source, next(scores), self.class_names, self.score_kind) for source, videos in pending]


def checkpoint_like(path: str | Path) -> bool:
    path = Path(path)
    return (path / CHECKPOINT_FILE).is_file() or (path.is_file() and path.suffix == ".pt")


def fusion_of(fusion: str | Path | None, method: str | None, class_names: tuple[str, ...]) -> ScoreFusion:
    """--fusion as a score fusion: a method's name, a `twostream fuse` folder, or (None) `method` or
    fuse's default."""
    try:
        if fusion is None:
            return named_fusion(method or DEFAULT_RULE)
        if str(fusion) in FUSION_RULES:
            return named_fusion(str(fusion))
        if not Path(fusion).is_dir():
            raise FusionError(f"--fusion {fusion}: expected a 'twostream fuse' folder, a fuse-features run or a "
                              f"method ({', '.join(FUSION_RULES)})")
        return folder_fusion(Path(fusion), method, class_names)
    except FusionError as exc:
        raise DataError(str(exc)) from None
