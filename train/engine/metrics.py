"""Accuracy from softmax scores (pure functions) and the metrics.jsonl log.

Terms: a *clip* is one frame or flow stack (its test crops averaged); a video's score is the mean
of its clips' softmax scores (DESIGN.md section 5; torchvision's references sum clip scores,
which ranks the same).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

METRICS_FILE = "metrics.jsonl"


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row: is the label among the k highest scores? (k is capped at the number of classes.)"""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (top == labels[:, None]).any(axis=1)


def video_scores(video_index: np.ndarray, clip_scores: np.ndarray, num_videos: int) -> np.ndarray:
    """Mean clip score of each video: (num_videos, C)."""
    sums = np.zeros((num_videos, clip_scores.shape[1]), np.float64)
    np.add.at(sums, video_index, clip_scores)
    counts = np.bincount(video_index, minlength=num_videos)[:, None]
    return (sums / np.maximum(counts, 1)).astype(np.float32)


def mean_class_accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in `labels` of the share of their videos predicted right."""
    classes = np.unique(labels)
    return float(np.mean([(predictions[labels == c] == c).mean() for c in classes])) if len(classes) else 0.0


def nll(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log of the probability given to the true class."""
    p = scores[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean()) if len(labels) else 0.0


def summarize(clip_scores: np.ndarray, video_index: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """Clip and video top-1/top-5 and mean class accuracy; also returns the video scores.
    `labels` holds one label per video; `video_index` the video of each clip."""
    videos = video_scores(video_index, clip_scores, len(labels))
    clip_labels = labels[video_index]
    return {
        "clip_top1": float(topk_hits(clip_scores, clip_labels, 1).mean()),
        "clip_top5": float(topk_hits(clip_scores, clip_labels, 5).mean()),
        "video_top1": float(topk_hits(videos, labels, 1).mean()),
        "video_top5": float(topk_hits(videos, labels, 5).mean()),
        "mean_class_accuracy": mean_class_accuracy(videos.argmax(axis=1), labels),
        "clip_loss": nll(clip_scores, clip_labels),
    }, videos


class MetricsLog:
    """RUN/metrics.jsonl: one object per epoch and phase,
    {"epoch", "phase": "train"|"val", "loss", "accuracy" (clip top-1, 0..1), "lr", "samples_per_s", "time"}."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / METRICS_FILE

    def restart(self, completed_epochs: int) -> None:
        """Keep only the lines of completed epochs: a run killed after logging an epoch but before
        its checkpoint redoes that epoch, and must not log it twice."""
        kept = []
        if completed_epochs and self.path.exists():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line)["epoch"] <= completed_epochs]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)

    def write(self, epoch: int, phase: str, loss: float, accuracy: float, lr: float, samples_per_s: float,
              time: float) -> None:
        record = {"epoch": epoch, "phase": phase, "loss": float(loss), "accuracy": float(accuracy), "lr": float(lr),
                  "samples_per_s": float(samples_per_s), "time": float(time)}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
