"""Accuracy measures of softmax scores: pure functions, for evaluation, fusion and reports.

Terms: a *clip* is one frame or flow stack (its test crops averaged); a video's score is the mean
of its clips' softmax scores (torchvision's references sum clip scores, which ranks the same).
Top-1 accuracy counts videos; mean class accuracy averages the per-class recalls over the
classes that have videos (UCF101 and HMDB51 papers report both; they differ when classes are
unbalanced). Functions of predictions take (labels, predictions), as scikit-learn's do; functions
of scores take the scores first.
"""
from __future__ import annotations

import numpy as np


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


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return matrix


def per_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(C,) float64 recall of each class; NaN for a class with no videos."""
    matrix = confusion_matrix(labels, predictions, num_classes)
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def top1_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    return float(np.mean(np.asarray(labels) == np.asarray(predictions))) if len(labels) else float("nan")


def mean_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int | None = None) -> float:
    """Mean over the classes that have videos of the share of their videos predicted right; NaN
    without videos. `num_classes` defaults to one past the largest label or prediction."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    if num_classes is None:
        num_classes = int(max(labels.max(initial=-1), predictions.max(initial=-1))) + 1
    recalls = per_class_accuracy(labels, predictions, num_classes)
    present = recalls[~np.isnan(recalls)]
    return float(present.mean()) if present.size else float("nan")


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
        "mean_class_accuracy": mean_class_accuracy(labels, videos.argmax(axis=1), videos.shape[1]),
        "clip_loss": nll(clip_scores, clip_labels),
    }, videos
