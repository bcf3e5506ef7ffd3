"""The `twostream` command line: train and evaluate the streams, fuse them, report.

Each command lives in the module of its role (streams, score_fusion, feature_fusion);
this module makes the group and says which errors are the user's to fix.
"""
from __future__ import annotations

import click

from flowprep.format.shards import ShardFormatError
from runkit.cli import CONTEXT, VERBOSE, configure_logging, run_click
from runkit.files import NotRegularFileError
from twostream.cli import feature_fusion, predict, score_fusion, streams
from twostream.core.errors import CheckpointError, DataError, ModelError, TrainError
from twostream.core.scores import ScoresError
from twostream.score_fusion.report_data import ReportError
from twostream.score_fusion.rules import FusionError

# Errors that are the user's to fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (ShardFormatError, ScoresError, DataError, ModelError, CheckpointError, TrainError, FusionError,
               ReportError, NotRegularFileError)


@click.group(context_settings=CONTEXT)
@VERBOSE
def cli(verbose: bool) -> None:
    """Two-stream action recognition on flowprep shards: train, evaluate, fuse, report; predict new videos."""
    configure_logging(verbose)


for command in (streams.train, streams.evaluate_command, score_fusion.fuse, score_fusion.report,
                feature_fusion.fuse_features, predict.predict, predict.export_command):
    cli.add_command(command)


# (command, old option): its name since options mean one thing in both commands (docs/cli.md)
_RUN_COMMANDS = ("train", "evaluate")
RENAMED = {
    **{(c, "--workers"): "--loader-workers" for c in _RUN_COMMANDS},
    ("evaluate", "--part"): "--subset",
    ("train", "--shards"): "the positional EXTRACTION (twostream train EXTRACTION --out RUN)",
    ("evaluate", "--shards"): "--extraction, by default the run's",
    ("evaluate", "--checkpoint"): "the positional RUN (the run folder or its checkpoint.pt)",
    ("train", "--no-mean-subtraction"): "--restore-means",
    ("train", "--mean-subtraction"): "the default (--restore-means puts the means back)",
    ("fuse", "--weights"): "--ratio",
    ("fuse", "--spatial"): "the positional RUN_SPATIAL (a run folder or a scores file)",
    ("fuse", "--temporal"): "the positional RUN_TEMPORAL (a run folder or a scores file)",
    ("report", "--spatial"): "the positional RUN_SPATIAL (a run folder or a scores file)",
    ("report", "--temporal"): "the positional RUN_TEMPORAL (a run folder or a scores file)",
}


def main(argv: list[str] | None = None) -> None:
    run_click(cli, "twostream", USER_ERRORS, argv, RENAMED)


if __name__ == "__main__":
    main()
