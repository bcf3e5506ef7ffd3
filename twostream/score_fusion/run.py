"""`twostream fuse`: its config, and the run that reads score files and writes fused ones.

    OUT/<method>.npz   fused per-video scores, in the format of twostream.core.scores (meta says the method)
    OUT/fusion.json    the config, what each learned method chose, and top-1 / mean class accuracy
                       of the two streams and of every method, computed from the score files
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from runkit.files import read_json_file, write_json_atomic
from twostream.core.scores import SUBSET_KEY, load_scores, save_scores
from twostream.score_fusion.report_data import TableRow, table_row
from twostream.score_fusion.rules import (
    FUSION_RULES,
    FusionError,
    FusionParams,
    StreamPair,
    fit_and_fuse,
    get_fusion_rule,
    pair_streams,
)

log = logging.getLogger(__name__)

RESULTS_FILE = "fusion.json"
RESULTS_FORMAT = "twostream-fusion-results"
RESULTS_VERSION = 1
# A stream this much more accurate on the fit videos than on the test videos was most likely
# trained on them: learned fusion would then learn its overconfidence (docs/fusion.md).
OVERFIT_GAP = 0.2


@dataclass(frozen=True)
class FuseConfig:
    spatial: Path
    temporal: Path
    out_dir: Path
    fit_spatial: Path | None = None
    fit_temporal: Path | None = None
    rules: tuple[str, ...] = ()  # fusion rules (fuse --method); empty: every rule the inputs allow
    params: FusionParams = field(default_factory=FusionParams)

    def __post_init__(self) -> None:
        if (self.fit_spatial is None) != (self.fit_temporal is None):
            given = "--fit-spatial" if self.fit_spatial is not None else "--fit-temporal"
            raise FusionError(f"give both --fit-spatial and --fit-temporal, or neither; got only {given}")
        for name in self.rules:
            get_fusion_rule(name)
        if len(set(self.rules)) != len(self.rules):
            raise FusionError(f"fusion methods listed twice: {', '.join(self.rules)}")
        if not self.has_fit:
            learned = [m for m in self.rules if FUSION_RULES[m].needs_fit]
            if learned:
                raise FusionError(f"fusion method(s) {', '.join(learned)} learn from scores of training-split videos; "
                                  f"give --fit-spatial and --fit-temporal")

    @property
    def has_fit(self) -> bool:
        return self.fit_spatial is not None

    def selected(self) -> tuple[list[str], list[str]]:
        """(rules to run, rules skipped because no fit scores were given)."""
        if self.rules:
            return list(self.rules), []
        run = [m for m, spec in FUSION_RULES.items() if self.has_fit or not spec.needs_fit]
        return run, [m for m in FUSION_RULES if m not in run]

    def to_dict(self) -> dict:
        paths = {k: None if getattr(self, k) is None else str(getattr(self, k))
                 for k in ("spatial", "temporal", "fit_spatial", "fit_temporal", "out_dir")}
        # fusion.json says "methods", as the command line does
        return {**paths, "methods": list(self.rules), "params": {**asdict(self.params), "weights": list(self.params.weights)}}


@dataclass(frozen=True)
class FuseResult:
    streams: list[TableRow]
    rules: list[TableRow]
    skipped: list[str]
    warnings: list[str]

    @property
    def rows(self) -> list[TableRow]:
        return self.streams + self.rules


def load_pair(spatial: Path, temporal: Path) -> StreamPair:
    return pair_streams(load_scores(spatial), load_scores(temporal), str(spatial), str(temporal))


def overfit_warnings(fit: StreamPair, test: StreamPair) -> list[str]:
    """Fit scores of a stream's own training videos teach fusion its overconfidence. The scores
    file says which subset it scored (evaluate's --subset); without that, a large accuracy gap with
    near-perfect fit accuracy gives it away. Held-out ('val') scores never warn: on a few dozen
    videos their accuracy scatters by 10 points or more."""
    out = []
    for stream in ("spatial", "temporal"):
        fit_scores = getattr(fit, stream)
        fit_acc, test_acc = fit_scores.accuracy(), getattr(test, stream).accuracy()
        subset = fit_scores.meta.get(SUBSET_KEY)
        if subset == "train" or (subset is None and fit_acc >= 0.9 and fit_acc - test_acc > OVERFIT_GAP):
            out.append(f"the {stream} stream is {100 * fit_acc:.0f}% accurate on the fit videos but {100 * test_acc:.0f}% "
                       f"on the test videos: were the fit scores computed on its own training videos? Learned fusion "
                       f"then learns its overconfidence; use videos held out from stream training")
    return out


def run_fuse(config: FuseConfig) -> FuseResult:
    test = load_pair(config.spatial, config.temporal)
    fit = load_pair(config.fit_spatial, config.fit_temporal) if config.has_fit else None
    rules, skipped = config.selected()
    warnings = overfit_warnings(fit, test) if fit is not None else []
    for w in warnings:
        log.warning(w)
    config.out_dir.mkdir(parents=True, exist_ok=True)
    inputs = {k: str(v) for k, v in (("spatial", config.spatial), ("temporal", config.temporal),
                                     ("fit_spatial", config.fit_spatial), ("fit_temporal", config.fit_temporal)) if v is not None}
    streams = [table_row("spatial", "stream", str(config.spatial), test.spatial),
               table_row("temporal", "stream", str(config.temporal), test.temporal)]
    rows, records = [], []
    for name in rules:
        fused = fit_and_fuse(name, test, fit, config.params)
        fused = replace(fused, meta={**fused.meta, "inputs": inputs, "split": test.spatial.meta.get("split")})
        path = config.out_dir / f"{name}.npz"
        save_scores(path, fused)
        row = table_row(name, "fusion", str(path), fused)
        rows.append(row)
        records.append({**row.to_dict(), "file": path.name, "score_kind": fused.meta["score_kind"],
                        "learned": fused.meta["learned"]})
        log.info("%s: top-1 %.1f%%", name, 100 * row.top1)
    results = {
        "format": RESULTS_FORMAT, "format_version": RESULTS_VERSION, "config": config.to_dict(),
        "streams": [r.to_dict() for r in streams], "methods": records, "skipped": skipped, "warnings": warnings,
    }
    write_json_atomic(config.out_dir / RESULTS_FILE, results)
    return FuseResult(streams, rows, skipped, warnings)



def read_results(folder: Path) -> dict:
    """A `twostream fuse` output folder's fusion.json, its format checked."""
    path = Path(folder) / RESULTS_FILE
    data = read_json_file(path, FusionError, f"not found; is {folder} a `twostream fuse` output folder?",
                          "fusion results")
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT or data.get("format_version") != RESULTS_VERSION:
        version = data.get("format_version") if isinstance(data, dict) else None
        raise FusionError(f"{path}: not fusion results of format version {RESULTS_VERSION} (got version {version!r})")
    return data


def read_fused_files(folder: Path) -> list[tuple[str, Path]]:
    """(method, fused score file) of each method in a `twostream fuse` output folder."""
    return [(m["name"], Path(folder) / m["file"]) for m in read_results(folder)["methods"]]
