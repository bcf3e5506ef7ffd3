"""How predict combines the two streams' scores of new videos: a fusion rule by name
(average, weighted), or one of the rules a `twostream fuse` folder ran, with the settings it
ran them with and, for the learned ones (weighted-val, svm, logreg), fitted again on the same
held-out scores it fitted them on (the fits are deterministic: the same model as fuse's).

(A `fuse-features` run, a network over both streams, is a model of its own: the predictor
loads it like a stream.)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from twostream.score_fusion.rules import FUSION_RULES, FusionError, FusionParams, get_fusion_rule
from twostream.score_fusion.run import load_pair, read_results

DEFAULT_RULE = "weighted"  # `twostream fuse`'s default: TSN's spatial 1 : temporal 1.5


@dataclass(frozen=True)
class ScoreFusion:
    name: str
    score_kind: str
    combine: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (N, C) spatial, temporal -> (N, C) fused


def named_fusion(rule: str, params: FusionParams | None = None) -> ScoreFusion:
    """A rule that learns nothing (average, weighted), by name."""
    spec = get_fusion_rule(rule)
    if spec.needs_fit:
        raise FusionError(f"fusion method {rule!r} learns from held-out scores: give the folder 'twostream fuse' "
                          f"wrote (--fusion runs/fusion --fusion-method {rule}), which says which ones")
    fitted = spec.fit(None, None, None, 0, params or FusionParams())
    return ScoreFusion(rule, fitted.score_kind, fitted.predict)


def folder_fusion(folder: Path, rule: str | None, class_names: tuple[str, ...]) -> ScoreFusion:
    """Rule `rule` (None: the one with the best top-1 there) of a `twostream fuse` folder."""
    results = read_results(folder)
    ran = {m["name"]: m for m in results["methods"]}
    if rule is None:
        rule = max(ran.values(), key=lambda m: m["top1"])["name"] if ran else DEFAULT_RULE
    if rule not in ran:
        raise FusionError(f"{folder} did not run fusion method {rule!r}; it ran: {', '.join(ran) or 'none'}")
    config = results["config"]
    stored = dict(config.get("params") or {})
    params = FusionParams(**{**stored, "weights": tuple(stored.get("weights", (1.0, 1.5)))})
    spec = get_fusion_rule(rule)
    if not spec.needs_fit:
        return named_fusion(rule, params)
    fit_paths = config.get("fit_spatial"), config.get("fit_temporal")
    if None in fit_paths or not all(Path(p).is_file() for p in fit_paths):
        raise FusionError(f"{folder}: method {rule!r} was fitted on {fit_paths[0]} and {fit_paths[1]}, which are not "
                          f"there now (relative paths are from where fuse ran); predict fits it again on them")
    fit = load_pair(Path(fit_paths[0]), Path(fit_paths[1]))
    if tuple(fit.spatial.class_names) != tuple(class_names):
        raise FusionError(f"{folder}: its fit scores are of other classes than the runs' ({fit.num_classes} vs "
                          f"{len(class_names)})")
    fitted = spec.fit(fit.spatial.scores.astype(np.float64), fit.temporal.scores.astype(np.float64),
                      fit.labels.astype(np.int64), len(class_names), params)
    return ScoreFusion(rule, fitted.score_kind, fitted.predict)


def fusion_choices() -> str:
    return ", ".join(m for m, spec in FUSION_RULES.items() if not spec.needs_fit)
