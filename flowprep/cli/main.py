"""The `flowprep` command line. Errors are one line naming the bad value; exit status says what happened.

Exit status: 0 all done; 3 the run finished but some videos failed (see failures.jsonl);
2 bad usage or input (bad option, manifest, refused output folder); 1 an error of the
environment (disk full, permissions); 130 interrupted.
"""
from __future__ import annotations

import click

from flowprep.cli import demo, extract, manifests, rawframes, tools
from flowprep.demo.data import DemoDataError
from flowprep.extract.cluster import ClusterError
from flowprep.extract.run import ExtractError
from flowprep.format.codecs import CodecError
from flowprep.format.folder import FolderError
from flowprep.format.manifest import ManifestError
from flowprep.format.shards import ShardFormatError
from flowprep.rawframes.layout import RawframesError
from flowprep.tools.show import ShowError
from runkit.cli import CONTEXT, VERBOSE, configure_logging, run_click
from runkit.files import NotRegularFileError

# Errors that are the user's to fix; anything else is a bug and keeps its traceback.
USER_ERRORS = (ManifestError, ExtractError, ShardFormatError, FolderError, CodecError, RawframesError, ShowError,
               DemoDataError, ClusterError, NotRegularFileError)


@click.group(context_settings=CONTEXT)
@VERBOSE
def cli(verbose: bool) -> None:
    """Optical flow and RGB frames of a video dataset, into HDF5 shards."""
    configure_logging(verbose)


for command in (extract.extract, extract.methods, manifests.manifest_group, tools.inspect_command,
                tools.verify_command, tools.show_command, rawframes.export_rawframes_command,
                rawframes.import_rawframes_command, demo.make_demo_data):
    cli.add_command(command)


# (command, old option): its name since options mean one thing in both commands (docs/cli.md)
RENAMED = {
    ("extract", "--batch"): "--batch-size",
    ("show", "--max-frames"): "--gif-frames",
    ("show", "--num-frames"): "--rows",
    ("show", "--frames"): "--indices",
    ("show", "--restore-mean"): "--restore-means",
    ("export-rawframes", "--restore-mean"): "--restore-means",
}


def main(argv: list[str] | None = None) -> None:
    run_click(cli, "flowprep", USER_ERRORS, argv, RENAMED)


if __name__ == "__main__":
    main()
