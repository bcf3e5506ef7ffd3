"""Score-level fusion of the spatial and temporal streams: pure functions on per-video scores.

Every fusion rule (a `--method` of `twostream fuse`) is a registry entry with one signature:
    fit(fit_spatial, fit_temporal, fit_labels, num_classes, params) -> Fitted
    Fitted.predict(spatial, temporal) -> (N, C) fused scores; argmax is the prediction
The fit arrays are scores of *training-split* videos, needed only by the rules that learn
(`needs_fit`); the others ignore them. Use scores of videos the streams were not trained on
(a validation subset held out from stream training): on their own training videos the streams are
overconfident, and a learned fusion would learn to trust whichever stream memorised them best.

Rules (docs/fusion.md):
    average        mean of the two softmax score vectors
    weighted       weighted mean with given weights (default TSN's spatial 1 : temporal 1.5)
    weighted-val   weighted mean, the temporal share picked on the fit scores (grid, best accuracy)
    svm            the paper's: linear SVM on stacked L2-normalised softmax scores
    logreg         learned late fusion: multinomial logistic regression on the stacked scores
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from twostream.core.scores import VideoScores
from twostream.engine.metrics import top1_accuracy


class FusionError(ValueError):
    """Inputs fusion cannot use; str() names the files or values at fault."""


@dataclass(frozen=True)
class FusionParams:
    """The settings of every rule (each rule reads its own)."""

    weights: tuple[float, float] = (1.0, 1.5)  # spatial, temporal: TSN's ratio for RGB + flow
    weight_steps: int = 21  # temporal shares 0, 1/20, ..., 1 tried by weighted-val
    svm_c: float = 1.0
    logreg_c: float = 1.0

    def __post_init__(self) -> None:
        if len(self.weights) != 2 or min(self.weights) < 0 or sum(self.weights) <= 0:
            raise FusionError(f"weights must be two non-negative numbers, not both zero (spatial:temporal), got {self.weights!r}")
        if self.weight_steps < 2:
            raise FusionError(f"weight steps must be at least 2 (the grid includes 0 and 1), got {self.weight_steps!r}")
        for name in ("svm_c", "logreg_c"):
            if not getattr(self, name) > 0:
                raise FusionError(f"{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class StreamPair:
    """The two streams' scores of the same videos, rows in the same order."""

    spatial: VideoScores
    temporal: VideoScores

    @property
    def labels(self) -> np.ndarray:
        return self.spatial.labels

    @property
    def num_classes(self) -> int:
        return self.spatial.num_classes


@dataclass(frozen=True)
class Fitted:
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
    score_kind: str  # what the fused numbers are, stored in the fused file's meta
    learned: dict = field(default_factory=dict)  # JSON-able: what fitting chose


FitFn = Callable[[np.ndarray | None, np.ndarray | None, np.ndarray | None, int, FusionParams], Fitted]


@dataclass(frozen=True)
class FusionRule:
    name: str
    summary: str
    needs_fit: bool
    fit: FitFn


# --- aligning two score files ------------------------------------------------------------------
def align_scores(reference: VideoScores, other: VideoScores, reference_name: str, other_name: str) -> VideoScores:
    """`other`'s rows in `reference`'s video order, after checking that both score the same
    videos with the same labels and classes; errors are one line naming both sources."""
    where = f"{reference_name} and {other_name}"
    if reference.num_classes != other.num_classes:
        raise FusionError(f"{where} do not match: {reference.num_classes} classes vs {other.num_classes}")
    if tuple(reference.class_names) != tuple(other.class_names):
        first = next(i for i, (a, b) in enumerate(zip(reference.class_names, other.class_names)) if a != b)
        raise FusionError(f"{where} do not match: class {first} is {reference.class_names[first]!r} vs {other.class_names[first]!r}")
    for name, scores in ((reference_name, reference), (other_name, other)):
        duplicates = [v for v, n in Counter(scores.video_ids.tolist()).items() if n > 1]
        if duplicates:
            raise FusionError(f"{name} lists video {duplicates[0]!r} more than once")
    ref_ids, other_ids = set(reference.video_ids.tolist()), set(other.video_ids.tolist())
    if ref_ids != other_ids:
        only_ref, only_other = sorted(ref_ids - other_ids), sorted(other_ids - ref_ids)
        parts = [f"{len(ids)} only in {name}" + (f" (e.g. {ids[0]!r})" if ids else "")
                 for name, ids in ((reference_name, only_ref), (other_name, only_other))]
        raise FusionError(f"{where} score different videos: {', '.join(parts)}")
    aligned = other.aligned_to(reference.video_ids)
    wrong = np.flatnonzero(aligned.labels != reference.labels)
    if wrong.size:
        v = wrong[0]
        raise FusionError(f"{where} disagree on the labels of {wrong.size} video(s), e.g. "
                          f"{reference.video_ids[v]!r}: {reference.labels[v]} vs {aligned.labels[v]}")
    return aligned


def stream_order_problem(spatial: VideoScores, temporal: VideoScores, spatial_name: str, temporal_name: str) -> str | None:
    """Why two score files are not a (spatial, temporal) pair in that order, or None: each file
    records the stream it scores (its meta's "stream"; older files may not), and fusion's weights
    (1:1.5) and its report name the streams by position. Streams of other kinds (a clip stream, a
    learned-motion stream) may stand in either place; the same stream twice may not."""
    recorded = (spatial.meta.get("stream"), temporal.meta.get("stream"))
    if recorded == ("temporal", "spatial"):
        return (f"{spatial_name} holds temporal scores and {temporal_name} spatial ones: the runs are swapped; "
                f"give the spatial run first")
    if recorded[0] is not None and recorded[0] == recorded[1]:
        return (f"{spatial_name} and {temporal_name} both hold {recorded[0]} scores: fusion takes two different "
                f"streams, the spatial run first and the temporal run second")
    for position, stream, name in (("spatial", recorded[0], spatial_name), ("temporal", recorded[1], temporal_name)):
        other = "temporal" if position == "spatial" else "spatial"
        if stream == other:
            return f"{name} holds {other} scores, given as the {position} stream's; the spatial run goes first"
    return None


def pair_streams(spatial: VideoScores, temporal: VideoScores,
                 spatial_name: str = "spatial scores", temporal_name: str = "temporal scores") -> StreamPair:
    problem = stream_order_problem(spatial, temporal, spatial_name, temporal_name)
    if problem:
        raise FusionError(problem)
    return StreamPair(spatial, align_scores(spatial, temporal, spatial_name, temporal_name))


# --- the rules ---------------------------------------------------------------------------------
def weighted_average(spatial: np.ndarray, temporal: np.ndarray, temporal_share: float) -> np.ndarray:
    return (1.0 - temporal_share) * spatial + temporal_share * temporal


def choose_temporal_share(spatial: np.ndarray, temporal: np.ndarray, labels: np.ndarray, steps: int) -> tuple[float, float]:
    """(share, accuracy): the temporal weight on a grid 0..1 with the best accuracy on these
    videos. Ties are common (accuracy is a step function), so the middle of the best run of
    grid points is taken rather than its edge, which sits next to a worse weight."""
    grid = np.linspace(0.0, 1.0, steps)
    accuracy = np.array([top1_accuracy(labels, weighted_average(spatial, temporal, w).argmax(axis=1)) for w in grid])
    best = np.flatnonzero(accuracy == accuracy.max())
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    longest = max(runs, key=len)  # first longest run
    i = int(longest[(len(longest) - 1) // 2])
    return float(grid[i]), float(accuracy[i])


def l2_normalise(scores: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(scores, axis=1, keepdims=True)
    return scores / np.maximum(norms, 1e-12)


def stacked_l2(spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
    """The paper's SVM features: each stream's softmax vector L2-normalised, then concatenated."""
    return np.concatenate([l2_normalise(spatial), l2_normalise(temporal)], axis=1)


def _require_fit_data(name: str, spatial, temporal, labels, min_classes: int = 1) -> None:
    if spatial is None or temporal is None or labels is None:
        raise FusionError(f"fusion method {name!r} learns from scores of training-split videos; none were given "
                          f"(twostream fuse --fit-spatial/--fit-temporal)")
    present = np.unique(labels)
    if present.size < min_classes:  # a classifier needs two classes to tell apart
        raise FusionError(f"fusion method {name!r} needs fit scores of at least {min_classes} classes, got only {present.tolist()}")


def _all_columns(values: np.ndarray, classes: np.ndarray, num_classes: int, fill: float) -> np.ndarray:
    """Per-class outputs of a scikit-learn model, which knows only the classes it was fitted on,
    spread into all C columns; a class it never saw gets `fill`, so it is never predicted."""
    if values.ndim == 1:  # binary decision_function: one column, positive = classes[1]
        values = np.stack([-values, values], axis=1)
    out = np.full((values.shape[0], num_classes), fill, dtype=np.float64)
    out[:, classes] = values
    return out


def fit_average(spatial, temporal, labels, num_classes: int, params: FusionParams) -> Fitted:
    return Fitted(lambda s, t: weighted_average(s, t, 0.5), "mean of softmax scores", {"temporal_share": 0.5})


def fit_weighted(spatial, temporal, labels, num_classes: int, params: FusionParams) -> Fitted:
    share = params.weights[1] / sum(params.weights)
    return Fitted(lambda s, t: weighted_average(s, t, share), "weighted mean of softmax scores",
                  {"weights": list(params.weights), "temporal_share": share})


def fit_weighted_val(spatial, temporal, labels, num_classes: int, params: FusionParams) -> Fitted:
    _require_fit_data("weighted-val", spatial, temporal, labels)
    share, accuracy = choose_temporal_share(spatial, temporal, labels, params.weight_steps)
    return Fitted(lambda s, t: weighted_average(s, t, share), "weighted mean of softmax scores",
                  {"temporal_share": share, "fit_accuracy": accuracy, "grid_steps": params.weight_steps})


def fit_svm(spatial, temporal, labels, num_classes: int, params: FusionParams) -> Fitted:
    from sklearn.svm import LinearSVC  # deferred: scikit-learn is slow to import

    _require_fit_data("svm", spatial, temporal, labels, min_classes=2)
    model = LinearSVC(C=params.svm_c, max_iter=20000, random_state=0).fit(stacked_l2(spatial, temporal), labels)

    def predict(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        values = model.decision_function(stacked_l2(s, t))
        return _all_columns(values, model.classes_, num_classes, fill=float(np.min(values)) - 1.0)

    return Fitted(predict, "linear SVM decision values (one-vs-rest)",
                  {"C": params.svm_c, "fit_accuracy": float(model.score(stacked_l2(spatial, temporal), labels))})


def fit_logreg(spatial, temporal, labels, num_classes: int, params: FusionParams) -> Fitted:
    from sklearn.linear_model import LogisticRegression

    _require_fit_data("logreg", spatial, temporal, labels, min_classes=2)
    features = np.concatenate([spatial, temporal], axis=1)
    model = LogisticRegression(C=params.logreg_c, max_iter=5000).fit(features, labels)

    def predict(s: np.ndarray, t: np.ndarray) -> np.ndarray:
        return _all_columns(model.predict_proba(np.concatenate([s, t], axis=1)), model.classes_, num_classes, fill=0.0)

    return Fitted(predict, "logistic regression probabilities",
                  {"C": params.logreg_c, "fit_accuracy": float(model.score(features, labels))})


FUSION_RULES: dict[str, FusionRule] = {m.name: m for m in (
    FusionRule("average", "mean of the two streams' softmax scores", False, fit_average),
    FusionRule("weighted", "weighted mean with given weights (default spatial 1 : temporal 1.5)", False, fit_weighted),
    FusionRule("weighted-val", "weighted mean, temporal weight chosen on the fit scores", True, fit_weighted_val),
    FusionRule("svm", "linear SVM on stacked L2-normalised softmax scores (the paper's)", True, fit_svm),
    FusionRule("logreg", "logistic regression on the stacked scores (learned late fusion)", True, fit_logreg),
)}


def get_fusion_rule(name: str) -> FusionRule:
    try:
        return FUSION_RULES[name]
    except KeyError:
        raise FusionError(f"unknown fusion method {name!r}; choose one of: {', '.join(FUSION_RULES)}") from None


def fit_and_fuse(name: str, test: StreamPair, fit: StreamPair | None, params: FusionParams) -> VideoScores:
    """Fit rule `name` on `fit` (when it learns) and apply it to `test`: fused per-video scores."""
    rule = get_fusion_rule(name)
    if fit is None:
        if rule.needs_fit:
            _require_fit_data(name, None, None, None)
        fitted = rule.fit(None, None, None, test.num_classes, params)
    else:
        if tuple(fit.spatial.class_names) != tuple(test.spatial.class_names):
            raise FusionError(f"fit and test scores have different classes: {fit.num_classes} vs {test.num_classes} "
                              f"(first names {fit.spatial.class_names[:1]} vs {test.spatial.class_names[:1]})")
        fitted = rule.fit(fit.spatial.scores.astype(np.float64), fit.temporal.scores.astype(np.float64),
                            fit.labels.astype(np.int64), test.num_classes, params)
    fused = fitted.predict(np.asarray(test.spatial.scores, np.float64), np.asarray(test.temporal.scores, np.float64))
    meta = {"stream": "fusion", "fusion_method": name, "score_kind": fitted.score_kind, "learned": fitted.learned}
    return VideoScores(test.spatial.video_ids, test.labels, fused.astype(np.float32), test.spatial.class_names, meta)
