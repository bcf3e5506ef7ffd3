"""The options both commands (flowprep and twostream) share, defined once so that a name means one
thing everywhere (docs/cli.md has the whole vocabulary). `--workers` is always processes with
0 = all cores; the DataLoader's worker processes (0 = none) are `--loader-workers`."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

DEVICE_DEFAULT = "auto"  # a GPU when there is one (and the work can use it), else the CPU


def workers_option(default: int, help: str = "Parallel processes (0 = all cores).") -> Callable:
    return click.option("--workers", type=click.IntRange(min=0), default=default, show_default=True, help=help)


def loader_workers_option(default: int = 2) -> Callable:
    return click.option("--loader-workers", "workers", type=click.IntRange(min=0), default=default,
                        show_default=True, help="DataLoader worker processes (0: load in the main process).")


def device_option(help: str) -> Callable:
    return click.option("--device", default=DEVICE_DEFAULT, show_default=True, help=help)


def out_folder_option(help: str, dest: str = "out_dir", required: bool = True) -> Callable:
    """--out: the folder a command writes into (only `manifest *` and `show`, which write one named
    file, take --out FILE)."""
    return click.option("--out", dest, required=required, default=None,
                        type=click.Path(path_type=Path, file_okay=False), help=help)
