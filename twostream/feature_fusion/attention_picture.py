"""`twostream fuse-features show`: where a motion head looks, as a picture (`flowprep show`'s kind).

One row per position of a video (uniformly spaced, as the test protocol places them; the centre
crop the model sees): the RGB frame, and the frame under the head's weights of its places
(`TwoStreamModel.motion_attention`), upsampled to the crop and drawn as a heat map (black: none,
red to yellow: the most). One scale for every row, the largest weight shown, so rows compare.
On two clip streams each clip has a row per time step of the feature map: the frame in the middle
of the step's share of the clip, under that step's weights (the picture's title says which frames);
small crops are drawn enlarged, so that the labels fit.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from twostream.core.checkpoint import load_weights
from twostream.core.config import EvalConfig
from twostream.core.errors import DataError
from twostream.data.datasets import EvalSamples
from twostream.data.store import ShardStore
from twostream.engine.loops import model_input
from twostream.engine.protocol import open_evaluation
from twostream.feature_fusion.checkpoint import build_two_stream, load_fusion_checkpoint, pair_spec

LABEL_HEIGHT = 14


def heat(weights: np.ndarray, size: int, peak: float) -> np.ndarray:
    """(h, w) weights -> (size, size, 3) RGB uint8 heat map, `peak` drawn at full intensity."""
    scaled = np.clip(weights / max(peak, 1e-12), 0, 1).astype(np.float32)
    big = cv2.resize(scaled, (size, size), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(cv2.applyColorMap(np.rint(255 * big).astype(np.uint8), cv2.COLORMAP_HOT), cv2.COLOR_BGR2RGB)


def label_line(text: str, width: int) -> np.ndarray:
    line = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
    cv2.putText(line, text, (2, LABEL_HEIGHT - 3), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
    return line


def attention_rows(frames: np.ndarray, weights: np.ndarray, labels: list[str], title: str | None = None) -> np.ndarray:
    """(K, S, S, 3) RGB uint8 frames and their (K, h, w) weights -> one RGB picture: a row per
    frame, the frame beside the frame blended with its heat map, each row under its label; `title`,
    a line above them all. Rows too narrow for their text are drawn enlarged (nearest-neighbour)."""
    size = frames.shape[1]
    width = 2 * size + 4
    widest = max(cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, 0.8, 1)[0][0] for text in [*labels, title or ""])
    zoom = max(1, -(-(widest + 4) // width))
    peak = float(weights.max())
    rows = [] if title is None else [label_line(title, zoom * width)]
    for frame, w, label in zip(frames, weights, labels):
        overlay = cv2.addWeighted(frame, 0.35, heat(w, size, peak), 0.65, 0)
        row = np.concatenate([frame, np.full((size, 4, 3), 255, np.uint8), overlay], axis=1)
        if zoom > 1:
            row = cv2.resize(row, (zoom * width, zoom * size), interpolation=cv2.INTER_NEAREST)
        rows += [label_line(label, row.shape[1]), row]
    return np.concatenate(rows)


def clip_steps(clips: np.ndarray, weights: np.ndarray, positions: list[int]) -> tuple[np.ndarray, np.ndarray,
                                                                                          list[str], str]:
    """(K, 3, T, S, S) RGB clips and their (K, t, h, w) weights -> a row per clip and map step: the
    frame in the middle of the step's share of the clip (K * t, 3, S, S), the step's weights
    (K * t, h, w), the rows' labels and the title saying which frames."""
    length, steps = clips.shape[2], weights.shape[1]
    # the map's t steps cover the clip's T frames in equal parts (its time pooling)
    middles = [(2 * step + 1) * length // (2 * steps) for step in range(steps)]
    frames = clips[:, :, middles].transpose(0, 2, 1, 3, 4).reshape(-1, *clips.shape[1:2], *clips.shape[3:])
    labels = [f"position {p}, step {s + 1}: frame {f + 1}" for p in positions for s, f in enumerate(middles)]
    title = f"each clip's {steps} map steps, at frames {', '.join(str(f + 1) for f in middles)} of {length}"
    return frames, weights.reshape(-1, *weights.shape[2:]), labels, title


def show_attention(config: EvalConfig, video_id: str, out: Path) -> list[int]:
    """Draw `config.clips` positions of one video with the motion head of `config.checkpoint`;
    write the PNG to `out`; return the positions drawn."""
    evaluation = open_evaluation(
        config, load_fusion_checkpoint, None, lambda state: pair_spec(state["spatial_config"], state["temporal_config"]))
    state, extraction = evaluation.state, evaluation.extraction
    head = state["head"]
    if head.head != "motion":
        raise DataError(f"{config.checkpoint} is a {head.head} fusion run; only the motion head weighs places "
                        f"(fuse-features train --method motion)")
    entry = extraction.index.get(video_id)
    if entry is None:
        raise DataError(f"no video {video_id!r} in {extraction.root}")
    trained = state["config"]
    model = build_two_stream(state["spatial_config"], state["temporal_config"], state["num_classes"], head, trained.joint)
    load_weights(model, state["model"], config.checkpoint)
    evaluation.device.place(model)
    model.eval()
    items = EvalSamples(ShardStore(extraction.root), [entry], evaluation.layout, config.clips, "center")
    codes, affine = (torch.stack([items[j][k][0] for j in range(len(items))]) for k in (0, 1))
    weights = model.motion_attention(model_input(codes, affine, evaluation.device)).float().cpu().numpy()
    positions = [position for _, position in items.items]
    frames = codes[:, :3].numpy()  # the RGB planes, uint8, as cut and not yet normalised
    labels, title = [f"position {p}" for p in positions], None
    if weights.ndim == 4:  # clip streams: (K, t, h, w) weights of (K, 3, T, S, S) clips
        frames, weights, labels, title = clip_steps(frames, weights, positions)
    picture = attention_rows(np.ascontiguousarray(frames.transpose(0, 2, 3, 1)), weights, labels, title)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise DataError(f"cannot write {out}")
    return positions
