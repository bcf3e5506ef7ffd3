"""Video-level accuracy measures of a score array: pure functions, shared by fusion and reports.

Top-1 accuracy counts videos; mean class accuracy averages the per-class recalls over the classes
that have test videos (UCF101 and HMDB51 papers report both; they differ when classes are
unbalanced).
"""
from __future__ import annotations

import numpy as np


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


def mean_class_accuracy(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> float:
    recalls = per_class_accuracy(labels, predictions, num_classes)
    present = recalls[~np.isnan(recalls)]
    return float(present.mean()) if present.size else float("nan")
