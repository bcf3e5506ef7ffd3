"""Run folders on the command line: what `evaluate`, `fuse-features`, `fuse` and `report` find in
the folder `twostream train` wrote, so that users name a run, not the files inside it.

    RUN/checkpoint.pt       the model (evaluate, fuse-features take RUN or this file)
    RUN/config.json         the run's config: the extraction folder and split it was trained on
    RUN/scores_SUBSET.npz   evaluate's per-video scores (fuse and report read scores_test, and
                            scores_val to fit the learned fusions on)
    RUN/metrics.jsonl       training curves (report)

Torch-free on purpose: `twostream --help` and a bad path must answer without importing it.
"""
from __future__ import annotations

from pathlib import Path

import click

from runkit.files import parse_json, read_regular_text
from twostream.core.config import renamed
from twostream.core.run_folder import CHECKPOINT_FILE, METRICS_FILE, RUN_CONFIG_FILE, scores_file


def checkpoint_of(run: Path, what: str = "RUN") -> Path:
    """RUN/checkpoint.pt for a run folder, the file itself for a checkpoint file."""
    if run.is_dir():
        checkpoint = run / CHECKPOINT_FILE
        if not checkpoint.is_file():
            raise click.BadParameter(f"run folder {run} has no {CHECKPOINT_FILE}; is it a 'twostream train' --out "
                                     f"folder, and has its first epoch finished?", param_hint=what)
        return checkpoint
    if not run.is_file():
        raise click.BadParameter(f"{run} does not exist; expected a run folder (twostream train --out) or its "
                                 f"{CHECKPOINT_FILE}", param_hint=what)
    return run


def recorded_config(checkpoint: Path) -> dict:
    """The run's config.json beside the checkpoint ({} if there is none, or it is not a config)."""
    try:
        data = parse_json(read_regular_text(checkpoint.parent / RUN_CONFIG_FILE))
    except (OSError, ValueError):
        return {}
    return renamed(data) if isinstance(data, dict) else {}  # an older run's keys too


def extraction_of(checkpoint: Path, given: Path | None) -> Path:
    """--extraction if given, else the extraction folder the run was trained on (its config.json)."""
    if given is not None:
        return given
    recorded = recorded_config(checkpoint).get("extraction")
    if not isinstance(recorded, str) or not recorded:
        raise click.UsageError(f"{checkpoint.parent / RUN_CONFIG_FILE} does not say which extraction the run was "
                               f"trained on; pass --extraction DIR")
    if not Path(recorded).is_dir():
        raise click.UsageError(f"the extraction folder {recorded!r} recorded in {checkpoint.parent / RUN_CONFIG_FILE} "
                               f"is not there (relative paths are from where training ran); pass --extraction DIR")
    return Path(recorded)


def split_of(checkpoint: Path, given: str | None) -> str:
    """--split if given, else the split the run was trained on, else split1."""
    if given is not None:
        return given
    recorded = recorded_config(checkpoint).get("split")
    return recorded if isinstance(recorded, str) and recorded else "split1"


def scores_of(path: Path, subset: str, what: str) -> Path:
    """RUN/scores_SUBSET.npz for a run folder, the file itself for a scores file."""
    if path.is_dir():
        scores = path / scores_file(subset)
        if not scores.is_file():
            raise click.BadParameter(f"run folder {path} has no {scores.name}; write it with "
                                     f"'twostream evaluate {path} --subset {subset}'", param_hint=what)
        return scores
    if not path.is_file():
        raise click.BadParameter(f"{path} does not exist; expected a run folder or a scores file (.npz)",
                                 param_hint=what)
    return path


def fit_scores_of(spatial: Path, temporal: Path) -> tuple[Path, Path] | None:
    """Both run folders' scores_val.npz (held-out training videos) when both have one, else None."""
    pair = (spatial / scores_file("val"), temporal / scores_file("val"))
    return pair if spatial.is_dir() and temporal.is_dir() and all(p.is_file() for p in pair) else None


def curves_of(spatial: Path, temporal: Path) -> tuple[tuple[str, Path], ...]:
    """(stream, RUN/metrics.jsonl) of the run folders that have one."""
    return tuple((name, run / METRICS_FILE) for name, run in (("spatial", spatial), ("temporal", temporal))
                 if run.is_dir() and (run / METRICS_FILE).is_file())
