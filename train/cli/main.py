"""The `twostream` command line: train and evaluate the streams, fuse them, report.

Commands are defined in their own modules and added to this group at the bottom.
"""
from __future__ import annotations

import logging

import click

from flowprep.cli.support import run_click
from flowprep.format.shards import ShardFormatError
from train.core.errors import CheckpointError, DataError, ModelError, TrainError
from train.core.scores import ScoresError

# Errors that are the user's to fix; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ShardFormatError, ScoresError)
USER_ERRORS += (DataError, ModelError, CheckpointError, TrainError)  # train, evaluate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """Two-stream action recognition on flowprep shards: train, evaluate, fuse, report."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> None:
    run_click(cli, "twostream", USER_ERRORS, argv)


# --- commands (each module adds its commands and, if any, its user-error types) ---------------
from train.cli.streams import evaluate_command, train  # noqa: E402

cli.add_command(train)
cli.add_command(evaluate_command)
from train.cli import score_fusion as fuse_cli  # noqa: E402  (after the group exists: the modules add to it)

cli.add_command(fuse_cli.fuse)
cli.add_command(fuse_cli.report)
USER_ERRORS += fuse_cli.USER_ERRORS
from train.cli.feature_fusion import fuse_features  # noqa: E402  (feature-level fusion; its errors are those of train)

cli.add_command(fuse_features)


if __name__ == "__main__":
    main()
