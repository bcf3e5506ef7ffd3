"""`twostream fuse-features show`: where a motion head looks, as a picture (`flowprep show`'s kind).

One row per position of a video (uniformly spaced, as the test protocol places them; the centre
crop the model sees): the RGB frame, and the frame under the head's weights of its places
(`TwoStreamModel.motion_attention`), upsampled to the crop and drawn as a heat map (black: none,
red to yellow: the most). One scale for every row, the largest weight shown, so rows compare.
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


def attention_rows(frames: np.ndarray, weights: np.ndarray, positions: list[int]) -> np.ndarray:
    """(K, S, S, 3) RGB uint8 frames and their (K, h, w) weights -> one RGB picture: a row per
    frame, the frame beside the frame blended with its heat map, each row labelled."""
    size = frames.shape[1]
    peak = float(weights.max())
    rows = []
    for frame, w, position in zip(frames, weights, positions):
        overlay = cv2.addWeighted(frame, 0.35, heat(w, size, peak), 0.65, 0)
        row = np.concatenate([frame, np.full((size, 4, 3), 255, np.uint8), overlay], axis=1)
        label = np.full((LABEL_HEIGHT, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, f"position {position}", (2, LABEL_HEIGHT - 3), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1)
        rows.append(np.concatenate([label, row]))
    return np.concatenate(rows)


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
    frames = codes[:, :3].permute(0, 2, 3, 1).numpy()  # the RGB planes, uint8, as cut and not yet normalised
    picture = attention_rows(np.ascontiguousarray(frames), weights, positions)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise DataError(f"cannot write {out}")
    return positions
