"""The files of a run folder (`twostream train --out RUN`, `fuse-features train --out RUN`), named
here once. Torch-free on purpose: the command line finds a run's files (twostream.cli.runs)
without importing torch.

    RUN/checkpoint.pt       the model and the run's progress (twostream.core.checkpoint)
    RUN/config.json         the run's config (written by twostream.engine.fit_loop)
    RUN/metrics.jsonl       the training log (twostream.engine.metrics_log)
    RUN/scores_SUBSET.npz   evaluate's per-video scores of a subset (twostream.core.scores)
"""
from __future__ import annotations

CHECKPOINT_FILE = "checkpoint.pt"
RUN_CONFIG_FILE = "config.json"  # the run's; an extraction folder has its own (flowprep.format.folder)
METRICS_FILE = "metrics.jsonl"


def scores_file(subset: str) -> str:
    """The name of a run's scores file for `subset` (test, train, val)."""
    return f"scores_{subset}.npz"
